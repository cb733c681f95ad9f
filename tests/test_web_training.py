"""Training runs started from the web: the admin form, zip unpacking into class folders, the API, a real worker."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import random
import re
import struct
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import redis
from kombu.exceptions import OperationalError
from sqlalchemy import func, select

from pandulce.config import get_settings
from pandulce.dataset_uploads import (MIN_PHOTOS_PER_CLASS, DatasetUploadError, check_classes,
                                      class_for_member, unpack_dataset_zip)
from pandulce.db import ModelVersion, RunStatus, TrainingRun, session_scope
from pandulce.registry import activate_version
from tests.stack import REDIS_URL
from tests.test_web_api import ApiClient, token_for
from tests.test_web_support import (  # noqa: F401 - fixtures
    TEST_LIMITS,
    app,
    client,
    csrf_token,
    make_app,
    sign_in,
    web_stack,
    zip_bytes,
)
from training.datasets import DatasetError, stratified_split

CLASSES = ("conchita", "donas", "besos")
JUNK_MEMBERS = [("__MACOSX/conchita/._conchita_0.jpg", b"\x00\x05\x16\x07 resource fork"),
                ("conchita/.DS_Store", b"\x00\x00\x00\x01Bud1"),
                ("notes.txt", b"a shopping list, not a photo\n"),
                ("donas/Thumbs.db", b"\xd0\xcf\x11\xe0 thumbnails")]
MISSING_RUN_ID = 999_999


@pytest.fixture
def admin(app):
    admin_client = app.test_client()
    sign_in(admin_client, "root")
    return admin_client


@pytest.fixture(scope="module")
def tokens(web_stack):
    return {"ana": token_for("ana"), "root": token_for("root")}


@pytest.fixture
def admin_api(app, tokens):
    return ApiClient(app.test_client(), tokens["root"])


@pytest.fixture
def api(app, tokens):
    return ApiClient(app.test_client(), tokens["ana"])


def real_photos(dataset_root: Path, class_name: str, count: int, offset: int = 0) -> list[bytes]:
    return [(dataset_root / class_name / f"{class_name}_{index}.jpg").read_bytes()
            for index in range(offset, offset + count)]


def class_members(dataset_root: Path, counts: dict[str, int], prefix: str = "", offset: int = 0):
    """Return zip members of real photos in class folders, and the file names each class folder should get."""
    members, expected = [], {}
    for class_name, count in counts.items():
        photos = real_photos(dataset_root, class_name, count, offset)
        members += [(f"{prefix}{class_name}/{class_name}_{offset + index}.jpg", content)
                    for index, content in enumerate(photos)]
        expected[class_name.lower()] = {f"{hashlib.sha256(content).hexdigest()}.jpg" for content in photos}
    return members, expected


def post_zip(client, archive: bytes | None, token: str | None = None, file_name: str = "vitrina.zip", **fields):
    data = {"csrf_token": csrf_token(client, "/models/") if token is None else token, **fields}
    if archive is not None:
        data["dataset"] = (io.BytesIO(archive), file_name)
    return client.post("/models/train", data=data, content_type="multipart/form-data")


def post_api_zip(api_client, archive: bytes | None, headers: dict | None = None, **fields):
    data = dict(fields)
    if archive is not None:
        data["dataset"] = (io.BytesIO(archive), "vitrina.zip")
    return api_client.post("/models/train", data=data, content_type="multipart/form-data", headers=headers)


def run_ids() -> set[int]:
    with session_scope() as session:
        return set(session.scalars(select(TrainingRun.id)))


def new_run(before: set[int]) -> TrainingRun:
    with session_scope() as session:
        runs = session.scalars(select(TrainingRun).where(TrainingRun.id.not_in(before))).all()
        assert len(runs) == 1, runs
        session.expunge(runs[0])
        return runs[0]


def dataset_folders(web_stack) -> set[Path]:
    datasets_dir = web_stack.data_dir / "datasets"
    return set(datasets_dir.iterdir()) if datasets_dir.is_dir() else set()


def class_files(dataset_dir: Path) -> dict[str, set[str]]:
    """Return the file names in each folder of a dataset folder; fails on files outside a class folder."""
    entries = list(dataset_dir.iterdir())
    assert all(entry.is_dir() for entry in entries), entries
    return {entry.name: {path.name for path in entry.iterdir()} for entry in entries}


def files_under(root: Path) -> set[Path]:
    return {path for path in root.rglob("*") if path.is_file() or path.is_symlink()}


def incoming_zips(web_stack) -> list[Path]:
    return list((web_stack.data_dir / "uploads" / "incoming").glob("dataset-*.zip"))


def training_queue_length(web_stack) -> int:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        return client.llen(f"{web_stack.queue_prefix}training")
    finally:
        client.close()


@pytest.mark.parametrize("name, expected", [
    ("conchita/a.jpg", "conchita"),
    ("pan-dulce/conchita/a.jpg", "conchita"),
    ("./pan-dulce/Conchita/a.jpg", "Conchita"),
    ("pan-dulce\\donas\\a.jpg", "donas"),
    ("a.jpg", None),
    ("../../evil/x.jpg", None),
    ("/abs/x.jpg", None),
    ("conchita/../../x.jpg", None),
    ("C:/fotos/conchita/a.jpg", None),
])
def test_class_comes_from_parent_folder(name, expected):
    assert class_for_member(name) == expected


@pytest.mark.parametrize("label, prefix", [
    ("Vitrina de Enero ñ.ZIP", "vitrina-de-enero-n-"),
    ("../../etc/passwd.zip", "etc-passwd-"),
    ("Пирожки.zip", ""),
    ("", ""),
])
def test_dataset_folder_name_is_safe(label, prefix):
    from pandulce.dataset_uploads import dataset_folder_name

    name = dataset_folder_name(label)

    assert re.fullmatch(r"[a-z0-9-]+", name)
    assert name.startswith(prefix)
    assert name != dataset_folder_name(label)


def test_min_photos_matches_the_trainers_split():
    enough = np.repeat([0, 1], MIN_PHOTOS_PER_CLASS)
    short = np.repeat([0, 1], [MIN_PHOTOS_PER_CLASS, MIN_PHOTOS_PER_CLASS - 1])

    assert stratified_split(enough).sizes()["test"] == 2
    with pytest.raises(DatasetError, match="fewer than 4 photos"):
        stratified_split(short)


@pytest.mark.parametrize("class_count", [2, 3, 10, 25, 60, 120])
def test_seven_photos_per_class_always_split(class_count):
    # The form and the error message promise that 7 photos of each class are enough.
    generator = random.Random(class_count)
    check_classes({f"class-{index}": 7 for index in range(class_count)})
    check_classes({f"class-{index}": generator.randint(7, 40) for index in range(class_count)},
                  seed=generator.randint(0, 1000))


@pytest.mark.parametrize("counts, code", [
    ({}, "no_classes"),
    ({"conchita": 9}, "too_few_classes"),
    ({"conchita": 9, "donas": 3}, "too_few_photos"),
    ({"conchita": 4, "donas": 4, "besos": 4}, "split_too_small"),
])
def test_check_classes_rejects_unusable_counts(counts, code):
    with pytest.raises(DatasetUploadError) as raised:
        check_classes(counts)

    assert raised.value.code == code


def unpack_with_folder(tmp_path, dataset_root, folder: str):
    members, _ = class_members(dataset_root, {"conchita": 5, "donas": 5})
    members += [(f"{folder}/{index}.jpg", content) for index, content in enumerate(real_photos(dataset_root, "besos", 5))]
    (tmp_path / "dataset.zip").write_bytes(zip_bytes(members))
    return unpack_dataset_zip(tmp_path / "dataset.zip", tmp_path / "datasets", TEST_LIMITS)


@pytest.mark.parametrize("folder", ["Con Cha!", "besos\n", "ñoño", "-besos", "_besos", "b" * 65, "pan dulce"])
def test_invalid_folder_name_is_rejected(tmp_path, dataset_root, folder):
    with pytest.raises(DatasetUploadError, match="cannot be class names") as raised:
        unpack_with_folder(tmp_path, dataset_root, folder)

    assert raised.value.code == "bad_class_name"
    assert raised.value.folders == [folder]
    assert list((tmp_path / "datasets").iterdir()) == []


@pytest.mark.parametrize("folder, class_name", [("pan-de-muerto", "pan-de-muerto"), ("Besos_2", "besos_2"),
                                                ("9", "9"), ("b" * 64, "b" * 64)])
def test_valid_folder_name_becomes_class(tmp_path, dataset_root, folder, class_name):
    unpacked = unpack_with_folder(tmp_path, dataset_root, folder)

    assert unpacked.class_counts == {"conchita": 5, "donas": 5, class_name: 5}
    assert sorted(path.name for path in unpacked.path.iterdir()) == sorted(["conchita", "donas", class_name])


def test_form_is_only_for_admins(client, admin):
    ana_list = client.get("/models/").text
    ana_form = client.get("/models/train")
    admin_list = admin.get("/models/").text
    admin_form = admin.get("/models/train")

    assert 'id="train-link"' not in ana_list
    assert ana_form.status_code == 403
    assert "Solo un administrador puede iniciar un entrenamiento." in ana_form.text
    assert 'id="train-form"' not in ana_form.text
    assert 'id="train-link"' in admin_list
    assert 'href="/models/train"' in admin_list
    assert admin_form.status_code == 200
    assert 'id="train-form"' in admin_form.text


def test_form_states_the_rules_and_defaults(admin):
    page = admin.get("/models/train").text

    assert '<option value="efficientnet-lite0" selected>' in page
    assert '<option value="resnet50">' in page
    assert "resnet50-0676ba61.pth" in page
    assert re.search(r'name="epochs"[^>]*min="1" max="100"[^>]*value="15"', page)
    assert re.search(r'name="seed"[^>]*value="42"', page)
    assert 'name="activate" value="1"' in page
    assert "Activar la versión nueva cuando termine el entrenamiento" in page
    assert "<code>conchita/</code>" in page
    assert "<code>donas/</code>" in page
    assert "Al menos 2 clases, y al menos 4 fotos de cada clase." in page
    assert f"{TEST_LIMITS.max_photo_bytes / 1e6:g} MB" in page
    assert f"{TEST_LIMITS.max_zip_expanded_bytes / 1e9:g} GB" in page


def test_form_in_english(admin):
    with admin.session_transaction() as browser_session:
        browser_session["language"] = "en"

    page = admin.get("/models/train").text

    assert "<h1>Train a new version</h1>" in page
    assert "One folder per class." in page
    assert "Activate the new version when training finishes" in page


def test_admin_upload_queues_a_run(admin, web_stack, dataset_root):
    members, expected = class_members(dataset_root, dict.fromkeys(CLASSES, 5))
    before, folders_before = run_ids(), dataset_folders(web_stack)
    queued_before = training_queue_length(web_stack)

    response = post_zip(admin, zip_bytes(members + JUNK_MEMBERS), epochs="3", seed="7")

    assert response.status_code == 303, response.text
    assert response.headers["Location"] == "/models/"
    run = new_run(before)
    assert run.status == RunStatus.QUEUED
    assert run.settings == {"backbone": "efficientnet-lite0", "weights": None, "epochs": 3, "seed": 7}
    assert run.activate is False
    assert run.submitted_by == "web:root"
    dataset = Path(run.dataset)
    assert dataset.is_absolute()
    assert dataset.parent == (web_stack.data_dir / "datasets").resolve()
    assert dataset_folders(web_stack) - folders_before == {dataset}
    assert re.fullmatch(r"vitrina-[0-9a-f]{12}", dataset.name)
    assert class_files(dataset) == expected
    assert training_queue_length(web_stack) == queued_before + 1
    assert incoming_zips(web_stack) == []

    page = admin.get("/models/").text
    assert f"El entrenamiento {run.id} está en cola con 15 fotos de 3 clases." in page
    assert f"Se omitieron {len(JUNK_MEMBERS)} archivos del zip" in page
    row = re.search(rf'<tr id="run-{run.id}".*?</tr>', page, re.S).group()
    assert "En cola" in row
    assert dataset.name in row
    assert '<meta http-equiv="refresh" content="10">' in page


@pytest.mark.parametrize("prefix, rename", [
    ("pan-dulce/", str),
    ("Vitrina de enero/", str),
    ("", str.capitalize),
])
def test_nested_folders_give_same_classes(admin, dataset_root, prefix, rename):
    members, expected = class_members(dataset_root, dict.fromkeys(CLASSES, 5), offset=10)
    members = [(f"{prefix}{rename(name.split('/')[0])}/{name.split('/')[1]}", content) for name, content in members]
    before = run_ids()

    response = post_zip(admin, zip_bytes(members))

    assert response.status_code == 303, response.text
    assert class_files(Path(new_run(before).dataset)) == expected


def test_duplicate_photos_count_once(admin, dataset_root):
    members, expected = class_members(dataset_root, dict.fromkeys(CLASSES, 5), offset=20)
    copies = [(name.replace(".jpg", "-copia.jpg"), content) for name, content in members if name.startswith("donas/")]
    before = run_ids()

    response = post_zip(admin, zip_bytes(members + copies))

    assert response.status_code == 303
    assert class_files(Path(new_run(before).dataset)) == expected
    assert "está en cola con 15 fotos de 3 clases" in admin.get("/models/").text


def test_zip_slip_stays_inside_dataset(admin, web_stack, dataset_root):
    members, expected = class_members(dataset_root, dict.fromkeys(CLASSES, 5), offset=30)
    evil = real_photos(dataset_root, "orejas", 5)
    slip = [("../../evil/x.jpg", evil[0]), ("/abs/x.jpg", evil[1]), ("conchita/../../x.jpg", evil[2]),
            ("../../../escaped/orejas/x.jpg", evil[3]), ("..\\..\\windows\\x.jpg", evil[4])]
    outside = web_stack.data_dir.parent
    before, files_before = run_ids(), files_under(outside)

    response = post_zip(admin, zip_bytes(members + slip, symlinks={"donas/link.jpg": "/etc/passwd"}))

    assert response.status_code == 303, response.text
    dataset = Path(new_run(before).dataset)
    assert class_files(dataset) == expected
    added = {path for path in files_under(outside) - files_before if not path.is_relative_to(dataset)}
    assert added == set()
    assert not (web_stack.data_dir / "evil").exists()
    assert not (web_stack.data_dir / "datasets" / "x.jpg").exists()
    assert not (outside / "escaped").exists()
    assert not Path("/abs/x.jpg").exists()
    stored = {hashlib.sha256(path.read_bytes()).hexdigest() for path in dataset.rglob("*") if path.is_file()}
    assert stored.isdisjoint({hashlib.sha256(content).hexdigest() for content in evil})
    assert "Se omitieron 5 archivos del zip" in admin.get("/models/").text


def encrypted_zip(dataset_root) -> bytes:
    """Build a zip whose members carry the encrypted flag; Python's zipfile can only write plain members."""
    members, _ = class_members(dataset_root, dict.fromkeys(CLASSES, 5))
    content = bytearray(zip_bytes(members))
    with zipfile.ZipFile(io.BytesIO(bytes(content))) as archive:
        position = archive.start_dir
        for _member in archive.infolist():
            assert content[position:position + 4] == b"PK\x01\x02"
            content[position + 8] |= 0x1
            name_length, extra_length, comment_length = struct.unpack("<HHH", content[position + 28:position + 34])
            position += 46 + name_length + extra_length + comment_length
    return bytes(content)


