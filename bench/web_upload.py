"""Upload 2,000 distinct photos to `pandulce serve`, as many files and as one zip; measure speed and memory.

Run from the repository root:

    python bench/web_upload.py

The real photo set has 1,634 photos. The rest are re-encoded copies of some of
them (JPEG quality 90), so every file has its own content. The many-file
upload goes through an upload session in batches of 50 files, as the upload
page sends them. The zip goes as one streamed file. Each upload ends when the
job is created and queued. The web process's resident memory is sampled every
50 ms, after one warm-up upload of 50 photos. No worker runs: this measures the web process only. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.web_common import DATASET, RssSampler, bench_stack, describe_machine  # noqa: E402

BATCH_FILES = 50


def build_photo_set(dataset: Path, target: Path, count: int) -> list[Path]:
    """Copy the real photos into `target` and add re-encoded copies until there are `count` distinct files."""
    from PIL import Image

    from training.datasets import natural_key

    originals = sorted((path for path in dataset.rglob("*.jpg")), key=lambda path: natural_key(str(path)))
    photos = []
    for path in originals[:count]:
        copy = target / path.parent.name / path.name
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_bytes(path.read_bytes())
        photos.append(copy)
    index = 0
    while len(photos) < count:
        source = originals[index % len(originals)]
        buffer = io.BytesIO()
        with Image.open(source) as image:
            image.convert("RGB").save(buffer, "JPEG", quality=90)
        copy = target / "reencoded" / f"{source.stem}-q90.jpg"
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_bytes(buffer.getvalue())
        photos.append(copy)
        index += 1
    return photos


def upload_files(session, stack, photos: list[Path], root: Path) -> str:
    """Send photos in batches to an upload session, then finish it; return the job id."""
    upload = session.post(f"{stack.base_url}/api/v1/uploads", headers=stack.headers()).json()
    for batch_index, start in enumerate(range(0, len(photos), BATCH_FILES)):
        batch = photos[start:start + BATCH_FILES]
        names = [str(path.relative_to(root)) for path in batch]
        files = [("photos", ("photo", path.open("rb"), "image/jpeg")) for path in batch]
        try:
            response = session.post(f"{stack.base_url}{upload['files_url']}", headers=stack.headers(),
                                    data={"batch": str(batch_index), "names": json.dumps(names)}, files=files)
        finally:
            for _, (_, stream, _) in files:
                stream.close()
        response.raise_for_status()
    finished = session.post(f"{stack.base_url}{upload['finish_url']}", headers=stack.headers(),
                            data={"name": "bench files"})
    finished.raise_for_status()
    return finished.json()["id"]


def upload_zip(session, stack, zip_path: Path) -> str:
    with zip_path.open("rb") as stream:
        response = session.post(f"{stack.base_url}/api/v1/jobs", headers=stack.headers(),
                                data={"name": "bench zip"}, files={"photos": ("photos.zip", stream, "application/zip")})
    response.raise_for_status()
    return response.json()["id"]


def measure(stack, server_pid: int, upload) -> dict:
    from pandulce.db import BatchJob, session_scope

    with RssSampler(server_pid) as sampler:
        started = time.perf_counter()
        job_id = upload()
        seconds = time.perf_counter() - started
    time.sleep(1.0)
    with session_scope() as session:
        job = session.get(BatchJob, job_id)
        total, pending = job.total, job.total - job.skipped_count - job.failed_count
    return {"seconds": round(seconds, 2), "photos": total, "queued_photos": pending,
            "photos_per_second": round(total / seconds, 1), "web_rss": sampler.report()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=2000, help="Distinct photos to upload (default 2000).")
    parser.add_argument("--threads", type=int, default=8, help="Waitress threads (default 8, as pandulce serve).")
    parser.add_argument("--dataset", type=Path, default=DATASET)
    args = parser.parse_args()

    import requests

    with tempfile.TemporaryDirectory(prefix="pandulce-upload-set-") as folder, bench_stack() as stack:
        root = Path(folder) / "photos"
        photos = build_photo_set(args.dataset, root, args.photos)
        total_bytes = sum(path.stat().st_size for path in photos)
        zip_path = Path(folder) / "photos.zip"
        with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_STORED) as archive:
            for path in photos:
                archive.write(path, str(path.relative_to(root)))
        zip_megabytes = round(zip_path.stat().st_size / 1e6, 1)

        server = stack.serve(args.threads)
        session = requests.Session()
        # One small upload first, so that imports, template compilation and connection pools are in
        # place before memory is measured.
        upload_files(session, stack, photos[:BATCH_FILES], root)
        files_result = measure(stack, server.pid, lambda: upload_files(session, stack, photos, root))
        zip_result = measure(stack, server.pid, lambda: upload_zip(session, stack, zip_path))
        # The same files again: memory that grows with every upload would show here.
        again_result = measure(stack, server.pid, lambda: upload_files(session, stack, photos, root))

    print(json.dumps({
        "bench": "web_upload",
        "machine": describe_machine(),
        "photos": len(photos),
        "megabytes": round(total_bytes / 1e6, 1),
        "zip_megabytes": zip_megabytes,
        "batch_files": BATCH_FILES,
        "many_files": files_result,
        "zip": zip_result,
        "many_files_again": again_result,
    }))


if __name__ == "__main__":
    main()
