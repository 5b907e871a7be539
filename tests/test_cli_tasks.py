"""`trustlive tasks run` applies every due deadline once, as the app's scheduler does (for cron)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import update
from typer.testing import CliRunner

from tests.helpers import run
from tests.payments.util import build, place
from trustlive.app import build_scheduler
from trustlive.cli import app
from trustlive.config import load_settings
from trustlive.db import create_engine, create_sessionmaker, transaction, utcnow
from trustlive.orders.models import Order


async def _overdue_unpaid_order(url: str) -> int:
    w = await build(url, buyers=1)
    try:
        (order,) = await place(w, 0, (w.skus[0], 1), key="o")
        async with transaction(w.sessionmaker) as s:
            past = utcnow() - dt.timedelta(minutes=1)
            await s.execute(update(Order).where(Order.id == order.id).values(pay_deadline=past))
        return order.id
    finally:
        await w.engine.dispose()


async def _status(url: str, order_id: int) -> str:
    engine = create_engine(url)
    try:
        async with transaction(create_sessionmaker(engine)) as s:
            return (await s.get(Order, order_id)).status
    finally:
        await engine.dispose()


def test_tasks_run_applies_due_deadlines_once(cli: tuple[CliRunner, str]) -> None:
    runner, url = cli
    order_id = run(_overdue_unpaid_order(url))
    only = runner.invoke(app, ["tasks", "run", "--job", "care"])
    assert only.exit_code == 0, only.output
    assert run(_status(url, order_id)) == "pending_payment"  # only the care job ran
    result = runner.invoke(app, ["tasks", "run"])
    assert result.exit_code == 0, result.output
    jobs = [
        name for name, _ in build_scheduler(create_sessionmaker(create_engine(url)), load_settings()).jobs
    ]
    assert jobs == ["orders", "payouts", "payments", "fulfillment", "aftersales", "care", "live", "trust",
                    "feed"]  # fmt: skip
    assert all(f"{job}:" in result.output for job in jobs)
    assert "'cancelled': 1" in result.output
    assert run(_status(url, order_id)) == "cancelled"
    again = runner.invoke(app, ["tasks", "run", "--job", "orders"])
    assert again.exit_code == 0 and "'cancelled': 0" in again.output


def test_tasks_run_refuses_an_unknown_job(cli: tuple[CliRunner, str]) -> None:
    runner, _ = cli
    result = runner.invoke(app, ["tasks", "run", "--job", "everything"])
    assert result.exit_code == 2 and "choose one of" in result.output
