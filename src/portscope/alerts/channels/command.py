"""``command:CMD``: run CMD (split like a shell would, but no shell) once per alert, with
the alert as JSON on standard input and as ``PORTSCOPE_ALERT_*`` environment variables
(TRIGGER, SEVERITY, ADDRESS, PORT, PROTOCOL, TITLE, TEXT, KEY). Exit 0 is delivery."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from dataclasses import dataclass
from typing import Any

from portscope.alerts.channels import DeliveryError
from portscope.errors import UsageError

TIMEOUT = 60.0


@dataclass
class CommandChannel:
    argv: list[str]
    name: str = "command"

    @classmethod
    def from_spec(cls, rest: str) -> CommandChannel:
        try:
            argv = shlex.split(rest)
        except ValueError as exc:
            raise UsageError(f"bad alert command {rest!r}: {exc}") from None
        if not argv:
            raise UsageError("command: needs a command, e.g. command:'/usr/local/bin/page-me'")
        return cls(argv)

    def describe(self) -> str:
        return f"command {shlex.join(self.argv)}"

    def send(self, alert: dict[str, Any], text: str) -> None:
        env = dict(os.environ)
        for k in ("trigger", "severity", "address", "port", "protocol", "title", "key"):
            env[f"PORTSCOPE_ALERT_{k.upper()}"] = "" if alert.get(k) is None else str(alert[k])
        env["PORTSCOPE_ALERT_TEXT"] = text
        try:
            proc = subprocess.run(self.argv, input=json.dumps({**alert, "text": text}),
                                  text=True, capture_output=True, timeout=TIMEOUT, env=env,
                                  check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise DeliveryError(f"{self.describe()}: {exc}") from None
        if proc.returncode != 0:
            err = proc.stderr.strip().splitlines()
            raise DeliveryError(f"{self.describe()}: exit {proc.returncode}"
                                + (f": {err[-1]}" if err else ""))
