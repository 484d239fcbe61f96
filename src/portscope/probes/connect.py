"""TCP connect scan (``-sT``): the kernel does the handshake, no privileges needed.

States with nmap's semantics: connect succeeds -> open (syn-ack); ECONNREFUSED ->
closed (conn-refused); host/network unreachable, administratively prohibited or
no answer within the timeout -> filtered with that reason.
"""

from __future__ import annotations

import errno

from portscope.model import PortState, Reason
from portscope.probes.base import ScanType

SCAN_TYPE = ScanType(
    name="connect",
    flag="T",
    protocol="tcp",
    needs_root=False,
    no_response=PortState.FILTERED,
    help="TCP connect scan: a full handshake through the kernel; needs no privileges",
)

_ERRNO_STATES: dict[int, tuple[PortState, Reason]] = {
    0: (PortState.OPEN, Reason.SYN_ACK),
    errno.ECONNREFUSED: (PortState.CLOSED, Reason.CONN_REFUSED),
    errno.ECONNRESET: (PortState.CLOSED, Reason.CONN_REFUSED),
    errno.EHOSTUNREACH: (PortState.FILTERED, Reason.HOST_UNREACH),
    errno.ENETUNREACH: (PortState.FILTERED, Reason.NET_UNREACH),
    errno.EHOSTDOWN: (PortState.FILTERED, Reason.HOST_UNREACH),
    errno.ENETDOWN: (PortState.FILTERED, Reason.NET_UNREACH),
    errno.EACCES: (PortState.FILTERED, Reason.ADMIN_PROHIBITED),
    errno.EPERM: (PortState.FILTERED, Reason.ADMIN_PROHIBITED),
    errno.ENOPROTOOPT: (PortState.FILTERED, Reason.PROTO_UNREACH),
    errno.EPROTO: (PortState.FILTERED, Reason.PROTO_UNREACH),
    errno.ETIMEDOUT: (PortState.FILTERED, Reason.NO_RESPONSE),
}

# errors that say nothing about the target: the probe must be tried again later
RETRY_ERRNOS = frozenset({errno.EADDRNOTAVAIL, errno.ENOBUFS, errno.EAGAIN, errno.EMFILE,
                          errno.ENFILE, errno.EINTR, errno.ENOMEM})


def classify_errno(err: int) -> tuple[PortState, Reason] | None:
    """State and reason for the outcome of a connect(); None if *err* says nothing
    about the target (resource exhaustion here): try the probe again."""
    if err in RETRY_ERRNOS:
        return None
    return _ERRNO_STATES.get(err, (PortState.FILTERED, Reason.NO_RESPONSE))


def is_answer(reason: Reason) -> bool:
    """Did the target (or a router) actually answer? Used for RTT samples and loss."""
    return reason not in (Reason.NO_RESPONSE,)
