"""The ``trustlive`` command line: serve, migrate, seed, demo, user management."""

from __future__ import annotations

import asyncio
import getpass
import os
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from trustlive.config import load_settings

app = typer.Typer(
    help="trustlive: a trust-first live-commerce platform. Configuration comes from TRUSTLIVE_* "
    "environment variables (see README).",
    no_args_is_help=True,
    rich_markup_mode="rich",
)
user_app = typer.Typer(help="Manage accounts and roles.", no_args_is_help=True)
app.add_typer(user_app, name="user")
ledger_app = typer.Typer(help="The money ledger: verify the chain, balances, payouts.", no_args_is_help=True)
app.add_typer(ledger_app, name="ledger")
payments_app = typer.Typer(
    help="Payments: refunds to the provider, sandbox webhook deliveries.", no_args_is_help=True
)
app.add_typer(payments_app, name="payments")
tasks_app = typer.Typer(help="Deadlines and background work, for running from cron.", no_args_is_help=True)
app.add_typer(tasks_app, name="tasks")
scores_app = typer.Typer(help="Trust scores: recompute them (docs/scores.md).", no_args_is_help=True)
app.add_typer(scores_app, name="scores")
console = Console()

ROLES = ["buyer", "creator", "merchant", "ops", "inspector", "care_specialist"]


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[
        int, typer.Option(min=1, help="Worker processes (use PostgreSQL for more than 1).")
    ] = 1,
    reload: Annotated[bool, typer.Option(help="Restart on code changes (development).")] = False,
) -> None:
    """Serve the web UI and JSON API (uvicorn). Run `trustlive migrate` first."""
    import uvicorn

    settings = load_settings()
    if workers > 1 and settings.is_sqlite:
        console.print("[yellow]Several workers on SQLite serialise on its write lock; prefer PostgreSQL.[/]")
    if workers > 1 and not settings.redis_url:
        console.print(
            "[yellow]Without TRUSTLIVE_REDIS_URL each worker only sees its own live-room events.[/]"
        )
    from trustlive.live.wire import uvicorn_ws_options

    uvicorn.run(
        "trustlive.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        reload=reload,
        log_level="info",
        proxy_headers=True,
        **uvicorn_ws_options(),  # live rooms: frames written once per room, no per-viewer deflate
    )


