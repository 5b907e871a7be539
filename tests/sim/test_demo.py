"""The demo world: made through the services, the same every time, with the promised personas."""

from __future__ import annotations

import io
import itertools
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from PIL import Image

from tests.helpers import make_settings, run
from tests.sim.world import fingerprint
from trustlive.accounts import service as accounts
from trustlive.catalog import service as catalog
from trustlive.db import create_engine, create_sessionmaker, transaction
from trustlive.sim import demo

BUYERS = 25
T = TypeVar("T")


async def _seed(url: str, media_dir: Path, buyers: int = BUYERS) -> tuple[str, list[tuple[str, int, int]]]:
    calls: list[tuple[str, int, int]] = []
    engine = create_engine(url)
    try:
        summary = await demo.seed_demo(
            create_sessionmaker(engine),
            media_dir=media_dir,
            buyers=buyers,
            progress=lambda stage, done, total: calls.append((stage, done, total)),
        )
    finally:
        await engine.dispose()
    return summary, calls


def seed(url: str, media_dir: Path, buyers: int = BUYERS) -> tuple[str, list[tuple[str, int, int]]]:
    return run(_seed(url, media_dir, buyers))


def within(url: str, work: Callable[[Any], Awaitable[T]]) -> T:
    """Run ``work(session)`` in one transaction on ``url``."""

    async def go() -> T:
        engine = create_engine(url)
        try:
            async with transaction(create_sessionmaker(engine)) as session:
                return await work(session)
        finally:
            await engine.dispose()

    return run(go())


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def test_seeding_twice_gives_the_same_world(db_url: str, tmp_path: Path) -> None:
    media = tmp_path / "media"
    first_summary, calls = seed(db_url, media)
    first = run(fingerprint(db_url))
    first_files = files_under(media)

    second_summary, _ = seed(db_url, media)
    second = run(fingerprint(db_url))

    assert second == first
    assert files_under(media) == first_files  # no new uploads either
    assert "created now: nothing" in second_summary
    assert "created now: nothing" not in first_summary

    counts = first["counts"]
    personas = len({name for name, _, _ in demo.DEMO_LOGINS} - {"buyer0001"})
    assert counts["users"] == personas + BUYERS
    assert counts["shops"] == 6
    assert counts["categories"] == len(demo.CATEGORIES)
    assert counts["product_images"] == counts["products"]  # one picture each
    # A shop's logo plus one file per product picture, and the covers of its creator's two demo
    # videos (docs/content.md), nothing else.
    assert len(first_files) == counts["products"] + counts["shops"] + 2 * counts["shops"]
    # Progress goes through every stage and ends complete.
    final = {stage: (done, total) for stage, done, total in calls}
    assert final["buyers"] == (BUYERS, BUYERS)
    assert all(done == total for done, total in final.values())


def test_seeding_more_buyers_later_keeps_the_first_ones(db_url: str, tmp_path: Path) -> None:
    seed(db_url, tmp_path / "media", buyers=5)
    few = dict(run(fingerprint(db_url))["users"])
    seed(db_url, tmp_path / "media", buyers=12)
    more = dict(run(fingerprint(db_url))["users"])
    assert {k: v for k, v in more.items() if k in few} == few
    assert sorted(k for k in more if k.startswith("buyer")) == [f"buyer{i:04d}" for i in range(1, 13)]


def test_personas_roles_and_staff(db_url: str, tmp_path: Path) -> None:
    seed(db_url, tmp_path / "media")
    world = run(fingerprint(db_url))
    roles: dict[str, set[str]] = {}
    for username, role in world["roles"]:
        roles.setdefault(username, set()).add(role)

    for username, _, listed in demo.DEMO_LOGINS:
        assert roles[username] == set(listed), username
    assert roles["ops"] == {"buyer", "ops"}
    assert roles["inspector"] == {"buyer", "inspector"}
    assert roles["care"] == {"buyer", "care_specialist"}
    assert roles["laodu"] == {"buyer", "creator", "merchant"}
    assert roles["mianlifang"] == {"buyer", "creator", "merchant"}
    assert roles["consignor_lei"] == {"buyer"}

    staff = {(shop, user, role) for shop, user, role in world["staff"]}
    assert ("mianlifang-home", "mianlifang", "owner") in staff
    assert ("mianlifang-home", "mlf_director", "staff") in staff
    assert ("mianlifang-home", "mlf_service", "staff") in staff
    assert ("meijie-family", "meijie_yu", "staff") in staff
    assert ("laodu-jade", "laodu", "owner") in staff

    # Every shop takes returns at an address of its own; two pay return postage for no-reason returns.
    for persona in demo.PERSONAS:
        if persona.shop is None:
            continue
        terms = within(db_url, lambda s, slug=persona.shop.slug: _terms(s, slug))
        assert terms.return_address and terms.return_address["recipient"], persona.shop.slug
        assert terms.covers_return_shipping == (persona.shop.slug in {"xiaohaitun-kids", "mianlifang-home"})

    # ~88k fans lives in the jade shop's description until follower counts exist.
    shop = within(db_url, lambda s: catalog.get_shop_by_slug(s, "laodu-jade"))
    assert "8.8万粉丝" in shop.description and "88,000" in shop.description

    buyers = sorted((u, n) for u, n in world["users"] if re.fullmatch(r"buyer\d{4}", u))
    assert [u for u, _ in buyers] == [f"buyer{i:04d}" for i in range(1, BUYERS + 1)]
    assert all(re.search(r"[\u4e00-\u9fff]", name) for _, name in buyers)


