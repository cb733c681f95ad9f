"""Classification throughput: the reference notebook's prediction path against `pandulce classify`.

Run from the repository root with a model directory written by `pandulce train`:

    python bench/classify_speed.py --model models/demo

Both paths classify the same photos (by default the whole photo set) with the
same weights on the same machine, one after the other. `pandulce classify` runs
twice, as a user would start it: with its defaults and with `--compile on`.
Its times include starting Python, loading the model and compiling; the
reference path is timed in-process with its model already loaded. The steady
state rates time `classify_paths` in-process after warm-up, as the reference
is timed. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from bench.reference import NotebookNet, notebook_transforms, predict  # noqa: E402
from training.artifact import load_artifact  # noqa: E402
from training.predict import list_photos  # noqa: E402
from training.runtime import configure_threads, select_runtime  # noqa: E402

DEFAULT_PHOTOS = REPO.parent / "shared" / "datasets" / "pan-dulce"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="model directory from pandulce train")
    parser.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS, help="folder of photos to classify")
    args = parser.parse_args()

    threads = configure_threads()
    photos = list_photos(args.photos).photos
    loaded = load_artifact(args.model, select_runtime(precision="fp32"))
    model = NotebookNet(loaded.model).cpu().to(memory_format=torch.contiguous_format)
    _, eval_tf = notebook_transforms(loaded.preset.mean, loaded.preset.std)

    print(f"Reference prediction path: {len(photos)} photos, fp32, batch 32, {threads} threads", file=sys.stderr)
    started = time.perf_counter()
    reference_top = predict(model, photos, eval_tf)
    reference_seconds = time.perf_counter() - started

    runs = {}
    for label, extra in (("default", []), ("compiled", ["--compile", "on"])):
        seconds, tops = classify_command(args, extra)
        runs[label] = {
            "photos_per_s": round(len(photos) / seconds, 1),
            "seconds_including_startup": round(seconds, 1),
            "speedup": round(reference_seconds / seconds, 2),
            "top1_agreement": round(agreement(photos, reference_top, tops, loaded.classes), 4),
        }

    steady = {label: round(steady_rate(args.model, photos, compile_backbone), 1)
              for label, compile_backbone in (("eager", False), ("compiled", True))}

    print(json.dumps({
        "bench": "classify_speed",
        "backbone": loaded.backbone,
        "photos": len(photos),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}",
        "reference_photos_per_s": round(len(photos) / reference_seconds, 1),
        "pandulce_classify": runs,
        "steady_state_photos_per_s": steady,
        "steady_state_speedup": {label: round(rate * reference_seconds / len(photos), 2)
                                 for label, rate in steady.items()},
    }))


def steady_rate(model_dir: Path, photos: list[Path], compile_backbone: bool) -> float:
    """Return classify_paths' photos per second in-process, after loading and warming up the model.

    This is the rate of a long-running worker, and it is measured like the
    reference path, with the model loaded and no process start.
    """
    from training.predict import classify_paths

    loaded = load_artifact(model_dir, select_runtime(compile=compile_backbone))
    list(classify_paths(loaded, photos[:32]))
    started = time.perf_counter()
    for _ in classify_paths(loaded, photos):
        pass
    return len(photos) / (time.perf_counter() - started)


def classify_command(args, extra: list[str]) -> tuple[float, dict[str, str]]:
    """Run `pandulce classify` as a user would; return (wall seconds, top class per path)."""
    with tempfile.TemporaryDirectory(prefix="bench-classify-") as scratch:
        out = Path(scratch) / "results.csv"
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "pandulce.cli", "classify", str(args.photos), "--model", str(args.model),
                        "--out", str(out), *extra], check=True, cwd=REPO)
        seconds = time.perf_counter() - started
        with out.open(newline="") as handle:
            tops = {row["path"]: row["top_class"] for row in csv.DictReader(handle) if row["status"] == "ok"}
    return seconds, tops


def agreement(photos, reference_top, tops, classes) -> float:
    return sum(1 for path, top in zip(photos, reference_top) if tops.get(str(path)) == classes[top]) / len(photos)


if __name__ == "__main__":
    main()
