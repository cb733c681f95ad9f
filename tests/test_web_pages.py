"""The web pages through Flask's test client: sign-in, language, uploads, jobs, the quick test and errors."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from pandulce.db import BatchJob, JobStatus, Photo, PhotoStatus, User, session_scope, utcnow
from pandulce.queue import store_quick_result
from tests.conftest import REPO_ROOT
from tests.test_web_support import (  # noqa: F401 - fixtures
    PASSWORD,
    REFRESH_TAG,
    TEST_LIMITS,
    app,
    classify,
    client,
    csrf_token,
    job_id_from,
    make_app,
    multipart_files,
    photo_bytes,
    sign_in,
    statuses_replaced,
    upload_form,
    web_stack,
    zip_bytes,
)
from training.classes import display_name

# Names as phones and computers produce them: accents, Cyrillic, CJK, spaces and a folder.
UNICODE_NAMES = ["Concha de vainilla ñ.jpg", "Пирожок.jpg", "菠萝包.jpg", "vitrina 2/orejas #1.jpg"]


def use_language(client, language):
    """Choose the page language in the client's session, as the switcher does, without saving it for the user."""
    with client.session_transaction() as browser_session:
        browser_session["language"] = language


def script_messages(page_text: str) -> dict:
    """Return the messages that a page passes to its scripts."""
    return json.loads(page_text.split('<script type="application/json" id="messages">')[1].split("</script>")[0])


def job_row(job_id):
    with session_scope() as session:
        return session.get(BatchJob, job_id)


def photo_rows(job_id):
    with session_scope() as session:
        return session.scalars(select(Photo).where(Photo.job_id == job_id).order_by(Photo.position)).all()


def test_web_app_does_not_import_torch(web_stack):
    script = ("import sys\nfrom web import create_app\napp = create_app()\nclient = app.test_client()\n"
              "client.get('/login')\nassert 'torch' not in sys.modules, 'torch was imported'\nprint('ok')")

    result = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True,
                            env={**os.environ, **web_stack.env}, timeout=120)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_every_page_needs_sign_in(app):
    anonymous = app.test_client()
    token = csrf_token(anonymous)
    checked = 0

    for rule in app.url_map.iter_rules():
        if rule.endpoint in ("static", "auth.login", "auth.set_language") or rule.endpoint.startswith("api."):
            continue
        path = rule.rule.replace("<job_id>", "x").replace("<int:photo_id>", "1").replace(
            "<upload_id>", "x").replace("<request_id>", "x").replace("<file_format>", "csv").replace(
            "<int:version_id>", "1").replace("<name>", "loss")
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            response = anonymous.open(path, method=method, data={"csrf_token": token})
            assert response.status_code == 302, (method, path, response.status_code)
            assert response.headers["Location"].startswith("/login"), (method, path)
            checked += 1
    assert checked >= 20


def test_page_script_gets_401_json_without_sign_in(app):
    response = app.test_client().get("/jobs/x/status", headers={"X-Requested-With": "fetch"})

    assert response.status_code == 401
    assert response.json["error"] == "unauthorized"


def test_sign_in_with_wrong_password_is_rejected(app):
    anonymous = app.test_client()

    response = anonymous.post("/login", data={"username": "ana", "password": "wrong password",
                                              "csrf_token": csrf_token(anonymous)})

    assert response.status_code == 401
    assert "El usuario o la contraseña son incorrectos." in response.text
    assert anonymous.get("/jobs/").status_code == 302


def attempt_sign_in(client, username, password, address="10.0.0.1"):
    return client.post("/login", data={"username": username, "password": password,
                                       "csrf_token": csrf_token(client)}, environ_base={"REMOTE_ADDR": address})


def test_sign_in_is_throttled_after_five_failures(app):
    anonymous = app.test_client()

    failed = [attempt_sign_in(anonymous, "ana", "wrong password").status_code for _ in range(5)]
    blocked = attempt_sign_in(anonymous, "ana", PASSWORD)

    assert failed == [401] * 5
    assert blocked.status_code == 429
    assert "Demasiados intentos fallidos de iniciar sesión con este usuario. Vuelve a intentarlo en 15 minutos." \
        in blocked.text
    assert 0 < int(blocked.headers["Retry-After"]) <= 15 * 60
    assert attempt_sign_in(anonymous, "ANA", PASSWORD).status_code == 429
    assert anonymous.get("/jobs/").status_code == 302


def test_sign_in_throttle_is_per_username_and_address(app):
    for _ in range(5):
        attempt_sign_in(app.test_client(), "ana", "wrong password", address="10.0.0.2")

    assert attempt_sign_in(app.test_client(), "ana", PASSWORD, address="10.0.0.2").status_code == 429
    assert attempt_sign_in(app.test_client(), "ana", PASSWORD, address="10.0.0.3").status_code == 302
    assert attempt_sign_in(app.test_client(), "beto", PASSWORD, address="10.0.0.2").status_code == 302


