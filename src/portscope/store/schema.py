"""The store's tables (SQLAlchemy Core), the same on SQLite and PostgreSQL.

Every run keeps its full documents loss-free (JSON columns for the parts of the model that
have no column of their own: service, tls, extra, findings ...) and indexed columns for
the queries. ``current_ports`` is the merged "current view": the latest known state of
each (address, protocol, port), maintained as results are stored.

Changing a table means a new Alembic revision in ``store/migrations/versions`` (the
initial one is written out by hand there, not generated from this module, so that old
revisions never change when this file does).
"""

from __future__ import annotations

import sqlalchemy as sa

# json, not jsonb: banners from the network may hold NUL characters, which jsonb refuses
JSONType = sa.JSON()
Time = sa.DateTime(timezone=True)

metadata = sa.MetaData()

runs = sa.Table(
    "runs", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("started", Time, nullable=False),
    sa.Column("finished", Time),
    sa.Column("complete", sa.Boolean, nullable=False, default=False),
    # "running" while a scan writes it, "complete", "incomplete" (stopped, killed)
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("source", sa.String(32), nullable=False),  # scan | import:<format> | watch:<name>
    sa.Column("command", sa.Text, nullable=False, default=""),
    sa.Column("scan_types", JSONType, nullable=False),
    sa.Column("ports_spec", sa.Text, nullable=False, default=""),
    sa.Column("targets", JSONType, nullable=False),
    sa.Column("vantage", sa.Text, nullable=False, default=""),
    sa.Column("options", JSONType),  # the options to --resume the run with
    sa.Column("extra", JSONType, nullable=False),
    sa.Column("stats", JSONType, nullable=False),
    sa.Column("hosts_up", sa.Integer, nullable=False, default=0),
    sa.Column("open_ports", sa.Integer, nullable=False, default=0),
    sa.Column("watch", sa.String(200)),
    sa.Column("heartbeat", Time),  # last write by the scanning process
    sa.Column("pid", sa.Integer),
    sa.Column("folded", sa.Boolean, nullable=False, default=False),  # in current_ports
    sa.Index("ix_runs_started", "started"),
    sa.Index("ix_runs_watch", "watch", "started"),
)

