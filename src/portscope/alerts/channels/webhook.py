"""``webhook:URL``: each alert is POSTed as one JSON object (``Content-Type:
application/json``); any 2xx answer is delivery."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from portscope import __version__
from portscope.alerts.channels import DeliveryError
from portscope.errors import UsageError

TIMEOUT = 10.0


@dataclass
class WebhookChannel:
    url: str
    name: str = "webhook"

    @classmethod
    def from_spec(cls, rest: str) -> WebhookChannel:
        parts = urlsplit(rest)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise UsageError(f"webhook needs an http(s) URL: webhook:https://host/path, "
                             f"not {rest!r}")
        return cls(rest)

    def describe(self) -> str:
        p = urlsplit(self.url)
        return f"webhook {p.scheme}://{p.hostname}{':' + str(p.port) if p.port else ''}" \
               f"{p.path}"

    def send(self, alert: dict[str, Any], text: str) -> None:
        body = json.dumps({**alert, "text": text}).encode()
        req = urllib.request.Request(self.url, data=body, method="POST", headers={
            "Content-Type": "application/json", "User-Agent": f"portscope/{__version__}"})
        try:
            with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:
                resp.read(65536)
        except urllib.error.HTTPError as exc:
            raise DeliveryError(f"{self.describe()}: HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DeliveryError(f"{self.describe()}: {reason}") from None
