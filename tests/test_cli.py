import csv
import io
import json
import math
import os
import subprocess
import sys
import threading
import zipfile
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
from click.testing import CliRunner

from pandulce.cli import main
from tests import photo_factory as make
from tests.conftest import REPO_ROOT
from training.classes import REFERENCE_CLASSES


@pytest.fixture(scope="module")
def bad_folder(tmp_path_factory, real_photo):
    folder = tmp_path_factory.mktemp("bad-photos")
    expected = make.build_bad_folder(folder, real_photo)
    return folder, expected


def run_cli(*args):
    return CliRunner().invoke(main, [str(arg) for arg in args], catch_exceptions=False)


def test_classify_reports_every_file_of_a_bad_folder(bad_folder, lite0_model, tmp_path):
    folder, expected = bad_folder
    out = tmp_path / "results.csv"

    result = run_cli("classify", folder, "--model", lite0_model, "--out", out)

    assert result.exit_code == 0, result.output
    assert "3 failed" in result.output
    with out.open(newline="") as handle:
        rows = {os.path.relpath(row["path"], folder): row for row in csv.DictReader(handle)}
    assert {name: row["status"] for name, row in rows.items()} == expected
    for name, row in rows.items():
        if row["status"] == "ok":
            total = sum(float(row[f"p_{name}"]) for name in REFERENCE_CLASSES)
            assert math.isclose(total, 1.0, abs_tol=1e-4), name
            assert row["top_class"] in REFERENCE_CLASSES
            assert float(row["top_probability"]) == max(float(row[f"p_{c}"]) for c in REFERENCE_CLASSES)
        else:
            assert row["error"], name
            assert row["top_class"] == ""
    assert "truncated" in rows["truncated.jpg"]["error"]
    assert "not an image" in rows["notes.jpg"]["error"]
    assert "30000 x 30000" in rows["bomb.png"]["error"]
    assert rows[".DS_Store"]["error"] == "System file, not a photo."


def test_classify_writes_jsonl(bad_folder, lite0_model, tmp_path):
    folder, expected = bad_folder
    out = tmp_path / "results.jsonl"

    result = run_cli("classify", folder, "--model", lite0_model, "--out", out)

    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == len(expected)
    ok = [row for row in rows if row["status"] == "ok"]
    assert len(ok) == 6
    assert set(ok[0]["probabilities"]) == set(REFERENCE_CLASSES)


def test_classify_rejects_an_unknown_output_format(bad_folder, lite0_model, tmp_path):
    folder, _ = bad_folder

    result = CliRunner().invoke(main, ["classify", str(folder), "--model", str(lite0_model),
                                       "--out", str(tmp_path / "out.xlsx")])

    assert result.exit_code == 1
    assert "must end in .csv or .jsonl" in result.output
    assert not (tmp_path / "out.xlsx").exists()


def test_classify_rejects_non_model_folder(bad_folder, tmp_path):
    folder, _ = bad_folder

    result = CliRunner().invoke(main, ["classify", str(folder), "--model", str(tmp_path), "--out",
                                       str(tmp_path / "r.csv")])

    assert result.exit_code == 1
    assert "manifest.json is missing" in result.output


def test_evaluate_prints_test_metrics(small_dataset, lite0_model):
    result = run_cli("evaluate", small_dataset, "--model", lite0_model)

    assert result.exit_code == 0, result.output
    assert "Test photos:          16" in result.output
    assert "F1 (weighted)" in result.output
    assert "conchita" in result.output


def test_evaluate_matches_the_training_metrics(small_dataset, lite0_model):
    result = run_cli("evaluate", small_dataset, "--model", lite0_model, "--json")
    trained = json.loads((lite0_model / "metrics.json").read_text())

    assert json.loads(result.output)["accuracy"] == pytest.approx(trained["test_accuracy"])


def test_train_without_resnet_weights_fails_fast(small_dataset, tmp_path):
    env = {**os.environ, "TORCH_HOME": str(tmp_path / "empty-torch-home")}

    completed = subprocess.run(
        [sys.executable, "-m", "pandulce.cli", "train", str(small_dataset), "--out", str(tmp_path / "m")],
        capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=120,
    )

    assert completed.returncode == 1
    assert "resnet50-0676ba61.pth" in completed.stderr
    assert str(tmp_path / "empty-torch-home" / "hub" / "checkpoints") in completed.stderr
    assert not (tmp_path / "m").exists()


def test_train_with_a_weights_file_runs(small_dataset, random_resnet50_weights, tmp_path):
    result = run_cli("train", small_dataset, "--out", tmp_path / "m", "--weights", random_resnet50_weights,
                     "--epochs", 1, "--views", 1)

    assert result.exit_code == 0, result.output
    assert "Test accuracy" in result.output
    assert json.loads((tmp_path / "m" / "manifest.json").read_text())["weights"]["kind"] == "file"


def zipped_repository(small_dataset) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        rows = ["filename,label"]
        for class_dir in sorted(p for p in small_dataset.iterdir() if p.is_dir()):
            for photo in sorted(class_dir.iterdir())[:4]:
                archive.write(photo, f"pan-dulce-main/dataset/dataset/{class_dir.name}/{photo.name}")
                rows.append(f"{class_dir.name}/{photo.name},{class_dir.name}")
        rows.append("chilindrina/chilindrina_0.jpg,chilindrina")
        archive.writestr("pan-dulce-main/dataset/pan_dulce.csv", "\n".join(rows) + "\n")
        archive.writestr("pan-dulce-main/dataset/dataset/../../escape.jpg", b"outside")
        archive.writestr("pan-dulce-main/README.md", "readme")
    return buffer.getvalue()


@pytest.fixture
def archive_server(tmp_path, small_dataset):
    (tmp_path / "serve").mkdir()
    (tmp_path / "serve" / "repo.zip").write_bytes(zipped_repository(small_dataset))
    handler = partial(SimpleHTTPRequestHandler, directory=str(tmp_path / "serve"))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_dataset_fetch_unpacks_photos_and_labels(archive_server, tmp_path):
    dest = tmp_path / "fetched"

    result = run_cli("dataset", "fetch", dest, "--url", f"{archive_server}/repo.zip")

    assert result.exit_code == 0, result.output
    assert "Fetched 40 photos of 10 classes" in result.output
    labels = (dest / "labels.csv").read_text().splitlines()
    assert labels[0] == "filename,label"
    assert len(labels) == 41
    assert not (tmp_path / "escape.jpg").exists()
    assert not list(tmp_path.rglob("escape.jpg"))


def test_dataset_fetch_says_when_it_cannot_download(archive_server, tmp_path):
    result = CliRunner().invoke(main, ["dataset", "fetch", str(tmp_path / "d"), "--url", f"{archive_server}/missing.zip"])

    assert result.exit_code == 1
    assert "HTTP 404" in result.output
    assert not (tmp_path / "d").exists()


def test_dataset_fetch_refuses_a_non_empty_destination(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "keep.txt").write_text("mine")

    result = CliRunner().invoke(main, ["dataset", "fetch", str(tmp_path / "d"), "--url", "http://127.0.0.1:9/x.zip"])

    assert result.exit_code == 1
    assert "is not empty" in result.output
    assert (tmp_path / "d" / "keep.txt").read_text() == "mine"