def test_sign_in_throttle_ends_with_the_window(app):
    now = [1000.0]
    app.extensions["sign_in_throttle"].clock = lambda: now[0]
    anonymous = app.test_client()
    for _ in range(5):
        attempt_sign_in(anonymous, "ana", "wrong password")

    now[0] += 14 * 60
    almost = attempt_sign_in(anonymous, "ana", PASSWORD)
    now[0] += 60 + 1
    after = attempt_sign_in(anonymous, "ana", PASSWORD)

    assert almost.status_code == 429
    assert "Vuelve a intentarlo en 1 minuto." in almost.text
    assert after.status_code == 302


def test_successful_sign_in_clears_the_failures(app):
    anonymous = app.test_client()
    for _ in range(4):
        attempt_sign_in(anonymous, "ana", "wrong password")

    signed_in = attempt_sign_in(anonymous, "ana", PASSWORD)
    failed_again = [attempt_sign_in(app.test_client(), "ana", "wrong password").status_code for _ in range(5)]

    assert signed_in.status_code == 302
    assert failed_again == [401] * 5
    assert attempt_sign_in(app.test_client(), "ana", PASSWORD).status_code == 429


def test_sign_in_throttle_bounds_its_memory():
    from web.throttle import SignInThrottle

    now = [0.0]
    throttle = SignInThrottle(max_failures=1, window_s=60, max_keys=2, clock=lambda: now[0])
    throttle.record_failure("old", "10.0.0.1")
    now[0] += 61
    for username in ("a", "b", "c"):
        throttle.record_failure(username, "10.0.0.1")

    assert throttle.wait_seconds("old", "10.0.0.1") == 0
    assert throttle.wait_seconds("a", "10.0.0.1") == 0
    assert throttle.wait_seconds("b", "10.0.0.1") == 60
    assert throttle.wait_seconds("c", "10.0.0.1") == 60


def test_failed_sign_in_is_logged_without_the_password(app, caplog):
    caplog.set_level(logging.WARNING, logger="web.auth")

    attempt_sign_in(app.test_client(), "ana", "my secret guess", address="10.0.0.9")

    messages = [record.getMessage() for record in caplog.records if record.name == "web.auth"]
    assert len(messages) == 1
    assert "'ana'" in messages[0]
    assert "10.0.0.9" in messages[0]
    assert "my secret guess" not in caplog.text


def test_sign_in_ignores_next_pointing_to_another_site(app):
    anonymous = app.test_client()
    token = csrf_token(anonymous)

    response = anonymous.post("/login?next=//evil.example/x",
                              data={"username": "ana", "password": PASSWORD, "csrf_token": token})

    assert response.status_code == 302
    assert response.headers["Location"] == "/jobs/"


def test_sign_in_returns_to_requested_page(app):
    anonymous = app.test_client()
    token = csrf_token(anonymous)

    response = anonymous.post("/login?next=/quick/", data={"username": "ana", "password": PASSWORD,
                                                           "csrf_token": token})

    assert response.headers["Location"] == "/quick/"


def test_sign_out_ends_the_session(client):
    response = client.post("/logout", data={"csrf_token": csrf_token(client, "/jobs/")})

    assert response.status_code == 302
    assert client.get("/jobs/").status_code == 302


@pytest.mark.parametrize("path, method", [("/logout", "post"), ("/upload", "post"), ("/uploads", "post"),
                                          ("/quick/", "post"), ("/language", "post")])
def test_post_without_csrf_token_is_rejected(client, path, method):
    response = getattr(client, method)(path, data={})

    assert response.status_code == 400
    assert "token de seguridad" in response.text


def test_script_post_without_csrf_token_gets_json_error(client):
    response = client.post("/uploads", headers={"X-Requested-With": "fetch"})

    assert response.status_code == 400
    assert response.json["error"] == "csrf_failed"


def test_pages_are_spanish_by_default(client):
    page = client.get("/upload")

    assert 'lang="es-MX"' in page.text
    assert "Subir fotos" in page.text
    assert "Arrastra aquí fotos, carpetas o un zip" in page.text


def test_browser_language_english_gives_english_pages(client):
    page = client.get("/upload", headers={"Accept-Language": "en-US,en;q=0.9"})

    assert 'lang="en"' in page.text
    assert "Drag photos, folders or a zip here" in page.text


