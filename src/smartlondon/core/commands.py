"""What every command group of ``smartlondon`` shares: platform errors printed as messages."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import click

from .errors import PlatformError


def main_module() -> ModuleType:
    """The main command's module (imported when a command runs, so neither imports the other first)."""
    from .. import cli

    return cli


class PlatformGroup(click.Group):
    """A command group that prints platform errors (with their fields) as messages, exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except PlatformError as exc:
            details = "".join(f"\n  {k}: {v}" for k, v in exc.fields.items())
            main_module().fail(exc.message + details)
