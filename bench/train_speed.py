"""Training speed: the reference notebook loop against `pandulce train`, same data, backbone and machine.

Run from the repository root:

    python bench/train_speed.py --backbone efficientnet-lite0
    python bench/train_speed.py --backbone resnet50 --weights resnet50.pth --reference-epochs 1

The reference loop runs `--reference-epochs` epochs and its 15-epoch time is
its mean epoch time times 15. Prints one JSON line at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from bench.reference import NotebookNet, PhotoList, notebook_transforms, predict, run_epochs  # noqa: E402
from training.backbones import build_model  # noqa: E402
from training.datasets import load_dataset, stratified_split  # noqa: E402
from training.runtime import configure_threads  # noqa: E402

DEFAULT_DATASET = REPO.parent / "shared" / "datasets" / "pan-dulce"


def reference_run(args, dataset, split) -> dict:
    model, _ = build_model(args.backbone, len(dataset.classes), args.weights)
    net = NotebookNet(model)
    train_tf, eval_tf = notebook_transforms(model.spec.mean, model.spec.std)
    paths = [sample.path for sample in dataset.samples]
    labels = dataset.labels.tolist()

    def subset(indices, transform):
        return PhotoList([paths[i] for i in indices], [labels[i] for i in indices], transform)

    seconds, best_state = run_epochs(net, subset(split.train, train_tf), subset(split.val, eval_tf), args.reference_epochs)
    net.load_state_dict(best_state)
    test_paths = [paths[i] for i in split.test]
    predictions = predict(net, test_paths, eval_tf)
    accuracy = sum(int(p == labels[i]) for p, i in zip(predictions, split.test)) / len(split.test)
    mean_epoch = statistics.mean(seconds)
    return {
        "epochs_run": args.reference_epochs,
        "epoch_seconds": [round(s, 2) for s in seconds],
        "mean_epoch_s": round(mean_epoch, 2),
        "total_15_epochs_s": round(mean_epoch * 15, 1),
        "test_accuracy": round(accuracy, 4),
    }


def pandulce_run(args) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-train-") as scratch:
        command = [sys.executable, "-m", "pandulce.cli", "train", str(args.dataset), "--out", f"{scratch}/model",
                   "--backbone", args.backbone, "--epochs", "15", "--seed", "42"]
        if args.weights:
            command += ["--weights", str(args.weights)]
        if args.exact_recipe:
            command += ["--no-plain-view"]
        started = time.perf_counter()
        subprocess.run(command, check=True, cwd=REPO)
        total = time.perf_counter() - started
        metrics = json.loads(Path(scratch, "model", "metrics.json").read_text())
    return {
        "total_15_epochs_s": round(total, 1),
        "feature_seconds": round(metrics["feature_seconds"], 1),
        "epoch_seconds": [round(row["seconds"], 3) for row in metrics["history"]],
        "test_accuracy": round(metrics["test_accuracy"], 4),
        "test_f1_weighted": round(metrics["test_f1_weighted"], 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--backbone", default="efficientnet-lite0", choices=["resnet50", "efficientnet-lite0"])
    parser.add_argument("--weights", type=Path, help="backbone state_dict (needed for resnet50 offline)")
    parser.add_argument("--reference-epochs", type=int, default=15,
                        help="epochs of the reference loop to run (its 15-epoch time is extrapolated)")
    parser.add_argument("--exact-recipe", action="store_true", help="pass --no-plain-view to pandulce train")
    args = parser.parse_args()

    threads = configure_threads()
    dataset = load_dataset(args.dataset)
    split = stratified_split(dataset.labels, seed=42)
    print(f"Reference loop: {args.backbone}, {args.reference_epochs} epochs, {threads} threads", file=sys.stderr)
    reference = reference_run(args, dataset, split)
    print(f"Reference: {reference}", file=sys.stderr)
    ours = pandulce_run(args)
    result = {
        "bench": "train_speed",
        "backbone": args.backbone,
        "weights": str(args.weights) if args.weights else "default",
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}",
        "reference": reference,
        "pandulce": ours,
        "speedup_15_epochs": round(reference["total_15_epochs_s"] / ours["total_15_epochs_s"], 2),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
