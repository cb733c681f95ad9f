"""Test accuracy over ten seeds, with and without the plain evaluation view in training.

Run from the repository root:

    python bench/plain_view_seeds.py --backbone efficientnet-lite0

Features are computed once (each training photo's plain view and two augmented
views; the plain view of validation and test photos). The head is then trained
with the reference recipe for each seed, once on the augmented views alone
(`--no-plain-view`) and once with the plain view every other epoch (the
default). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from training.backbones import build_head, build_model  # noqa: E402
from training.datasets import load_dataset, stratified_split  # noqa: E402
from training.features import FeatureTable, extract_features  # noqa: E402
from training.fit import FitSettings, evaluate, fit_head  # noqa: E402
from training.pipeline import prepare_model  # noqa: E402
from training.runtime import select_runtime  # noqa: E402
from training.transforms import EvalPreset, TrainPreset  # noqa: E402

DEFAULT_DATASET = REPO.parent / "shared" / "datasets" / "pan-dulce"


def test_accuracy(train: FeatureTable, val: FeatureTable, test: FeatureTable, seed: int) -> float:
    head = build_head(train.features.shape[-1], int(train.labels.max()) + 1)
    result = fit_head(head, train, val, FitSettings(seed=seed))
    head.load_state_dict(result.best_state)
    _, accuracy, _ = evaluate(head, torch.nn.CrossEntropyLoss(), test.view(0), test.labels)
    return accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--backbone", default="efficientnet-lite0", choices=["resnet50", "efficientnet-lite0"])
    parser.add_argument("--weights", type=Path)
    parser.add_argument("--seeds", type=int, default=10)
    args = parser.parse_args()

    dataset = load_dataset(args.dataset)
    split = stratified_split(dataset.labels, seed=42)
    runtime = select_runtime(compile=True)
    model, _ = build_model(args.backbone, len(dataset.classes), args.weights)
    model = prepare_model(model, runtime)
    train_preset, eval_preset = TrainPreset(model.spec.mean, model.spec.std), EvalPreset(model.spec.mean, model.spec.std)
    train = extract_features(model, runtime, dataset, split.train, preset=train_preset, views=2,
                             plain_preset=eval_preset, batch_size=runtime.batch_size, description="train")
    val = extract_features(model, runtime, dataset, split.val, preset=eval_preset, batch_size=runtime.batch_size)
    test = extract_features(model, runtime, dataset, split.test, preset=eval_preset, batch_size=runtime.batch_size)
    augmented_only = FeatureTable(train.features[:, 1:], train.labels, train.sample_indices)

    seeds = range(42, 42 + args.seeds)
    with_plain = [test_accuracy(train, val, test, seed) for seed in seeds]
    without_plain = [test_accuracy(augmented_only, val, test, seed) for seed in seeds]
    print(json.dumps({
        "bench": "plain_view_seeds",
        "backbone": args.backbone,
        "seeds": list(seeds),
        "plain_view": {"mean": round(statistics.mean(with_plain), 4), "min": round(min(with_plain), 4),
                       "max": round(max(with_plain), 4), "each": [round(value, 4) for value in with_plain]},
        "augmented_only": {"mean": round(statistics.mean(without_plain), 4), "min": round(min(without_plain), 4),
                           "max": round(max(without_plain), 4), "each": [round(value, 4) for value in without_plain]},
    }))


if __name__ == "__main__":
    main()
