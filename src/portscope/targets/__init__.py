"""Targets, ports and the order they are probed in."""

from portscope.targets.hosts import (
    Interval,
    OctetBlock,
    TargetSet,
    parse_targets,
    read_target_file,
    system_resolver,
)
from portscope.targets.permutation import Permutation, Probe, ProbeSpace, derive_key
from portscope.targets.ports import PortSpec, merge, parse_ports, top_ports
from portscope.targets.services import ServiceDB, service_db

__all__ = [
    "Interval",
    "OctetBlock",
    "Permutation",
    "PortSpec",
    "Probe",
    "ProbeSpace",
    "ServiceDB",
    "TargetSet",
    "derive_key",
    "merge",
    "parse_ports",
    "parse_targets",
    "read_target_file",
    "service_db",
    "system_resolver",
    "top_ports",
]
