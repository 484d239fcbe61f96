"""compact port results: port_sets (a run's closed/filtered ports as range lists) and
current_ranges (the current view of ports known only from them)

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

Time = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "port_sets",
        sa.Column("pk", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(64), sa.ForeignKey("runs.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("address", sa.String(64), nullable=False),
        sa.Column("protocol", sa.String(8), nullable=False),
        sa.Column("state", sa.String(24), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("ttl", sa.Integer),
        sa.Column("ports", sa.Text, nullable=False),
        sa.Column("lo", sa.Integer, nullable=False),
        sa.Column("hi", sa.Integer, nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("seen", Time, nullable=False),
    )
    op.create_index("ix_port_sets_run", "port_sets", ["run_id", "address"])
    op.create_index("ix_port_sets_state", "port_sets", ["state"])
    op.create_table(
        "current_ranges",
        sa.Column("address", sa.String(64), primary_key=True),
        sa.Column("protocol", sa.String(8), primary_key=True),
        sa.Column("lo", sa.Integer, primary_key=True),
        sa.Column("hi", sa.Integer, nullable=False),
        sa.Column("state", sa.String(24), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("first_seen", Time, nullable=False),
        sa.Column("state_since", Time, nullable=False),
        sa.Column("last_seen", Time, nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
    )
    op.create_index("ix_current_ranges_state", "current_ranges", ["state"])


def downgrade() -> None:
    op.drop_table("current_ranges")
    op.drop_table("port_sets")
