"""Callers of concurrent requests are looked up together, and each gets exactly its own."""

from __future__ import annotations

import asyncio

from sqlalchemy import event

from trustlive.accounts import service as accounts
from trustlive.db import create_engine, create_read_sessionmaker, create_sessionmaker, transaction


def test_concurrent_lookups_share_queries_and_each_gets_its_own(db_url: str) -> None:
    async def scenario() -> None:
        engine = create_engine(db_url)
        sessionmaker = create_sessionmaker(engine)
        hashed = await accounts.hash_password("correct-horse-9")
        tokens: dict[str, str] = {}
        async with transaction(sessionmaker) as s:
            for name in ("ana", "bob", "cai"):
                user = await accounts.create_user(s, username=name, password_hash=hashed)
                tokens[name], _ = await accounts.open_session(s, user, kind="api", days=1)
        async with transaction(sessionmaker) as s:
            await accounts.sign_out(s, tokens["cai"])  # revoked: must not resolve
        queries = 0

        @event.listens_for(engine.sync_engine, "before_cursor_execute")
        def count(*_args) -> None:  # type: ignore[no-untyped-def]
            nonlocal queries
            queries += 1

        loader = accounts.PrincipalLoader(create_read_sessionmaker(engine))
        try:
            asked = [tokens["ana"], tokens["bob"], tokens["cai"], "tl_unknown", "", "x" * 500] * 20
            found = await asyncio.gather(*(loader.resolve(t) for t in asked))
            names = [p.username if p else None for p in found]
            assert names == ["ana", "bob", None, None, None, None] * 20
            assert found[0].session_kind == "api"  # type: ignore[union-attr]
            assert queries <= 2, queries  # 80 lookups with a token to check, one or two queries
            # Idle: a lone request is answered at once, and sees a revocation made meanwhile.
            async with transaction(sessionmaker) as s:
                await accounts.sign_out(s, tokens["bob"])
            assert await loader.resolve(tokens["bob"]) is None
            assert (await loader.resolve(tokens["ana"])).username == "ana"  # type: ignore[union-attr]
        finally:
            await engine.dispose()

    asyncio.run(scenario())
