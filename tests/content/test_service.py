"""Short videos through the services, on SQLite and PostgreSQL: posting (file or URL), the checks
on uploads by their bytes and size with no orphan file or row, which products a video may link,
editing, hiding, deleting and taking down, exact like counts under concurrency, and what the
feeds read."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import pytest

from tests.content.util import (
    HEIC,
    MP4,
    WEBM,
    VideoWorld,
    events_of,
    fields,
    like_rows,
    link_rows,
    mp4,
    post,
    stored_files,
    video_rows,
    video_world,
)
from tests.helpers import image_bytes, make_settings
from tests.orders.world import principal
from trustlive.accounts import service as accounts
from trustlive.catalog.service import Upload
from trustlive.content import repository as repo
from trustlive.content import service
from trustlive.content.schemas import TakeDownIn, VideoPatch
from trustlive.db import transaction
from trustlive.errors import DomainError
from trustlive.trust import scoring
from trustlive.trust import service as trust


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


async def refused(coro, status: int, code: str | None = None) -> DomainError:  # type: ignore[no-untyped-def]
    with pytest.raises(DomainError) as info:
        await coro
    assert info.value.status_code == status, info.value
    if code is not None:
        assert info.value.code == code, info.value
    return info.value


def scenario(test):  # type: ignore[no-untyped-def]
    """Run ``test(vw)`` in a fresh world, disposing of its engine afterwards."""

    def wrapper(db_url: str, tmp_path: Path) -> None:
        async def go() -> None:
            vw = await video_world(db_url, make_settings(db_url, tmp_path, max_video_bytes=4096))
            try:
                await test(vw)
            finally:
                await vw.w.engine.dispose()  # type: ignore[attr-defined]

        run(go())

    wrapper.__name__ = test.__name__
    wrapper.__doc__ = test.__doc__
    return wrapper


@scenario
async def test_creator_posts_an_uploaded_video(vw: VideoWorld) -> None:
    out = await post(vw, data=fields("  春装上新  ", description="第一条\r\n第二条", product_ids=[vw.own[1], vw.own[0],
                                                                                       vw.own[1]]),
                     video=mp4())  # fmt: skip
    assert (out.title, out.description, out.status, out.source) == (
        "春装上新",
        "第一条\n第二条",
        "published",
        "file",
    )
    assert out.video_type == "video/mp4" and out.playback_url.startswith(f"/media/videos/{vw.creator.id}/")
    assert out.product_ids == [vw.own[1], vw.own[0]] and [p.id for p in out.products] == out.product_ids
    assert out.like_count == 0 and out.liked is False and out.creator_name == "creator1"
    (row,) = await video_rows(vw)
    assert (row.creator_id, row.video_type, row.video_bytes, row.external_url) == (
        vw.creator.id, "video/mp4", len(MP4), None)  # fmt: skip
    stored = vw.settings.media_dir / row.video_path
    assert stored.read_bytes() == MP4 and stored.suffix == ".mp4" and "clip" not in stored.name
    assert (vw.settings.media_dir / row.cover_path).is_file()
    assert len(stored_files(vw.settings.media_dir)) == 2
    assert await link_rows(vw) == [(row.id, vw.own[1], 0), (row.id, vw.own[0], 1)]
    (event,) = await events_of(vw, "content.video_published")
    assert event["video_id"] == row.id and event["creator_id"] == vw.creator.id and event["first"] is True
    assert event["product_ids"] == [vw.own[1], vw.own[0]]

    webm = await post(vw, video=service.video_from_bytes("a.mp4", WEBM))  # the name does not matter
    assert webm.video_type == "video/webm" and webm.playback_url.endswith(".webm")


@scenario
async def test_creator_posts_an_external_video(vw: VideoWorld) -> None:
    url = "https://cdn.example.com/v/春装.mp4?sig=1"
    out = await post(vw, data=fields(video_url=f"  {url} "))
    assert (out.source, out.playback_url, out.video_type) == ("external", url, None)
    (row,) = await video_rows(vw)
    assert row.video_path is None and row.external_url == url and row.video_bytes is None
    assert len(stored_files(vw.settings.media_dir)) == 1  # the cover only


@scenario
async def test_bad_uploads_store_nothing(vw: VideoWorld) -> None:
    """Wrong bytes (whatever the name), too big (known size or only found while copying), both or
    neither source, a bad URL, no cover or a cover that is not an image, bad titles: each refused
    with its code; no row, no file, no event."""
    png_as_mp4 = service.video_from_bytes("clip.mp4", image_bytes("PNG"))
    await refused(post(vw, video=png_as_mp4), 415, "bad_video_type")
    await refused(post(vw, video=service.video_from_bytes("photo.mp4", HEIC)), 415, "bad_video_type")
    await refused(post(vw, video=service.video_from_bytes("x.mp4", b"")), 415, "bad_video_type")
    await refused(post(vw, video=service.video_from_bytes("x.mkv", WEBM.replace(b"webm", b"matroska"))), 415)
    await refused(post(vw, video=mp4(extra=4096)), 413, "video_too_large")
    unknown_size = service.VideoUpload("big.mp4", service.BytesFile(MP4 + b"\0" * 5000))
    await refused(post(vw, video=unknown_size), 413, "video_too_large")
    at_limit = service.VideoUpload("ok.mp4", service.BytesFile(MP4 + b"\0" * (4096 - len(MP4))))
    await refused(
        post(vw, data=fields(video_url="https://a.example/v.mp4"), video=at_limit), 422, "video_source"
    )
    await refused(post(vw), 422, "video_source")
    for url in ("ftp://a.example/v.mp4", "javascript:alert(1)", "https://", "https://u:p@a.example/v",
                "https://a.example/" + "v" * 490, "https://a.example/a b", "http://a.example:99999/"):  # fmt: skip
        await refused(post(vw, data=fields(video_url=url)), 422)
    await refused(post(vw, data=fields(video_url="ftp://a.example/v.mp4")), 422, "bad_video_url")
    await refused(post(vw, video=mp4(), use_cover=False), 422, "cover_required")
    await refused(post(vw, video=mp4(), cover_=Upload("c.png", "image/png", MP4)), 415)
    for title in ("", "   ", "\x00\x01", "长" * 81):
        await refused(post(vw, data=fields(title), video=mp4()), 422)
    await refused(post(vw, data=fields(description="d" * 1001), video=mp4()), 422)
    assert await video_rows(vw) == [] and await link_rows(vw) == []
    assert stored_files(vw.settings.media_dir) == [] and await events_of(vw, "content.video_published") == []
    # Exactly at the limit is fine.
    assert (await post(vw, video=at_limit)).video_type == "video/mp4"


@scenario
async def test_a_failure_after_the_file_is_written_leaves_no_file(vw: VideoWorld) -> None:
    original = repo.set_products

    async def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("the database went away")

    repo.set_products = broken  # type: ignore[assignment]
    try:
        with pytest.raises(RuntimeError):
            await post(vw, video=mp4())
    finally:
        repo.set_products = original  # type: ignore[assignment]
    assert await video_rows(vw) == [] and stored_files(vw.settings.media_dir) == []


@scenario
async def test_which_products_a_video_may_link(vw: VideoWorld) -> None:
    """The live domain's rule: own shops' published products always; another shop's only while
    alliance-eligible; drafts and missing products never; at most 20."""
    bad = await refused(post(vw, data=fields(video_url="https://a.example/v", product_ids=[vw.own[0], vw.draft])),
                        422, "product_not_available")  # fmt: skip
    assert [f.field for f in bad.fields] == ["product_ids[1]"]
    await refused(post(vw, data=fields(video_url="https://a.example/v", product_ids=[2**40])), 422,
                  "product_not_available")  # fmt: skip
    await refused(post(vw, data=fields(video_url="https://a.example/v", product_ids=list(range(1, 22)))), 422,
                  "too_many_products")  # fmt: skip
    before = trust.config()
    trust.configure(scoring.load({"effects": {"alliance_allow_new": False}}))
    try:
        refusal = await refused(
            post(vw, data=fields(video_url="https://a.example/v", product_ids=[vw.own[0], vw.alliance])), 409,
            "alliance_not_eligible",
        )  # fmt: skip
        assert [f.field for f in refusal.fields] == ["product_ids[1]"]
        assert await video_rows(vw) == [] and stored_files(vw.settings.media_dir) == []
        mine = await post(vw, data=fields(video_url="https://a.example/v", product_ids=vw.own))
        assert mine.product_ids == vw.own
    finally:
        trust.configure(before)
    # A new creator is alliance-eligible by default (docs/scores.md).
    out = await post(vw, vw.other_creator, fields(video_url="https://a.example/v", product_ids=[vw.alliance]))
    assert out.product_ids == [vw.alliance]
    # Buyers are not creators.
    await refused(post(vw, vw.w.buyers[0], fields(video_url="https://a.example/v")), 403, "role_required")


@scenario
async def test_edit_hide_delete_and_take_down(vw: VideoWorld) -> None:
    v = await post(vw, data=fields(product_ids=[vw.own[0]]), video=mp4())
    buyer, ops, other = vw.w.buyers[0], vw.w.ops, vw.other_creator

    async def call(fn, *args):  # type: ignore[no-untyped-def]
        async with transaction(vw.sm) as s:
            return await fn(s, *args)

    edited = await call(
        service.edit_video, vw.creator, v.id, VideoPatch(title="改个标题", product_ids=vw.own[::-1])
    )
    assert edited.title == "改个标题" and edited.product_ids == vw.own[::-1] and edited.description == ""
    await refused(call(service.edit_video, vw.creator, v.id, VideoPatch()), 422, "nothing_to_change")
    await refused(call(service.edit_video, vw.creator, v.id, VideoPatch(product_ids=[vw.draft])), 422,
                  "product_not_available")  # fmt: skip
    for outsider in (other, ops):
        await refused(call(service.edit_video, outsider, v.id, VideoPatch(title="x")), 403, "not_your_video")
        await refused(call(service.hide_video, outsider, v.id), 403, "not_your_video")
    await refused(call(service.take_down, vw.creator, v.id, TakeDownIn(reason="x")), 403, "ops_only")

    hidden = await call(service.hide_video, vw.creator, v.id)
    assert hidden.status == "hidden"
    await refused(call(service.get_video, None, v.id), 404, "video_not_found")
    await refused(call(service.get_video, buyer, v.id), 404, "video_not_found")
    await refused(call(service.edit_video, other, v.id, VideoPatch(title="x")), 404)  # cannot see it
    assert (await call(service.get_video, ops, v.id)).status == "hidden"
    await refused(call(service.hide_video, vw.creator, v.id), 409, "invalid_transition")
    await refused(call(service.like, ops, v.id), 409, "video_not_published")
    assert (await call(service.unhide_video, vw.creator, v.id)).status == "published"

    down = await call(service.take_down, ops, v.id, TakeDownIn(reason="  搬运他人作品 "))
    assert down.status == "taken_down" and down.taken_down_reason == "搬运他人作品"
    assert (await call(service.get_video, vw.creator, v.id)).taken_down_reason == "搬运他人作品"
    await refused(call(service.get_video, buyer, v.id), 404)
    await refused(call(service.unhide_video, vw.creator, v.id), 409, "taken_down")
    await refused(call(service.delete_video, vw.creator, v.id, vw.settings.media_dir), 409, "taken_down")
    await refused(call(service.take_down, ops, v.id, TakeDownIn(reason="again")), 409, "invalid_transition")
    assert (await call(service.restore, ops, v.id)).status == "published"
    assert (await call(service.get_video, None, v.id)).taken_down_reason is None

    files = stored_files(vw.settings.media_dir)
    assert len(files) == 2
    with pytest.raises(RuntimeError):  # a deletion that rolls back keeps the files
        async with transaction(vw.sm) as s:
            await service.delete_video(s, vw.creator, v.id, vw.settings.media_dir)
            raise RuntimeError("rolled back")
    assert stored_files(vw.settings.media_dir) == files
    await call(service.delete_video, vw.creator, v.id, vw.settings.media_dir)
    assert stored_files(vw.settings.media_dir) == []
    for viewer in (None, vw.creator, ops):
        await refused(call(service.get_video, viewer, v.id), 404, "video_not_found")
    (row,) = await video_rows(vw)
    assert row.status == "deleted"
    hidden_events = await events_of(vw, "content.video_hidden")
    assert [e["status"] for e in hidden_events] == ["hidden", "taken_down", "deleted"]
    published = await events_of(vw, "content.video_published")
    assert [e["first"] for e in published] == [True, False, False]


@scenario
async def test_likes_are_exact_under_concurrency(vw: VideoWorld) -> None:
    """Twelve users like at once, one of them four times; then they all unlike at once, twice
    over. The counter always equals the number of like rows."""
    hashed = await accounts.hash_password("correct-horse-9")
    async with transaction(vw.sm) as s:
        fans = [principal(await accounts.create_user(s, username=f"fan{i:02d}", password_hash=hashed))
                for i in range(12)]  # fmt: skip
    v = await post(vw, data=fields(video_url="https://a.example/v"))

    async def act(fn, who):  # type: ignore[no-untyped-def]
        async with transaction(vw.sm) as s:
            return await fn(s, who, v.id)

    results = await asyncio.gather(*(act(service.like, f) for f in [*fans, fans[0], fans[0], fans[0]]))
    assert all(r.liked for r in results)
    assert sorted(r.like_count for r in results)[-1] == 12
    assert await like_rows(vw, v.id) == 12 and (await video_rows(vw))[0].like_count == 12
    assert len(await events_of(vw, "content.video_liked")) == 12
    async with transaction(vw.sm) as s:
        assert (await service.get_video(s, fans[3], v.id)).liked is True
        assert (await service.get_video(s, vw.w.buyers[0], v.id)).liked is False
        assert (await service.get_video(s, None, v.id)).liked is None

    await asyncio.gather(*(act(service.unlike, f) for f in [*fans[:6], *fans[:6]]))
    assert await like_rows(vw, v.id) == 6 and (await video_rows(vw))[0].like_count == 6
    assert len(await events_of(vw, "content.video_unliked")) == 6
    again = await act(service.unlike, fans[0])
    assert (again.liked, again.like_count) == (False, 6)


@scenario
async def test_what_the_feeds_read(vw: VideoWorld) -> None:
    base = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    made = []
    for i, who in enumerate([vw.creator, vw.other_creator, vw.creator, vw.creator]):
        out = await post(vw, who, fields(f"v{i}", video_url="https://a.example/v", product_ids=[vw.own[0]]
                                         if who is vw.creator else []))  # fmt: skip
        made.append(out.id)
    async with transaction(vw.sm) as s:  # spread them over days: v0 oldest, v3 newest; v2 and v3 at once
        for i, video_id in enumerate(made):
            row = await repo.get_video(s, video_id)
            row.created_at = base + dt.timedelta(days=min(i, 2))
    async with transaction(vw.sm) as s:
        await service.hide_video(s, vw.creator, made[0])
    async with transaction(vw.sm) as s:
        cards = await service.video_cards(s, [*made, 2**40])
        assert sorted(cards) == sorted(made)
        first = cards[made[0]]
        assert (first.status, first.creator_id, first.like_count) == ("hidden", vw.creator.id, 0)
        assert first.cover_url.startswith("/media/videos/") and first.created_at == base

        mine = await service.recent_videos_of(s, [vw.creator.id], limit=10)
        assert [c.id for c in mine] == [made[3], made[2]]  # hidden v0 left out; same time: higher id first
        page = await service.recent_videos_of(s, [vw.creator.id, vw.other_creator.id], limit=2)
        assert [c.id for c in page] == [made[3], made[2]]
        rest = await service.recent_videos_of(
            s, [vw.creator.id, vw.other_creator.id], limit=2, before=(page[-1].created_at, page[-1].id)
        )
        assert [c.id for c in rest] == [made[1]]
        assert await service.recent_videos_of(s, [], limit=5) == []
        fresh = await service.recent_videos(s, since=base + dt.timedelta(days=1), limit=10)
        assert [c.id for c in fresh] == [made[3], made[2], made[1]]
        for bad in ((None, 1), ("2026-11-01", 1), (base.replace(tzinfo=None), 1), (base, "1"), (base,)):
            await refused(service.recent_videos_of(s, [vw.creator.id], limit=5, before=bad), 422)  # type: ignore[arg-type]
        for limit in (0, 501, True):
            await refused(service.recent_videos(s, since=base, limit=limit), 422)
        await refused(service.recent_videos(s, since=base.replace(tzinfo=None), limit=5), 422)
