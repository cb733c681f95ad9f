"""Commands that run PyTorch directly: train, classify, evaluate and dataset fetch."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import click

from pandulce.cli.text import count

log = logging.getLogger(__name__)

BACKBONE_CHOICES = click.Choice(["resnet50", "efficientnet-lite0"])
DEVICE_CHOICES = click.Choice(["auto", "cpu", "cuda"])
PRECISION_CHOICES = click.Choice(["auto", "fp32", "bf16", "fp16"])
COMPILE_OPTION = click.option(
    "--compile", "compile_choice", type=click.Choice(["auto", "on", "off"]), default="auto", show_default=True,
    help="Compile the backbone with TorchInductor: 10-30 s once, then about twice the throughput. "
         "auto compiles for 2,000 images or more.")


def _training_errors():
    """Return the exception types that mean bad input rather than a bug."""
    from training.artifact import ArtifactError
    from training.backbones import WeightsMismatchError, WeightsNotFoundError
    from training.datasets import DatasetError

    return (ArtifactError, DatasetError, WeightsMismatchError, WeightsNotFoundError, ValueError,
            NotADirectoryError, FileNotFoundError)


@click.command()
@click.argument("dataset", type=click.Path(exists=True, path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Model directory to write (manifest.json, model.pt, metrics.json, plots).")
@click.option("--backbone", type=BACKBONE_CHOICES, default="resnet50", show_default=True,
              help="Frozen ImageNet backbone.")
@click.option("--weights", type=click.Path(dir_okay=False, path_type=Path),
              help="Backbone state_dict file; overrides the torch hub cache and the download.")
@click.option("--epochs", type=click.IntRange(1, 1000), default=15, show_default=True, help="Epochs of head training.")
@click.option("--seed", type=int, default=42, show_default=True, help="Seed of the split, augmentation and head.")
@click.option("--views", type=click.IntRange(1, 64), default=None,
              help="Augmented views computed per training photo (default 2).")
@click.option("--plain-view/--no-plain-view", default=True, show_default=True,
              help="Also train on each photo's plain evaluation view, every other epoch. "
                   "--no-plain-view trains on augmented views only, as the reference recipe did.")
@click.option("--device", type=DEVICE_CHOICES, default="auto", show_default=True,
              help="Where the model runs; auto picks CUDA when a GPU is present, else the CPU.")
@click.option("--precision", type=PRECISION_CHOICES, default="auto", show_default=True,
              help="Backbone precision; auto is bf16 on CPUs that support it, mixed precision on CUDA.")
@COMPILE_OPTION
@click.option("--register", is_flag=True, help="Also store the model as a new model version in the database.")
@click.option("--activate", is_flag=True, help="With --register: make the new version the active one.")
def train(dataset, out_dir, backbone, weights, epochs, seed, views, plain_view, device, precision, compile_choice,
          register, activate):
    """Train a classifier on DATASET (class folders or filename,label CSV) and write it to --out."""
    from training.train import DEFAULT_VIEWS, TrainOptions, train_classifier

    options = TrainOptions(backbone=backbone, weights=str(weights) if weights else None, epochs=epochs, seed=seed,
                           views=views or DEFAULT_VIEWS, plain_view=plain_view, device=device,
                           precision=precision, compile=compile_choice)
    try:
        result = train_classifier(dataset, out_dir, options)
    except _training_errors() as exc:
        raise click.ClickException(str(exc)) from exc

    metrics = result.metrics
    click.echo(
        f"Test accuracy {metrics['test_accuracy']:.4f}, weighted F1 {metrics['test_f1_weighted']:.4f}, "
        f"best epoch {metrics['best_epoch']} (validation {metrics['best_val_accuracy']:.4f}); "
        f"{result.seconds:.1f} s. Model written to {out_dir}"
    )
    if register:
        from pandulce.cli.queue import ensure_schema
        from pandulce.registry import register_model_dir

        ensure_schema()
        version = register_model_dir(out_dir, activate=activate)
        click.echo(f"Registered model version {version.id}{' (active)' if version.is_active else ''}.")


@click.command()
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--model", "model_dir", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Model directory written by `pandulce train`.")
@click.option("--out", "out_file", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Results file, .csv or .jsonl.")
@click.option("--batch-size", type=click.IntRange(1, 1024), default=None,
              help="Photos per backbone batch (default 16 on a CPU, 128 on a GPU).")
@click.option("--device", type=DEVICE_CHOICES, default="auto", show_default=True,
              help="Where the model runs; auto picks CUDA when a GPU is present, else the CPU.")
@click.option("--precision", type=PRECISION_CHOICES, default="auto", show_default=True,
              help="Backbone precision; auto is bf16 on CPUs that support it, mixed precision on CUDA.")
@COMPILE_OPTION
def classify(folder, model_dir, out_file, batch_size, device, precision, compile_choice):
    """Classify every photo under FOLDER and write one row per file to --out."""
    from tqdm import tqdm

    from pandulce.exports import format_for, write_results
    from training.artifact import load_artifact
    from training.predict import SKIPPED, classify_paths, list_photos
    from training.runtime import compile_wanted, select_runtime

    try:
        format_for(out_file)
        listing = list_photos(folder)
        runtime = select_runtime(device, precision, compile_wanted(compile_choice, len(listing.photos)))
        loaded = load_artifact(model_dir, runtime)
    except _training_errors() as exc:
        raise click.ClickException(str(exc)) from exc

    classes = loaded.classes
    counts = {"ok": 0, "failed": 0, "skipped": len(listing.skipped)}
    bar = tqdm(total=len(listing.photos), unit="photo", desc="classify", disable=None)

    def rows():
        for path, reason in listing.skipped:
            yield {"path": str(path), "status": SKIPPED, "error": reason, "top_class": None,
                   "top_probability": None, "probabilities": None}
        for prediction in classify_paths(loaded, listing.photos, batch_size=batch_size or loaded.runtime.batch_size):
            counts[prediction.status] += 1
            bar.update(1)
            probabilities = dict(zip(classes, prediction.probabilities)) if prediction.probabilities else None
            yield {"path": prediction.path, "status": prediction.status, "error": prediction.error,
                   "top_class": prediction.top_class, "top_probability": prediction.top_probability,
                   "probabilities": probabilities}

    write_results(out_file, rows(), classes)
    bar.close()
    click.echo(f"Classified {count(len(listing.photos), 'photo')}: {counts['ok']} ok, {counts['failed']} failed, "
               f"{count(counts['skipped'], 'file')} skipped. Results written to {out_file}")
    if counts["failed"]:
        click.echo(f"{count(counts['failed'], 'photo')} could not be read; the error column gives the reasons.",
                   err=True)


@click.command()
@click.argument("dataset", type=click.Path(exists=True, path_type=Path))
@click.option("--model", "model_dir", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--seed", type=int, default=42, show_default=True, help="Seed of the split.")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
@click.option("--device", type=DEVICE_CHOICES, default="auto", show_default=True,
              help="Where the model runs; auto picks CUDA when a GPU is present, else the CPU.")
@click.option("--precision", type=PRECISION_CHOICES, default="auto", show_default=True,
              help="Backbone precision; auto is bf16 on CPUs that support it, mixed precision on CUDA.")
def evaluate(dataset, model_dir, seed, as_json, device, precision):
    """Print a saved model's metrics on the test split of DATASET."""
    from training.artifact import load_artifact
    from training.metrics import format_report
    from training.runtime import select_runtime
    from training.train import evaluate_artifact

    try:
        loaded = load_artifact(model_dir, select_runtime(device, precision))
        metrics = evaluate_artifact(loaded, dataset, seed=seed)
    except _training_errors() as exc:
        raise click.ClickException(str(exc)) from exc

    if as_json:
        click.echo(json.dumps(metrics, indent=2))
        return
    click.echo(f"Test photos:          {metrics['test_size']}")
    click.echo(f"Accuracy:             {metrics['accuracy']:.4f}")
    click.echo(f"Precision (weighted): {metrics['precision_weighted']:.4f}")
    click.echo(f"Recall (weighted):    {metrics['recall_weighted']:.4f}")
    click.echo(f"F1 (weighted):        {metrics['f1_weighted']:.4f}")
    click.echo("")
    click.echo(format_report(metrics, loaded.classes))
    click.echo("")
    click.echo("Confusion matrix (rows: true class, columns: predicted class):")
    for name, row in zip(loaded.classes, metrics["confusion_matrix"]):
        click.echo(f"{name:>15} " + " ".join(f"{count:4d}" for count in row))


@click.group()
def dataset():
    """Manage labelled photo sets."""


@dataset.command("fetch")
@click.argument("dest", type=click.Path(file_okay=False, path_type=Path))
@click.option("--url", envvar="PANDULCE_DATASET_URL", default=None,
              help="Zip archive of the repository (default: GitHub's archive of david1792x/pan-dulce).")
def dataset_fetch(dest, url):
    """Download the public pan dulce photo set into DEST."""
    from pandulce.fetch import DEFAULT_URL, FetchError, fetch_dataset

    try:
        summary = fetch_dataset(dest, url or DEFAULT_URL)
    except FetchError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"Fetched {count(summary.photos, 'photo')} of {count(summary.classes, 'class', 'classes')} into {dest}")


def register(group: click.Group) -> None:
    for command in (train, classify, evaluate, dataset):
        group.add_command(command)
