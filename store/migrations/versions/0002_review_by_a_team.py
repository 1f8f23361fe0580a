"""Review by a team: reviewer keys, review claims and votes, disputes, the label history.

Existing review items need one review (``reviews_needed`` 1); samples labelled before this
revision have no history rows (their history starts with their next label change).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06 09:08:35.121443
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "labelevent",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("function_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("sample_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("label_before", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("label_after", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("actors", sa.JSON(), nullable=False),
        sa.Column("via", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("review_item_id", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.ForeignKeyConstraint(["function_id"], ["function.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("labelevent", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_labelevent_function_id"), ["function_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_labelevent_sample_id"), ["sample_id"], unique=False)

    op.create_table(
        "reviewclaim",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("function_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("item_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.Column("reviewer", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("claimed_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("expires_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("label_id", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("voted_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["function_id"], ["function.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["item_id"], ["reviewitem.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["label_id"], ["label.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("item_id", "reviewer"),
        sa.UniqueConstraint("item_id", "slot"),
    )
    with op.batch_alter_table("reviewclaim", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_reviewclaim_function_id"), ["function_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_reviewclaim_item_id"), ["item_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_reviewclaim_reviewer"), ["reviewer"], unique=False)

    with op.batch_alter_table("apikey", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("reviewer", sqlmodel.sql.sqltypes.AutoString(), nullable=True)
        )
        batch_op.create_index(batch_op.f("ix_apikey_reviewer"), ["reviewer"], unique=False)

    with op.batch_alter_table("reviewitem", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("reviews_needed", sa.Integer(), nullable=False, server_default="1")
        )


def downgrade() -> None:
    with op.batch_alter_table("reviewitem", schema=None) as batch_op:
        batch_op.drop_column("reviews_needed")

    with op.batch_alter_table("apikey", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_apikey_reviewer"))
        batch_op.drop_column("reviewer")

    with op.batch_alter_table("reviewclaim", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_reviewclaim_reviewer"))
        batch_op.drop_index(batch_op.f("ix_reviewclaim_item_id"))
        batch_op.drop_index(batch_op.f("ix_reviewclaim_function_id"))

    op.drop_table("reviewclaim")
    with op.batch_alter_table("labelevent", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_labelevent_sample_id"))
        batch_op.drop_index(batch_op.f("ix_labelevent_function_id"))

    op.drop_table("labelevent")
