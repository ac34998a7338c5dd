"""What every command group of ``smartlondon`` shares: platform errors printed as messages."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import click
from sqlalchemy.exc import OperationalError, ProgrammingError

from .errors import PlatformError

_NO_SCHEMA = ("no such table", "does not exist")  # SQLite's and PostgreSQL's words for a missing table


def main_module() -> ModuleType:
    """The main command's module (imported when a command runs, so neither imports the other first)."""
    from .. import cli

    return cli


class PlatformGroup(click.Group):
    """A command group that prints platform errors (with their fields) as messages, exit status 1, and
    says to run ``db upgrade`` when the database has no schema yet."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except PlatformError as exc:
            details = "".join(f"\n  {k}: {v}" for k, v in exc.fields.items())
            main_module().fail(exc.message + details)
        except (OperationalError, ProgrammingError) as exc:
            if not any(words in str(exc.orig) for words in _NO_SCHEMA):
                raise
            main_module().fail("The database has no tables yet (or an old schema). Run `smartlondon db upgrade` "
                               f"first. ({str(exc.orig).splitlines()[0]})")
