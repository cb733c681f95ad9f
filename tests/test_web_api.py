"""The JSON API under /api/v1: tokens, jobs, results, exports, upload sessions, the quick test and the OpenAPI document."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
from sqlalchemy import select

from pandulce.db import ApiToken, User, session_scope
from pandulce.queue import store_quick_result
from tests.test_web_support import (  # noqa: F401 - fixtures
    CLASSES,
    app,
    classify,
    client,
    fake_probabilities,
    multipart_files,
    photo_bytes,
    web_stack,
    zip_bytes,
)
from training.classes import display_name
from web.accounts import issue_token
from web.openapi import openapi_document


def token_for(username: str) -> str:
    with session_scope() as session:
        user = session.scalar(select(User).where(User.username == username))
        return issue_token(session, user, "tests")


@pytest.fixture(scope="module")
def ana_token(web_stack):
    return token_for("ana")


@pytest.fixture
def api(app, ana_token):
    return ApiClient(app.test_client(), ana_token)


class ApiClient:
    """A test client that sends ana's Bearer token with every request."""

    def __init__(self, client, token):
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}"}

    def get(self, path, headers=None, **kwargs):
        return self.client.get(f"/api/v1{path}", headers={**self.headers, **(headers or {})}, **kwargs)

    def post(self, path, headers=None, **kwargs):
        return self.client.post(f"/api/v1{path}", headers={**self.headers, **(headers or {})}, **kwargs)

    def delete(self, path, headers=None, **kwargs):
        return self.client.delete(f"/api/v1{path}", headers={**self.headers, **(headers or {})}, **kwargs)

    def create_job(self, files, name="api job"):
        return self.post("/jobs", data={"name": name, "photos": multipart_files(files)},
                         content_type="multipart/form-data")


def real_photos(dataset_root, count):
    return [(f"{CLASSES[index % 10]}/{index:02d}.jpg", photo_bytes(dataset_root, CLASSES[index % 10], index))
            for index in range(count)]


@pytest.mark.parametrize("headers, code", [
    ({}, "unauthorized"),
    ({"Authorization": "Basic YW5hOnBhc3M="}, "unauthorized"),
    ({"Authorization": "Bearer "}, "unauthorized"),
    ({"Authorization": "Bearer pdt_not-a-real-token"}, "invalid_token"),
    ({"Authorization": "Bearer something-else"}, "invalid_token"),
])
def test_request_without_valid_token_is_unauthorized(app, headers, code):
    response = app.test_client().get("/api/v1/jobs", headers=headers)

    assert response.status_code == 401
    assert response.json["error"] == code
    assert response.json["message"]
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_browser_session_is_not_a_token(client):
    response = client.get("/api/v1/jobs")

    assert response.status_code == 401


def test_every_api_route_needs_a_token(app):
    anonymous = app.test_client()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1"):
            continue
        path = re.sub(r"<(?:int:)?(\w+)>", "1", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            response = anonymous.open(path, method=method)
            assert response.status_code == 401, (method, path)


def test_token_is_stored_only_as_its_hash(ana_token):
    with session_scope() as session:
        hashes = session.scalars(select(ApiToken.token_hash)).all()

    assert ana_token not in hashes
    assert all(len(value) == 64 for value in hashes)


def test_openapi_documents_every_api_route(app, api):
    document = api.get("/openapi.json").json
    documented = {(path, method) for path, operations in document["paths"].items() for method in operations}

    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1"):
            path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule[len("/api/v1"):])
            routes.update((path, method.lower()) for method in rule.methods - {"HEAD", "OPTIONS"})
    assert document["openapi"].startswith("3.")
    assert routes - documented == set()
    assert documented - routes == set()
    assert document == openapi_document()


def test_create_job_from_files_returns_its_status(api, dataset_root):
    response = api.create_job(real_photos(dataset_root, 3) + [("notes.txt", b"text")])

    assert response.status_code == 201, response.text
    body = response.json
    assert response.headers["Location"] == f"/api/v1/jobs/{body['id']}"
    assert (body["total"], body["pending"], body["skipped"], body["status"]) == (4, 3, 1, "queued")