def bad_zip(dataset_root, case: str) -> bytes:
    counts = {
        "one class": {"conchita": 6},
        "short class": {"conchita": 5, "donas": 5, "besos": 3},
        "short classes": {"conchita": 2, "donas": 5, "besos": 3},
        "split too small": dict.fromkeys(CLASSES, 4),
    }
    if case in counts:
        return zip_bytes(class_members(dataset_root, counts[case])[0])
    if case == "bad folder name":
        members = class_members(dataset_root, {"conchita": 5, "donas": 5})[0]
        return zip_bytes(members + [(f"Con Cha!/{index}.jpg", content)
                                    for index, content in enumerate(real_photos(dataset_root, "besos", 5))])
    if case == "photos at the root":
        return zip_bytes([(f"{index}.jpg", content) for index, content in enumerate(real_photos(dataset_root, "donas", 8))])
    if case == "only junk":
        return zip_bytes(JUNK_MEMBERS)
    if case == "encrypted":
        return encrypted_zip(dataset_root)
    if case == "too large":
        return zip_bytes(class_members(dataset_root, dict.fromkeys(CLASSES, 5))[0]
                         + [("conchita/huge.jpg", b"\xff\xd8\xff" + bytes(TEST_LIMITS.max_zip_expanded_bytes))])
    raise AssertionError(case)


