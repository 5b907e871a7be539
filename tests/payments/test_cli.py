"""`trustlive payments deliver` runs the background pass once, as an operator would."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from tests.helpers import run
from tests.payments.util import build, buyer_pays, place, settings_for, start
from trustlive.cli import app
from trustlive.db import create_engine, create_sessionmaker, transaction
from trustlive.orders.models import Order


def test_payments_deliver_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'trustlive.db'}"
    for name in ("TRUSTLIVE_SECRET_KEY", "TRUSTLIVE_PAYMENT_WEBHOOK_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TRUSTLIVE_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("TRUSTLIVE_DATABASE_URL", url)
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()
    assert runner.invoke(app, ["migrate"]).exit_code == 0

    async def paid_at_the_sandbox() -> int:
        settings = settings_for(url, tmp_path)
        w = await build(url, buyers=1)
        try:
            (order,) = await place(w, 0, (w.skus[0], 1), key="o")
            await buyer_pays(w, settings, await start(w, settings, 0, [order.id], "p"))
            return order.id
        finally:
            await w.engine.dispose()

    order_id = run(paid_at_the_sandbox())
    result = runner.invoke(app, ["payments", "deliver"])
    assert result.exit_code == 0, result.output
    assert "webhooks delivered: 1" in result.output

    async def status() -> str:
        engine = create_engine(url)
        try:
            async with transaction(create_sessionmaker(engine)) as s:
                return await s.scalar(select(Order.status).where(Order.id == order_id))
        finally:
            await engine.dispose()

    assert run(status()) == "paid"