def test_language_switcher_remembers_choice_for_user(app, client):
    response = client.post("/language", data={"language": "en", "next": "/quick/",
                                              "csrf_token": csrf_token(client, "/jobs/")})

    assert response.headers["Location"] == "/quick/"
    assert "Quick test" in client.get("/quick/").text
    with session_scope() as session:
        assert session.scalar(select(User.language).where(User.username == "ana")) == "en"
    fresh = app.test_client()
    sign_in(fresh, "ana")
    assert "Quick test" in fresh.get("/quick/").text
    client.post("/language", data={"language": "es", "csrf_token": csrf_token(client, "/jobs/")})


def test_upload_page_states_the_limits(client):
    page = client.get("/upload")

    assert "Hasta 60 fotos por trabajo, cada una de 0.5 MB como máximo" in page.text
    assert "Se aceptan fotos JPEG, PNG, WebP, HEIC, AVIF, TIFF, BMP y GIF" in page.text
    assert "20 GB" not in page.text and "0.02 GB" in page.text
    limits = json.loads(page.text.split("data-limits='")[1].split("'")[0])
    assert limits["max_photo_bytes"] == TEST_LIMITS.max_photo_bytes
    assert limits["batch_files"] == 50


def test_upload_page_in_english_lists_avif(client):
    use_language(client, "en")

    page = client.get("/upload")

    assert "JPEG, PNG, WebP, HEIC, AVIF, TIFF, BMP and GIF photos are accepted" in page.text


@pytest.mark.parametrize("language, key, one, other", [
    ("es", "chosen", "{count} archivo elegido ({size}).", "{count} archivos elegidos ({size})."),
    ("es", "uploading", "Subiendo {done} de {total} archivo…", "Subiendo {done} de {total} archivos…"),
    ("es", "too_large_files", "{count} archivo pesa más de {size} MB y se marcará como fallido:",
     "{count} archivos pesan más de {size} MB y se marcarán como fallidos:"),
    ("en", "chosen", "{count} file chosen ({size}).", "{count} files chosen ({size})."),
    ("en", "uploading", "Uploading {done} of {total} file…", "Uploading {done} of {total} files…"),
])
def test_upload_script_gets_both_plural_forms(client, language, key, one, other):
    use_language(client, language)

    messages = script_messages(client.get("/upload").text)

    assert messages[key] == {"one": one, "other": other}


def test_plain_form_upload_creates_job_and_keeps_names(client, dataset_root):
    files = [(name, photo_bytes(dataset_root, index=index)) for index, name in enumerate(UNICODE_NAMES)]

    response = upload_form(client, files, name="Vitrina del lunes")

    job_id = job_id_from(response)
    job = job_row(job_id)
    assert job.name == "Vitrina del lunes"
    assert job.status == JobStatus.QUEUED
    assert [photo.original_name for photo in photo_rows(job_id)] == UNICODE_NAMES
    page = client.get(f"/jobs/{job_id}/results?view=table")
    # The table lets names wrap after a slash, with <wbr>.
    for name in UNICODE_NAMES:
        assert name in page.text.replace("<wbr>", "")


def test_stored_photos_stay_in_the_data_directory(client, dataset_root, web_stack):
    response = upload_form(client, [("../../outside.jpg", photo_bytes(dataset_root)),
                                    ("/etc/passwd.jpg", photo_bytes(dataset_root, index=1))])

    job_id = job_id_from(response)
    stored = [photo.stored_path for photo in photo_rows(job_id)]
    assert all(path.startswith("photos/") for path in stored)
    assert all((web_stack.data_dir / path).resolve().is_relative_to(web_stack.data_dir) for path in stored)
    assert not (web_stack.data_dir.parent / "outside.jpg").exists()
    assert [photo.original_name for photo in photo_rows(job_id)] == ["../../outside.jpg", "/etc/passwd.jpg"]


def test_upload_session_batches_become_one_job_in_order(client, dataset_root):
    token = csrf_token(client, "/upload")
    headers = {"X-CSRFToken": token, "X-Requested-With": "fetch"}
    created = client.post("/uploads", headers=headers)
    assert created.status_code == 201
    session = created.json
    batches = [["a/1.jpg", "a/2.jpg"], ["b/3.jpg"], ["b/4 ñ.jpg", "b/5.jpg"]]

    for index, names in enumerate(batches):
        files = [(name, photo_bytes(dataset_root, "orejas", position)) for position, name in enumerate(names)]
        response = client.post(session["files_url"], headers=headers, content_type="multipart/form-data",
                               data={"batch": str(index), "names": json.dumps(names),
                                     "photos": [(stream, "photo") for stream, _ in multipart_files(files)]})
        assert response.status_code == 200, response.text
        assert response.json["received"] == len(names)
    finished = client.post(session["finish_url"], headers=headers, data={"name": ""})

    assert finished.status_code == 201, finished.text
    job_id = finished.json["job_id"]
    assert finished.json["job_url"] == f"/jobs/{job_id}"
    assert [photo.original_name for photo in photo_rows(job_id)] == [name for names in batches for name in names]
    assert job_row(job_id).name == "a"