BAD_ZIPS = [
    ("one class", 400, "too_few_classes", "El zip solo tiene fotos de una clase, conchita (6)"),
    ("short class", 400, "too_few_photos", "y esta clase tiene menos: besos (3)."),
    ("short classes", 400, "too_few_photos", "y estas clases tienen menos: besos (3), conchita (2)."),
    ("split too small", 400, "split_too_small", "12 fotos de 3 clases son muy pocas para dividirlas"),
    ("bad folder name", 400, "bad_class_name", "El nombre de carpeta &#34;Con Cha!&#34; no puede ser un nombre de clase"),
    ("photos at the root", 400, "no_classes", "El zip no tiene fotos dentro de carpetas de clases."),
    ("only junk", 400, "no_classes", "El zip no tiene fotos dentro de carpetas de clases."),
    ("encrypted", 400, "zip_encrypted", "El zip está protegido con contraseña"),
    ("too large", 413, "zip_too_large", "El zip se expande a más de"),
]


@pytest.mark.parametrize("case, status, code, message", BAD_ZIPS)
def test_unusable_zip_is_rejected(admin, web_stack, dataset_root, case, status, code, message):
    before, folders_before = run_ids(), dataset_folders(web_stack)

    response = post_zip(admin, bad_zip(dataset_root, case), backbone="resnet50", epochs="7")

    assert response.status_code == status
    assert message in response.text
    assert 'id="train-error"' in response.text
    assert '<option value="resnet50" selected>' in response.text
    assert re.search(r'name="epochs"[^>]*value="7"', response.text)
    assert run_ids() == before
    assert dataset_folders(web_stack) == folders_before
    assert incoming_zips(web_stack) == []


