"""Results pages on SQLite and PostgreSQL: filters, sorting, pagination, photo pages, thumbnails and exports."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest

from tests import photo_factory as make
from tests.test_web_support import (
    CLASSES,
    classify,
    fake_probabilities,
    job_id_from,
    make_app,
    photo_bytes,
    sign_in,
    start_web_stack,
    upload_form,
)
from training.classes import display_name

PHOTOS = 30
FAILED = frozenset({7})


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def results_stack(request, tmp_path_factory, dataset_root):
    """One job of 30 real photos plus a HEIC photo and a text file, classified with known probabilities."""
    context, stack = start_web_stack(request.param, tmp_path_factory.mktemp(f"results-{request.param}"))
    try:
        app = make_app(stack)
        client = app.test_client()
        sign_in(client, "ana")
        files = [(f"{CLASSES[index % 10]}/{index:02d}.jpg", photo_bytes(dataset_root, CLASSES[index % 10], index))
                 for index in range(PHOTOS)]
        files += [("iphone.heic", make.heic_photo()), ("notes.txt", b"not a photo")]
        stack.job_id = job_id_from(upload_form(client, files, name="results"))
        classify(stack.job_id, failed_positions=FAILED)
        stack.app = app
        yield stack
    finally:
        context.__exit__(None, None, None)


@pytest.fixture
def client(results_stack):
    client = results_stack.app.test_client()
    sign_in(client, "ana")
    return client


def expected_positions(keep) -> list[int]:
    """Return the positions of classified photos for which keep(top class, probabilities) holds."""
    positions = []
    for position in range(PHOTOS + 1):
        if position in FAILED:
            continue
        top_class, probabilities = fake_probabilities(position)
        if keep(top_class, dict(zip(CLASSES, probabilities))):
            positions.append(position)
    return positions


def shown_names(page_text: str) -> list[str]:
    return re.findall(r'<span class="tile-name" title="([^"]+)">', page_text)


def names_at(positions: list[int]) -> list[str]:
    return [f"{CLASSES[position % 10]}/{position:02d}.jpg" if position < PHOTOS else "iphone.heic"
            for position in positions]


def test_grid_shows_every_photo_with_bars(client, results_stack):
    page = client.get(f"/jobs/{results_stack.job_id}/results?per_page=100")

    assert page.status_code == 200
    assert shown_names(page.text) == names_at(list(range(PHOTOS + 1))) + ["notes.txt"]
    assert page.text.count('class="bars compact"') == PHOTOS  # 31 photos classified less one failed
    assert "32 fotos" in page.text
    assert display_name("pan-de-muerto", "es") in page.text
    assert "Las descargas incluyen todas las fotos del trabajo" in page.text


def test_table_shows_a_column_per_class(client, results_stack):
    page = client.get(f"/jobs/{results_stack.job_id}/results?view=table&per_page=100")

    assert page.text.count('<th class="class-column"') == len(CLASSES)
    assert page.text.count('class="bar-fill top"') == PHOTOS
    assert "está dañada" in page.text or "incompleta" in page.text


FILTERS = [
    ("class", "class=conchita", lambda top, p: top == "conchita"),
    ("probability range of a class", "score_class=orejas&min=50&max=80", lambda top, p: 0.5 <= p["orejas"] <= 0.8),
    ("range of the top class", "min=80", lambda top, p: max(p.values()) >= 0.8),
    ("low confidence", "low=45", lambda top, p: max(p.values()) < 0.45),
    ("class and low confidence", "class=besos&low=50", lambda top, p: top == "besos" and max(p.values()) < 0.5),
]


@pytest.mark.parametrize("label, query, keep", FILTERS, ids=[row[0] for row in FILTERS])
def test_results_filter(client, results_stack, label, query, keep):
    page = client.get(f"/jobs/{results_stack.job_id}/results?per_page=100&{query}")

    assert page.status_code == 200
    assert shown_names(page.text) == names_at(expected_positions(keep))


@pytest.mark.parametrize("status, expected", [("failed", ["puerquito/07.jpg"]), ("skipped", ["notes.txt"])])
def test_results_filter_by_status(client, results_stack, status, expected):
    page = client.get(f"/jobs/{results_stack.job_id}/results?status={status}")

    assert shown_names(page.text) == expected


def test_results_sort_by_probability(client, results_stack):
    page = client.get(f"/jobs/{results_stack.job_id}/results?per_page=100&sort=probability_desc&status=done")

    probabilities = [max(fake_probabilities(position)[1]) for position in range(PHOTOS + 1) if position not in FAILED]
    positions = [position for position in range(PHOTOS + 1) if position not in FAILED]
    ordered = [position for _, position in sorted(zip(probabilities, positions), key=lambda pair: (-pair[0], pair[1]))]
    assert shown_names(page.text) == names_at(ordered)


def test_results_paginate(client, results_stack):
    first = client.get(f"/jobs/{results_stack.job_id}/results?per_page=10")
    last = client.get(f"/jobs/{results_stack.job_id}/results?per_page=10&page=4")

    assert shown_names(first.text) == names_at(list(range(10)))
    assert "Página 1 de 4" in first.text
    assert 'rel="next"' in first.text
    assert shown_names(last.text) == ["iphone.heic", "notes.txt"]


@pytest.mark.parametrize("query", ["class=croissant", "min=120", "min=abc", "min=80&max=20", "status=lost",
                                   "page=0", "per_page=100000", "sort=random"])
def test_invalid_filter_is_rejected(client, results_stack, query):
    response = client.get(f"/jobs/{results_stack.job_id}/results?{query}")

    assert response.status_code == 400
    assert 'id="filter-error"' in response.text
    assert "No se aplicó el filtro:" in response.text
    assert 'id="filters"' in response.text
    assert shown_names(response.text)


def photo_id_named(client, job_id, name) -> int:
    page = client.get(f"/jobs/{job_id}/results?view=table&per_page=100").text.replace("<wbr>", "")
    match = re.search(r'/photos/(\d+)\?back=[^"]*">' + re.escape(name) + "<", page)
    assert match, name
    return int(match.group(1))


def test_photo_page_shows_probabilities_and_description(client, results_stack):
    photo_id = photo_id_named(client, results_stack.job_id, "orejas/05.jpg")

    page = client.get(f"/jobs/{results_stack.job_id}/photos/{photo_id}")

    assert page.status_code == 200
    assert f'<h1 id="predicted-class">{display_name("orejas", "es")}</h1>' in page.text
    assert "Hojaldre caramelizado" in page.text
    assert page.text.count('<span class="bar-label">') == len(CLASSES)
    assert "65.0%" in page.text
    assert f"/jobs/{results_stack.job_id}/photos/{photo_id}/image" in page.text


def test_photo_page_in_english_uses_english_names(client, results_stack):
    photo_id = photo_id_named(client, results_stack.job_id, "orejas/05.jpg")

    page = client.get(f"/jobs/{results_stack.job_id}/photos/{photo_id}", headers={"Accept-Language": "en"})

    assert display_name("orejas", "en") in page.text
    assert "Caramelised puff pastry" in page.text


def test_failed_photo_page_shows_the_reason(client, results_stack):
    photo_id = photo_id_named(client, results_stack.job_id, "puerquito/07.jpg")

    page = client.get(f"/jobs/{results_stack.job_id}/photos/{photo_id}")

    assert "La imagen está incompleta" in page.text


def test_photo_of_another_job_is_not_found(client, results_stack):
    response = client.get(f"/jobs/{results_stack.job_id}/photos/999999")

    assert response.status_code == 404
    assert "La foto 999999 no existe en este trabajo." in response.text


def test_thumbnail_is_made_once_and_cached(client, results_stack):
    photo_id = photo_id_named(client, results_stack.job_id, "besos/01.jpg")
    url = f"/jobs/{results_stack.job_id}/photos/{photo_id}/thumbnail"

    first = client.get(url)
    cached = list((results_stack.data_dir / "thumbnails").rglob("*.jpg"))
    modified = {path: path.stat().st_mtime_ns for path in cached}
    second = client.get(url, headers={"If-None-Match": first.headers["ETag"]})

    assert first.status_code == 200
    assert first.mimetype == "image/jpeg"
    assert "immutable" in first.headers["Cache-Control"]
    assert first.data[:3] == b"\xff\xd8\xff"
    assert second.status_code == 304
    assert {path: path.stat().st_mtime_ns for path in cached} == modified
    assert len(cached) >= 1


def test_thumbnail_of_non_photo_is_a_placeholder(client, results_stack):
    photo_id = photo_id_named(client, results_stack.job_id, "notes.txt")

    response = client.get(f"/jobs/{results_stack.job_id}/photos/{photo_id}/thumbnail")

    assert response.status_code == 200
    assert response.mimetype == "image/svg+xml"


def test_heic_photo_is_shown_as_jpeg(client, results_stack):
    photo_id = photo_id_named(client, results_stack.job_id, "iphone.heic")

    response = client.get(f"/jobs/{results_stack.job_id}/photos/{photo_id}/image")

    assert response.status_code == 200
    assert response.mimetype == "image/jpeg"
    assert response.data[:3] == b"\xff\xd8\xff"


def test_table_lets_names_wrap_after_slashes(client, results_stack):
    page = client.get(f"/jobs/{results_stack.job_id}/results?view=table&per_page=100")

    assert ">orejas/<wbr>05.jpg</a>" in page.text
    assert 'class="table-scroll"' in page.text


def test_csv_export_has_every_photo_and_class(client, results_stack):
    response = client.get(f"/jobs/{results_stack.job_id}/export.csv")

    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert response.headers["Content-Disposition"].startswith("attachment;")
    assert len(rows) == PHOTOS + 2
    by_name = {row["path"]: row for row in rows}
    assert by_name["orejas/05.jpg"]["top_class"] == "orejas"
    assert float(by_name["orejas/05.jpg"]["p_orejas"]) == pytest.approx(0.65)
    assert sum(float(by_name["orejas/05.jpg"][f"p_{name}"]) for name in CLASSES) == pytest.approx(1.0)
    assert by_name["puerquito/07.jpg"]["status"] == "failed"
    assert by_name["puerquito/07.jpg"]["error"] == "La imagen está incompleta: el archivo termina antes de tiempo."
    assert by_name["puerquito/07.jpg"]["error_code"] == "truncated"
    assert by_name["notes.txt"]["status"] == "skipped"
    assert by_name["notes.txt"]["error_code"] == "not_a_photo"
    assert by_name["orejas/05.jpg"]["error"] == ""
    assert by_name["orejas/05.jpg"]["error_code"] == ""


def test_csv_export_columns(client, results_stack):
    response = client.get(f"/jobs/{results_stack.job_id}/export.csv")

    header = next(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert header[:9] == ["path", "status", "error", "top_class", "top_probability", "error_code", "sha256", "width",
                          "height"]
    assert header[9:] == [f"p_{name}" for name in CLASSES]


def test_export_reasons_follow_the_browser_language(client, results_stack):
    response = client.get(f"/jobs/{results_stack.job_id}/export.jsonl", headers={"Accept-Language": "en"})

    rows = {row["path"]: row for row in map(json.loads, response.get_data(as_text=True).splitlines())}
    assert rows["puerquito/07.jpg"]["error"] == "The image is incomplete: the file ends too early."
    assert rows["puerquito/07.jpg"]["error_code"] == "truncated"
    assert rows["notes.txt"]["error"] == "Not a photo: neither its content nor its name is an image format."
    assert rows["orejas/05.jpg"]["error_code"] is None


def test_jsonl_export_has_one_object_per_photo(client, results_stack):
    response = client.get(f"/jobs/{results_stack.job_id}/export.jsonl")

    rows = [json.loads(line) for line in response.get_data(as_text=True).splitlines()]
    assert response.headers["Content-Type"] == "application/x-ndjson; charset=utf-8"
    assert len(rows) == PHOTOS + 2
    assert list(rows[7])[:4] == ["path", "status", "error", "error_code"]
    assert rows[7]["error_code"] == "truncated"
    assert set(rows[0]["probabilities"]) == set(CLASSES)
    assert rows[7]["status"] == "failed" and rows[7]["probabilities"] is None


def test_unknown_export_format_is_not_found(client, results_stack):
    assert client.get(f"/jobs/{results_stack.job_id}/export.xlsx").status_code == 404
