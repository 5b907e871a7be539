"""`trustlive scores recompute [--rebuild-facts]`: the on-demand full recompute from the command
line, and the nightly job that runs it once a day."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import func, select
from typer.testing import CliRunner

from tests.helpers import make_settings, run
from tests.trust.test_scores import NOW, build
from trustlive.cli import app
from trustlive.db import create_engine, create_sessionmaker, transaction
from trustlive.trust import tasks
from trustlive.trust.models import TrustRecompute, TrustScore


async def _seed(url: str) -> dict[str, int]:
    engine = create_engine(url)
    try:
        async with transaction(create_sessionmaker(engine)) as session:
            return await build(session)
    finally:
        await engine.dispose()


async def _scores(url: str) -> dict[tuple[str, int], int | None]:
    engine = create_engine(url)
    try:
        async with transaction(create_sessionmaker(engine)) as session:
            return {
                (r.entity_type, r.entity_id): r.score_c
                for r in (await session.scalars(select(TrustScore))).all()
            }
    finally:
        await engine.dispose()


def test_recompute_from_the_command_line(cli: tuple[CliRunner, str]) -> None:
    runner, url = cli
    ids = run(_seed(url))
    plain = runner.invoke(app, ["scores", "recompute"])
    assert plain.exit_code == 0, plain.output
    assert "scored 0 shops" in plain.output  # no facts yet: they come from events, or a rebuild
    rebuilt = runner.invoke(app, ["scores", "recompute", "--rebuild-facts"])
    assert rebuilt.exit_code == 0, rebuilt.output
    assert (
        "facts rebuilt: 61 order lines" in rebuilt.output
        and "scored 1 shops, 1 products, 1 creators" in rebuilt.output
    )
    assert run(_scores(url))[("shop", ids["shop"])] == 246


def test_the_nightly_recompute_runs_once_a_day_after_its_hour(
    cli: tuple[CliRunner, str], tmp_path: Path
) -> None:
    _runner, url = cli
    run(_seed(url))
    settings = make_settings(url, tmp_path, scores_nightly_hour=3)

    async def scenario() -> list[dict[str, int]]:
        engine = create_engine(url)
        sessionmaker = create_sessionmaker(engine)
        early = NOW.replace(hour=18, minute=0) - dt.timedelta(days=1)  # 02:00 in Shanghai
        late = early + dt.timedelta(hours=2)  # 04:00
        try:
            out = [await tasks.run_once(sessionmaker, settings, early), await tasks.run_once(sessionmaker, settings, late),
                   await tasks.run_once(sessionmaker, settings, late + dt.timedelta(hours=5))]  # fmt: skip
            async with transaction(sessionmaker) as session:
                out.append({"runs": await session.scalar(select(func.count()).select_from(TrustRecompute))})
            return out
        finally:
            await engine.dispose()

    early, late, again, runs = run(scenario())
    assert "recomputed" not in early and "recomputed" in late and "recomputed" not in again
    assert runs == {"runs": 1}
