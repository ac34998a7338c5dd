"""Tables (filled in by the work on issue 6)."""

from __future__ import annotations

from ..core.db import Base  # noqa: F401
