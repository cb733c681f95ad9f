"""Batch jobs, photos, predictions, model versions and training runs.

Revision ID: 0001
Revises:
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def status(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=16)


def upgrade() -> None:
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("backbone", sa.String(length=40), nullable=False),
        sa.Column("classes", sa.JSON(), nullable=False),
        sa.Column("artifact_path", sa.String(length=1000), nullable=False),
        sa.Column("manifest_sha256", sa.String(length=64), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_versions")),
    )
    op.create_index("uq_model_versions_active", "model_versions", ["is_active"], unique=True,
                    sqlite_where=sa.text("is_active = 1"), postgresql_where=sa.text("is_active"))

    op.create_table(
        "training_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("status", status("run_status", "queued", "running", "done", "failed"), nullable=False),
        sa.Column("dataset", sa.String(length=1000), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("phase", sa.String(length=40), nullable=True),
        sa.Column("progress_done", sa.Integer(), nullable=False),
        sa.Column("progress_total", sa.Integer(), nullable=False),
        sa.Column("history", sa.JSON(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("activate", sa.Boolean(), nullable=False),
        sa.Column("model_version_id", sa.Integer(), nullable=True),
        sa.Column("submitted_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["model_version_id"], ["model_versions.id"],
                                name=op.f("fk_training_runs_model_version_id_model_versions"), ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_training_runs")),
    )

    op.create_table(
        "batch_jobs",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("status", status("job_status", "queued", "running", "done", "failed", "cancelled"), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("done_count", sa.Integer(), nullable=False),
        sa.Column("failed_count", sa.Integer(), nullable=False),
        sa.Column("skipped_count", sa.Integer(), nullable=False),
        sa.Column("model_version_id", sa.Integer(), nullable=False),
        sa.Column("submitted_by", sa.String(length=200), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["model_version_id"], ["model_versions.id"],
                                name=op.f("fk_batch_jobs_model_version_id_model_versions")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_batch_jobs")),
    )
    op.create_index(op.f("ix_batch_jobs_created_at"), "batch_jobs", ["created_at"])
    op.create_index(op.f("ix_batch_jobs_status"), "batch_jobs", ["status"])

    op.create_table(
        "batch_chunks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.String(length=36), nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("status", status("chunk_status", "queued", "running", "done", "failed", "cancelled"), nullable=False),
        sa.Column("photo_count", sa.Integer(), nullable=False),
        sa.Column("deliveries", sa.Integer(), nullable=False),
        sa.Column("worker", sa.String(length=200), nullable=True),
        sa.Column("worker_pid", sa.Integer(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["job_id"], ["batch_jobs.id"], name=op.f("fk_batch_chunks_job_id_batch_jobs"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_batch_chunks")),
        sa.UniqueConstraint("job_id", "index", name=op.f("uq_batch_chunks_job_id_index")),
    )

    op.create_table(
        "photos",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.String(length=36), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("chunk_index", sa.Integer(), nullable=True),
        sa.Column("original_name", sa.String(length=1024), nullable=False),
        sa.Column("stored_path", sa.String(length=300), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("byte_size", sa.Integer(), nullable=True),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("status", status("photo_status", "pending", "done", "failed", "skipped", "cancelled"), nullable=False),
        sa.Column("error_code", sa.String(length=32), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["batch_jobs.id"], name=op.f("fk_photos_job_id_batch_jobs"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_photos")),
    )
    op.create_index("ix_photos_job_id_position", "photos", ["job_id", "position"])
    op.create_index("ix_photos_job_id_status", "photos", ["job_id", "status"])
    op.create_index("ix_photos_job_id_chunk_index", "photos", ["job_id", "chunk_index"])
    op.create_index(op.f("ix_photos_sha256"), "photos", ["sha256"])

    op.create_table(
        "predictions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("photo_id", sa.Integer(), nullable=False),
        sa.Column("model_version_id", sa.Integer(), nullable=False),
        sa.Column("top_class", sa.String(length=64), nullable=False),
        sa.Column("top_probability", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["model_version_id"], ["model_versions.id"],
                                name=op.f("fk_predictions_model_version_id_model_versions")),
        sa.ForeignKeyConstraint(["photo_id"], ["photos.id"], name=op.f("fk_predictions_photo_id_photos"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_predictions")),
        sa.UniqueConstraint("photo_id", "model_version_id", name=op.f("uq_predictions_photo_id_model_version_id")),
    )
    op.create_index("ix_predictions_top_class_top_probability", "predictions", ["top_class", "top_probability"])

    op.create_table(
        "prediction_scores",
        sa.Column("prediction_id", sa.Integer(), nullable=False),
        sa.Column("class_name", sa.String(length=64), nullable=False),
        sa.Column("class_index", sa.Integer(), nullable=False),
        sa.Column("probability", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["prediction_id"], ["predictions.id"],
                                name=op.f("fk_prediction_scores_prediction_id_predictions"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("prediction_id", "class_name", name=op.f("pk_prediction_scores")),
    )
    op.create_index("ix_prediction_scores_class_name_probability", "prediction_scores", ["class_name", "probability"])


def downgrade() -> None:
    op.drop_table("prediction_scores")
    op.drop_table("predictions")
    op.drop_table("photos")
    op.drop_table("batch_chunks")
    op.drop_table("batch_jobs")
    op.drop_table("training_runs")
    op.drop_index("uq_model_versions_active", table_name="model_versions")
    op.drop_table("model_versions")
