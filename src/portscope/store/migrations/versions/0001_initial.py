"""initial schema: runs, hosts, ports, findings, current_ports, alerts, mutes, watches

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# json, not jsonb: banners from the network may hold NUL characters, which jsonb refuses
JSONType = sa.JSON()
Time = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("started", Time, nullable=False),
        sa.Column("finished", Time),
        sa.Column("complete", sa.Boolean, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("command", sa.Text, nullable=False),
        sa.Column("scan_types", JSONType, nullable=False),
        sa.Column("ports_spec", sa.Text, nullable=False),
        sa.Column("targets", JSONType, nullable=False),
        sa.Column("vantage", sa.Text, nullable=False),
        sa.Column("options", JSONType),
        sa.Column("extra", JSONType, nullable=False),
        sa.Column("stats", JSONType, nullable=False),
        sa.Column("hosts_up", sa.Integer, nullable=False),
        sa.Column("open_ports", sa.Integer, nullable=False),
        sa.Column("watch", sa.String(200)),
        sa.Column("heartbeat", Time),
        sa.Column("pid", sa.Integer),
        sa.Column("folded", sa.Boolean, nullable=False),
    )
    op.create_index("ix_runs_started", "runs", ["started"])
    op.create_index("ix_runs_watch", "runs", ["watch", "started"])
    op.create_table(
        "hosts",
        sa.Column("run_id", sa.String(64), sa.ForeignKey("runs.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("address", sa.String(64), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("hostnames", JSONType, nullable=False),
        sa.Column("doc", JSONType, nullable=False),
    )
    op.create_index("ix_hosts_address", "hosts", ["address"])
    op.create_table(
        "ports",
        sa.Column("run_id", sa.String(64), sa.ForeignKey("runs.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("address", sa.String(64), primary_key=True),
        sa.Column("protocol", sa.String(8), primary_key=True),
        sa.Column("port", sa.Integer, primary_key=True),
        sa.Column("state", sa.String(24), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("ttl", sa.Integer),
        sa.Column("service_name", sa.String(128)),
        sa.Column("product", sa.Text),
        sa.Column("version", sa.Text),
        sa.Column("service", JSONType),
        sa.Column("seen", Time, nullable=False),
    )
    op.create_index("ix_ports_key", "ports", ["address", "protocol", "port"])
    op.create_index("ix_ports_port_state", "ports", ["port", "state"])
    op.create_table(
        "findings",
        sa.Column("pk", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(64), sa.ForeignKey("runs.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("address", sa.String(64), nullable=False),
        sa.Column("finding_id", sa.String(200), nullable=False),
        sa.Column("check_id", sa.String(200), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("port", sa.Integer),
        sa.Column("protocol", sa.String(8)),
        sa.Column("doc", JSONType, nullable=False),
    )
    op.create_index("ix_findings_run", "findings", ["run_id", "address"])
    op.create_index("ix_findings_check", "findings", ["check_id"])
    op.create_table(
        "current_ports",
        sa.Column("address", sa.String(64), primary_key=True),
        sa.Column("protocol", sa.String(8), primary_key=True),
        sa.Column("port", sa.Integer, primary_key=True),
        sa.Column("state", sa.String(24), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("service_name", sa.String(128)),
        sa.Column("product", sa.Text),
        sa.Column("version", sa.Text),
        sa.Column("service", JSONType),
        sa.Column("first_seen", Time, nullable=False),
        sa.Column("state_since", Time, nullable=False),
        sa.Column("last_seen", Time, nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
    )
    op.create_index("ix_current_port_state", "current_ports", ["port", "state"])
    op.create_index("ix_current_last_seen", "current_ports", ["last_seen"])
    op.create_table(
        "alerts",
        sa.Column("key", sa.String(512), primary_key=True),
        sa.Column("watch", sa.String(200), nullable=False),
        sa.Column("trigger", sa.String(64), nullable=False),
        sa.Column("address", sa.String(64)),
        sa.Column("protocol", sa.String(8)),
        sa.Column("port", sa.Integer),
        sa.Column("check_id", sa.String(200)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("first_seen", Time, nullable=False),
        sa.Column("last_seen", Time, nullable=False),
        sa.Column("sent", Time),
        sa.Column("run_id", sa.String(64)),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("payload", JSONType, nullable=False),
    )
    op.create_table(
        "mutes",
        sa.Column("scope", sa.String(300), primary_key=True),
        sa.Column("until", Time),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("created", Time, nullable=False),
    )
    op.create_table(
        "watches",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("options", JSONType, nullable=False),
        sa.Column("every_s", sa.Float, nullable=False),
        sa.Column("last_run_id", sa.String(64)),
        sa.Column("last_started", Time),
        sa.Column("updated", Time, nullable=False),
    )


def downgrade() -> None:
    for table in ("watches", "mutes", "alerts", "current_ports", "findings", "ports", "hosts",
                  "runs"):
        op.drop_table(table)