@pytest.mark.parametrize("archive, file_name, message", [
    (None, "", "Elige un zip con carpetas de clases para entrenar."),
    (b"", "", "Elige un zip con carpetas de clases para entrenar."),
    ("jpeg", "conchita.jpg", "El archivo no es un zip."),
    (b"PK\x03\x04 cut off", "roto.zip", "El archivo zip no se puede leer"),
])
def test_missing_or_broken_file_rejected(admin, web_stack, dataset_root, archive, file_name, message):
    if archive == "jpeg":
        archive = real_photos(dataset_root, "conchita", 1)[0]
    before, folders_before = run_ids(), dataset_folders(web_stack)

    response = post_zip(admin, archive, file_name=file_name)

    assert response.status_code == 400
    assert message in response.text
    assert run_ids() == before
    assert dataset_folders(web_stack) == folders_before
    assert incoming_zips(web_stack) == []


@pytest.mark.parametrize("fields, message", [
    ({"epochs": "0"}, "Épocas debe ser un número entero de 1 a 100, no 0."),
    ({"epochs": "101"}, "Épocas debe ser un número entero de 1 a 100, no 101."),
    ({"epochs": "2.5"}, "Épocas debe ser un número entero de 1 a 100, no 2.5."),
    ({"seed": "-1"}, "Semilla aleatoria debe ser un número entero de 0 a 4294967295, no -1."),
    ({"backbone": "vgg16"}, "La red base vgg16 no está disponible; elige una de estas: efficientnet-lite0, resnet50."),
])
def test_invalid_settings_are_rejected(admin, web_stack, dataset_root, fields, message):
    members, _ = class_members(dataset_root, dict.fromkeys(CLASSES, 5))
    before, folders_before = run_ids(), dataset_folders(web_stack)

    response = post_zip(admin, zip_bytes(members), **fields)

    assert response.status_code == 400
    assert message in response.text
    assert run_ids() == before
    assert dataset_folders(web_stack) == folders_before


