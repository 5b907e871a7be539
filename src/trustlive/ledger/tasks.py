"""The sandbox bank: completes requested payouts, one transaction each, idempotently.

A real bank answers later; so does this one. ``process_payouts`` pays every payout that is still
``requested`` (``payouts:pending`` → ``external:payouts``) unless the bank refuses it, in which
case the money goes back to the wallet. The sandbox refuses a bank account whose text contains
"FAIL", so demos and tests can show a failed payout. Running it twice, or in two processes at
once, pays nothing twice: each outcome is posted under the key ``payout:{id}:paid`` or
``payout:{id}:failed`` and the payout row is locked while it changes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from trustlive.db import transaction, utcnow
from trustlive.ledger import service
from trustlive.ledger.models import Payout, PayoutStatus

# What the bank says about a payout: False/None = paid; True or a reason text = refused.
BankDecision = Callable[[Payout], bool | str | None]

SANDBOX_FAILURE = "the sandbox bank refused the account (its text contains FAIL)"


def sandbox_bank(payout: Payout) -> bool | str:
    return SANDBOX_FAILURE if "FAIL" in payout.bank_account.upper() else False


async def process_payouts(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    now: dt.datetime | None = None,
    fail_if: BankDecision | None = None,
    batch: int = 100,
) -> int:
    """Answer every payout requested at or before ``now``. Returns how many changed."""
    now = now or utcnow()
    decide = fail_if or sandbox_bank
    done = 0
    after = 0
    while True:
        async with transaction(sessionmaker) as session:
            ids = await service.due_payouts(session, now, after_id=after, limit=batch)
        if not ids:
            return done
        for payout_id in ids:
            after = payout_id
            async with transaction(sessionmaker) as session:
                payout = await service.get_payout(session, payout_id)
                if payout.status != PayoutStatus.requested:
                    continue
                verdict = decide(payout)
                reason = (
                    verdict
                    if isinstance(verdict, str)
                    else ("the bank refused the payout" if verdict else None)
                )
                if await service.complete_payout(
                    session, payout_id, paid=reason is None, reason=reason, now=now
                ):
                    done += 1
        if len(ids) < batch:
            return done
