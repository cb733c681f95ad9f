"""The OpenAPI 3 document of /api/v1, written out by hand next to the routes it describes.

A test checks that every /api/v1 route and method appears here.
"""

from __future__ import annotations

from pandulce import __version__
from pandulce.dataset_uploads import MIN_CLASSES, MIN_PHOTOS_PER_CLASS
from web.training_runs import BACKBONES, DEFAULT_EPOCHS, DEFAULT_SEED, MAX_EPOCHS, MAX_SEED

API_PREFIX = "/api/v1"


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict:
    texts = {400: "Invalid request", 401: "Missing or invalid token", 403: "Only administrators may do this",
             404: "Not found (or another user's)",
             409: "Not possible in the job's current state", 413: "Over an upload limit",
             503: "Queue unreachable or no active model"}
    return {str(status): _json(_ref("Error"), texts[status]) for status in (401, *statuses)}


def _path_parameter(name: str, schema_type: str = "string", description: str = "") -> dict:
    return {"name": name, "in": "path", "required": True, "schema": {"type": schema_type},
            "description": description}


def _query(name: str, schema: dict, description: str) -> dict:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


JOB_ID = _path_parameter("job_id", description="Job id (a UUID)")
PHOTO_ID = _path_parameter("photo_id", "integer", "Photo id")
UPLOAD_ID = _path_parameter("upload_id", description="Upload session id")
REQUEST_ID = _path_parameter("request_id", description="Quick test id returned by POST /quick")
VERSION_ID = _path_parameter("version_id", "integer", "Model version id")
RUN_ID = _path_parameter("run_id", "integer", "Training run id")
PLOT_NAME = {"name": "name", "in": "path", "required": True,
             "schema": {"type": "string", "enum": ["accuracy", "loss", "confusion_matrix"]},
             "description": "Plot written by the trainer"}
PROBABILITY = {"type": "number", "minimum": 0, "maximum": 1}

RESULT_FILTERS = [
    _query("class", {"type": "string"}, "Only photos whose predicted class is this class"),
    _query("score_class", {"type": "string"}, "Apply min and max to this class's probability"),
    _query("min", PROBABILITY, "Minimum probability (of score_class, else of the predicted class)"),
    _query("max", PROBABILITY, "Maximum probability (of score_class, else of the predicted class)"),
    _query("status", {"type": "string", "enum": ["pending", "done", "failed", "skipped", "cancelled"]},
           "Only photos with this status"),
    _query("low", PROBABILITY, "Low confidence: only photos whose top probability is under this threshold"),
    _query("sort", {"type": "string", "enum": ["position", "name", "probability_desc", "probability_asc",
                                               "score_desc", "status"]}, "Order (default: upload order)"),
    _query("page", {"type": "integer", "minimum": 1}, "Page number, from 1"),
    _query("per_page", {"type": "integer", "minimum": 1, "maximum": 500}, "Photos per page (default 100)"),
]

FILES_BODY = {
    "required": True,
    "content": {"multipart/form-data": {"schema": {
        "type": "object",
        "properties": {
            "photos": {"type": "array", "items": {"type": "string", "format": "binary"},
                       "description": "Photos and/or zip archives; at most 999 files per request"},
            "names": {"type": "string", "description": "JSON list of the files' names as shown (optional; "
                                                       "default: each part's filename)"},
            "name": {"type": "string", "description": "Job name (default: the folder, zip or first file)"},
        },
        "required": ["photos"],
    }}},
}

TRAINING_BODY = {
    "required": True,
    "content": {"multipart/form-data": {"schema": {
        "type": "object",
        "properties": {
            "dataset": {"type": "string", "format": "binary", "description": "Zip of class folders"},
            "backbone": {"type": "string", "enum": list(BACKBONES),
                         "description": f"Default {BACKBONES[0]}. resnet50 needs its ImageNet weights file in "
                                        f"the workers' torch hub cache."},
            "epochs": {"type": "integer", "minimum": 1, "maximum": MAX_EPOCHS,
                       "description": f"Default {DEFAULT_EPOCHS}"},
            "seed": {"type": "integer", "minimum": 0, "maximum": MAX_SEED, "description": f"Default {DEFAULT_SEED}"},
            "activate": {"type": "boolean", "description": "Activate the new version when training finishes "
                                                           "(default false)"},
        },
        "required": ["dataset"],
    }}},
}