def test_non_admin_cannot_train(client, web_stack, dataset_root):
    members, _ = class_members(dataset_root, dict.fromkeys(CLASSES, 5))
    before, folders_before = run_ids(), dataset_folders(web_stack)

    response = post_zip(client, zip_bytes(members))

    assert response.status_code == 403
    assert "Solo un administrador puede iniciar un entrenamiento." in response.text
    assert run_ids() == before
    assert dataset_folders(web_stack) == folders_before


def test_post_without_csrf_token_is_rejected(admin, web_stack, dataset_root):
    members, _ = class_members(dataset_root, dict.fromkeys(CLASSES, 5))
    before, folders_before = run_ids(), dataset_folders(web_stack)

    response = post_zip(admin, zip_bytes(members), token="")

    assert response.status_code == 400
    assert "token de seguridad" in response.text
    assert run_ids() == before
    assert dataset_folders(web_stack) == folders_before


def test_unreachable_queue_starts_nothing(web_stack, dataset_root):
    settings = dataclasses.replace(get_settings(), redis_url="redis://127.0.0.1:1/0")
    admin_client = make_app(web_stack, SETTINGS=settings).test_client()
    sign_in(admin_client, "root")
    members, _ = class_members(dataset_root, dict.fromkeys(CLASSES, 5))
    before, folders_before = run_ids(), dataset_folders(web_stack)

    response = post_zip(admin_client, zip_bytes(members))

    assert response.status_code == 503
    assert "No se puede conectar con la cola, así que no se inició nada." in response.text
    assert run_ids() == before
    assert dataset_folders(web_stack) == folders_before


