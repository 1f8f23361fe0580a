"""Vector spaces: the space a function's stored vectors are in (``function.vector_space``) and
the one each model version answers from (``modelversion.vector_space``).

Existing functions keep the backbone's vectors (NULL). An existing tuned version (head
``finetuned``) answers from its own tower's features: its space is its own number. Where one is
deployed, its function's vectors are moved into that space when a replica next serves it
(:func:`service.spaces.serve_in_space`).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07 10:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("function", schema=None) as batch_op:
        batch_op.add_column(sa.Column("vector_space", sa.Integer(), nullable=True))
    with op.batch_alter_table("modelversion", schema=None) as batch_op:
        batch_op.add_column(sa.Column("vector_space", sa.Integer(), nullable=True))
    op.execute("UPDATE modelversion SET vector_space = version WHERE head = 'finetuned'")


def downgrade() -> None:
    with op.batch_alter_table("modelversion", schema=None) as batch_op:
        batch_op.drop_column("vector_space")
    with op.batch_alter_table("function", schema=None) as batch_op:
        batch_op.drop_column("vector_space")
