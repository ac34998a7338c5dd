"""``smartlondon harvest``: add, list, run and show harvest sources and their jobs.

    smartlondon harvest add camden-ckan --name "Camden" --type ckan --url https://... --org camden
    smartlondon harvest list
    smartlondon harvest run camden-ckan [--full]     # one source, with a progress bar
    smartlondon harvest run --due                    # every due source, as the scheduler does
    smartlondon harvest show camden-ckan [--job 12]  # its jobs, or one job's report
"""

from __future__ import annotations

import json
from typing import Any

import click

from ...core.commands import PlatformGroup
from ...core.commands import main_module as _main


@click.group(cls=PlatformGroup)
def harvest() -> None:
    """Harvest other portals' catalogues (CKAN, DCAT, DataPress, Socrata, DCAT-US)."""


@harvest.command("add")
@click.argument("slug")
@click.option("--name", required=True, help="The source's name.")
@click.option("--type", "source_type", required=True,
              type=click.Choice(["ckan", "dcat", "datapress", "socrata", "dcat-us"]))
@click.option("--url", required=True, help="The source's address.")
@click.option("--org", "organisation", required=True, help="Slug of the organisation that publishes what it brings in.")
@click.option("--schedule", default="daily", show_default=True,
              help="manual, hourly, daily, weekly or an interval like 6h.")
@click.option("--config", default="", help="Options as a JSON object, or @file.json.")
@click.option("--off", is_flag=True, help="Register it switched off (not scheduled).")
def add(slug: str, name: str, source_type: str, url: str, organisation: str, schedule: str, config: str,
        off: bool) -> None:
    """Register a harvest source SLUG (as a sysadmin would)."""
    from ...core.accounts import COMMAND_LINE
    from .sources import create_source

    cli = _main()
    env = cli.Env()
    if config.startswith("@"):
        with open(config[1:], encoding="utf-8") as handle:
            config = handle.read()
    with env.db.session() as session:
        source = create_source(session, COMMAND_LINE, {
            "slug": slug, "name": name, "type": source_type, "url": url, "organisation": organisation,
            "schedule": schedule, "config": config, "active": not off})
        due = source.next_run_at
    cli.console.print(f"Added harvest source {slug} ({source_type}, {schedule})"
                      + (f"; first scheduled run due {due:%Y-%m-%d %H:%M} UTC." if due else "."))


@harvest.command("list")
def list_sources() -> None:
    """List the sources, their last job and when each is next due (and fail stalled jobs)."""
    from rich.table import Table

    from .runner import mark_stalled
    from .sources import latest_jobs, list_sources as all_sources, next_due

    cli = _main()
    env = cli.Env()
    stalled = mark_stalled(env.db, env.settings.harvest_stall_minutes)
    for job_id in stalled:
        cli.console.print(f"[yellow]Job {job_id} had stopped making progress: marked failed.[/]")
    with env.db.session() as session:
        sources = all_sources(session)
        last = latest_jobs(session, [s.id for s in sources])
        table = Table("source", "type", "publisher", "schedule", "last job", "next due")
        for source in sources:
            job = last.get(source.id)
            due = next_due(source)
            table.add_row(source.slug + ("" if source.active else " (off)"), source.type, source.organisation.slug,
                          source.schedule,
                          f"{job.id} {job.status} {job.queued_at:%Y-%m-%d %H:%M}" if job else "never",
                          f"{due:%Y-%m-%d %H:%M}" if due else "-")
    if not sources:
        click.echo("No harvest sources. Add one with `smartlondon harvest add`.")
        return
    cli.Console(width=200).print(table)


def _report(job: Any) -> str:
    counts = ", ".join(f"{n} {getattr(job, n)}" for n in ("created", "updated", "unchanged", "withdrawn", "errors",
                                                            "warnings"))
    return f"job {job.id} {job.status}: {counts}. {job.message}"


@harvest.command("run")
@click.argument("source", required=False)
@click.option("--due", is_flag=True, help="Run every source that is due, one at a time.")
@click.option("--full", is_flag=True, help="Read everything, even where the source allows incremental runs.")
def run(source: str | None, due: bool, full: bool) -> None:
    """Harvest SOURCE now (or every due source with --due), showing progress."""
    from .runner import mark_stalled, run_due, run_job
    from .sources import get_source, start_job

    cli = _main()
    env = cli.Env()
    if bool(source) == bool(due):
        cli.fail("Give a SOURCE to harvest, or --due to run every due source.")
    for job_id in mark_stalled(env.db, env.settings.harvest_stall_minutes):
        cli.console.print(f"[yellow]Job {job_id} had stopped making progress: marked failed.[/]")
    bar = cli.progress_bar()
    tasks: dict[str, Any] = {}

    def show(slug: str, progress: Any) -> None:
        done = progress.counts["seen"]
        if slug not in tasks:
            tasks[slug] = bar.add_task(f"Harvesting {slug}", total=progress.expected)
        bar.update(tasks[slug], completed=done, total=progress.expected or None)

    failed = False
    with bar:
        if due:
            jobs = run_due(env.db, env.settings.harvest_stall_minutes, progress=show)
        else:
            with env.db.session() as session:
                found = get_source(session, source or "")
                source_id, slug = found.id, found.slug
            job_id = start_job(env.db, source_id, requested_by="command line", mode="full" if full else "auto")
            jobs = [run_job(env.db, job_id, lambda p: show(slug, p))]
    for job in jobs:
        failed = failed or job.status != "finished"
        colour = "green" if job.status == "finished" and not job.errors else "yellow" if job.status == "finished" \
            else "red"
        cli.console.print(f"[{colour}]{_report(job)}[/]")
    if due and not jobs:
        cli.console.print("No source is due.")
    if failed:
        raise SystemExit(1)


@harvest.command("show")
@click.argument("source")
@click.option("--job", "job_id", type=int, default=None, help="Show this job's report, with its errors.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (as the API gives it).")
def show(source: str, job_id: int | None, as_json: bool) -> None:
    """Show a source's jobs, or one job's report with every error and warning."""
    from .pages import job_dict, source_dict
    from .sources import get_job, get_source, job_problems, jobs_of

    cli = _main()
    env = cli.Env()
    base = env.settings.base_url
    with env.db.session() as session:
        found = get_source(session, source)
        if job_id is None:
            jobs = jobs_of(session, found)
            data = {**source_dict(base, found, jobs[0] if jobs else None), "jobs": [job_dict(base, j) for j in jobs]}
            if as_json:
                click.echo(json.dumps(data, indent=2))
                return
            click.echo(f"{found.name} ({found.type}, {found.url}), schedule {found.schedule}")
            for job in jobs:
                click.echo(f"  {_report(job)}")
            return
        job = get_job(session, found, job_id)
        data = job_dict(base, job, job_problems(session, job))
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    click.echo(f"{found.name}: job {data['id']} {data['status']} ({data['mode']})")
    click.echo(f"  {data['message']}")
    for kind in ("errors", "warnings"):
        click.echo(f"  {kind}: {len(data[kind])}")
        for item in data[kind]:
            click.echo(f"    {item['remote_id'] or '(source)'}: {item['reason']}")