def test_failed_enqueue_marks_the_run_failed(admin, web_stack, dataset_root, monkeypatch):
    def broker_down(run_id, settings=None):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr("web.training_runs.enqueue_training", broker_down)
    members, _ = class_members(dataset_root, dict.fromkeys(CLASSES, 5))
    before, folders_before = run_ids(), dataset_folders(web_stack)

    response = post_zip(admin, zip_bytes(members))

    assert response.status_code == 503
    run = new_run(before)
    assert run.status == RunStatus.FAILED
    assert run.error.startswith("The queue could not be reached")
    assert "Connection refused" in run.error
    assert run.finished_at is not None
    assert dataset_folders(web_stack) == folders_before
    assert "Connection refused" in admin.get("/models/").text


def test_api_admin_queues_a_run(admin_api, web_stack, dataset_root):
    members, expected = class_members(dataset_root, dict.fromkeys(CLASSES, 5), offset=40)
    before = run_ids()

    response = post_api_zip(admin_api, zip_bytes(members + JUNK_MEMBERS), epochs="4", activate="true")

    assert response.status_code == 202, response.text
    body = response.json
    run = new_run(before)
    assert body["id"] == run.id
    assert response.headers["Location"] == f"/api/v1/training-runs/{run.id}"
    assert body["status"] == "queued"
    assert body["settings"] == {"backbone": "efficientnet-lite0", "weights": None, "epochs": 4, "seed": 42}
    assert run.settings == body["settings"]
    assert body["activate"] is True
    assert run.activate is True
    assert body["class_counts"] == {name: 5 for name in sorted(CLASSES)}
    assert body["photo_count"] == 15
    assert body["skipped"] == len(JUNK_MEMBERS)
    assert body["dataset"] == Path(run.dataset).name
    assert str(web_stack.data_dir) not in response.text
    assert class_files(Path(run.dataset)) == expected