def test_create_job_from_a_zip(api, dataset_root):
    archive = zip_bytes(real_photos(dataset_root, 2) + [("__MACOSX/._x.jpg", b"\x00\x05")])

    response = api.create_job([("vitrina.zip", archive)], name="")

    assert response.status_code == 201
    assert (response.json["total"], response.json["pending"], response.json["skipped"]) == (3, 2, 1)
    assert response.json["name"] == "vitrina"


@pytest.mark.parametrize("files, status, code", [
    ([], 400, "empty"),
    ([("notes.txt", b"no photo here")], 400, "not_an_image"),
    ([("huge.jpg", b"\xff\xd8\xff" + bytes(600_000))], 413, "file_too_large"),
    ([("bomb.zip", zip_bytes([("zeros.jpg", b"\xff\xd8\xff" + bytes(5_000_000))]))], 400, "zip_bomb"),
])
def test_create_job_rejects_bad_uploads(api, files, status, code):
    response = api.create_job(files)

    assert response.status_code == status
    assert response.json["error"] == code
    assert response.json["message"].endswith(".")


def test_api_post_needs_no_csrf_token(api, dataset_root):
    response = api.create_job(real_photos(dataset_root, 1))

    assert response.status_code == 201


def test_upload_session_through_the_api(api, dataset_root):
    upload = api.post("/uploads").json
    photos = real_photos(dataset_root, 4)

    for batch, files in enumerate((photos[:2], photos[2:])):
        response = api.post(f"/uploads/{upload['upload_id']}/files", content_type="multipart/form-data",
                            data={"batch": str(batch), "names": json.dumps([name for name, _ in files]),
                                  "photos": [(stream, "p") for stream, _ in multipart_files(files)]})
        assert response.status_code == 200
    finished = api.post(f"/uploads/{upload['upload_id']}/finish", data={"name": "by batches"})

    assert finished.status_code == 201
    assert finished.json["name"] == "by batches"
    assert finished.json["total"] == 4
    assert api.post(f"/uploads/{upload['upload_id']}/finish").status_code == 404


def test_deleted_upload_session_is_gone(api):
    upload = api.post("/uploads").json

    assert api.delete(f"/uploads/{upload['upload_id']}").status_code == 204
    response = api.post(f"/uploads/{upload['upload_id']}/finish")
    assert response.status_code == 404
    assert response.json["error"] == "upload_not_found"


def test_list_jobs_shows_only_own_jobs(app, api, dataset_root):
    mine = api.create_job(real_photos(dataset_root, 1), name="listed").json["id"]
    other = ApiClient(app.test_client(), token_for("beto"))
    theirs = other.create_job(real_photos(dataset_root, 1), name="hidden").json["id"]

    listed = {job["id"] for job in api.get("/jobs?per_page=100").json["jobs"]}

    assert mine in listed
    assert theirs not in listed


@pytest.mark.parametrize("suffix, method", [("", "get"), ("/results", "get"), ("/export.csv", "get"),
                                            ("/cancel", "post"), ("/retry", "post"), ("/photos/1", "get")])
def test_another_users_job_is_not_found(app, api, dataset_root, suffix, method):
    job_id = api.create_job(real_photos(dataset_root, 1)).json["id"]
    other = ApiClient(app.test_client(), token_for("beto"))

    response = getattr(other, method)(f"/jobs/{job_id}{suffix}")

    assert response.status_code == 404
    assert response.json["error"] == "not_found"
    assert job_id in response.json["message"]


def test_missing_job_and_unknown_route_are_json_404(api):
    for path in ("/jobs/00000000-0000-0000-0000-000000000000", "/no-such-thing"):
        response = api.get(path)
        assert response.status_code == 404
        assert set(response.json) == {"error", "message"}


