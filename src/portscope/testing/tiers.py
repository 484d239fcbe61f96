"""The test tiers' policy: a tier that cannot run here is skipped, except under ``CI=true``,
where it is a failure (CI must never pass by silently skipping the lab or the database)."""

from __future__ import annotations

import os
from typing import NoReturn


def in_ci() -> bool:
    """True when the environment says this is CI (``CI=true``, as CI services set it)."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def skip_or_fail(reason: str, *, tier: str) -> NoReturn:
    """Skip the current test with *reason*, or fail it when running under CI."""
    import pytest

    if in_ci():
        pytest.fail(f"{tier} tier cannot run under CI=true: {reason}", pytrace=False)
    pytest.skip(f"{tier} tier unavailable: {reason}")