def test_upload_session_resent_batch_replaces_the_first(client, dataset_root):
    headers = {"X-CSRFToken": csrf_token(client, "/upload"), "X-Requested-With": "fetch"}
    session = client.post("/uploads", headers=headers).json

    for names in (["first.jpg", "second.jpg"], ["again.jpg"]):
        files = [(stream, "photo") for stream, _ in
                 multipart_files([(name, photo_bytes(dataset_root)) for name in names])]
        client.post(session["files_url"], headers=headers, content_type="multipart/form-data",
                    data={"batch": "0", "names": json.dumps(names), "photos": files})
    finished = client.post(session["finish_url"], headers=headers)

    assert [photo.original_name for photo in photo_rows(finished.json["job_id"])] == ["again.jpg"]


def test_upload_session_of_another_user_is_not_found(app, client):
    headers = {"X-CSRFToken": csrf_token(client, "/upload"), "X-Requested-With": "fetch"}
    session = client.post("/uploads", headers=headers).json
    other = app.test_client()
    sign_in(other, "beto")

    response = other.post(session["finish_url"], headers={"X-CSRFToken": csrf_token(other, "/upload"),
                                                         "X-Requested-With": "fetch"})

    assert response.status_code == 404
    assert response.json["error"] == "upload_not_found"


@pytest.mark.parametrize("names", ["not json", json.dumps(["one.jpg", "two.jpg"]), json.dumps([1])])
def test_upload_batch_with_wrong_names_is_rejected(client, dataset_root, names):
    headers = {"X-CSRFToken": csrf_token(client, "/upload"), "X-Requested-With": "fetch"}
    session = client.post("/uploads", headers=headers).json

    response = client.post(session["files_url"], headers=headers, content_type="multipart/form-data",
                           data={"batch": "0", "names": names,
                                 "photos": [(stream, "p") for stream, _ in
                                            multipart_files([("x.jpg", photo_bytes(dataset_root))])]})

    assert response.status_code == 400
    assert response.json["error"] == "bad_batch"


def oversized_jpeg() -> bytes:
    return b"\xff\xd8\xff\xe0" + b"\x00" * (TEST_LIMITS.max_photo_bytes + 1000)


BAD_UPLOADS = [
    ("no file", [], 400, "empty", "La subida no contiene archivos"),
    ("not an image", [("notes.txt", b"a shopping list, not a photo\n")], 400, "not_an_image",
     "Ninguno de los archivos subidos es una foto: su contenido no es JPEG, PNG, WebP, BMP, TIFF, GIF, HEIC ni AVIF."),
    ("not an image named jpg", [("fake.jpg", b"a shopping list, not a photo\n")], 400, "not_an_image",
     "Ninguno de los archivos subidos es una foto"),
    ("only system files", [(".DS_Store", b"\x00\x00\x00\x01Bud1" + b"\xff\xd8\xff"),
                           ("__MACOSX/._a.jpg", b"\xff\xd8\xff AppleDouble")], 400, "no_photos",
     "Ningún archivo de la subida se puede clasificar"),
    ("oversized file", [("huge.jpg", oversized_jpeg())], 413, "file_too_large",
     "El archivo supera el límite de 0.5 MB por foto."),
    ("too many photos", [(f"p{index}.jpg", b"\xff\xd8\xff") for index in range(61)], 413, "too_many_photos",
     "La subida tiene más de 60 fotos"),
    ("zip bomb", [("bomb.zip", zip_bytes([("zeros.jpg", b"\xff\xd8\xff" + b"\x00" * 5_000_000)]))], 400,
     "zip_bomb", "el zip parece malicioso"),
    ("damaged zip", [("broken.zip", zip_bytes([("a.jpg", b"\xff\xd8\xff" * 100)])[:60])], 400, "bad_zip",
     "El archivo zip no se puede leer"),
    ("zip too large", [("big.zip", zip_bytes([(f"{index}.jpg", b"\xff\xd8\xff" + bytes(1_000_000))
                                              for index in range(21)]))],
     413, "zip_too_large", "El zip se expande a más de 0.02 GB"),
]


