"""A sample of each function's recent invoke traffic: the ``trafficvector`` ring and the
function's write position in it (``traffic_written``, 0 for existing functions: their rings start
empty).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06 12:06:32.514262
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "trafficvector",
        sa.Column("function_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=False),
        sa.Column("seen_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["function_id"], ["function.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("function_id", "slot"),
    )
    with op.batch_alter_table("function", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("traffic_written", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("function", schema=None) as batch_op:
        batch_op.drop_column("traffic_written")

    op.drop_table("trafficvector")
