import pytest
import torch

from training.backbones import (
    WeightsMismatchError,
    WeightsNotFoundError,
    build_model,
    count_parameters,
    resolve_resnet50_weights,
)


@pytest.fixture
def empty_hub(tmp_path, monkeypatch):
    """Point the torch hub cache at an empty folder."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    return tmp_path / "torch-home" / "hub" / "checkpoints"


def test_resnet50_has_the_reference_parameter_counts(random_resnet50_weights):
    model, source = build_model("resnet50", 10, weights=random_resnet50_weights)

    assert count_parameters(model) == (24_562_250, 1_054_218)
    assert source.kind == "file"
    assert len(source.sha256) == 64


def test_head_is_the_reference_head():
    model, _ = build_model("efficientnet-lite0", 10)
    layers = [type(layer).__name__ for layer in model.head]

    assert layers == ["Linear", "ReLU", "Dropout", "Linear", "LogSoftmax"]
    assert model.head[0].in_features == 1280
    assert model.head[0].out_features == 512
    assert model.head[2].p == 0.3
    assert model.head[3].out_features == 10


def test_resnet50_without_weights_fails_with_file_and_place(empty_hub):
    with pytest.raises(WeightsNotFoundError) as error:
        build_model("resnet50", 10)

    message = str(error.value)
    assert "resnet50-0676ba61.pth" in message
    assert str(empty_hub / "resnet50-0676ba61.pth") in message
    assert "--weights" in message


def test_offline_mode_skips_the_download(empty_hub, monkeypatch):
    monkeypatch.setenv("PANDULCE_OFFLINE", "1")

    with pytest.raises(WeightsNotFoundError, match="skipped because PANDULCE_OFFLINE=1"):
        resolve_resnet50_weights()


def test_hub_cache_is_used_before_download(empty_hub, random_resnet50_weights):
    empty_hub.mkdir(parents=True)
    (empty_hub / "resnet50-0676ba61.pth").write_bytes(random_resnet50_weights.read_bytes())

    _, source = build_model("resnet50", 10)

    assert source.kind == "hub-cache"


def test_explicit_weights_win_over_the_hub_cache(empty_hub, random_resnet50_weights, tmp_path):
    empty_hub.mkdir(parents=True)
    (empty_hub / "resnet50-0676ba61.pth").write_bytes(b"not used")

    _, source = build_model("resnet50", 10, weights=random_resnet50_weights)

    assert source.kind == "file"


def test_explicit_weights_file_must_exist(tmp_path):
    with pytest.raises(WeightsNotFoundError, match="does not exist"):
        build_model("resnet50", 10, weights=tmp_path / "missing.pth")


@pytest.mark.parametrize(
    "content, message",
    [
        (b"not a checkpoint", "is not a PyTorch state_dict saved with torch.save"),
        (b"hello this is a readme\n", "is not a PyTorch state_dict saved with torch.save"),
        ("lite0", "do not match the backbone"),
    ],
    ids=["garbage", "text", "other-architecture"],
)
def test_mismatched_weights_are_rejected(tmp_path, content, message):
    path = tmp_path / "weights.pth"
    if content == "lite0":
        model, _ = build_model("efficientnet-lite0", 10)
        torch.save(model.backbone.state_dict(), path)
    else:
        path.write_bytes(content)

    with pytest.raises(WeightsMismatchError, match=message):
        build_model("resnet50", 10, weights=path)


def test_unknown_backbone_names_the_valid_ones():
    with pytest.raises(ValueError, match="choose one of resnet50, efficientnet-lite0"):
        build_model("vgg16", 10)


def test_backbone_stays_in_eval_mode_when_training():
    model, _ = build_model("efficientnet-lite0", 10)
    model.train()

    assert model.head.training
    assert not model.backbone.training
    assert not any(module.training for module in model.backbone.modules())
    assert not any(parameter.requires_grad for parameter in model.backbone.parameters())


@pytest.mark.parametrize("backbone", ["efficientnet-lite0", "resnet50"])
def test_inference_copy_folds_every_batchnorm(backbone, random_resnet50_weights):
    from training.inference import InferenceBackbone

    weights = random_resnet50_weights if backbone == "resnet50" else None
    model, _ = build_model(backbone, 10, weights=weights)
    inference = InferenceBackbone(model.backbone, compile_backbone=False, batch_size=4)
    images = torch.rand(2, 3, 224, 224)

    with torch.inference_mode():
        expected = model.backbone(images)
        folded = inference(images)
    assert not any(isinstance(module, torch.nn.BatchNorm2d) for module in inference.module.modules())
    assert any(isinstance(module, torch.nn.BatchNorm2d) for module in model.backbone.modules())
    assert torch.allclose(folded, expected, rtol=1e-3, atol=1e-3 * expected.abs().max().item())