async def _terms(session: Any, slug: str) -> Any:
    from trustlive.orders import service as orders

    shop = await catalog.get_shop_by_slug(session, slug)
    return await orders.get_shop_terms(session, shop.id, private=True)


def test_everyone_signs_in_with_the_demo_password(db_url: str, tmp_path: Path) -> None:
    seed(db_url, tmp_path / "media", buyers=2)
    settings = make_settings(db_url, tmp_path)

    async def sign_in(username: str) -> set[str]:
        engine = create_engine(db_url)
        try:
            sessionmaker = create_sessionmaker(engine)
            _, principal = await accounts.sign_in(
                sessionmaker,
                accounts.DatabaseThrottle(sessionmaker, 900),
                settings,
                username=username,
                password=demo.DEMO_PASSWORD,
                client_ip="127.0.0.1",
                kind="api",
            )
            return set(principal.roles)
        finally:
            await engine.dispose()

    assert run(sign_in("laodu")) == {"buyer", "creator", "merchant"}
    assert run(sign_in("buyer0002")) == {"buyer"}


def test_categories_carry_their_policies(db_url: str, tmp_path: Path) -> None:
    seed(db_url, tmp_path / "media", buyers=0)
    categories = {c.slug: c for c in within(db_url, lambda s: catalog.list_categories(s))}
    for slug in ("jade", "hetian-jade", "jadeite", "jewellery"):
        assert categories[slug].requires_inspection, slug
    assert categories["jade"].service_fee_bp == 500
    for slug in ("porcelain", "kids-clothing", "furniture", "mattresses"):
        assert not categories[slug].requires_inspection, slug
    assert categories["custom-made"].return_window_days == 0
    assert categories["fresh-food"].return_window_days == 0
    assert categories["porcelain"].return_window_days == 7
    assert categories["mattresses"].parent_id == categories["furniture"].id
    assert categories["hetian-jade"].parent_id == categories["jade"].id
    assert len({c.service_fee_bp for c in categories.values()}) >= 4


def _details(db_url: str, shop_slug: str) -> list[Any]:
    async def work(session: Any) -> list[Any]:
        shop = await catalog.get_shop_by_slug(session, shop_slug)
        owner = await accounts.get_user(session, shop.owner_id)
        principal = accounts.Principal(owner.id, owner.username, owner.display_name, frozenset({"merchant"}))
        cards = await catalog.shop_products(
            session, principal, shop.id, after_id=None, limit=100, include_unpublished=True
        )
        return [await catalog.product_detail(session, principal, card.id) for card in cards]

    return within(db_url, work)


