"""Classification metrics and the PNG plots of a training run."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from training.classes import display_name


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int], classes: Sequence[str]) -> dict:
    """Return accuracy, weighted precision/recall/F1, the per-class report and the confusion matrix."""
    from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, precision_recall_fscore_support

    labels = list(range(len(classes)))
    precision, recall, f1, _ = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, average="weighted", zero_division=0
    )
    report = classification_report(
        y_true, y_pred, labels=labels, target_names=list(classes), output_dict=True, zero_division=0
    )
    per_class = {
        name: {
            "precision": report[name]["precision"],
            "recall": report[name]["recall"],
            "f1": report[name]["f1-score"],
            "support": int(report[name]["support"]),
        }
        for name in classes
    }
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "precision_weighted": float(precision),
        "recall_weighted": float(recall),
        "f1_weighted": float(f1),
        "per_class": per_class,
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def format_report(metrics: dict, classes: Sequence[str]) -> str:
    """Render metrics as the plain-text table people expect from scikit-learn's report."""
    width = max(12, *(len(name) for name in classes))
    lines = [f"{'':>{width}}  precision    recall  f1-score   support", ""]
    for name in classes:
        row = metrics["per_class"][name]
        lines.append(f"{name:>{width}}  {row['precision']:9.4f} {row['recall']:9.4f} {row['f1']:9.4f} {row['support']:9d}")
    support = sum(metrics["per_class"][name]["support"] for name in classes)
    lines += [
        "",
        f"{'accuracy':>{width}}  {'':9} {'':9} {metrics['accuracy']:9.4f} {support:9d}",
        f"{'weighted avg':>{width}}  {metrics['precision_weighted']:9.4f} {metrics['recall_weighted']:9.4f} "
        f"{metrics['f1_weighted']:9.4f} {support:9d}",
    ]
    return "\n".join(lines)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# Plot labels per language. English plots keep the class folder names, as the CLI's reports do. Each other
# language gets its own copy (loss.es.png) with translated class names, for the web pages.
PLOT_TEXT = {
    "en": {"loss": "Loss", "acc": "Accuracy", "train": "train", "validation": "validation", "epoch": "epoch",
           "predicted": "predicted", "true": "true", "confusion": "Confusion matrix (test split)"},
    "es": {"loss": "Pérdida", "acc": "Exactitud", "train": "entrenamiento", "validation": "validación",
           "epoch": "época", "predicted": "predicha", "true": "real",
           "confusion": "Matriz de confusión (fotos de prueba)"},
}
PLOT_NAMES = {"loss": "loss", "acc": "accuracy"}


def plot_file_name(name: str, language: str = "en") -> str:
    """Return the file name of a plot in a language: `loss.png` in English, `loss.es.png` in Spanish."""
    return f"{name}.png" if language == "en" else f"{name}.{language}.png"


def write_plots(history: list[dict], matrix: list[list[int]], classes: Sequence[str], out_dir: Path) -> list[Path]:
    """Write the loss, accuracy and confusion matrix plots in every language of PLOT_TEXT."""
    written = []
    for language in PLOT_TEXT:
        written += plot_curves(history, out_dir, language)
        written.append(plot_confusion_matrix(matrix, classes, out_dir, language))
    return written


def plot_curves(history: list[dict], out_dir: Path, language: str = "en") -> list[Path]:
    """Write the loss and accuracy plots (loss.png, accuracy.png in English): training and validation per epoch."""
    plt = _pyplot()
    text = PLOT_TEXT[language]
    epochs = [row["epoch"] for row in history]
    written = []
    for metric, name in PLOT_NAMES.items():
        figure, axes = plt.subplots(figsize=(6, 4), dpi=110)
        axes.plot(epochs, [row[f"train_{metric}"] for row in history], marker="o", label=text["train"])
        axes.plot(epochs, [row[f"val_{metric}"] for row in history], marker="o", label=text["validation"])
        axes.set_xlabel(text["epoch"])
        axes.set_ylabel(text[metric].lower())
        axes.set_title(text[metric])
        axes.grid(alpha=0.3)
        axes.legend()
        figure.tight_layout()
        path = out_dir / plot_file_name(name, language)
        figure.savefig(path)
        plt.close(figure)
        written.append(path)
    return written


def plot_confusion_matrix(matrix: list[list[int]], classes: Sequence[str], out_dir: Path,
                          language: str = "en") -> Path:
    """Write the confusion matrix plot (confusion_matrix.png in English) with counts in every cell."""
    plt = _pyplot()
    text = PLOT_TEXT[language]
    labels = list(classes) if language == "en" else [display_name(name, language) for name in classes]
    counts = np.asarray(matrix)
    size = max(5.0, 0.6 * len(classes) + 2)
    figure, axes = plt.subplots(figsize=(size, size), dpi=110)
    axes.imshow(counts, cmap="Blues")
    axes.set_xticks(range(len(classes)), labels=labels, rotation=45, ha="right")
    axes.set_yticks(range(len(classes)), labels=labels)
    axes.set_xlabel(text["predicted"])
    axes.set_ylabel(text["true"])
    threshold = counts.max() / 2 if counts.size else 0
    for row in range(counts.shape[0]):
        for column in range(counts.shape[1]):
            colour = "white" if counts[row, column] > threshold else "black"
            axes.text(column, row, str(counts[row, column]), ha="center", va="center", color=colour, fontsize=8)
    axes.set_title(text["confusion"])
    figure.tight_layout()
    path = out_dir / plot_file_name("confusion_matrix", language)
    figure.savefig(path)
    plt.close(figure)
    return path
