"""Write per-photo results as CSV or JSONL: one row per file, every class's probability."""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Iterable, Sequence

FORMATS = (".csv", ".jsonl")
BASE_COLUMNS = ("path", "status", "error", "top_class", "top_probability")


def format_for(path: str | os.PathLike) -> str:
    """Return 'csv' or 'jsonl' from the file name, or raise ValueError naming the valid endings."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"Output file {path} must end in .csv or .jsonl, not {suffix or 'nothing'}.")
    return suffix[1:]


def probability_column(class_name: str) -> str:
    return f"p_{class_name}"


def csv_header(classes: Sequence[str], extra: Sequence[str] = ()) -> list[str]:
    return [*BASE_COLUMNS, *extra, *(probability_column(name) for name in classes)]


def csv_row(row: dict, classes: Sequence[str], extra: Sequence[str] = ()) -> list:
    probabilities = row.get("probabilities") or {}
    top = row.get("top_probability")
    return [
        row["path"],
        row["status"],
        row.get("error") or "",
        row.get("top_class") or "",
        "" if top is None else f"{top:.6f}",
        *(row.get(column, "") for column in extra),
        *("" if probabilities.get(name) is None else f"{probabilities[name]:.6f}" for name in classes),
    ]


def jsonl_line(row: dict) -> str:
    # JSON says "no value" with null, where CSV can only leave the cell empty.
    row = {key: (None if value == "" else value) for key, value in row.items()}
    return json.dumps(row, ensure_ascii=False) + "\n"


def render(rows: Iterable[dict], classes: Sequence[str], file_format: str, extra: Sequence[str] = ()) -> Iterable[str]:
    """Yield the export's text piece by piece, for streaming HTTP responses and files alike."""
    if file_format == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(csv_header(classes, extra))
        for row in rows:
            writer.writerow(csv_row(row, classes, extra))
            if buffer.tell() > 64 * 1024:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()
    else:
        for row in rows:
            yield jsonl_line(row)


def write_results(path: str | os.PathLike, rows: Iterable[dict], classes: Sequence[str],
                  extra: Sequence[str] = ()) -> int:
    """Write rows to `path` through a temporary file, so a failure leaves no partial file; return the row count."""
    path = Path(path)
    file_format = format_for(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    count = 0

    def counted(source):
        nonlocal count
        for row in source:
            count += 1
            yield row

    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as stream:
            for piece in render(counted(rows), classes, file_format, extra):
                stream.write(piece)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return count
