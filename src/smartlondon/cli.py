"""The ``smartlondon`` command: one group per capability."""

from __future__ import annotations

if __name__ == "__main__":  # `python -m smartlondon.cli`: run the package's module, where every group registers
    from smartlondon.cli import main as _main

    _main()
    raise SystemExit(0)

import sys  # noqa: E402
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from .core.db import Database
from .core.commands import PlatformGroup
from .settings import Settings

console = Console(stderr=True)


def progress_bar() -> Progress:
    """The progress bar every long command shows."""
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    console=console, transient=False)


class Env:
    """Settings and database, made once per command."""

    def __init__(self) -> None:
        self.settings = Settings.from_env()
        self._db: Database | None = None

    @property
    def db(self) -> Database:
        if self._db is None:
            self.settings.data_dir.mkdir(parents=True, exist_ok=True)
            self._db = Database(self.settings.database_url)
        return self._db


pass_env = click.make_pass_decorator(Env, ensure=True)


def fail(message: str) -> None:
    """Print an error that says what to do, and exit with status 1."""
    console.print(f"[bold red]Error:[/] {message}")
    sys.exit(1)


PlatformErrors = PlatformGroup  # the name the command groups of this module use


@click.group(cls=PlatformErrors)
@click.version_option(package_name="smartlondon")
def main() -> None:
    """smartlondon: the London Datastore and city data platform."""


# --- db ---------------------------------------------------------------------------------

@main.group(cls=PlatformErrors)
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@pass_env
def db_upgrade(env: Env) -> None:
    """Bring the schema up to date and add the reference data (licences, organisations)."""
    from .core import migrate, reference

    migrate.upgrade(env.db)
    with env.db.session() as session:
        added = reference.seed(session)
    console.print(f"Database at revision {migrate.current_revision(env.db)} "
                  f"({env.db.dialect}); added {added['licences']} licences and {added['organisations']} "
                  "organisations.")


@db.command("current")
@pass_env
def db_current(env: Env) -> None:
    """Show the schema revision of the database and of this code."""
    from .core import migrate

    click.echo(f"database: {migrate.current_revision(env.db) or 'empty'}\ncode:     {migrate.head_revision()}")


# --- serve --------------------------------------------------------------------------------

@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int,
              help="Processes to serve with (each keeps its own search facet copy).")
@pass_env
def serve(env: Env, host: str, port: int, workers: int) -> None:
    """Serve the web site and APIs."""
    import uvicorn

    from .app import create_app
    from .core.migrate import SchemaOutOfDate

    try:
        app = create_app(env.settings, env.db)
    except SchemaOutOfDate as exc:
        fail(str(exc))
        return
    from .catalogue.facets import counter_for

    with console.status("Preparing search facets"):
        counter_for(env.db.engine).refresh()  # so the first search does not pay for loading them
    console.print(f"Serving {env.settings.site_name} on http://{host}:{port} (database: {env.db.dialect})")
    if workers > 1:  # each worker process builds its own app from the same settings
        uvicorn.run("smartlondon.app:create_app", factory=True, host=host, port=port, workers=workers,
                    log_level="warning", access_log=False)
        return
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


# --- users and tokens ----------------------------------------------------------------------

@main.group(cls=PlatformErrors)
def user() -> None:
    """User accounts and roles."""


@user.command("create")
@click.argument("username")
@click.option("--email", required=True)
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True,
              help="At least 10 characters (asked for if not given).")
@click.option("--name", "display_name", default="", help="Name shown on the site.")
@click.option("--sysadmin", is_flag=True, help="Can do everything.")
@click.option("--org", "orgs", multiple=True, metavar="ORG:ROLE",
              help="A role in an organisation, e.g. camden:editor (member, editor, admin, reviewer). Repeatable.")
@pass_env
def user_create(env: Env, username: str, email: str, password: str, display_name: str, sysadmin: bool,
                orgs: tuple[str, ...]) -> None:
    """Create a user."""
    from .core import accounts

    with env.db.session() as session:
        account = accounts.create_user(session, username=username, email=email, password=password,
                                       display_name=display_name, sysadmin=sysadmin)
        for spec in orgs:
            slug, _, role = spec.partition(":")
            accounts.set_role(session, account, accounts.get_organisation(session, slug), role or "member")
    console.print(f"Created user {username}" + (" (sysadmin)" if sysadmin else "") + ".")


@user.command("role")
@click.argument("username")
@click.argument("organisation")
@click.argument("role", type=click.Choice(["member", "editor", "admin", "reviewer", "none"]))
@pass_env
def user_role(env: Env, username: str, organisation: str, role: str) -> None:
    """Give USERNAME a ROLE in ORGANISATION (none removes it)."""
    from .core import accounts

    with env.db.session() as session:
        account = accounts.get_user(session, username)
        accounts.set_role(session, account, accounts.get_organisation(session, organisation),
                          None if role == "none" else role)
    console.print(f"{username} is now {role} of {organisation}.")


