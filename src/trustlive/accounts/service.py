"""Account use cases: registration, sign-in, sessions and tokens, roles."""

from __future__ import annotations

import abc
import asyncio
import datetime as dt
import hashlib
import os
import re
import secrets
from dataclasses import dataclass, field

import anyio.to_thread
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from trustlive import events
from trustlive.accounts import repository as repo
from trustlive.accounts.models import SELF_SERVICE_ROLES, AuthSession, Role, User
from trustlive.config import Settings
from trustlive.db import transaction, utcnow
from trustlive.errors import (
    Conflict,
    Forbidden,
    NotFound,
    TooManyRequests,
    Unauthorized,
    ValidationFailed,
)

ALL_ROLES = frozenset(r.value for r in Role)
USERNAME_RE = re.compile(r"^[a-z0-9_][a-z0-9_.-]{2,31}$")
PASSWORD_MIN, PASSWORD_MAX = 8, 128
MAX_PAGE = 1000  # rows per listing call, whoever the caller is
MAX_TOKEN_LENGTH = 200


def _make_hasher() -> PasswordHasher:
    """argon2id with the library's defaults; TRUSTLIVE_ARGON2_TIME_COST / _MEMORY_KIB / _PARALLELISM
    tune it (the test suite lowers the cost; hashes made with other settings are upgraded at the
    next sign-in)."""
    defaults = PasswordHasher()
    return PasswordHasher(
        time_cost=int(os.environ.get("TRUSTLIVE_ARGON2_TIME_COST", defaults.time_cost)),
        memory_cost=int(os.environ.get("TRUSTLIVE_ARGON2_MEMORY_KIB", defaults.memory_cost)),
        parallelism=int(os.environ.get("TRUSTLIVE_ARGON2_PARALLELISM", defaults.parallelism)),
    )


_hasher = _make_hasher()
# Verified against when the username does not exist, so both paths cost the same time.
_DUMMY_HASH = _hasher.hash("not-a-real-password")


@dataclass(frozen=True)
class Principal:
    """Who is asking. Passed from the web layer into every service that checks permissions."""

    id: int
    username: str
    display_name: str
    roles: frozenset[str] = field(default_factory=frozenset)
    session_kind: str = "web"

    def has(self, *roles: str) -> bool:
        return bool(self.roles.intersection(roles))

    @property
    def is_ops(self) -> bool:
        return Role.ops in self.roles


# --- passwords -------------------------------------------------------------------------------


async def hash_password(password: str) -> str:
    # Argon2 is deliberately slow: keep it off the event loop.
    return await anyio.to_thread.run_sync(_hasher.hash, password)


def hash_password_sync(password: str) -> str:
    return _hasher.hash(password)


