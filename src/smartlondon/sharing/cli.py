"""``smartlondon sharing``: LODA's commands (G and H add theirs here too).

    smartlondon sharing verify-log     exits 1, naming the first bad entry, if the access log was altered
    smartlondon sharing anchor-log     publishes the log's head (entries, newest hash) as an anchor
"""

from __future__ import annotations

import click

from ..core.commands import PlatformGroup
from ..core.commands import main_module as _main


@click.group(cls=PlatformGroup)
def sharing() -> None:
    """LODA data sharing: agreements, the gateway and its access log."""


@sharing.command("verify-log")
@click.option("--head-file", type=click.Path(dir_okay=False), default=None,
              help="A copy of log-head.json kept elsewhere (default: <data_dir>/sharing/log-head.json, if present).")
def verify_log(head_file: str | None) -> None:
    """Check the access log's hash chain and published anchors; exit status 1 if any entry was edited, deleted
    (the newest ones too, after an anchor) or reordered."""
    from pathlib import Path

    from .accesslog import HEAD_FILE, read_head_file, verify

    env = _main().Env()
    path = Path(head_file) if head_file else env.settings.data_dir / HEAD_FILE
    try:
        head = read_head_file(path)
    except ValueError as exc:
        _main().fail(str(exc))
    if head_file and head is None:
        _main().fail(f"There is no head file at {path}.")
    with env.db.session() as session:
        ok, bad, message = verify(session, [head] if head else None)
    if not ok:
        _main().fail(f"{message}" + (f" (first bad entry: {bad})" if bad is not None else ""))
    click.echo(message)


@sharing.command("anchor-log")
def anchor_log() -> None:
    """Publish the access log's head (entries and newest hash) as an anchor, and write it to
    <data_dir>/sharing/log-head.json for operators to copy elsewhere."""
    from .accesslog import HEAD_FILE, publish_anchor

    env = _main().Env()
    with env.db.session() as session:
        anchor = publish_anchor(session, reason="command", data_dir=env.settings.data_dir)
        sequence, head = anchor.sequence, anchor.head_hash
    click.echo(f"Anchored the access log at {sequence} entries, head {head}; "
               f"written to {env.settings.data_dir / HEAD_FILE}.")


# --- privacy by design (H): ingest with pseudonyms, key epochs (docs/sharing-privacy.md) ------------------

from .privacy.commands import COMMANDS as _privacy_commands  # noqa: E402

for _command in _privacy_commands:
    sharing.add_command(_command)
