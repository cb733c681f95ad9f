import json

import numpy as np
import pytest
import torch

from training.artifact import ArtifactError, load_artifact, read_manifest
from training.classes import REFERENCE_CLASSES
from training.features import FeatureTable
from training.train import TrainOptions, train_classifier


def test_trained_model_directory_is_complete(lite0_model):
    names = {path.name for path in lite0_model.iterdir()}

    assert {"manifest.json", "model.pt", "metrics.json", "loss.png", "accuracy.png", "confusion_matrix.png"} <= names
    assert {"loss.es.png", "accuracy.es.png", "confusion_matrix.es.png"} <= names
    assert not [name for name in names if name.endswith(".tmp")]


def test_manifest_describes_the_model(lite0_model):
    manifest = read_manifest(lite0_model)

    assert manifest["backbone"] == "efficientnet-lite0"
    assert manifest["classes"] == list(REFERENCE_CLASSES)
    assert manifest["weights"]["kind"] == "package"
    assert len(manifest["weights"]["sha256"]) == 64
    assert manifest["labels"]["es"]["quequito"]["display_name"] == "Mantecada"
    assert manifest["labels"]["en"]["donas"]["description"]
    assert manifest["transforms"]["eval"][0] == "Resize((224, 224))"
    assert manifest["training"]["optimizer"] == "Adam"
    assert manifest["training"]["batch_size"] == 32
    assert manifest["metrics"]["test_accuracy"] == json.loads((lite0_model / "metrics.json").read_text())["test_accuracy"]
    assert manifest["created_at"].endswith("+00:00")


def test_metrics_file_has_the_contract_fields(lite0_model):
    metrics = json.loads((lite0_model / "metrics.json").read_text())

    for key in ("test_accuracy", "test_precision_weighted", "test_recall_weighted", "test_f1_weighted",
                "best_val_accuracy", "best_epoch", "split_sizes", "per_class", "confusion_matrix", "history"):
        assert key in metrics, key
    assert metrics["split_sizes"] == {"train": 51, "val": 13, "test": 16}
    assert len(metrics["history"]) == 15
    assert set(metrics["history"][0]) >= {"epoch", "train_loss", "train_acc", "val_loss", "val_acc", "seconds"}
    assert np.array(metrics["confusion_matrix"]).sum() == 16
    assert 1 <= metrics["best_epoch"] <= 15


def test_weights_are_a_plain_state_dict(lite0_model):
    state = torch.load(lite0_model / "model.pt", weights_only=True)

    assert all(isinstance(value, torch.Tensor) for value in state.values())
    assert any(key.startswith("head.") for key in state)
    assert any(key.startswith("backbone.") for key in state)


def test_damaged_weights_are_detected(lite0_model, tmp_path):
    copy = tmp_path / "model"
    copy.mkdir()
    for path in lite0_model.iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    with (copy / "model.pt").open("r+b") as handle:
        handle.seek(1000)
        handle.write(b"\x00" * 16)

    with pytest.raises(ArtifactError, match="does not match the sha256"):
        load_artifact(copy)


def test_missing_manifest_is_reported(tmp_path):
    with pytest.raises(ArtifactError, match="manifest.json is missing"):
        load_artifact(tmp_path)


def test_resnet50_training_keeps_batchnorm_statistics(small_dataset, random_resnet50_weights, tmp_path):
    out_dir = tmp_path / "resnet"
    train_classifier(small_dataset, out_dir,
                     TrainOptions(backbone="resnet50", weights=str(random_resnet50_weights), epochs=2, views=2))

    source = torch.load(random_resnet50_weights, weights_only=True)
    trained = torch.load(out_dir / "model.pt", weights_only=True)
    statistics = [key for key in source if key.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    assert len(statistics) == 159
    for key in statistics:
        assert torch.equal(trained[f"backbone.{key}"], source[key]), key
    assert read_manifest(out_dir)["parameters"] == {"total": 24_562_250, "trainable": 1_054_218}


def test_training_is_reproducible_with_a_seed(small_dataset, lite0_model, tmp_path):
    again = tmp_path / "again"
    train_classifier(small_dataset, again, TrainOptions(backbone="efficientnet-lite0", epochs=15, views=1))

    first = json.loads((lite0_model / "metrics.json").read_text())
    second = json.loads((again / "metrics.json").read_text())
    assert [row["val_loss"] for row in first["history"]] == [row["val_loss"] for row in second["history"]]
    assert first["confusion_matrix"] == second["confusion_matrix"]


@pytest.mark.parametrize(
    "views, plain, expected",
    [
        (3, False, [0, 1, 2, 0, 1, 2]),
        (3, True, [0, 1, 0, 2, 0, 1]),
        (1, True, [0, 0, 0, 0, 0, 0]),
    ],
)
def test_epochs_cycle_through_the_views(views, plain, expected):
    table = FeatureTable(torch.zeros(4, views, 8), torch.zeros(4, dtype=torch.long), np.arange(4), plain_first=plain)

    assert [table.epoch_view(epoch) for epoch in range(6)] == expected


def test_compiled_backbone_agrees_with_eager(lite0_model, small_dataset):
    from training.predict import classify_paths, list_photos
    from training.runtime import select_runtime

    photos = list_photos(small_dataset).photos[:20]
    eager_model = load_artifact(lite0_model, select_runtime(compile=False))
    eager = list(classify_paths(eager_model, photos))
    compiled = list(classify_paths(load_artifact(lite0_model, select_runtime(compile=True)), photos))

    classes = eager_model.classes
    for fast, plain in zip(compiled, eager):
        assert np.allclose(fast.probabilities, plain.probabilities, atol=0.02), plain.path
        if fast.top_class != plain.top_class:
            # bfloat16 rounding differs between the two graphs, so only a near tie may flip.
            margin = plain.top_probability - plain.probabilities[classes.index(fast.top_class)]
            assert margin < 0.02, f"{plain.path}: compiled chose {fast.top_class}, eager {plain.top_class}"
    agreement = np.mean([fast.top_class == plain.top_class for fast, plain in zip(compiled, eager)])
    assert agreement >= 0.9