def test_wrong_method_is_json_405(api):
    response = api.client.put("/api/v1/jobs", headers=api.headers)

    assert response.status_code == 405
    assert response.json["error"] == "method_not_allowed"


def test_results_filter_with_fractions(api, dataset_root):
    job_id = api.create_job(real_photos(dataset_root, 20)).json["id"]
    classify(job_id, failed_positions=frozenset({3}))

    page = api.get(f"/jobs/{job_id}/results?class=conchita").json
    low = api.get(f"/jobs/{job_id}/results?low=0.5").json
    failed = api.get(f"/jobs/{job_id}/results?status=failed").json
    ranged = api.get(f"/jobs/{job_id}/results?score_class=orejas&min=0.5&max=1").json

    assert [photo["name"] for photo in page["photos"]] == ["conchita/02.jpg", "conchita/12.jpg"]
    assert page["photos"][0]["top_label"] == display_name("conchita", "es")
    assert set(page["photos"][0]["probabilities"]) == set(CLASSES)
    assert page["photos"][0]["thumbnail_url"].endswith("/thumbnail")
    assert low["total"] == sum(1 for position in range(20)
                               if position != 3 and max(fake_probabilities(position)[1]) < 0.5)
    assert [photo["name"] for photo in failed["photos"]] == ["cuernitos/03.jpg"]
    assert failed["photos"][0]["error"] == "La imagen está incompleta: el archivo termina antes de tiempo."
    assert [photo["name"] for photo in ranged["photos"]] == ["orejas/05.jpg", "orejas/15.jpg"]


@pytest.mark.parametrize("query", ["low=50", "min=-1", "class=bolillo", "per_page=0"])
def test_results_reject_invalid_filters(api, dataset_root, query):
    job_id = api.create_job(real_photos(dataset_root, 1)).json["id"]

    response = api.get(f"/jobs/{job_id}/results?{query}")

    assert response.status_code == 400
    assert response.json["error"] == "bad_filter"


def test_photo_detail_has_description_and_probabilities(api, dataset_root):
    job_id = api.create_job(real_photos(dataset_root, 6)).json["id"]
    classify(job_id)
    photo_id = api.get(f"/jobs/{job_id}/results?class=orejas").json["photos"][0]["id"]

    photo = api.get(f"/jobs/{job_id}/photos/{photo_id}", headers={"Accept-Language": "en"}).json
    thumbnail = api.get(f"/jobs/{job_id}/photos/{photo_id}/thumbnail")
    image = api.get(f"/jobs/{job_id}/photos/{photo_id}/image")

    assert photo["top_class"] == "orejas"
    assert photo["description"].startswith("Caramelised puff pastry")
    assert photo["top_probability"] == pytest.approx(0.65)
    assert thumbnail.status_code == 200 and thumbnail.mimetype == "image/jpeg"
    assert image.status_code == 200 and image.data == photo_bytes(dataset_root, "orejas", 5)


def test_export_csv_and_jsonl(api, dataset_root):
    job_id = api.create_job(real_photos(dataset_root, 3)).json["id"]
    classify(job_id, failed_positions=frozenset({1}))

    csv_response = api.get(f"/jobs/{job_id}/export.csv", headers={"Accept-Language": "en"})
    jsonl_response = api.get(f"/jobs/{job_id}/export.jsonl", headers={"Accept-Language": "en"})
    rows = list(csv.DictReader(io.StringIO(csv_response.get_data(as_text=True))))
    lines = jsonl_response.get_data(as_text=True).splitlines()

    assert csv_response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert jsonl_response.headers["Content-Type"] == "application/x-ndjson; charset=utf-8"
    assert [row["status"] for row in rows] == ["done", "failed", "done"]
    assert rows[1]["error"] == "The image is incomplete: the file ends too early."
    assert rows[1]["error_code"] == "truncated"
    assert len(lines) == 3
    assert json.loads(lines[0])["top_class"] == "barquillo"
    assert json.loads(lines[1])["error_code"] == "truncated"