SCHEMAS = {
    "Error": {"type": "object", "required": ["error", "message"], "properties": {
        "error": {"type": "string", "description": "Stable code, e.g. not_found, file_too_large"},
        "message": {"type": "string", "description": "Sentence in the request's language"}}},
    "JobStatus": {"type": "object", "properties": {
        "id": {"type": "string"}, "name": {"type": "string"},
        "status": {"type": "string", "enum": ["queued", "running", "done", "failed", "cancelled"]},
        "status_label": {"type": "string"}, "finished": {"type": "boolean"},
        "total": {"type": "integer"}, "done": {"type": "integer"}, "failed": {"type": "integer"},
        "skipped": {"type": "integer"}, "cancelled": {"type": "integer"}, "pending": {"type": "integer"},
        "percent": {"type": "number"}, "photos_per_second": {"type": "number", "nullable": True},
        "eta_seconds": {"type": "integer", "nullable": True}, "eta_text": {"type": "string", "nullable": True},
        "rate_text": {"type": "string", "nullable": True, "description": "photos_per_second in words"},
        "error": {"type": "string", "nullable": True}, "created_at": {"type": "string", "format": "date-time"},
        "created_age": {"type": "string", "description": "How long ago the job was created, in words"},
        "started_at": {"type": "string", "format": "date-time", "nullable": True},
        "finished_at": {"type": "string", "format": "date-time", "nullable": True},
        "model_version_id": {"type": "integer"}}},
    "JobList": {"type": "object", "properties": {
        "page": {"type": "integer"}, "per_page": {"type": "integer"}, "total": {"type": "integer"},
        "pages": {"type": "integer"}, "jobs": {"type": "array", "items": _ref("JobStatus")}}},
    "Photo": {"type": "object", "properties": {
        "id": {"type": "integer"}, "position": {"type": "integer"},
        "name": {"type": "string", "description": "Name as uploaded"},
        "status": {"type": "string"}, "error_code": {"type": "string", "nullable": True},
        "error": {"type": "string", "nullable": True}, "sha256": {"type": "string", "nullable": True},
        "width": {"type": "integer", "nullable": True}, "height": {"type": "integer", "nullable": True},
        "top_class": {"type": "string", "nullable": True}, "top_label": {"type": "string"},
        "top_probability": {"type": "number", "nullable": True},
        "probabilities": {"type": "object", "nullable": True, "additionalProperties": {"type": "number"}},
        "thumbnail_url": {"type": "string"}, "image_url": {"type": "string"},
        "description": {"type": "string", "description": "Only on the single-photo endpoint"}}},
    "ResultPage": {"type": "object", "properties": {
        "job_id": {"type": "string"}, "page": {"type": "integer"}, "per_page": {"type": "integer"},
        "total": {"type": "integer"}, "pages": {"type": "integer"},
        "photos": {"type": "array", "items": _ref("Photo")}}},
    "Upload": {"type": "object", "properties": {
        "upload_id": {"type": "string"}, "batch_files": {"type": "integer"}, "files_url": {"type": "string"},
        "finish_url": {"type": "string"}}},
    "ModelVersion": {"type": "object", "properties": {
        "id": {"type": "integer"}, "name": {"type": "string"}, "backbone": {"type": "string"},
        "classes": {"type": "array", "items": {"type": "string"}}, "class_count": {"type": "integer"},
        "is_active": {"type": "boolean", "description": "New jobs use the active version"},
        "created_at": {"type": "string", "format": "date-time"},
        "created_age": {"type": "string", "description": "How long ago the version was created, in words"},
        "test_accuracy": {"type": "number", "nullable": True},
        "test_f1_weighted": {"type": "number", "nullable": True},
        "training_run_id": {"type": "integer", "nullable": True}}},
    "ModelList": {"type": "object", "properties": {
        "active_model_version_id": {"type": "integer", "nullable": True},
        "models": {"type": "array", "items": _ref("ModelVersion")}}},
    "ModelDetail": {"allOf": [_ref("ModelVersion"), {"type": "object", "properties": {
        "class_labels": {"type": "object", "additionalProperties": {"type": "string"},
                         "description": "Display name of each class in the request's language"},
        "metrics": {"type": "object", "description": "Test metrics as fractions from 0 to 1: test_accuracy, "
                    "test_precision_weighted, test_recall_weighted, test_f1_weighted, best_val_accuracy, "
                    "best_epoch, split_sizes, per_class (precision, recall, f1, support by class), "
                    "confusion_matrix (rows true, columns predicted, in class order) and history (one row per "
                    "epoch). Keys the model directory does not record are left out."},
        "training": {"type": "object", "description": "Training settings (epochs, batch_size, learning_rate, "
                     "seed, ...) as recorded in the manifest and the training run"},
        "weights": {"type": "object", "nullable": True, "description": "Source of the backbone's starting weights: "
                    "kind, path, sha256"},
        "plots": {"type": "object", "additionalProperties": {"type": "string"},
                  "description": "Address of each plot the model directory contains"}}}]},
    "TrainingRun": {"type": "object", "properties": {
        "id": {"type": "integer"},
        "status": {"type": "string", "enum": ["queued", "running", "done", "failed"]},
        "status_label": {"type": "string"},
        "dataset": {"type": "string", "description": "Name of the dataset folder, without the server's path"},
        "settings": {"type": "object", "description": "Training options: backbone, weights, epochs, seed"},
        "activate": {"type": "boolean", "description": "Whether the new version becomes active when the run ends"},
        "phase": {"type": "string", "nullable": True,
                  "description": "features:train, features:val, features:test or fit while the run is running"},
        "phase_label": {"type": "string", "nullable": True},
        "progress_done": {"type": "integer", "description": "Photos done in the current features phase"},
        "progress_total": {"type": "integer"},
        "percent": {"type": "number", "nullable": True, "description": "Progress of the current phase; null "
                    "unless the run is running"},
        "epochs": {"type": "integer", "nullable": True, "description": "Epochs the run was queued with"},
        "epochs_done": {"type": "integer", "description": "Epochs finished so far (the length of history)"},
        "last_epoch": {"type": "object", "nullable": True, "description": "The last finished epoch's record"},
        "history": {"type": "array", "items": {"type": "object"}, "description": "Every finished epoch's record: "
                    "epoch, train_loss, train_acc, val_loss, val_acc, photos_per_s, seconds. Only on the "
                    "single-run endpoint."},
        "model_version_id": {"type": "integer", "nullable": True, "description": "Set when the run is done"},
        "error": {"type": "string", "nullable": True},
        "created_at": {"type": "string", "format": "date-time"},
        "started_at": {"type": "string", "format": "date-time", "nullable": True},
        "finished_at": {"type": "string", "format": "date-time", "nullable": True}}},
    "TrainingRunList": {"type": "object", "properties": {
        "page": {"type": "integer"}, "per_page": {"type": "integer"}, "total": {"type": "integer"},
        "pages": {"type": "integer"}, "training_runs": {"type": "array", "items": _ref("TrainingRun")}}},
    "QueuedTrainingRun": {"allOf": [_ref("TrainingRun"), {"type": "object", "properties": {
        "photo_count": {"type": "integer", "description": "Photos unpacked from the zip"},
        "class_counts": {"type": "object", "additionalProperties": {"type": "integer"},
                         "description": "Photos per class"},
        "skipped": {"type": "integer", "description": "Zip members left out: system files, files that are not "
                    "photos, files outside a class folder, photos over the size limit"}}}]},
    "QuickAnswer": {"type": "object", "properties": {
        "request_id": {"type": "string"}, "status": {"type": "string", "enum": ["pending", "ok", "failed"]},
        "error_code": {"type": "string", "nullable": True}, "error": {"type": "string", "nullable": True},
        "top_class": {"type": "string", "nullable": True}, "top_label": {"type": "string"},
        "top_probability": {"type": "number", "nullable": True}, "description": {"type": "string"},
        "probabilities": {"type": "array", "items": {"type": "object", "properties": {
            "class": {"type": "string"}, "label": {"type": "string"}, "probability": {"type": "number"}}}}}},
}


