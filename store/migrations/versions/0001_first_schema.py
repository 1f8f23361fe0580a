"""The schema of the last winnow without migrations.

Functions, labels, samples, model versions, review items, novel marks and API keys.

Revision ID: 0001
Revises:
Create Date: 2026-12-06 00:25:17.296177
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # ``default=`` is Python-side and changes no DDL: it is what store.schema fills in on the rows
    # of a pre-migration database that lacks the column, before stamping the database here.
    op.create_table(
        "function",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("backbone", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("deployed_version", sa.Integer(), nullable=True),
        sa.Column("pinned", sa.Boolean(), nullable=False, default=False),
        sa.Column("annotation_counter", sa.Integer(), nullable=False, default=0),
        sa.Column("capture_policy", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_function_name"), "function", ["name"])

    op.create_table(
        "apikey",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("function_id", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("secret_hash", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("rate_limit_per_minute", sa.Integer(), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["function_id"], ["function.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_apikey_function_id"), "apikey", ["function_id"])

    op.create_table(
        "label",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("function_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("description", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["function_id"], ["function.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("function_id", "name"),
    )
    op.create_index(op.f("ix_label_function_id"), "label", ["function_id"])

    op.create_table(
        "modelversion",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("function_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(), nullable=False, default="trained"),
        sa.Column("backbone", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("head", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("params", sa.JSON(), nullable=True),
        sa.Column("metrics", sa.JSON(), nullable=True),
        sa.Column("labels", sa.JSON(), nullable=True),
        sa.Column("sample_count", sa.Integer(), nullable=False, default=0),
        sa.Column("annotation_counter", sa.Integer(), nullable=False, default=0),
        sa.Column("train_seconds", sa.Float(), nullable=False, default=0.0),
        sa.Column("parent_version", sa.Integer(), nullable=True),
        sa.Column("labels_changed", sa.Integer(), nullable=True),
        sa.Column("decision", sa.JSON(), nullable=True),
        sa.Column("trigger", sqlmodel.sql.sqltypes.AutoString(), nullable=False, default="manual"),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("deployed_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("artifact_sha256", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.ForeignKeyConstraint(["function_id"], ["function.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("function_id", "version"),
    )
    op.create_index(op.f("ix_modelversion_function_id"), "modelversion", ["function_id"])

    op.create_table(
        "novelmark",
        sa.Column("item_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("function_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("marked_novel", sa.Boolean(), nullable=False, default=False),
        sa.Column("dismissed", sa.Boolean(), nullable=False, default=False),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["function_id"], ["function.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("item_id"),
    )
    op.create_index(op.f("ix_novelmark_function_id"), "novelmark", ["function_id"])

    op.create_table(
        "reviewitem",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("function_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(), nullable=False, default="capture"),
        sa.Column("given_label", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("suggested_label", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("blob", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(), nullable=False, default="pending"),
        sa.Column("predicted_label", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("model_version", sa.Integer(), nullable=True),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("scores", sa.JSON(), nullable=True),
        sa.Column("label_id", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("sample_id", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("annotated_by", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["function_id"], ["function.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["label_id"],
            ["label.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_reviewitem_blob"), "reviewitem", ["blob"])
    op.create_index(op.f("ix_reviewitem_function_id"), "reviewitem", ["function_id"])
    op.create_index(op.f("ix_reviewitem_kind"), "reviewitem", ["kind"])
    op.create_index(op.f("ix_reviewitem_status"), "reviewitem", ["status"])

    op.create_table(
        "sample",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("function_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("blob", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=False),
        sa.Column("label_id", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("external_id", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(), nullable=False, default="upload"),
        sa.Column("review_item_id", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("annotated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("label_changed_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("confirmed_label_id", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.ForeignKeyConstraint(["function_id"], ["function.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["label_id"],
            ["label.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("function_id", "external_id"),
    )
    op.create_index(op.f("ix_sample_blob"), "sample", ["blob"])
    op.create_index(op.f("ix_sample_function_id"), "sample", ["function_id"])
    op.create_index(op.f("ix_sample_label_id"), "sample", ["label_id"])
    op.create_index(op.f("ix_sample_review_item_id"), "sample", ["review_item_id"])


def downgrade() -> None:
    op.drop_table("sample")
    op.drop_table("reviewitem")
    op.drop_table("novelmark")
    op.drop_table("modelversion")
    op.drop_table("label")
    op.drop_table("apikey")
    op.drop_table("function")