def test_api_non_admin_token_is_forbidden(api, dataset_root):
    members, _ = class_members(dataset_root, dict.fromkeys(CLASSES, 5))
    before = run_ids()

    response = post_api_zip(api, zip_bytes(members))

    assert response.status_code == 403
    assert response.json == {"error": "forbidden", "message": "Solo un administrador puede iniciar un entrenamiento."}
    assert run_ids() == before


@pytest.mark.parametrize("path, method", [("/models/train", "POST"), ("/training-runs", "GET"),
                                          ("/training-runs/1", "GET")])
def test_api_bad_token_is_unauthorized(app, path, method):
    response = app.test_client().open(f"/api/v1{path}", method=method,
                                      headers={"Authorization": "Bearer pdt_not-a-real-token"})

    assert response.status_code == 401
    assert response.json["error"] == "invalid_token"


@pytest.mark.parametrize("case, code", [
    ("no file", "no_file"),
    ("jpeg", "not_a_zip"),
    ("one class", "too_few_classes"),
    ("bad folder name", "bad_class_name"),
    ("short class", "too_few_photos"),
])
def test_api_rejects_unusable_uploads(admin_api, web_stack, dataset_root, case, code):
    archives = {"no file": None, "jpeg": real_photos(dataset_root, "conchita", 1)[0]}
    archive = archives[case] if case in archives else bad_zip(dataset_root, case)
    before, folders_before = run_ids(), dataset_folders(web_stack)

    response = post_api_zip(admin_api, archive, headers={"Accept-Language": "en"})

    assert response.status_code == 400
    assert set(response.json) == {"error", "message"}
    assert response.json["error"] == code
    assert response.json["message"].endswith(".")
    assert run_ids() == before
    assert dataset_folders(web_stack) == folders_before


@pytest.fixture
def recorded_runs(web_stack):
    """Add a training run in its second epoch of ten and a failed one, as a worker records them."""
    history = [{"epoch": epoch, "train_loss": 2.0 / epoch, "train_acc": 0.3 * epoch, "val_loss": 1.9 / epoch,
                "val_acc": 0.25 * epoch, "photos_per_s": 900.0, "seconds": 0.1} for epoch in (1, 2)]
    with session_scope() as session:
        running = TrainingRun(status=RunStatus.RUNNING, dataset="/srv/datasets/vitrina-junio", phase="fit",
                              settings={"backbone": "efficientnet-lite0", "epochs": 10, "seed": 42}, history=history)
        failed = TrainingRun(status=RunStatus.FAILED, dataset="/srv/datasets/vitrina-julio",
                             error="Dataset /srv/datasets/vitrina-julio contains no photos.")
        session.add_all([running, failed])
        session.flush()
        return {"running": running.id, "failed": failed.id, "history": history}


def test_api_lists_training_runs_newest_first(api, recorded_runs):
    response = api.get("/training-runs?per_page=100")

    assert response.status_code == 200
    listed = response.json["training_runs"]
    with session_scope() as session:
        total = session.scalar(select(func.count()).select_from(TrainingRun))
    assert response.json["total"] == total
    assert len(listed) == min(total, 100)
    assert [run["id"] for run in listed] == sorted((run["id"] for run in listed), reverse=True)
    by_id = {run["id"]: run for run in listed}
    running = by_id[recorded_runs["running"]]
    assert (running["status"], running["phase"], running["percent"]) == ("running", "fit", 20.0)
    assert running["epochs"] == 10
    assert running["epochs_done"] == 2
    assert running["last_epoch"] == recorded_runs["history"][-1]
    assert running["model_version_id"] is None
    assert running["dataset"] == "vitrina-junio"
    assert "history" not in running
    failed = by_id[recorded_runs["failed"]]
    assert failed["status"] == "failed"
    assert failed["error"] == "Dataset /srv/datasets/vitrina-julio contains no photos."
    assert failed["percent"] is None


