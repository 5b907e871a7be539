"""The facts' round trip through the database, on SQLite and PostgreSQL: what the full recompute
reads back (on PostgreSQL packed, two timestamps to a field, in parallel parts) is exactly what
was stored, at the edges of every packed field's range."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np

from tests.helpers import run
from trustlive.db import create_engine, create_sessionmaker, transaction
from trustlive.trust import repository as repo
from trustlive.trust.models import TrustFact
from trustlive.trust.scoring import FACT_COLUMNS

TS = [c for c in FACT_COLUMNS if c.endswith("_ts")]
EDGES = [0, 1, 2**31 - 1, 2**31, 2**31 + 1, 1_796_000_000, 2**32 - 1]  # 2**32 - 1: early 2106


def _rows(n: int) -> list[dict[str, int]]:
    rnd = random.Random(5)
    rows = []
    for i in range(1, n + 1):
        row = {"line_id": i, "order_id": i, "shop_id": rnd.randint(1, 2**40), "product_id": i,
               "creator_id": rnd.choice([0, 7, 2**40 + 3]), "category_id": rnd.randint(0, 9),
               "rating_product": rnd.randint(0, 5), "rating_service": rnd.randint(0, 5),
               "inspection_failed": rnd.randint(0, 1), "aftersales_s": rnd.randint(0, 2**40)}  # fmt: skip
        for name in TS:
            row[name] = rnd.choice(EDGES) if rnd.random() < 0.5 else rnd.randint(0, 2**32 - 1)
        row["last_ts"] = 2**32 - 1 if i % 2 else max(row[n] for n in TS)  # every row inside the window
        rows.append(row)
    return rows


def test_the_window_reads_back_every_value_stored(db_url: str, tmp_path: Path) -> None:
    rows = _rows(3000)

    async def scenario() -> None:
        engine = create_engine(db_url)
        try:
            async with transaction(create_sessionmaker(engine)) as session:
                await session.execute(TrustFact.__table__.insert(), rows)
            async with transaction(create_sessionmaker(engine)) as session:
                got = await repo.facts_window(session, 0)
        finally:
            await engine.dispose()
        # The order rows come back in is the table's; compare sorted by product (= line) id.
        order = np.argsort(got["product_id"])
        assert sorted(got) == sorted(FACT_COLUMNS)
        for name in FACT_COLUMNS:
            assert got[name][order].tolist() == [r[name] for r in rows], name
            assert got[name].dtype == np.int64

    run(scenario())