def _operations() -> dict:
    job_json = _json(_ref("JobStatus"), "The job's status")
    return {
        "/openapi.json": {"get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI 3"}}}},
        "/me": {"get": {"summary": "The signed-in user", "responses": {
            "200": _json({"type": "object"}, "id, username, is_admin, language"), **_errors()}}},
        "/classes": {"get": {"summary": "Classes of the active model, with display names and descriptions",
                             "responses": {"200": _json({"type": "object"}, "model_version_id and classes"),
                                           **_errors()}}},
        "/models": {"get": {"summary": "List the model versions, newest first",
                            "responses": {"200": _json(_ref("ModelList"), "Model versions"), **_errors()}}},
        "/models/{version_id}": {"get": {
            "summary": "A model version with its test metrics, training settings and plot addresses",
            "parameters": [VERSION_ID],
            "responses": {"200": _json(_ref("ModelDetail"), "The model version"), **_errors(404)}}},
        "/models/{version_id}/plots/{name}.png": {"get": {
            "summary": "One of the version's training plots",
            "parameters": [VERSION_ID, PLOT_NAME,
                           _query("lang", {"type": "string", "enum": ["es", "en"]},
                                  "Language of the labels (default: the request's language). Models trained "
                                  "without translated plots return the English one.")],
            "responses": {"200": {"description": "PNG image"}, **_errors(404)}}},
        "/models/{version_id}/activate": {"post": {
            "summary": "Make the version the one new jobs use, while jobs already created keep theirs "
                       "(administrators only)",
            "parameters": [VERSION_ID],
            "responses": {"200": _json(_ref("ModelVersion"), "The activated version"), **_errors(403, 404)}}},
        "/models/train": {"post": {
            "summary": "Queue a training run on a zip of class folders (administrators only)",
            "description": "The zip contains one folder per class, named after the class (lowercase letters, "
                           "digits, - and _), optionally inside one top folder. Training needs at least "
                           f"{MIN_CLASSES} classes and at least {MIN_PHOTOS_PER_CLASS} photos of each.",
            "requestBody": TRAINING_BODY,
            "responses": {"202": _json(_ref("QueuedTrainingRun"), "The queued training run"),
                          **_errors(400, 403, 413, 503)}}},
        "/training-runs": {"get": {
            "summary": "List the training runs, newest first",
            "parameters": [_query("page", {"type": "integer", "minimum": 1}, "Page number"),
                           _query("per_page", {"type": "integer", "minimum": 1, "maximum": 100},
                                  "Training runs per page (default 25)")],
            "responses": {"200": _json(_ref("TrainingRunList"), "A page of training runs"), **_errors(400)}}},
        "/training-runs/{run_id}": {"get": {
            "summary": "A training run with its progress and every finished epoch", "parameters": [RUN_ID],
            "responses": {"200": _json(_ref("TrainingRun"), "The training run"), **_errors(404)}}},
        "/jobs": {
            "get": {"summary": "List the user's jobs, newest first",
                    "parameters": [_query("page", {"type": "integer", "minimum": 1}, "Page number"),
                                   _query("per_page", {"type": "integer", "minimum": 1, "maximum": 100},
                                          "Jobs per page (default 25)")],
                    "responses": {"200": _json(_ref("JobList"), "A page of jobs"), **_errors(400)}},
            "post": {"summary": "Create and queue a job from photos or zips sent in one request",
                     "requestBody": FILES_BODY,
                     "responses": {"201": job_json, **_errors(400, 413, 503)}},
        },
        "/uploads": {"post": {"summary": "Start an upload session for sets too large for one request",
                              "responses": {"201": _json(_ref("Upload"), "The new session"), **_errors()}}},
        "/uploads/{upload_id}": {"delete": {"summary": "Drop an upload session", "parameters": [UPLOAD_ID],
                                            "responses": {"204": {"description": "Dropped"}, **_errors(404)}}},
        "/uploads/{upload_id}/files": {"post": {
            "summary": "Add a numbered batch of files; resending a batch number replaces it",
            "parameters": [UPLOAD_ID],
            "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
                "type": "object", "required": ["batch", "photos"], "properties": {
                    "batch": {"type": "integer", "minimum": 0},
                    **FILES_BODY["content"]["multipart/form-data"]["schema"]["properties"]}}}}},
            "responses": {"200": _json({"type": "object"}, "upload_id, batch, received"),
                          **_errors(400, 404, 413)}}},
        "/uploads/{upload_id}/finish": {"post": {
            "summary": "Create and queue the job from every batch of the session", "parameters": [UPLOAD_ID],
            "requestBody": {"required": False, "content": {"application/x-www-form-urlencoded": {"schema": {
                "type": "object", "properties": {"name": {"type": "string"}}}}}},
            "responses": {"201": job_json, **_errors(400, 404, 413, 503)}}},
        "/jobs/{job_id}": {"get": {"summary": "A job's status: counts, photos per second, estimated time left",
                                   "parameters": [JOB_ID], "responses": {"200": job_json, **_errors(404)}}},
        "/jobs/{job_id}/cancel": {"post": {"summary": "Cancel a queued or running job", "parameters": [JOB_ID],
                                           "responses": {"200": job_json, **_errors(404, 409)}}},
        "/jobs/{job_id}/retry": {"post": {"summary": "Queue a finished job's failed photos again, except those "
                                                     "whose file is damaged or not an image",
                                          "parameters": [JOB_ID],
                                          "responses": {"200": job_json, **_errors(404, 409, 503)}}},
        "/jobs/{job_id}/results": {"get": {"summary": "A page of the job's photos, filtered and sorted",
                                           "parameters": [JOB_ID, *RESULT_FILTERS],
                                           "responses": {"200": _json(_ref("ResultPage"), "Photos"),
                                                         **_errors(400, 404)}}},
        "/jobs/{job_id}/photos/{photo_id}": {"get": {
            "summary": "One photo with every class's probability", "parameters": [JOB_ID, PHOTO_ID],
            "responses": {"200": _json(_ref("Photo"), "The photo"), **_errors(404)}}},
        "/jobs/{job_id}/photos/{photo_id}/thumbnail": {"get": {
            "summary": "The photo's JPEG thumbnail", "parameters": [JOB_ID, PHOTO_ID],
            "responses": {"200": {"description": "JPEG (or an SVG placeholder)"}, **_errors(404)}}},
        "/jobs/{job_id}/photos/{photo_id}/image": {"get": {
            "summary": "The photo full size", "parameters": [JOB_ID, PHOTO_ID],
            "responses": {"200": {"description": "The image"}, **_errors(404)}}},
        "/jobs/{job_id}/export.{file_format}": {"get": {
            "summary": "The job's results: one row per photo with every class's probability and failure reasons",
            "parameters": [JOB_ID, {"name": "file_format", "in": "path", "required": True,
                                    "schema": {"type": "string", "enum": ["csv", "jsonl"]}}],
            "responses": {"200": {"description": "CSV or JSON Lines, streamed"}, **_errors(404)}}},
        "/quick": {"post": {
            "summary": "Queue one photo for a quick test, outside any job",
            "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
                "type": "object", "required": ["photo"],
                "properties": {"photo": {"type": "string", "format": "binary"}}}}}},
            "responses": {"202": _json({"type": "object"}, "request_id and result_url"),
                          **_errors(400, 413, 503)}}},
        "/quick/{request_id}": {"get": {"summary": "A quick test's answer (status pending until it is ready)",
                                        "parameters": [REQUEST_ID],
                                        "responses": {"200": _json(_ref("QuickAnswer"), "The answer"),
                                                      **_errors(404, 503)}}},
    }


def openapi_document() -> dict:
    """Return the OpenAPI 3.0 document of the API."""
    return {
        "openapi": "3.0.3",
        "info": {"title": "pan-dulce API", "version": __version__,
                 "description": "Batch classification of pan dulce photos. Authenticate with "
                                "`Authorization: Bearer TOKEN`; `pandulce users token USERNAME` issues one. "
                                "Errors are {\"error\": code, \"message\": sentence}. Messages and class names "
                                "are in the language of the Accept-Language header (es or en), or else in the "
                                "user's saved language."},
        "servers": [{"url": API_PREFIX}],
        "security": [{"bearer": []}],
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}, "schemas": SCHEMAS},
        "paths": _operations(),
    }
