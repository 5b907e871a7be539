"""Settings, read once from the environment (``TRUSTLIVE_*``).

Every knob has a sensible default so that a fresh clone runs with no configuration: an embedded
SQLite database and media folder under ``./var``, no Redis, a secret key generated on first use.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path

DEFAULT_VAR_DIR = Path("var")


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(f"TRUSTLIVE_{name}")
    return value if value not in (None, "") else default


def _env_int(name: str, default: int, minimum: int | None = None) -> int:
    raw = _env(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise SystemExit(f"TRUSTLIVE_{name} must be an integer, got {raw!r}") from exc
    if minimum is not None and value < minimum:
        raise SystemExit(f"TRUSTLIVE_{name} must be at least {minimum}, got {value}")
    return value


def _choice(name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = (_env(name, default) or default).lower()
    if value not in allowed:
        raise SystemExit(f"TRUSTLIVE_{name} must be one of {', '.join(allowed)}, got {value!r}")
    return value


def _rate(name: str, default: str) -> str:
    """A rate written "N/Ss" (N at once, refilled over S seconds), e.g. 3/6s."""
    import re

    value = _env(name, default) or default
    found = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)\s*s?\s*", value)
    if not found or int(found.group(1)) < 1 or float(found.group(2)) <= 0:
        raise SystemExit(
            f"TRUSTLIVE_{name} must look like 3/6s (3 at once, refilled over 6 s), got {value!r}"
        )
    return value


def _load_secret(var_dir: Path) -> str:
    """Use TRUSTLIVE_SECRET_KEY, else a key persisted in var/ so sessions survive restarts."""
    explicit = _env("SECRET_KEY")
    if explicit:
        return explicit
    path = var_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    var_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    path.write_text(key)
    path.chmod(0o600)
    return key


@dataclass(frozen=True)
class Settings:
    database_url: str
    redis_url: str | None
    secret_key: str
    var_dir: Path
    media_dir: Path
    cookie_secure: str = "auto"  # "auto" (Secure when served over https), "true" or "false"
    session_days: int = 14
    token_days: int = 30
    login_max_failures: int = 5
    login_window_seconds: int = 900
    login_ip_max_failures: int = 50
    max_upload_bytes: int = 5 * 1024 * 1024
    # Short videos (docs/content.md): the largest video file a creator may upload (capped at 2 GiB).
    max_video_bytes: int = 100 * 1024 * 1024
    default_locale: str = "zh_Hans"
    pay_deadline_minutes: int = 15
    auto_confirm_days: int = 10
    ship_within_hours: int = 48
    platform_commission_share_bp: int = 0
    task_interval_seconds: float = 5.0
    # Shared secret of the payment webhooks (HMAC); empty = derived from secret_key.
    payment_webhook_secret: str = ""
    # Shared secret of the tracking webhooks (HMAC); empty = derived from secret_key.
    tracking_webhook_secret: str = ""
    tracking_service: str = "sandbox"  # the parcel tracking service (fulfillment/tracking.py)
    # QC warehouse (docs/inspection.md): hours from a parcel's arrival to its inspection result,
    # the lab's fee per inspection (fen) and who pays it ("shop" or "platform").
    qc_turnaround_hours: int = 48
    qc_fee_fen: int = 2000
    qc_fee_payer: str = "shop"
    # After-sales (docs/aftersales.md): hours the shop has to answer a request before it is
    # approved automatically; days the buyer has to send a return back; days the shop has, once
    # the return has arrived, to refund before it is refunded automatically; days the buyer has
    # to escalate a rejected request to the platform.
    aftersales_response_hours: int = 48
    return_ship_days: int = 7
    return_refund_days: int = 7
    escalation_days: int = 7
    # Reviews: hours after posting during which the buyer may still edit a review.
    review_edit_hours: int = 24
    # Trust scores: curves, weights and effects overriding the defaults (a JSON file; see
    # docs/scores.md), and the hour (Asia/Shanghai) after which the nightly full recompute runs.
    scores_config: str | None = None
    scores_nightly_hour: int = 3
    # The feed's ranking weights (docs/feed.md): a JSON file deep-merged over the defaults.
    feed_config: str | None = None
    # Live rooms, the hub's part (docs/live-protocol.md): comments and counters go out at most
    # once per live_tick_ms per room, state and purchases once per live_state_tick_ms; at most
    # live_comment_cap comments and live_purchase_cap purchases shown per frame; a viewer's queue
    # holds live_queue_frames frames and one lagging over live_slow_limit_s is disconnected;
    # live_history P0/P1 entries are kept for resuming; live_fanout "naive" is only the
    # benchmark's baseline.
    live_tick_ms: int = 100
    live_state_tick_ms: int = 50
    live_comment_cap: int = 20
    live_purchase_cap: int = 10
    live_queue_frames: int = 32
    live_slow_limit_s: int = 10
    live_history: int = 2000
    live_fanout: str = "batched"
    # Live rooms, the domain's part (docs/live.md): a comment's length in characters, the
    # per-user comment rate ("N/Ss": a burst of N, refilled over S seconds), the media server's
    # URL templates ({key} is the session's stream key, {session} its id), and how long a live
    # session may go without a heartbeat before the sweeper ends it.
    live_comment_max_chars: int = 100
    live_comment_rate: str = "3/6s"
    live_media_ingest_base: str = "rtmp://127.0.0.1:1935/live/{key}"
    live_media_playback_base: str = "http://127.0.0.1:8080/hls/{session}.m3u8"
    live_heartbeat_seconds: int = 300
    # Consignment (docs/consignment.md): the creator's fee on a consigned line's base, in bp.
    consignment_fee_bp: int = 300
    debug: bool = False
    extra: dict[str, str] = field(default_factory=dict)

    def with_overrides(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def load_settings() -> Settings:
    var_dir = Path(_env("VAR_DIR", str(DEFAULT_VAR_DIR)) or DEFAULT_VAR_DIR)
    database_url = _env("DATABASE_URL") or f"sqlite+aiosqlite:///{var_dir / 'trustlive.db'}"
    return Settings(
        database_url=normalise_database_url(database_url),
        redis_url=_env("REDIS_URL"),
        secret_key=_load_secret(var_dir),
        var_dir=var_dir,
        media_dir=Path(_env("MEDIA_DIR", str(var_dir / "media")) or var_dir / "media"),
        cookie_secure=(_env("COOKIE_SECURE", "auto") or "auto").lower(),
        session_days=_env_int("SESSION_DAYS", 14),
        token_days=_env_int("TOKEN_DAYS", 30),
        login_max_failures=_env_int("LOGIN_MAX_FAILURES", 5),
        login_window_seconds=_env_int("LOGIN_WINDOW_SECONDS", 900),
        login_ip_max_failures=_env_int("LOGIN_IP_MAX_FAILURES", 50),
        max_upload_bytes=_env_int("MAX_UPLOAD_BYTES", 5 * 1024 * 1024),
        max_video_bytes=min(_env_int("MAX_VIDEO_BYTES", 100 * 1024 * 1024, minimum=1024 * 1024), 2 * 1024**3),
        default_locale=_env("DEFAULT_LOCALE", "zh_Hans") or "zh_Hans",
        pay_deadline_minutes=_env_int("PAY_DEADLINE_MINUTES", 15),
        auto_confirm_days=_env_int("AUTO_CONFIRM_DAYS", 10),
        ship_within_hours=_env_int("SHIP_WITHIN_HOURS", 48),
        platform_commission_share_bp=_env_int("PLATFORM_COMMISSION_SHARE_BP", 0),
        task_interval_seconds=float(_env_int("TASK_INTERVAL_SECONDS", 5)),
        payment_webhook_secret=_env("PAYMENT_WEBHOOK_SECRET", "") or "",
        tracking_webhook_secret=_env("TRACKING_WEBHOOK_SECRET", "") or "",
        tracking_service=_env("TRACKING_SERVICE", "sandbox") or "sandbox",
        qc_turnaround_hours=_env_int("QC_TURNAROUND_HOURS", 48, minimum=1),
        qc_fee_fen=_env_int("QC_FEE_FEN", 2000, minimum=0),
        qc_fee_payer=_choice("QC_FEE_PAYER", "shop", ("shop", "platform")),
        aftersales_response_hours=_env_int("AFTERSALES_RESPONSE_HOURS", 48, minimum=1),
        return_ship_days=_env_int("RETURN_SHIP_DAYS", 7, minimum=1),
        return_refund_days=_env_int("RETURN_REFUND_DAYS", 7, minimum=1),
        escalation_days=_env_int("ESCALATION_DAYS", 7, minimum=1),
        review_edit_hours=_env_int("REVIEW_EDIT_HOURS", 24, minimum=0),
        scores_config=_env("SCORES_CONFIG"),
        scores_nightly_hour=_env_int("SCORES_NIGHTLY_HOUR", 3, minimum=0),
        feed_config=_env("FEED_CONFIG"),
        live_tick_ms=_env_int("LIVE_TICK_MS", 100, minimum=10),
        live_state_tick_ms=_env_int("LIVE_STATE_TICK_MS", 50, minimum=5),
        live_comment_cap=_env_int("LIVE_COMMENT_CAP", 20, minimum=1),
        live_purchase_cap=_env_int("LIVE_PURCHASE_CAP", 10, minimum=1),
        live_queue_frames=_env_int("LIVE_QUEUE_FRAMES", 32, minimum=2),
        live_slow_limit_s=_env_int("LIVE_SLOW_LIMIT_S", 10, minimum=1),
        live_history=_env_int("LIVE_HISTORY", 2000, minimum=10),
        live_fanout=_choice("LIVE_FANOUT", "batched", ("batched", "naive")),
        live_comment_max_chars=_env_int("LIVE_COMMENT_MAX_CHARS", 100, minimum=1),
        live_comment_rate=_rate("LIVE_COMMENT_RATE", "3/6s"),
        live_media_ingest_base=_env("LIVE_MEDIA_INGEST_BASE", "rtmp://127.0.0.1:1935/live/{key}")
        or "rtmp://127.0.0.1:1935/live/{key}",
        live_media_playback_base=_env("LIVE_MEDIA_PLAYBACK_BASE", "http://127.0.0.1:8080/hls/{session}.m3u8")
        or "http://127.0.0.1:8080/hls/{session}.m3u8",
        live_heartbeat_seconds=_env_int("LIVE_HEARTBEAT_SECONDS", 300, minimum=10),
        consignment_fee_bp=min(_env_int("CONSIGNMENT_FEE_BP", 300, minimum=0), 10_000),
        debug=(_env("DEBUG", "0") or "0") in ("1", "true", "yes"),
    )


def normalise_database_url(url: str) -> str:
    """Accept the usual spellings and pick the async driver we ship."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+asyncpg://" + url[len("postgresql://") :]
    if url.startswith("sqlite:///"):
        url = "sqlite+aiosqlite:///" + url[len("sqlite:///") :]
    return url