@pytest.mark.parametrize("label, files, status, code, sentence", BAD_UPLOADS, ids=[row[0] for row in BAD_UPLOADS])
def test_bad_upload_is_rejected_without_a_job(client, label, files, status, code, sentence):
    with session_scope() as session:
        jobs_before = session.scalar(select(func.count(BatchJob.id)))
    headers = {"X-CSRFToken": csrf_token(client, "/upload"), "X-Requested-With": "fetch"}
    session_urls = client.post("/uploads", headers=headers).json

    added = client.post(session_urls["files_url"], headers=headers, content_type="multipart/form-data",
                        data={"batch": "0", "photos": multipart_files(files)})
    response = added if added.status_code != 200 else client.post(session_urls["finish_url"], headers=headers)

    assert response.status_code == status, response.text
    assert response.json["error"] == code
    assert sentence in response.json["message"]
    with session_scope() as session:
        assert session.scalar(select(func.count(BatchJob.id))) == jobs_before


def test_bad_form_upload_shows_error_page(client):
    response = upload_form(client, [("notes.txt", b"not a photo")])

    assert response.status_code == 400
    assert "<html" in response.text
    assert "Ninguno de los archivos subidos es una foto" in response.text


def test_oversized_file_fails_alone_with_its_reason(client, dataset_root):
    response = upload_form(client, [("ok.jpg", photo_bytes(dataset_root)), ("huge.jpg", oversized_jpeg())])

    photos = {photo.original_name: photo for photo in photo_rows(job_id_from(response))}
    assert photos["ok.jpg"].status == PhotoStatus.PENDING
    assert photos["huge.jpg"].status == PhotoStatus.FAILED
    assert photos["huge.jpg"].error_code == "file_too_large"
    assert photos["huge.jpg"].stored_path is None


def test_zip_slip_members_are_stored_by_content_only(client, dataset_root, web_stack):
    archive = zip_bytes([("../../evil.jpg", photo_bytes(dataset_root)), ("/tmp/absolute.jpg",
                                                                          photo_bytes(dataset_root, index=1)),
                         ("ok/Ñandú 菠萝.jpg", photo_bytes(dataset_root, index=2)),
                         ("__MACOSX/ok/._x.jpg", b"\x00\x05\x16\x07"), ("ok/.DS_Store", b"Bud1"),
                         ("Thumbs.db", b"\x00")],
                        symlinks={"link.jpg": "/etc/passwd"})

    response = upload_form(client, [("slip.zip", archive)])

    photos = {photo.original_name: photo for photo in photo_rows(job_id_from(response))}
    assert "link.jpg" not in photos
    assert {name for name, photo in photos.items() if photo.status == PhotoStatus.PENDING} == {
        "../../evil.jpg", "/tmp/absolute.jpg", "ok/Ñandú 菠萝.jpg"}
    assert {name for name, photo in photos.items() if photo.status == PhotoStatus.SKIPPED} == {
        "__MACOSX/ok/._x.jpg", "ok/.DS_Store", "Thumbs.db"}
    assert not (web_stack.data_dir.parent.parent / "evil.jpg").exists()
    assert not os.path.exists("/tmp/absolute.jpg")
    for photo in photos.values():
        if photo.stored_path:
            assert (web_stack.data_dir / photo.stored_path).resolve().is_relative_to(web_stack.data_dir)


def test_finished_upload_leaves_no_upload_files(client, dataset_root, web_stack):
    uploads_dir = web_stack.data_dir / "uploads"
    before = set(uploads_dir.iterdir()) if uploads_dir.exists() else set()

    upload_form(client, [("a.jpg", photo_bytes(dataset_root))])

    assert set(uploads_dir.iterdir()) - before == set()
    assert list((uploads_dir / "incoming").iterdir()) == []


def test_job_list_shows_only_own_jobs(app, client, dataset_root):
    mine = job_id_from(upload_form(client, [("mine.jpg", photo_bytes(dataset_root))], name="job of ana"))
    other = app.test_client()
    sign_in(other, "beto")
    theirs = job_id_from(upload_form(other, [("theirs.jpg", photo_bytes(dataset_root))], name="job of beto"))

    page = client.get("/jobs/").text

    assert "job of ana" in page and mine in page
    assert "job of beto" not in page and theirs not in page


def test_job_list_reloads_while_jobs_are_active(client, dataset_root):
    job_id_from(upload_form(client, [("a.jpg", photo_bytes(dataset_root))], name="still queued"))

    assert REFRESH_TAG in client.get("/jobs/").text

    with statuses_replaced(BatchJob, [JobStatus.QUEUED, JobStatus.RUNNING], JobStatus.DONE):
        assert REFRESH_TAG not in client.get("/jobs/").text


def test_admin_sees_every_job(app, client, dataset_root):
    job_id = job_id_from(upload_form(client, [("a.jpg", photo_bytes(dataset_root))], name="for the admin"))
    admin = app.test_client()
    sign_in(admin, "root")

    assert "for the admin" in admin.get("/jobs/").text
    assert admin.get(f"/jobs/{job_id}").status_code == 200