@app.command()
def migrate(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Bring the database (TRUSTLIVE_DATABASE_URL, default SQLite in ./var) up to date."""
    from trustlive import migrate as migrations

    settings = load_settings()
    migrations.upgrade(settings.database_url, revision)
    console.print(f"[green]database at {revision}[/]: {_redact(settings.database_url)}")


@app.command()
def seed(
    buyers: Annotated[int, typer.Option(min=0, help="How many generated buyers.")] = 3000,
) -> None:
    """Create the demo world (personas, shops, products, buyers). Idempotent: running it twice
    gives the same world."""
    from trustlive.sim.demo import seed_demo

    summary = asyncio.run(_run_seed(seed_demo, buyers))
    console.print(f"[green]demo world ready[/]: {summary}")


async def _run_seed(seed_demo, buyers: int):  # type: ignore[no-untyped-def]
    from rich.progress import Progress

    from trustlive.db import create_engine, create_sessionmaker

    settings = load_settings()
    engine = create_engine(settings.database_url)
    try:
        with Progress(console=console, transient=True) as progress:
            tasks: dict[str, int] = {}

            def report(stage: str, done: int, total: int) -> None:
                if stage not in tasks:
                    tasks[stage] = progress.add_task(stage, total=total)
                progress.update(tasks[stage], completed=done, total=total)

            return await seed_demo(
                create_sessionmaker(engine),
                media_dir=settings.media_dir,
                buyers=buyers,
                progress=report,
                settings=settings,
            )
    finally:
        await engine.dispose()


@app.command()
def demo(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    buyers: Annotated[int, typer.Option(min=0, help="How many generated buyers.")] = 3000,
) -> None:
    """Migrate, seed the demo world, print the demo logins, then serve."""
    from trustlive.sim.demo import DEMO_LOGINS, DEMO_PASSWORD

    migrate("head")
    seed(buyers)
    table = Table(title=f"Demo logins (password for all: {DEMO_PASSWORD})")
    table.add_column("username")
    table.add_column("who")
    table.add_column("roles")
    for username, who, roles in DEMO_LOGINS:
        table.add_row(username, who, ", ".join(roles))
    console.print(table)
    console.print(f"[bold]trustlive demo on http://{host}:{port}[/]")
    serve(host=host, port=port, workers=1, reload=False)


@user_app.command("create")
def user_create(
    username: Annotated[str, typer.Argument(help="3-32 characters: letters, digits, _ . -")],
    role: Annotated[
        list[str] | None,
        typer.Option("--role", "-r", help=f"Role to grant; repeatable. One of: {', '.join(ROLES)}."),
    ] = None,
    display_name: Annotated[
        str | None, typer.Option(help="Name shown to others (default: the username).")
    ] = None,
    password: Annotated[
        str | None, typer.Option(help="Password (asked for when omitted; or TRUSTLIVE_NEW_PASSWORD).")
    ] = None,
) -> None:
    """Create an account with roles, e.g. the first ops account:
    `trustlive user create admin --role ops`."""
    from trustlive.accounts import service as accounts
    from trustlive.db import create_engine, create_sessionmaker, transaction
    from trustlive.errors import DomainError

    roles = role or []
    bad = [r for r in roles if r not in ROLES]
    if bad:
        raise typer.BadParameter(
            f"unknown role {bad[0]!r}; choose from {', '.join(ROLES)}", param_hint="--role"
        )
    secret = password or os.environ.get("TRUSTLIVE_NEW_PASSWORD") or getpass.getpass("Password: ")

    async def create() -> tuple[int, set[str]]:
        engine = create_engine(load_settings().database_url)
        try:
            async with transaction(create_sessionmaker(engine)) as session:
                user = await accounts.create_user(
                    session, username=username, password=secret, display_name=display_name, roles=roles
                )
                return user.id, await accounts.roles_of(session, user.id)
        finally:
            await engine.dispose()

    try:
        user_id, granted = asyncio.run(create())
    except DomainError as err:
        console.print(f"[red]{err.message}[/]")
        raise typer.Exit(code=2) from None
    console.print(f"[green]created user {username} (id {user_id})[/] roles: {', '.join(sorted(granted))}")


async def _with_session(work):  # type: ignore[no-untyped-def]
    """Run ``work(session)`` in one transaction against the configured database."""
    from trustlive.db import create_engine, create_sessionmaker, transaction

    engine = create_engine(load_settings().database_url)
    try:
        async with transaction(create_sessionmaker(engine)) as session:
            return await work(session)
    finally:
        await engine.dispose()


@ledger_app.command("verify")
def ledger_verify() -> None:
    """Recompute the hash chain and check every balance. Exit 0 if the ledger is intact, 1 with
    the problems listed otherwise."""
    from trustlive.ledger import service as ledger

    with console.status("verifying the ledger…"):
        report = asyncio.run(_with_session(ledger.verify))
    summary = f"{report.transactions_checked} transactions, {report.postings_checked} postings checked"
    if report.ok:
        console.print(f"[green]ledger OK[/]: {summary}")
        if report.head_hash:
            console.print(f"chain head: {report.head_hash}")
        return
    console.print(f"[red bold]ledger FAILED verification[/]: {summary}")
    if report.first_bad_transaction is not None:
        console.print(f"[red]first bad transaction: {report.first_bad_transaction}[/]")
    for problem in report.problems:
        console.print(f"[red]-[/] {problem}", highlight=False)
    raise typer.Exit(code=1)


@ledger_app.command("balances")
def ledger_balances(
    prefix: Annotated[
        str | None, typer.Option(help="Only accounts starting with this, e.g. shop: or platform:")
    ] = None,
) -> None:
    """Every account with postings and its balance (fen and yuan)."""
    from trustlive.ledger import service as ledger
    from trustlive.money import format_fen

    rows = asyncio.run(_with_session(lambda s: ledger.balances(s, prefix)))
    table = Table(title="Ledger balances")
    table.add_column("account")
    table.add_column("fen", justify="right")
    table.add_column("yuan", justify="right")
    for row in rows:
        table.add_row(row.account, str(row.balance_fen), format_fen(row.balance_fen))
    total = sum(r.balance_fen for r in rows)
    table.add_row("[bold]sum[/]", f"[bold]{total}[/]", f"[bold]{format_fen(total)}[/]")
    console.print(table)


@ledger_app.command("payouts")
def ledger_payouts() -> None:
    """Run the sandbox bank once: answer every requested payout (a bank account containing FAIL
    is refused and the money returns to the wallet)."""
    from trustlive.db import create_engine, create_sessionmaker
    from trustlive.ledger.tasks import process_payouts

    async def run_bank() -> int:
        engine = create_engine(load_settings().database_url)
        try:
            return await process_payouts(create_sessionmaker(engine))
        finally:
            await engine.dispose()

    done = asyncio.run(run_bank())
    console.print(f"[green]sandbox bank answered {done} payout(s)[/]")


@payments_app.command("deliver")
def payments_deliver() -> None:
    """Run the payments background pass once: submit decided refunds to the provider and deliver
    due sandbox webhooks (retried later with backoff when they fail)."""
    from trustlive.db import create_engine, create_sessionmaker
    from trustlive.payments.tasks import run_once

    async def deliver() -> dict[str, int]:
        settings = load_settings()
        engine = create_engine(settings.database_url)
        try:
            return await run_once(create_sessionmaker(engine), settings)
        finally:
            await engine.dispose()

    result = asyncio.run(deliver())
    console.print(
        f"[green]refunds submitted: {result['refunds_submitted']}, webhooks delivered: "
        f"{result['webhooks_delivered']}[/], failed (will retry): {result['webhooks_failed']}"
    )


@tasks_app.command("run")
def tasks_run(
    job: Annotated[str | None, typer.Option(help="only the job of this name (orders, payments, ...)")] = None,
) -> None:
    """Apply every due deadline once, as the app's scheduler does every TRUSTLIVE_TASK_INTERVAL_SECONDS
    (cancel unpaid orders, auto-confirm, settle, refunds and sandbox webhooks, payouts, inspection
    and after-sales deadlines, care follow-ups). Idempotent: run it from cron with the interval at 0.
    Exits 1 if a job failed."""
    from trustlive.app import build_scheduler
    from trustlive.db import create_engine, create_sessionmaker

    async def run() -> dict[str, object]:
        settings = load_settings()
        engine = create_engine(settings.database_url)
        try:
            scheduler = build_scheduler(create_sessionmaker(engine), settings)
            names = [name for name, _ in scheduler.jobs]
            if job is not None and job not in names:
                raise typer.BadParameter(f"choose one of {', '.join(names)}", param_hint="--job")
            return await scheduler.run_once(job)
        finally:
            await engine.dispose()

    results = asyncio.run(run())
    failed = False
    for name, result in results.items():
        if isinstance(result, Exception):
            failed = True
            console.print(f"[red]{name}: failed: {result}[/]")
        else:
            console.print(f"{name}: {result}")
    if failed:
        raise typer.Exit(1)


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':')[0]}:***@{host}" if ":" in creds else url
    return url


if __name__ == "__main__":
    app()


@scores_app.command("recompute")
def scores_recompute(
    rebuild_facts: Annotated[
        bool,
        typer.Option("--rebuild-facts", help="first derive every order's facts anew from the source data"),
    ] = False,
) -> None:
    """Recompute every shop, product and creator score now, as the nightly job does (the windows
    move to the present). With --rebuild-facts, first re-derive the per-line facts from orders,
    shipments, inspections, after-sales, reviews and complaints (a repair: slower)."""
    import time

    from rich.progress import Progress

    from trustlive.db import create_engine, create_sessionmaker
    from trustlive.trust import scoring
    from trustlive.trust import service as trust

    async def run() -> tuple[int | None, dict[str, int]]:
        settings = load_settings()
        trust.configure(scoring.load_file(settings.scores_config))
        engine = create_engine(settings.database_url)
        try:
            sessionmaker = create_sessionmaker(engine)
            with Progress(console=console, transient=True) as progress:
                bars: dict[str, int] = {}

                def report(stage: str, done: int, total: int) -> None:
                    if stage not in bars:
                        bars[stage] = progress.add_task(stage, total=total)
                    progress.update(bars[stage], completed=done, total=total)

                rebuilt = await trust.rebuild_facts(sessionmaker, report) if rebuild_facts else None
                return rebuilt, await trust.recompute_all(sessionmaker, report)
        finally:
            await engine.dispose()

    started = time.perf_counter()
    rebuilt, counts = asyncio.run(run())
    if rebuilt is not None:
        console.print(f"facts rebuilt: {rebuilt} order lines")
    console.print(
        f"scored {counts['shop']} shops, {counts['product']} products, {counts['creator']} creators "
        f"from {counts['facts']} order lines in {time.perf_counter() - started:.1f} s"
    )


sim_app = typer.Typer(
    help="The world simulator: generated worlds for demos, tests and benchmarks.", no_args_is_help=True
)
app.add_typer(sim_app, name="sim")


@sim_app.command("world")
def sim_world(
    buyers: Annotated[int, typer.Option(min=0, help="Buyers (they follow, browse, like and buy).")] = 200,
    creators: Annotated[
        int, typer.Option(min=1, help="Creators (they post short videos, a few go live).")
    ] = 50,
    merchants: Annotated[int, typer.Option(min=1, help="Merchants, one shop each.")] = 10,
    seed: Annotated[
        int, typer.Option(min=0, help="Same seed, same world; accounts are named w<seed>-...")
    ] = 1,
    items_per_creator_from: Annotated[
        str,
        typer.Option(help="Videos per creator: kuairand (real distribution), one, or a CSV with author_id."),
    ] = "kuairand",
    items: Annotated[
        int | None, typer.Option(min=1, help="Videos + products in all (products fill what videos leave).")
    ] = None,
    products_per_shop: Annotated[float, typer.Option(help="Mean products per shop (without --items).")] = 6.0,
    follows_per_buyer: Annotated[float, typer.Option(help="Mean follows per buyer.")] = 6.0,
    touches_per_buyer: Annotated[
        float, typer.Option(help="Bulk mode: mean items each buyer interacted with.")
    ] = 20.0,
    sessions: Annotated[int, typer.Option(help="Services mode: feed browsing sessions per buyer.")] = 2,
    mode: Annotated[
        str,
        typer.Option(
            help="services (through the domain services), bulk (set-based), or auto (bulk above 5,000 accounts)."
        ),
    ] = "auto",
    precompute: Annotated[
        bool,
        typer.Option("--precompute/--no-precompute", help="Run the feed's task at the end (neighbours)."),
    ] = True,
) -> None:
    """Generate a world into the configured database (docs/simulator.md): buyers, creators and
    merchants, shops and products, short videos (per creator as in KuaiRand-Pure: 87% have one),
    live rooms on air, a long-tailed follow graph and the interactions the discovery feed learns
    from. Run `trustlive migrate` first. Exit 2 for a bad option or a seed already used here."""
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from trustlive.db import create_engine, create_sessionmaker
    from trustlive.errors import DomainError
    from trustlive.sim.world import PASSWORD, WorldSpec, generate_world

    spec = WorldSpec(
        buyers=buyers, creators=creators, merchants=merchants, seed=seed, items_per_creator_from=items_per_creator_from,
        items=items, products_per_shop=products_per_shop, follows_per_buyer=follows_per_buyer,
        touches_per_buyer=touches_per_buyer, sessions=sessions, mode=mode, precompute=precompute,
    )  # fmt: skip

    async def run():  # type: ignore[no-untyped-def]
        settings = load_settings()
        engine = create_engine(settings.database_url)
        try:
            with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                          console=console, transient=True) as progress:  # fmt: skip
                bars: dict[str, int] = {}

                def report(stage: str, done: int, total: int) -> None:
                    if stage not in bars:
                        bars[stage] = progress.add_task(stage, total=total)
                    progress.update(bars[stage], completed=done, total=total)

                return await generate_world(create_sessionmaker(engine), spec, report, settings=settings)
        finally:
            await engine.dispose()

    started = time.perf_counter()
    try:
        spec.check()
        summary = asyncio.run(run())
    except DomainError as err:
        console.print(f"[red]{err.message}[/]")
        raise typer.Exit(code=2) from None
    for line in summary.lines():
        console.print(line, highlight=False)
    console.print(
        "phases: " + ", ".join(f"{k} {v:.1f} s" for k, v in summary.phases.items())
        + f"; {time.perf_counter() - started:.1f} s in all",
        highlight=False,
    )  # fmt: skip
    console.print(
        f"sign in as w{seed}-b1 (a buyer), w{seed}-c1 (a creator) or w{seed}-ops; password {PASSWORD}"
    )