async def _verify(password_hash: str, password: str) -> bool:
    def check() -> bool:
        try:
            return _hasher.verify(password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    return await anyio.to_thread.run_sync(check)


def normalise_username(username: str) -> str:
    return username.strip().lower()


def validate_username(username: str) -> str:
    name = normalise_username(username)
    if not USERNAME_RE.match(name):
        raise ValidationFailed(
            "username: 3-32 characters, letters, digits, '_', '.' or '-'", field="username"
        )
    return name


def validate_password(password: str) -> str:
    if not (PASSWORD_MIN <= len(password) <= PASSWORD_MAX):
        raise ValidationFailed(f"password: {PASSWORD_MIN}-{PASSWORD_MAX} characters", field="password")
    return password


def validate_display_name(name: str) -> str:
    name = name.strip()
    if not (1 <= len(name) <= 64):
        raise ValidationFailed("display_name: 1-64 characters", field="display_name")
    return name


def check_roles(roles: list[str] | tuple[str, ...], *, allowed: frozenset[str] = ALL_ROLES) -> list[str]:
    unknown = [r for r in roles if r not in ALL_ROLES]
    if unknown:
        raise ValidationFailed(f"roles: unknown role {unknown[0]!r}", field="roles")
    refused = [r for r in roles if r not in allowed]
    if refused:
        raise Forbidden(f"role {refused[0]!r} can only be granted by ops", code="role_not_self_service")
    return sorted(set(roles))


# --- users -----------------------------------------------------------------------------------


async def create_user(
    session: AsyncSession,
    *,
    username: str,
    password: str | None = None,
    password_hash: str | None = None,
    display_name: str | None = None,
    roles: list[str] | tuple[str, ...] = (),
    granted_by_id: int | None = None,
) -> User:
    """Create an account. Every account can buy; other roles are added as given."""
    name = validate_username(username)
    if password_hash is None:
        password_hash = await hash_password(validate_password(password or ""))
    wanted = check_roles([Role.buyer, *roles])
    if await repo.username_taken(session, name):
        raise Conflict("username: already taken", field="username", code="username_taken")
    user = User(
        username=name,
        display_name=validate_display_name(display_name or name),
        password_hash=password_hash,
    )
    session.add(user)
    try:
        await session.flush()
    except IntegrityError as exc:  # lost a race for the same name
        raise Conflict("username: already taken", field="username", code="username_taken") from exc
    for role in wanted:
        await repo.add_role(session, user.id, role, granted_by_id)
    events.record(session, "accounts.user_registered", {"user_id": user.id, "roles": wanted})
    return user


async def register(
    session: AsyncSession, *, username: str, password: str, display_name: str, roles: list[str]
) -> User:
    """Self-service sign-up: buyer always, plus creator and/or merchant if asked."""
    check_roles(roles, allowed=SELF_SERVICE_ROLES)
    return await create_user(
        session, username=username, password=password, display_name=display_name, roles=roles
    )


async def get_user(session: AsyncSession, user_id: int) -> User:
    user = await repo.get_user(session, user_id)
    if user is None:
        raise NotFound(f"user {user_id} not found", code="user_not_found")
    return user


async def users_by_ids(session: AsyncSession, user_ids: list[int]) -> dict[int, User]:
    return await repo.users_by_ids(session, user_ids)


async def display_names(session: AsyncSession, user_ids: list[int]) -> dict[int, str]:
    """Id -> display name, leaving out ids that do not exist."""
    return await repo.display_names(session, user_ids)


async def get_user_by_username(session: AsyncSession, username: str) -> User:
    user = await repo.get_user_by_username(session, normalise_username(username))
    if user is None:
        raise NotFound(f"user {username!r} not found", code="user_not_found", field="username")
    return user


async def roles_of(session: AsyncSession, user_id: int) -> set[str]:
    return await repo.roles_of(session, user_id)


async def roles_of_many(session: AsyncSession, user_ids: list[int]) -> dict[int, set[str]]:
    return await repo.roles_of_many(session, user_ids)


async def list_users(
    session: AsyncSession,
    actor: Principal,
    *,
    query: str | None = None,
    role: str | None = None,
    after_id: int | None = None,
    limit: int = 20,
) -> list[tuple[User, set[str]]]:
    _require_ops(actor)
    if role is not None:
        check_roles([role])
    limit = max(1, min(limit, MAX_PAGE))
    users = await repo.list_users(session, query=query, role=role, after_id=after_id, limit=limit)
    roles = await repo.roles_of_many(session, [u.id for u in users])
    return [(u, roles[u.id]) for u in users]


async def grant_role(session: AsyncSession, actor: Principal, user_id: int, role: str) -> set[str]:
    _require_ops(actor)
    check_roles([role])
    await get_user(session, user_id)
    if await repo.add_role(session, user_id, role, actor.id):
        events.record(session, "accounts.role_granted", {"user_id": user_id, "role": role, "by": actor.id})
    return await repo.roles_of(session, user_id)


async def revoke_role(session: AsyncSession, actor: Principal, user_id: int, role: str) -> set[str]:
    _require_ops(actor)
    check_roles([role])
    await get_user(session, user_id)
    if role == Role.buyer:
        raise ValidationFailed("role: every account keeps the buyer role", field="role")
    if role == Role.ops and user_id == actor.id:
        raise Conflict("role: ops cannot remove their own ops role", field="role", code="self_demotion")
    if await repo.remove_role(session, user_id, role):
        events.record(session, "accounts.role_revoked", {"user_id": user_id, "role": role, "by": actor.id})
    return await repo.roles_of(session, user_id)


def _require_ops(actor: Principal) -> None:
    if not actor.is_ops:
        raise Forbidden("only ops can do this", code="ops_only")


# --- sessions and tokens ---------------------------------------------------------------------


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def open_session(
    session: AsyncSession, user: User, *, kind: str, days: int, user_agent: str | None = None
) -> tuple[str, AuthSession]:
    token = "tl_" + secrets.token_urlsafe(32)
    row = AuthSession(
        user_id=user.id,
        token_hash=_token_hash(token),
        kind=kind,
        expires_at=utcnow() + dt.timedelta(days=days),
        user_agent=(user_agent or "")[:255] or None,
    )
    session.add(row)
    user.last_login_at = utcnow()
    await session.flush()
    return token, row


async def principals_for_tokens(session: AsyncSession, tokens: list[str]) -> dict[str, Principal]:
    """The live, active callers behind these tokens (unknown, expired and revoked ones are absent)."""
    hashes = {_token_hash(t): t for t in tokens if t and len(t) <= MAX_TOKEN_LENGTH}
    if not hashes:
        return {}
    rows = await repo.principal_rows(session, list(hashes), utcnow())
    return {
        hashes[h]: Principal(uid, username, display, frozenset(r for r in roles.split(",") if r), kind)
        for h, (uid, username, display, kind, roles) in rows.items()
    }


async def acting_as(session: AsyncSession, username: str) -> Principal:
    """The account ``username`` as a caller with its roles, for scripts that act as people (the
    demo's stories); 404 when there is none."""
    user = await get_user_by_username(session, username)
    return Principal(user.id, user.username, user.display_name, frozenset(await roles_of(session, user.id)))


class PrincipalLoader:
    """Resolves the callers of concurrent requests together: while one lookup query runs, the
    tokens that arrive meanwhile queue up and go in the next one. Under load a worker makes one
    round trip for many requests instead of one each; when idle a request waits for nobody.
    Nothing is cached: a revoked token stops working at the next request."""

    MAX_BATCH = 500

    def __init__(self, read_sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.sessionmaker = read_sessionmaker
        self._pending: dict[str, list[asyncio.Future[Principal | None]]] = {}
        self._task: asyncio.Task[None] | None = None

    async def resolve(self, token: str | None) -> Principal | None:
        if not token or len(token) > MAX_TOKEN_LENGTH:
            return None
        future: asyncio.Future[Principal | None] = asyncio.get_running_loop().create_future()
        self._pending.setdefault(token, []).append(future)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        await asyncio.sleep(0)  # let the requests of this loop turn join the first batch
        while self._pending:
            tokens = list(self._pending)[: self.MAX_BATCH]
            batch = {t: self._pending.pop(t) for t in tokens}
            found: dict[str, Principal] | BaseException = RuntimeError("caller lookup interrupted")
            try:
                async with self.sessionmaker() as session:
                    found = await principals_for_tokens(session, tokens)
            except Exception as exc:  # the waiting requests fail (500), the next batch tries again
                found = exc
            finally:  # also when cancelled (shutdown): no request is left waiting
                for token, futures in batch.items():
                    for future in futures:
                        if future.done():  # the request went away meanwhile
                            continue
                        if isinstance(found, BaseException):
                            future.set_exception(found)
                        else:
                            future.set_result(found.get(token))


async def sign_out(session: AsyncSession, token: str) -> bool:
    return await repo.revoke_session(session, _token_hash(token), utcnow())


class Throttle(abc.ABC):
    """Counts failed sign-ins per key (user name, client address) over a window."""

    @abc.abstractmethod
    async def failures(self, keys: list[str]) -> tuple[int, int]:
        """(highest failure count among keys, seconds until that window ends)."""

    @abc.abstractmethod
    async def fail(self, keys: list[str]) -> None: ...

    @abc.abstractmethod
    async def reset(self, key: str) -> None: ...


class DatabaseThrottle(Throttle):
    """Failed sign-ins counted in the database, each write in its own short transaction so that
    the refusal of the sign-in itself does not roll the count back."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], window_seconds: int) -> None:
        self.sessionmaker = sessionmaker
        self.window = dt.timedelta(seconds=window_seconds)

    async def failures(self, keys: list[str]) -> tuple[int, int]:
        now = utcnow()
        async with transaction(self.sessionmaker) as s:
            count = await repo.throttle_failures(s, keys, now - self.window)
            start = await repo.throttle_window_start(s, keys, now - self.window)
        retry = int(((start + self.window) - now).total_seconds()) + 1 if start else 0
        return count, max(retry, 1)

    async def fail(self, keys: list[str]) -> None:
        now = utcnow()
        async with transaction(self.sessionmaker) as s:
            for key in keys:
                await repo.throttle_record_failure(s, key, now, now - self.window)

    async def reset(self, key: str) -> None:
        async with transaction(self.sessionmaker) as s:
            await repo.throttle_clear(s, key)


class RedisThrottle(Throttle):
    """Same counting in Redis (shared by every worker process): INCR with a window TTL."""

    def __init__(self, redis: object, window_seconds: int, prefix: str = "trustlive:login:") -> None:
        self.redis = redis
        self.window = window_seconds
        self.prefix = prefix

    async def failures(self, keys: list[str]) -> tuple[int, int]:
        worst, retry = 0, 1
        for key in keys:
            raw = await self.redis.get(self.prefix + key)  # type: ignore[attr-defined]
            if raw is not None and int(raw) > worst:
                worst = int(raw)
                retry = max(int(await self.redis.ttl(self.prefix + key)), 1)  # type: ignore[attr-defined]
        return worst, retry

    async def fail(self, keys: list[str]) -> None:
        for key in keys:
            name = self.prefix + key
            count = await self.redis.incr(name)  # type: ignore[attr-defined]
            if count == 1:
                await self.redis.expire(name, self.window)  # type: ignore[attr-defined]

    async def reset(self, key: str) -> None:
        await self.redis.delete(self.prefix + key)  # type: ignore[attr-defined]


async def sign_in(
    sessionmaker: async_sessionmaker[AsyncSession],
    throttle: Throttle,
    settings: Settings,
    *,
    username: str,
    password: str,
    client_ip: str,
    kind: str,
    user_agent: str | None = None,
) -> tuple[str, Principal]:
    """Check credentials and open a session or API token.

    This use case owns its transactions (unlike other services): a failed attempt must be
    counted even though the request itself is refused, and the slow password check must not
    hold a database transaction open.
    """
    name = normalise_username(username)[:64]
    user_key, ip_key = f"user:{name}", f"ip:{client_ip}"
    for keys, limit in (
        ([user_key], settings.login_max_failures),
        ([ip_key], settings.login_ip_max_failures),
    ):
        count, retry = await throttle.failures(keys)
        if count >= limit:
            raise TooManyRequests(
                f"too many failed sign-ins; try again in {retry} seconds",
                code="login_throttled",
                headers={"Retry-After": str(retry)},
            )
    async with transaction(sessionmaker) as s:
        user = await repo.get_user_by_username(s, name)
        stored = user.password_hash if user is not None else _DUMMY_HASH
    ok = await _verify(stored, password[:PASSWORD_MAX]) and user is not None and user.is_active
    if not ok or user is None:
        await throttle.fail([user_key, ip_key])
        raise Unauthorized("wrong username or password", code="invalid_credentials")
    await throttle.reset(user_key)
    days = settings.token_days if kind == "api" else settings.session_days
    async with transaction(sessionmaker) as s:
        user = await repo.get_user(s, user.id)
        assert user is not None
        if _hasher.check_needs_rehash(user.password_hash):
            user.password_hash = await hash_password(password)
        token, auth = await open_session(s, user, kind=kind, days=days, user_agent=user_agent)
        roles = await repo.roles_of(s, user.id)
    return token, Principal(user.id, user.username, user.display_name, frozenset(roles), kind)
