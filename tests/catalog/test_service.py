"""Service rules that hold for every caller, not only for requests that went through the API."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.helpers import image_bytes
from trustlive.accounts import service as accounts
from trustlive.catalog import service as catalog
from trustlive.catalog.schemas import CategoryIn, OptionIn, ProductIn, ShopIn, SkuIn, SkuPatch
from trustlive.db import create_engine, create_sessionmaker, transaction
from trustlive.errors import ValidationFailed


async def _setup(url: str):  # type: ignore[no-untyped-def]
    engine = create_engine(url)
    sessionmaker = create_sessionmaker(engine)
    hashed = await accounts.hash_password("correct-horse-9")
    async with transaction(sessionmaker) as s:
        ops = await accounts.create_user(s, username="ops1", password_hash=hashed, roles=["ops"])
        owner = await accounts.create_user(s, username="merchant1", password_hash=hashed, roles=["merchant"])
    ops_p = accounts.Principal(ops.id, "ops1", "ops1", frozenset({"ops"}))
    owner_p = accounts.Principal(owner.id, "merchant1", "merchant1", frozenset({"merchant"}))
    async with transaction(sessionmaker) as s:
        category = await catalog.create_category(
            s, ops_p, CategoryIn(slug="kids", name_zh="童装", name_en="Kids")
        )
        shop = await catalog.open_shop(s, owner_p, ShopIn(name="小海豚童装"))
        product = await catalog.create_product(
            s,
            owner_p,
            shop.id,
            ProductIn(title="连体衣", category_id=category.id, skus=[SkuIn(price_fen=5900, stock=3)]),
        )
    return engine, sessionmaker, owner_p, category, shop, product


def test_struct_constraints_apply_to_python_callers(db_url: str) -> None:
    async def scenario() -> list[str]:
        engine, sessionmaker, owner, category, shop, product = await _setup(db_url)
        fields = []
        bad_inputs = [
            ProductIn(title="x" * 500, category_id=category.id, skus=[SkuIn(price_fen=1, stock=1)]),
            ProductIn(title="t", category_id=category.id, skus=[SkuIn(price_fen=1, stock=1, code="C" * 100)]),
            ProductIn(title="t", category_id=category.id, skus=[SkuIn(price_fen=-5, stock=1)]),
            ProductIn(
                title="t",
                category_id=category.id,
                options=[OptionIn(name="尺码", values=["v" * 40])],
                skus=[SkuIn(price_fen=1, stock=1, option_values=["v" * 40])],
            ),
        ]
        try:
            for body in bad_inputs:
                with pytest.raises(ValidationFailed) as info:
                    async with transaction(sessionmaker) as s:
                        await catalog.create_product(s, owner, shop.id, body)
                fields.append(info.value.fields[0].field)
            with pytest.raises(ValidationFailed) as info:
                async with transaction(sessionmaker) as s:
                    sku_id = (await catalog.product_detail(s, owner, product.id)).skus[0].id
                    await catalog.update_sku(s, owner, product.id, sku_id, SkuPatch(code="bad code!"))
            fields.append(info.value.fields[0].field)
        finally:
            await engine.dispose()
        return fields

    assert asyncio.run(scenario()) == [
        "title",
        "skus[0].code",
        "skus[0].price_fen",
        "skus[0].option_values[0]",
        "code",
    ]


def test_uploaded_file_is_removed_when_the_transaction_rolls_back(db_url: str, tmp_path: Path) -> None:
    media = tmp_path / "media"

    async def scenario() -> tuple[list[Path], list[Path]]:
        engine, sessionmaker, owner, _category, _shop, product = await _setup(db_url)
        upload = catalog.Upload("a.png", "image/png", image_bytes())
        try:
            with pytest.raises(RuntimeError):
                async with transaction(sessionmaker) as s:
                    await catalog.add_image(s, owner, product.id, upload, media, 5_000_000)
                    raise RuntimeError("something later in the request failed")
            after_rollback = sorted(media.rglob("*.png"))
            async with transaction(sessionmaker) as s:
                await catalog.add_image(s, owner, product.id, upload, media, 5_000_000)
            after_commit = sorted(media.rglob("*.png"))
        finally:
            await engine.dispose()
        return after_rollback, after_commit

    after_rollback, after_commit = asyncio.run(scenario())
    assert after_rollback == []
    assert len(after_commit) == 1
