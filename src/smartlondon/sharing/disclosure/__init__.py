"""Statistical disclosure control of the gateway's outputs: suppression, rounding, the release ledger, review."""

from __future__ import annotations

from typing import Any


def clear(session: Any, result: Any, **kwargs: Any) -> Any:
    """Apply disclosure control to a gateway aggregate (see ``control.clear``)."""
    from .control import clear as _clear

    return _clear(session, result, **kwargs)