@pytest.mark.parametrize("suffix", ["", "/status", "/results", "/export.csv", "/photos/1", "/photos/1/thumbnail"])
def test_another_users_job_is_not_found(app, client, dataset_root, suffix):
    job_id = job_id_from(upload_form(client, [("a.jpg", photo_bytes(dataset_root))]))
    other = app.test_client()
    sign_in(other, "beto")

    response = other.get(f"/jobs/{job_id}{suffix}")

    assert response.status_code == 404
    assert f"El trabajo {job_id} no existe." in response.text


def test_missing_job_is_not_found(client):
    response = client.get("/jobs/00000000-0000-0000-0000-000000000000")

    assert response.status_code == 404
    assert "El trabajo 00000000-0000-0000-0000-000000000000 no existe." in response.text


def test_job_page_shows_progress_bar_and_actions(client, dataset_root):
    job_id = job_id_from(upload_form(client, [("a.jpg", photo_bytes(dataset_root)), ("b.txt", b"text")]))

    page = client.get(f"/jobs/{job_id}").text

    assert 'id="progress"' in page and 'data-percent="0.0"' in page
    assert f'data-status-url="/jobs/{job_id}/status"' in page
    assert "Cancelar el trabajo" in page


def test_status_reports_counts_percent_and_rate(client, dataset_root):
    files = [(f"{index}.jpg", photo_bytes(dataset_root, index=index)) for index in range(4)] + [("x.txt", b"x")]
    job_id = job_id_from(upload_form(client, files))

    queued = client.get(f"/jobs/{job_id}/status").json
    classify(job_id, failed_positions=frozenset({3}))
    finished = client.get(f"/jobs/{job_id}/status").json

    assert (queued["total"], queued["pending"], queued["skipped"], queued["percent"]) == (5, 4, 1, 0.0)
    assert queued["status"] == "queued" and queued["status_label"] == "En cola"
    assert queued["finished"] is False
    assert (finished["done"], finished["failed"], finished["pending"], finished["percent"]) == (3, 1, 0, 100.0)
    assert finished["finished"] is True
    assert finished["eta_seconds"] is None


def test_status_reports_the_current_age(client, dataset_root):
    job_id = job_id_from(upload_form(client, [("a.jpg", photo_bytes(dataset_root))]))
    with session_scope() as session:
        session.get(BatchJob, job_id).created_at = utcnow() - timedelta(minutes=5)

    status = client.get(f"/jobs/{job_id}/status").json
    page = client.get(f"/jobs/{job_id}").text

    assert status["created_age"] == "hace 5 minutos"
    assert '<time id="created-age" datetime="' in page
    assert "hace 5 minutos</time>" in page


@pytest.mark.parametrize("language, rate, expected", [
    ("es", 1.0, "1 foto por segundo"),
    ("es", 2.5, "2.5 fotos por segundo"),
    ("es", 12.0, "12 fotos por segundo"),
    ("en", 1.0, "1 photo per second"),
    ("en", 0.5, "0.5 photos per second"),
    ("en", None, None),
])
def test_rate_text_chooses_the_plural_form(app, language, rate, expected):
    from web.jobs import rate_text

    with app.test_request_context(headers={"Accept-Language": language}):
        assert rate_text(rate) == expected


def test_cancel_stops_a_queued_job(client, dataset_root):
    job_id = job_id_from(upload_form(client, [("a.jpg", photo_bytes(dataset_root))]))

    response = client.post(f"/jobs/{job_id}/cancel", data={"csrf_token": csrf_token(client, f"/jobs/{job_id}")})

    assert response.status_code == 303
    assert job_row(job_id).status == JobStatus.CANCELLED
    assert [photo.status for photo in photo_rows(job_id)] == [PhotoStatus.CANCELLED]
    assert "El trabajo se canceló" in client.get(f"/jobs/{job_id}").text


def test_cancel_of_finished_job_is_a_conflict(client, dataset_root):
    job_id = job_id_from(upload_form(client, [("a.jpg", photo_bytes(dataset_root))]))
    classify(job_id)

    response = client.post(f"/jobs/{job_id}/cancel", data={"csrf_token": csrf_token(client, f"/jobs/{job_id}")})

    assert response.status_code == 409
    assert "El trabajo ya terminó" in response.text


def test_retry_queues_failed_photos_again(client, dataset_root):
    job_id = job_id_from(upload_form(client, [("a.jpg", photo_bytes(dataset_root)),
                                              ("b.jpg", photo_bytes(dataset_root, index=1))]))
    classify(job_id, failed_positions=frozenset({1}), error_code="worker_lost")
    assert "Reintentar 1 foto fallida" in client.get(f"/jobs/{job_id}").text

    response = client.post(f"/jobs/{job_id}/retry", data={"csrf_token": csrf_token(client, f"/jobs/{job_id}")})

    assert response.status_code == 303
    assert job_row(job_id).status == JobStatus.RUNNING
    assert [photo.status for photo in photo_rows(job_id)] == [PhotoStatus.DONE, PhotoStatus.PENDING]
    assert "1 foto fallida está otra vez en la cola." in client.get(f"/jobs/{job_id}").text


