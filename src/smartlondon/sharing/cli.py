"""``smartlondon sharing``: LODA's commands (G and H add theirs here too).

    smartlondon sharing verify-log     exits 1, naming the first bad entry, if the access log was altered
"""

from __future__ import annotations

import click

from ..core.commands import PlatformGroup
from ..core.commands import main_module as _main


@click.group(cls=PlatformGroup)
def sharing() -> None:
    """LODA data sharing: agreements, the gateway and its access log."""


@sharing.command("verify-log")
def verify_log() -> None:
    """Check the access log's hash chain; exit status 1 if any entry was edited, deleted or reordered."""
    from .accesslog import verify

    env = _main().Env()
    with env.db.session() as session:
        ok, bad, message = verify(session)
    if not ok:
        _main().fail(f"{message} (first bad entry: {bad})")
    click.echo(message)


# --- privacy by design (H): ingest with pseudonyms, key epochs (docs/sharing-privacy.md) ------------------

from .privacy.commands import COMMANDS as _privacy_commands  # noqa: E402

for _command in _privacy_commands:
    sharing.add_command(_command)
