"""``email:TO[,TO...][?smtp=HOST[:PORT]&from=ADDR&starttls=1]``: one mail per alert over
SMTP (default localhost:25). ``PORTSCOPE_SMTP_USER``/``PORTSCOPE_SMTP_PASSWORD`` log in
(after STARTTLS when asked)."""

from __future__ import annotations

import os
import smtplib
import socket
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any
from urllib.parse import parse_qs

from portscope.alerts.channels import DeliveryError
from portscope.errors import UsageError

TIMEOUT = 20.0


@dataclass
class EmailChannel:
    to: list[str]
    host: str = "localhost"
    port: int = 25
    sender: str = ""
    starttls: bool = False
    name: str = "email"

    @classmethod
    def from_spec(cls, rest: str) -> EmailChannel:
        addrs, _, query = rest.partition("?")
        to = [a.strip() for a in addrs.split(",") if a.strip()]
        if not to or any("@" not in a for a in to):
            raise UsageError(f"email needs recipient addresses: email:ops@example.org, "
                             f"not {rest!r}")
        opts = {k: v[-1] for k, v in parse_qs(query).items()}
        unknown = set(opts) - {"smtp", "from", "starttls"}
        if unknown:
            raise UsageError(f"unknown email option {sorted(unknown)[0]!r} "
                             f"(smtp=HOST[:PORT], from=ADDR, starttls=1)")
        host, port = "localhost", 25
        if opts.get("smtp"):
            h, _, p = opts["smtp"].rpartition(":") if ":" in opts["smtp"] else \
                (opts["smtp"], "", "")
            host = h or opts["smtp"]
            if p:
                try:
                    port = int(p)
                except ValueError:
                    raise UsageError(f"bad SMTP port in {opts['smtp']!r}") from None
        sender = opts.get("from") or f"portscope@{socket.getfqdn()}"
        return cls(to=to, host=host, port=port, sender=sender,
                   starttls=opts.get("starttls", "") in ("1", "true", "yes"))

    def describe(self) -> str:
        return f"email to {', '.join(self.to)} via {self.host}:{self.port}"

    def send(self, alert: dict[str, Any], text: str) -> None:
        msg = EmailMessage()
        msg["Subject"] = f"portscope: {text}"[:200]
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.to)
        lines = [text, ""] + [f"{k}: {v}" for k, v in alert.items()
                              if v not in (None, "", {}) and k != "data"]
        msg.set_content("\n".join(lines) + "\n")
        try:
            with smtplib.SMTP(self.host, self.port, timeout=TIMEOUT) as smtp:
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                user = os.environ.get("PORTSCOPE_SMTP_USER")
                if user:
                    smtp.login(user, os.environ.get("PORTSCOPE_SMTP_PASSWORD", ""))
                smtp.send_message(msg)
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"{self.describe()}: {exc}") from None