@main.group(cls=PlatformErrors)
def org() -> None:
    """Organisations that publish data."""


@org.command("create")
@click.argument("slug")
@click.argument("name")
@click.option("--kind", default="other", show_default=True,
              help="local-authority, regional, transport, police, fire, health or other.")
@click.option("--gss", "gss_code", default=None, help="GSS code, for an area-based body.")
@click.option("--url", default=None, help="Its web site.")
@pass_env
def org_create(env: Env, slug: str, name: str, kind: str, gss_code: str | None, url: str | None) -> None:
    """Add an organisation (as a sysadmin would)."""
    from .core import accounts

    with env.db.session() as session:
        accounts.create_organisation(session, accounts.COMMAND_LINE, slug=slug, name=name, kind=kind,
                                     gss_code=gss_code, url=url)
    console.print(f"Created organisation {name} ({slug}).")


@main.group(cls=PlatformErrors)
def token() -> None:
    """API tokens."""


@token.command("create")
@click.argument("username")
@click.option("--name", default="command line", show_default=True, help="What the token is for.")
@click.option("--days", default=365, show_default=True, type=int, help="Days until it expires.")
@pass_env
def token_create(env: Env, username: str, name: str, days: int) -> None:
    """Create an API token for USERNAME and print it (it is shown only this once)."""
    from .core import accounts

    with env.db.session() as session:
        record, secret = accounts.create_token(session, accounts.get_user(session, username), name, days)
        expires = record.expires_at
    console.print(f"Token for {username}, expires {expires:%Y-%m-%d}. Copy it now: it will not be shown again.")
    click.echo(secret)


@token.command("revoke")
@click.argument("token_id", type=int)
@pass_env
def token_revoke(env: Env, token_id: int) -> None:
    """Revoke the token with this id."""
    from .core import accounts

    with env.db.session() as session:
        accounts.revoke_token(session, accounts.COMMAND_LINE, token_id)
    console.print(f"Token {token_id} revoked.")


# --- search ----------------------------------------------------------------------------------

@main.group(cls=PlatformErrors)
def search() -> None:
    """The catalogue's search index."""


@search.command("rebuild")
@pass_env
def search_rebuild(env: Env) -> None:
    """Recreate the search index from the catalogue tables."""
    from sqlalchemy import func, select

    from .catalogue import index
    from .catalogue.models import Dataset

    with env.db.session() as session:
        total = session.scalar(select(func.count()).select_from(Dataset)) or 0
        with progress_bar() as bar:
            task = bar.add_task("Indexing datasets", total=total)
            count = index.rebuild(session, progress=lambda n: bar.advance(task, n))
    console.print(f"Indexed {count} datasets.")


# --- catalogue -------------------------------------------------------------------------------

@main.group(cls=PlatformErrors)
def catalogue() -> None:
    """Whole-catalogue jobs (bulk dumps and the like)."""


@catalogue.command("dump")
@click.option("--force", is_flag=True, help="Rewrite the files even if the catalogue has not changed.")
@pass_env
def catalogue_dump(env: Env, force: bool) -> None:
    """Write the bulk dumps of the public catalogue (JSON lines and CSV) if they are out of date."""
    from .catalogue import dumps

    with console.status("Checking the catalogue dumps"):
        before = dumps.read_manifest(env.settings.data_dir)
        manifest = dumps.ensure_fresh(env.db.engine, env.settings.data_dir, env.settings.base_url, force=force)
    state = "unchanged" if before is not None and before.generated == manifest.generated else \
        f"written in {manifest.seconds:.1f} s"
    console.print(f"Catalogue dumps {state}: {manifest.datasets} datasets in {dumps.dump_dir(env.settings.data_dir)}")
    for dump in manifest.files.values():
        console.print(f"  {dump.name}: {dump.rows} rows, {dump.byte_size} bytes")
    if manifest.skipped:
        console.print(f"[bold yellow]{len(manifest.skipped)} damaged record(s) left out:[/]")
        for item in manifest.skipped:
            console.print(f"  {item['slug'] or item['identifier']}: {item['reason']}")


# --- catalogue: the open data charter scorecard ------------------------------------------------

@catalogue.command("score")
@click.option("--skip-dcat", is_flag=True, help="Do not validate DCAT-AP records (the slow check) first.")
@click.option("--revalidate", is_flag=True, help="Validate every DCAT-AP record, not only those changed since.")
@pass_env
def catalogue_score(env: Env, skip_dcat: bool, revalidate: bool) -> None:
    """Recompute every dataset's open data charter scorecard (after validating changed DCAT-AP records)."""
    from .catalogue.charter import inputs, scores

    validated = 0
    if not skip_dcat and inputs.dcat_available():
        stale = scores.stale_dcat(env.db, everything=revalidate)
        if stale:
            with progress_bar() as bar:
                task = bar.add_task("Validating DCAT-AP records", total=len(stale))
                validated = scores.refresh_dcat(env.db, stale, progress=lambda n: bar.advance(task, n))
    total = scores.count_datasets(env.db)
    with progress_bar() as bar:
        task = bar.add_task("Scoring datasets", total=total)
        count = scores.rescore_all(env.db, progress=lambda n: bar.advance(task, n))
    console.print(f"Scored {count} datasets" + (f" (validated {validated} DCAT-AP records)." if validated else "."))