@pytest.mark.parametrize("language, failed, label", [
    ("es", 1, "Reintentar 1 foto fallida"),
    ("es", 3, "Reintentar 3 fotos fallidas"),
    ("en", 1, "Retry 1 failed photo"),
    ("en", 3, "Retry 3 failed photos"),
])
def test_retry_button_counts_retryable_photos(client, dataset_root, language, failed, label):
    files = [(f"{index}.jpg", photo_bytes(dataset_root, index=index)) for index in range(4)]
    job_id = job_id_from(upload_form(client, files))
    classify(job_id, failed_positions=frozenset(range(failed)), error_code="worker_lost")
    use_language(client, language)

    page = client.get(f"/jobs/{job_id}").text

    assert 'id="retry-form"' in page
    assert f"{label}</button>" in page


def test_retry_leaves_permanent_failures_alone(client, dataset_root):
    files = [(f"{index}.jpg", photo_bytes(dataset_root, index=index)) for index in range(3)]
    job_id = job_id_from(upload_form(client, files))
    classify(job_id, failed_positions=frozenset({0, 1}), error_code="truncated")
    with session_scope() as session:
        photo = session.scalar(select(Photo).where(Photo.job_id == job_id, Photo.position == 1))
        photo.error_code, photo.error = "worker_lost", "A worker process stopped 3 times."
    assert "Reintentar 1 foto fallida" in client.get(f"/jobs/{job_id}").text

    response = client.post(f"/jobs/{job_id}/retry", data={"csrf_token": csrf_token(client, f"/jobs/{job_id}")})

    assert response.status_code == 303
    assert [photo.status for photo in photo_rows(job_id)] == [PhotoStatus.FAILED, PhotoStatus.PENDING,
                                                              PhotoStatus.DONE]


def test_job_with_only_permanent_failures_offers_no_retry(client, dataset_root):
    job_id = job_id_from(upload_form(client, [("a.jpg", photo_bytes(dataset_root)),
                                              ("b.jpg", photo_bytes(dataset_root, index=1))]))
    classify(job_id, failed_positions=frozenset({1}), error_code="truncated")

    page = client.get(f"/jobs/{job_id}").text
    response = client.post(f"/jobs/{job_id}/retry", headers={"X-Requested-With": "fetch"},
                           data={"csrf_token": csrf_token(client, f"/jobs/{job_id}")})

    assert 'id="retry-form"' not in page
    assert "Reintentar" not in page
    assert response.status_code == 409
    assert response.json["error"] == "nothing_to_retry"
    assert [photo.status for photo in photo_rows(job_id)] == [PhotoStatus.DONE, PhotoStatus.FAILED]


@pytest.mark.parametrize("failed, expected", [(frozenset(), "no tiene fotos fallidas que un reintento"),
                                              (None, "sigue en proceso")])
def test_retry_without_failed_photos_is_a_conflict(client, dataset_root, failed, expected):
    job_id = job_id_from(upload_form(client, [("a.jpg", photo_bytes(dataset_root))]))
    if failed is not None:
        classify(job_id, failed_positions=failed)

    response = client.post(f"/jobs/{job_id}/retry", data={"csrf_token": csrf_token(client, f"/jobs/{job_id}")})

    assert response.status_code == 409
    assert expected in response.text


def test_quick_test_polls_for_the_result(client, dataset_root, web_stack):
    response = client.post("/quick/", data={"csrf_token": csrf_token(client, "/quick/"),
                                            "photo": multipart_files([("cámara.jpg", photo_bytes(dataset_root))])},
                           headers={"X-Requested-With": "fetch"}, content_type="multipart/form-data")

    assert response.status_code == 202, response.text
    request_id = response.json["request_id"]
    pending = client.get(response.json["result_url"]).json
    store_quick_result(request_id, {"status": "ok", "error": None, "error_code": None, "top_class": "conchita",
                                    "top_probability": 0.9, "probabilities": {"conchita": 0.9, "orejas": 0.1},
                                    "classes": ["conchita", "orejas"], "model_version_id": 1, "width": 10,
                                    "height": 10})
    answer = client.get(response.json["result_url"]).json
    assert pending["status"] == "pending"
    assert answer["status"] == "ok"
    assert answer["top_label"] == display_name("conchita", "es")
    assert answer["description"].startswith("Pan suave y redondo")
    assert [item["class"] for item in answer["probabilities"]] == ["conchita", "orejas"]