def test_cancel_and_retry_through_the_api(api, dataset_root):
    job_id = api.create_job(real_photos(dataset_root, 2)).json["id"]

    cancelled = api.post(f"/jobs/{job_id}/cancel")
    again = api.post(f"/jobs/{job_id}/cancel")
    nothing = api.post(f"/jobs/{job_id}/retry")

    assert cancelled.status_code == 200 and cancelled.json["status"] == "cancelled"
    assert cancelled.json["cancelled"] == 2
    assert again.status_code == 409 and again.json["error"] == "not_cancellable"
    assert nothing.status_code == 409 and nothing.json["error"] == "nothing_to_retry"


def test_retry_requeues_failed_photos(api, dataset_root):
    job_id = api.create_job(real_photos(dataset_root, 2)).json["id"]
    classify(job_id, failed_positions=frozenset({0}), error_code="worker_lost")

    response = api.post(f"/jobs/{job_id}/retry")

    assert response.status_code == 200
    assert response.json["status"] == "running"
    assert response.json["pending"] == 1
    assert response.json["retried_chunks"] == 1


def test_retry_of_only_permanent_failures_is_a_conflict(api, dataset_root):
    job_id = api.create_job(real_photos(dataset_root, 2)).json["id"]
    classify(job_id, failed_positions=frozenset({0}), error_code="truncated")

    response = api.post(f"/jobs/{job_id}/retry")

    assert response.status_code == 409
    assert response.json["error"] == "nothing_to_retry"
    assert api.get(f"/jobs/{job_id}").json["failed"] == 1


def test_quick_test_through_the_api(api, dataset_root):
    response = api.post("/quick", data={"photo": multipart_files([("a.jpg", photo_bytes(dataset_root))])},
                        content_type="multipart/form-data")
    request_id = response.json["request_id"]
    pending = api.get(f"/quick/{request_id}").json
    store_quick_result(request_id, {"status": "failed", "error_code": "corrupt", "error": "broken"})
    failed = api.get(f"/quick/{request_id}").json

    assert response.status_code == 202
    assert pending["status"] == "pending"
    assert failed["status"] == "failed"
    assert failed["error"] == "La imagen está dañada y no se puede leer."


def test_classes_have_display_names(api):
    body = api.get("/classes", headers={"Accept-Language": "en"}).json

    assert [item["class"] for item in body["classes"]] == CLASSES
    assert body["classes"][2]["label"] == display_name("conchita", "en")


def test_me_returns_the_token_owner(api):
    assert api.get("/me").json["username"] == "ana"


@pytest.fixture
def english_user_api(app):
    """An API client for beto, whose saved web language is English."""
    with session_scope() as session:
        session.scalar(select(User).where(User.username == "beto")).language = "en"
    try:
        yield ApiClient(app.test_client(), token_for("beto"))
    finally:
        with session_scope() as session:
            session.scalar(select(User).where(User.username == "beto")).language = None


@pytest.mark.parametrize("accept_language, message", [
    ("es-MX,es;q=0.9", "El trabajo 00000000-0000-0000-0000-000000000000 no existe."),
    ("es", "El trabajo 00000000-0000-0000-0000-000000000000 no existe."),
    ("fr", "Job 00000000-0000-0000-0000-000000000000 doesn't exist."),
    (None, "Job 00000000-0000-0000-0000-000000000000 doesn't exist."),
])
def test_api_accept_language_wins_over_saved_language(english_user_api, accept_language, message):
    headers = {"Accept-Language": accept_language} if accept_language else {}

    response = english_user_api.get("/jobs/00000000-0000-0000-0000-000000000000", headers=headers)

    assert response.status_code == 404
    assert response.json["message"] == message


def test_api_without_accept_language_uses_saved_language(english_user_api):
    body = english_user_api.get("/classes").json

    assert body["classes"][2]["label"] == display_name("conchita", "en")
    assert english_user_api.get("/classes", headers={"Accept-Language": "es"}).json["classes"][2]["label"] == \
        display_name("conchita", "es")