def test_shops_products_skus_and_pictures(db_url: str, tmp_path: Path) -> None:
    media = tmp_path / "media"
    seed(db_url, media, buyers=0)
    shops = [p.shop.slug for p in demo.PERSONAS if p.shop]
    assert len(shops) == 6
    by_title: dict[str, Any] = {}
    for slug in shops:
        products = _details(db_url, slug)
        assert 4 <= len(products) <= 10, slug
        assert [p.status for p in products].count("draft") == 1, slug
        assert sum(1 for p in products if p.options) >= 4, slug  # one-off pieces may have none
        for product in products:
            by_title[product.title] = product
            assert product.skus and all(s.price_fen > 0 and s.stock >= 0 for s in product.skus)
            assert len(product.images) == 1, product.title
            image = product.images[0]
            assert image.byte_size < 100_000
            data = (media / image.url.removeprefix("/media/")).read_bytes()
            assert len(data) == image.byte_size
            with Image.open(io.BytesIO(data)) as picture:
                assert picture.format == "JPEG" and picture.size == (image.width, image.height)

    mattress = by_title["眠立方立方体床垫 1.8米 左右分区软硬可选"]
    assert mattress.status == "published"
    assert [o.name for o in mattress.options] == ["左侧软硬", "右侧软硬"]
    firmness = ["软", "适中", "硬"]
    assert all(o.values == firmness for o in mattress.options)
    assert len(mattress.skus) == 9
    assert sorted(tuple(s.option_values) for s in mattress.skus) == sorted(
        itertools.product(firmness, firmness)
    )
    assert (
        3_999_00
        <= min(s.price_fen for s in mattress.skus)
        <= max(s.price_fen for s in mattress.skus)
        <= 6_999_00
    )

    pyjamas = by_title["A类纯棉儿童家居服套装"]
    assert pyjamas.options[0].values == ["73", "80", "90", "100", "110", "120", "130", "140", "150", "160"]
    assert len(pyjamas.options[1].values) >= 2  # colours
    assert len(pyjamas.skus) == 10 * len(pyjamas.options[1].values)

    bodysuit = by_title["A类纯棉婴儿连体衣 爬服"]
    assert (
        min(s.price_fen for s in bodysuit.skus) >= 59_00 and max(s.price_fen for s in bodysuit.skus) <= 129_00
    )

    bangle = by_title["新疆和田玉手镯 籽料 青白玉/白玉/羊脂白玉"]
    assert bangle.requires_inspection
    prices = [s.price_fen for s in bangle.skus]
    assert min(prices) == 1_280_00 and max(prices) == 38_000_00

    assert by_title["定制刻字主人杯"].return_window_days == 0
    assert by_title["定制尺寸床垫"].return_window_days == 0
    codes = [s.code for p in by_title.values() for s in p.skus]
    assert len(codes) == len(set(codes))


def test_chinese_search_finds_the_seeded_products(db_url: str, tmp_path: Path) -> None:
    seed(db_url, tmp_path / "media", buyers=0)

    def titles(query: str) -> list[str]:
        return [c.title for c in within(db_url, lambda s: catalog.search(s, query, limit=50))]

    assert "眠立方立方体床垫 1.8米 左右分区软硬可选" in titles("床垫")
    assert "眠立方立方体床垫 1.5米 左右分区软硬可选" not in titles("床垫")  # the draft stays hidden
    found = titles("和田玉")
    assert "新疆和田玉手镯 籽料 青白玉/白玉/羊脂白玉" in found
    assert "和田玉碧玉手镯 菠菜绿" not in found  # draft
    assert "19姆米桑蚕丝真丝衬衫 女" in titles("真丝")
    assert "A类纯棉儿童家居服套装" in titles("童装")  # by category name
    assert "手绘青花梅瓶 山水纹" in titles("青花")


async def _story_states(url: str) -> dict[str, Any]:
    """What the stories left, read straight from the tables."""
    from sqlalchemy import func, select

    from trustlive.aftersales.models import AftersalesRequest
    from trustlive.care.models import CareCase
    from trustlive.fulfillment.models import QcCase
    from trustlive.orders.models import Order
    from trustlive.reviews.models import Review

    engine = create_engine(url)
    try:
        async with transaction(create_sessionmaker(engine)) as s:
            return {
                "orders": sorted(
                    (await s.execute(select(Order.status, func.count()).group_by(Order.status))).all()
                ),
                "qc": sorted((await s.execute(select(QcCase.status))).scalars()),
                "reviews": await s.scalar(select(func.count()).select_from(Review)),
                "requests": sorted(
                    (await s.execute(select(AftersalesRequest.reason, AftersalesRequest.status))).all()
                ),
                "care": sorted((await s.execute(select(CareCase.status, CareCase.priority))).all()),
            }
    finally:
        await engine.dispose()


def test_the_demo_stories_fill_every_console_once(db_url: str, tmp_path: Path) -> None:
    settings = make_settings(db_url, tmp_path)

    async def seed_with_stories() -> str:
        engine = create_engine(db_url)
        try:
            return await demo.seed_demo(
                create_sessionmaker(engine), media_dir=tmp_path / "media", buyers=3, settings=settings
            )
        finally:
            await engine.dispose()

    run(seed_with_stories())
    first = run(_story_states(db_url))
    assert first == {
        # The jade bangle is on its way to the lab; two pendants bought in Lao Du's room wait for him.
        "orders": [("completed", 3), ("paid", 2), ("shipped", 1)],
        "qc": ["inbound"],
        "reviews": 1,
        "requests": [("no_reason", "pending"), ("quality", "escalated")],
        "care": [("open", "high")],
    }
    assert "created now: nothing" in run(seed_with_stories())
    assert run(_story_states(db_url)) == first