hosts = sa.Table(
    "hosts", metadata,
    sa.Column("run_id", sa.String(64), sa.ForeignKey("runs.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("address", sa.String(64), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reason", sa.String(64), nullable=False, default=""),
    sa.Column("hostnames", JSONType, nullable=False),
    # the rest of the host document: os, mac, rtt_ms, extra, extraports not expanded
    sa.Column("doc", JSONType, nullable=False),
    sa.Index("ix_hosts_address", "address"),
)

ports = sa.Table(
    "ports", metadata,
    sa.Column("run_id", sa.String(64), sa.ForeignKey("runs.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("address", sa.String(64), primary_key=True),
    sa.Column("protocol", sa.String(8), primary_key=True),
    sa.Column("port", sa.Integer, primary_key=True),
    sa.Column("state", sa.String(24), nullable=False),
    sa.Column("reason", sa.String(64), nullable=False, default=""),
    sa.Column("ttl", sa.Integer),
    sa.Column("service_name", sa.String(128)),
    sa.Column("product", sa.Text),
    sa.Column("version", sa.Text),
    sa.Column("service", JSONType),  # the whole service document (tls, extra, banner ...)
    sa.Column("seen", Time, nullable=False),
    sa.Index("ix_ports_key", "address", "protocol", "port"),
    sa.Index("ix_ports_port_state", "port", "state"),
)

# Port results without a service that are not open (closed, filtered ...: the bulk of a
# scan) are stored compactly: one row per batch and (host, protocol, state, reason, TTL)
# with the ports as a range list "1-21,23-79,81". A finished run has one row per group.
# A port of a run is either in ``ports`` or in ``port_sets``; readers expand the sets.
port_sets = sa.Table(
    "port_sets", metadata,
    sa.Column("pk", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(64), sa.ForeignKey("runs.id", ondelete="CASCADE"),
              nullable=False),
    sa.Column("address", sa.String(64), nullable=False),
    sa.Column("protocol", sa.String(8), nullable=False),
    sa.Column("state", sa.String(24), nullable=False),
    sa.Column("reason", sa.String(64), nullable=False, default=""),
    sa.Column("ttl", sa.Integer),
    sa.Column("ports", sa.Text, nullable=False),  # "1-21,23-79,81"
    sa.Column("lo", sa.Integer, nullable=False),  # lowest and highest port, and how many
    sa.Column("hi", sa.Integer, nullable=False),
    sa.Column("count", sa.Integer, nullable=False),
    sa.Column("seen", Time, nullable=False),
    sa.Index("ix_port_sets_run", "run_id", "address"),
    sa.Index("ix_port_sets_state", "state"),
)

findings = sa.Table(
    "findings", metadata,
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
    sa.Index("ix_findings_run", "run_id", "address"),
    sa.Index("ix_findings_check", "check_id"),
)

current_ports = sa.Table(
    "current_ports", metadata,
    sa.Column("address", sa.String(64), primary_key=True),
    sa.Column("protocol", sa.String(8), primary_key=True),
    sa.Column("port", sa.Integer, primary_key=True),
    sa.Column("state", sa.String(24), nullable=False),
    sa.Column("reason", sa.String(64), nullable=False, default=""),
    sa.Column("service_name", sa.String(128)),
    sa.Column("product", sa.Text),
    sa.Column("version", sa.Text),
    sa.Column("service", JSONType),
    sa.Column("first_seen", Time, nullable=False),  # first observation, any state
    sa.Column("state_since", Time, nullable=False),  # first observation of the current state
    sa.Column("last_seen", Time, nullable=False),
    sa.Column("run_id", sa.String(64), nullable=False),  # run of the last observation
    sa.Index("ix_current_port_state", "port", "state"),
    sa.Index("ix_current_last_seen", "last_seen"),
)

# The current view of ports known only from port sets: runs of consecutive ports with
# the same current state (and first seen, state since, last seen, run). A port is in
# ``current_ports`` or covered by one range here, never both.
current_ranges = sa.Table(
    "current_ranges", metadata,
    sa.Column("address", sa.String(64), primary_key=True),
    sa.Column("protocol", sa.String(8), primary_key=True),
    sa.Column("lo", sa.Integer, primary_key=True),
    sa.Column("hi", sa.Integer, nullable=False),
    sa.Column("state", sa.String(24), nullable=False),
    sa.Column("reason", sa.String(64), nullable=False, default=""),
    sa.Column("first_seen", Time, nullable=False),
    sa.Column("state_since", Time, nullable=False),
    sa.Column("last_seen", Time, nullable=False),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Index("ix_current_ranges_state", "state"),
)

alerts = sa.Table(
    "alerts", metadata,
    sa.Column("key", sa.String(512), primary_key=True),  # trigger:address:proto/port:detail
    sa.Column("watch", sa.String(200), nullable=False),
    sa.Column("trigger", sa.String(64), nullable=False),
    sa.Column("address", sa.String(64)),
    sa.Column("protocol", sa.String(8)),
    sa.Column("port", sa.Integer),
    sa.Column("check_id", sa.String(200)),
    sa.Column("status", sa.String(16), nullable=False),  # pending | sent | resolved
    sa.Column("first_seen", Time, nullable=False),
    sa.Column("last_seen", Time, nullable=False),
    sa.Column("sent", Time),
    sa.Column("run_id", sa.String(64)),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("payload", JSONType, nullable=False),
)

mutes = sa.Table(
    "mutes", metadata,
    sa.Column("scope", sa.String(300), primary_key=True),  # host:port, check:ID, trigger:NAME
    sa.Column("until", Time),
    sa.Column("reason", sa.Text, nullable=False, default=""),
    sa.Column("created", Time, nullable=False),
)

watches = sa.Table(
    "watches", metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("options", JSONType, nullable=False),
    sa.Column("every_s", sa.Float, nullable=False),
    sa.Column("last_run_id", sa.String(64)),
    sa.Column("last_started", Time),
    sa.Column("updated", Time, nullable=False),
)