@catalogue.command("check-links")
@click.option("--all", "everything", is_flag=True, help="Check every resource, not only those due a check.")
@click.option("--dataset", "datasets", multiple=True, metavar="SLUG", help="Only this dataset's resources (repeatable).")
@click.option("--limit", type=int, default=None, help="Check at most this many resources.")
@click.option("--timeout", type=float, default=10.0, show_default=True, help="Seconds to wait for a server.")
@click.option("--concurrency", type=int, default=10, show_default=True, help="Links checked at once.")
@click.option("--delay", type=float, default=1.0, show_default=True, help="Seconds between requests to one host.")
@click.option("--allow-private-addresses", is_flag=True,
              help="Also check links to private network addresses (intranets; never on a public server).")
@pass_env
def catalogue_check_links(env: Env, everything: bool, datasets: tuple[str, ...], limit: int | None, timeout: float,
                          concurrency: int, delay: float, allow_private_addresses: bool) -> None:
    """Check that every resource's link or stored file still works, and rescore the datasets checked."""
    from sqlalchemy import select

    from .catalogue.charter import linkcheck
    from .catalogue.models import Dataset
    from .core.storage import LocalStorage

    if timeout <= 0 or concurrency < 1 or delay < 0:
        fail("--timeout must be above 0, --concurrency at least 1 and --delay 0 or more.")
    options = linkcheck.LinkCheckOptions(timeout=timeout, concurrency=concurrency, host_delay=delay,
                                         allow_private=allow_private_addresses)
    dataset_ids = None
    with env.db.session() as session:
        if datasets:
            found = dict(session.execute(select(Dataset.slug, Dataset.id).where(Dataset.slug.in_(datasets))).all())
            missing = [slug for slug in datasets if slug not in found]
            if missing:
                fail(f"There is no dataset called {', '.join(missing)}.")
            dataset_ids = list(found.values())
        items = linkcheck.due(session, options, everything, dataset_ids, limit=limit)
    if not items:
        console.print("No resources are due a check.")
        return
    with progress_bar() as bar:
        task = bar.add_task("Checking links", total=len(items))
        report = linkcheck.run(env.db, LocalStorage(env.settings.files_dir), options, items=items,
                               progress=lambda n: bar.advance(task, n))
    console.print(linkcheck.summary(report))
    for example in report.broken_examples:
        console.print(f"  [red]broken[/] {example}")


# --- demo ------------------------------------------------------------------------------------

@main.command()
@pass_env
def demo(env: Env) -> None:
    """Load the demo: London's organisations and a catalogue built from real London open data."""
    from .core import migrate
    from .demo.loader import load_demo

    migrate.upgrade(env.db)
    with progress_bar() as bar:
        summary = load_demo(env.db, env.settings, bar)
    console.print(f"Demo ready: {summary['datasets']} datasets ({summary['created']} new), "
                  f"{summary['files']} files, {summary['organisations']} organisations.")
    if summary.get("password"):
        console.print(f"Sign in as [bold]demo-admin[/] with password [bold]{summary['password']}[/] "
                      f"(kept in {env.settings.data_dir / 'demo-admin-password'}).")


# --- harvest ---------------------------------------------------------------------------------

from .catalogue.harvest.cli import harvest as _harvest_commands  # noqa: E402  (defined there, registered here)

main.add_command(_harvest_commands)

# --- datastore (the tabular data store) ---------------------------------------------------------

from .catalogue.tabular.commands import datastore as _datastore_commands  # noqa: E402

main.add_command(_datastore_commands)

# --- places (the register; each places part adds its commands to places/cli.py) ------------------

from .places.cli import places as _places_commands  # noqa: E402

main.add_command(_places_commands)

# --- sensors (the sensor hub; each sensors part adds its commands to sensors/cli.py) ------------

from .sensors.cli import sensors as _sensors_commands  # noqa: E402

main.add_command(_sensors_commands)

# --- sharing (LODA; each sharing part adds its commands to sharing/cli.py) ----------------------

from .sharing.cli import sharing as _sharing_commands  # noqa: E402

main.add_command(_sharing_commands)

# --- insights (city analytics: air quality everywhere, docs/insights-airquality.md) -------------

from .insights.cli import insights as _insights_commands  # noqa: E402

main.add_command(_insights_commands)


if __name__ == "__main__":
    main()