def test_api_pages_training_runs(api, recorded_runs):
    first = api.get("/training-runs?per_page=1").json
    second = api.get("/training-runs?per_page=1&page=2").json

    assert first["total"] >= 2
    assert first["pages"] == first["total"]
    assert first["training_runs"][0]["id"] > second["training_runs"][0]["id"]
    assert api.get("/training-runs?per_page=101").status_code == 400


def test_api_training_run_detail_has_history(api, recorded_runs):
    response = api.get(f"/training-runs/{recorded_runs['running']}", headers={"Accept-Language": "en"})

    assert response.status_code == 200
    assert response.json["history"] == recorded_runs["history"]
    assert response.json["status_label"] == "Training"
    assert response.json["phase_label"] == "Training the classifier"


def test_api_missing_training_run_is_json_404(api):
    response = api.get(f"/training-runs/{MISSING_RUN_ID}")

    assert response.status_code == 404
    assert response.json == {"error": "not_found", "message": f"El entrenamiento {MISSING_RUN_ID} no existe."}


def wait_for_run(run_id: int, timeout: float) -> TrainingRun:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with session_scope() as session:
            run = session.get(TrainingRun, run_id)
            if run.status in (RunStatus.DONE, RunStatus.FAILED):
                session.expunge(run)
                return run
            state = f"{run.status.value}, phase {run.phase}, {len(run.history)} epochs"
        time.sleep(0.5)
    raise TimeoutError(f"Training run {run_id} did not finish in {timeout} s: {state}")


@pytest.fixture
def only_new_runs(web_stack):
    """Mark the runs earlier tests queued as failed, so that the worker drops their messages without training."""
    with session_scope() as session:
        for run in session.scalars(select(TrainingRun).where(TrainingRun.status.in_([RunStatus.QUEUED,
                                                                                      RunStatus.RUNNING]))):
            run.status, run.error = RunStatus.FAILED, "Left out of the end-to-end test."
        active_id = session.scalar(select(ModelVersion.id).where(ModelVersion.is_active.is_(True)))
    yield
    with session_scope() as session:
        activate_version(session, active_id)


def test_worker_trains_uploaded_zip(admin, web_stack, dataset_root, only_new_runs):
    members, _ = class_members(dataset_root, dict.fromkeys(CLASSES, 6), offset=50)
    web_stack.start_worker(concurrency=1, log_name="training-worker.log")
    before = run_ids()
    started = time.monotonic()

    response = post_zip(admin, zip_bytes(members), backbone="efficientnet-lite0", epochs="2", activate="1")
    assert response.status_code == 303, response.text
    run = wait_for_run(new_run(before).id, timeout=300)
    seconds = time.monotonic() - started

    assert run.status == RunStatus.DONE, run.error
    assert [record["epoch"] for record in run.history] == [1, 2]
    with session_scope() as session:
        version = session.get(ModelVersion, run.model_version_id)
        assert sorted(version.classes) == sorted(CLASSES)
        assert version.is_active
        assert version.training_run.id == run.id
        assert version.backbone == "efficientnet-lite0"
        active = session.scalars(select(ModelVersion.id).where(ModelVersion.is_active.is_(True))).all()
        version_id, version_name = version.id, version.name
    assert active == [version_id]
    page = admin.get("/models/").text
    row = re.search(rf'<tr id="version-{version_id}".*?</tr>', page, re.S).group()
    assert version_name in row
    assert "Activa" in row
    run_row = re.search(rf'<tr id="run-{run.id}".*?</tr>', page, re.S).group()
    assert "Terminado" in run_row
    assert f'href="/models/{version_id}"' in run_row
    assert seconds < 300