def test_quick_test_without_script_redirects(client, dataset_root):
    response = client.post("/quick/", data={"csrf_token": csrf_token(client, "/quick/"),
                                            "photo": multipart_files([("a.jpg", photo_bytes(dataset_root))])},
                           content_type="multipart/form-data")

    assert response.status_code == 303
    page = client.get(response.headers["Location"])
    assert 'http-equiv="refresh"' in page.text
    assert client.get(response.headers["Location"] + "/photo").status_code == 200


@pytest.mark.parametrize("files, status, code", [
    ([], 400, "no_file"),
    ([("notes.jpg", b"not a photo at all")], 400, "not_an_image"),
    ([("huge.jpg", b"\xff\xd8\xff" + b"\x00" * 600_000)], 413, "file_too_large"),
])
def test_bad_quick_test_photo_is_rejected(client, files, status, code):
    response = client.post("/quick/", data={"csrf_token": csrf_token(client, "/quick/"),
                                            "photo": multipart_files(files)},
                           headers={"X-Requested-With": "fetch"}, content_type="multipart/form-data")

    assert response.status_code == status
    assert response.json["error"] == code


def test_quick_test_non_image_message(client):
    response = client.post("/quick/", data={"csrf_token": csrf_token(client, "/quick/"),
                                            "photo": multipart_files([("notes.jpg", b"a shopping list")])},
                           headers={"X-Requested-With": "fetch"}, content_type="multipart/form-data")

    assert response.status_code == 400
    assert response.json["message"] == ("El archivo no es una imagen: su contenido no es JPEG, PNG, WebP, BMP, TIFF, "
                                        "GIF, HEIC ni AVIF.")


def test_quick_test_of_another_user_is_not_found(app, client, dataset_root):
    response = client.post("/quick/", data={"csrf_token": csrf_token(client, "/quick/"),
                                            "photo": multipart_files([("a.jpg", photo_bytes(dataset_root))])},
                           headers={"X-Requested-With": "fetch"}, content_type="multipart/form-data")
    other = app.test_client()
    sign_in(other, "beto")

    assert other.get(response.json["result_url"]).status_code == 404


def test_server_error_rolls_back_the_session(web_stack):
    from web.database import get_db

    app = make_app(web_stack, TESTING=False)

    @app.route("/fail")
    def fail():
        get_db().add(User(username="half-written", password_hash="x"))
        get_db().flush()
        raise RuntimeError("boom")

    client = app.test_client()
    sign_in(client, "ana")
    response = client.get("/fail")

    assert response.status_code == 500
    assert "Algo falló en el servidor" in response.text
    with session_scope() as session:
        assert session.scalar(select(User).where(User.username == "half-written")) is None


def test_unknown_page_is_a_translated_404(client):
    response = client.get("/no/such/page")

    assert response.status_code == 404
    assert "La página no existe." in response.text


def test_translations_cover_every_message(tmp_path):
    from babel.messages.frontend import CommandLineInterface
    from babel.messages.pofile import read_po

    template_path = tmp_path / "messages.pot"
    CommandLineInterface().run(["pybabel", "-q", "extract", "-F", str(REPO_ROOT / "web" / "babel.cfg"), "-k", "_l",
                                "-k", "lazy_pgettext:1c,2", "-k", "plural_forms:1,2", "--no-location",
                                "-o", str(template_path), str(REPO_ROOT / "web")])
    with template_path.open("rb") as stream:
        template = read_po(stream)

    for language in ("es", "en"):
        with (REPO_ROOT / "web" / "translations" / language / "LC_MESSAGES" / "messages.po").open("rb") as stream:
            catalog = read_po(stream)
        for message in template:
            if not message.id:
                continue
            entry = catalog.get(message.id, context=message.context)
            assert entry is not None, (language, message.id)
            strings = entry.string if isinstance(entry.string, tuple) else (entry.string,)
            assert all(strings), (language, message.id)
            assert not entry.fuzzy, (language, message.id)


def test_app_start_compiles_the_translations(web_stack):
    compiled = web_stack.data_dir / "cache" / "translations"

    make_app(web_stack)

    assert (compiled / "es" / "LC_MESSAGES" / "messages.mo").stat().st_size > 1000
    assert (compiled / "en" / "LC_MESSAGES" / "messages.mo").exists()


def test_form_with_too_many_parts_rejected(web_stack, dataset_root):
    app = make_app(web_stack, MAX_FORM_PARTS=5)
    client = app.test_client()
    sign_in(client, "ana")

    response = upload_form(client, [(f"{index}.jpg", photo_bytes(dataset_root)) for index in range(8)])

    assert response.status_code == 413
    assert "tiene demasiados archivos para un solo formulario" in response.text
