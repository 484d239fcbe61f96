"""``syslog`` (the local syslog, /dev/log), ``syslog:HOST[:PORT]`` (UDP, default 514) or
``syslog:/PATH`` (a Unix socket): one line per alert, facility daemon, priority from the
alert's severity, tag ``portscope``."""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
from dataclasses import dataclass
from typing import Any

from portscope.alerts.channels import DeliveryError
from portscope.errors import UsageError

_LEVELS = {"critical": logging.CRITICAL, "high": logging.ERROR, "medium": logging.WARNING,
           "low": logging.INFO, "info": logging.INFO}


@dataclass
class SyslogChannel:
    address: str | tuple[str, int]
    name: str = "syslog"

    @classmethod
    def from_spec(cls, rest: str) -> SyslogChannel:
        rest = rest.strip()
        if not rest:
            return cls("/dev/log")
        if rest.startswith("/"):
            return cls(rest)
        host, _, port = rest.rpartition(":") if rest.count(":") == 1 else (rest, "", "")
        try:
            return cls((host or rest, int(port) if port else 514))
        except ValueError:
            raise UsageError(f"bad syslog address {rest!r} (syslog:HOST[:PORT] or "
                             f"syslog:/dev/log)") from None

    def describe(self) -> str:
        a = self.address
        return f"syslog {a}" if isinstance(a, str) else f"syslog udp {a[0]}:{a[1]}"

    def send(self, alert: dict[str, Any], text: str) -> None:
        if isinstance(self.address, str) and not os.path.exists(self.address):
            raise DeliveryError(f"{self.describe()}: no such socket")
        try:
            handler = logging.handlers.SysLogHandler(
                address=self.address, facility=logging.handlers.SysLogHandler.LOG_DAEMON)
        except OSError as exc:
            raise DeliveryError(f"{self.describe()}: {exc}") from None
        handler.ident = "portscope: "
        try:
            record = logging.LogRecord("portscope", _LEVELS.get(str(alert.get("severity")),
                                                                logging.WARNING),
                                       __file__, 0, "%s %s", (text, json.dumps(
                                           {k: alert.get(k) for k in ("key", "watch", "run")})),
                                       None)
            handler.emit(record)
        finally:
            handler.close()
