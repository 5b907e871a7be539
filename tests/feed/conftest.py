"""An HTTP world for the feed routes and pages: two creators with a video each (the second on air),
a shop with a published product, and a buyer (fbuyer0) who follows the live creator and the shop.
Built through the services, then the app's own outbox relay delivers the events to the feed."""

from __future__ import annotations

from pathlib import Path

import pytest
from litestar.testing import TestClient

from tests.feed.world import build
from tests.helpers import run, token_for
from trustlive.config import Settings


async def _seed(url: str, tmp_path: Path) -> dict:
    w = await build(url, tmp_path, creators=2, merchants=1, buyers=1, prefix="f")
    try:
        videos = [await w.video(0, "春天的连衣裙"), await w.video(1, "直播预告")]
        product = await w.product(0, "儿童纯棉连体衣", price=5900)
        room = await w.go_live(1, "今晚上新")
        await w.follow(0, "creator", w.creators[1].id)
        await w.follow(0, "shop", w.shops[0])
        return {
            "videos": videos,
            "product": product,
            "sku": w.skus[product],
            "room": room,
            "shop": w.shops[0],
            "creators": [c.id for c in w.creators],
            "buyer": w.buyers[0].id,
            "ops": w.ops.id,
        }
    finally:
        await w.close()


def drain(client: TestClient) -> None:
    """Deliver what is pending in the outbox now (the relay would within a second)."""
    with client.portal() as portal:
        portal.call(client.app.state.relay.drain)


@pytest.fixture
def seeded(client: TestClient, settings: Settings, tmp_path: Path) -> dict:
    data = run(_seed(settings.database_url, tmp_path))
    drain(client)
    data["headers"] = {name: token_for(client, name) for name in ("fbuyer0", "fops1", "fcreator0")}
    return data
