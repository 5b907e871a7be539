"""A hypothesis state machine: random postings between random accounts, retries, refused input,
payout requests and the bank's answers (paid or failed). After every step: each transaction sums
to zero, all balances sum to zero, the balance table equals the sum of postings and the model of
what should be there, and the chain verifies. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections import defaultdict

from hypothesis import HealthCheck, assume, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from sqlalchemy import func, select, text

from tests.ledger.util import People, make_people, with_db
from trustlive.db import create_engine, create_sessionmaker, transaction
from trustlive.errors import Conflict, DomainError, ValidationFailed
from trustlive.ledger import service as ledger
from trustlive.ledger.models import LedgerPosting
from trustlive.ledger.tasks import process_payouts

LEDGER_TABLES = ("ledger_postings", "ledger_transactions", "ledger_balances", "ledger_head", "payouts")
amounts = st.integers(min_value=1, max_value=2_000_000)


class LedgerMachine(RuleBasedStateMachine):
    url: str = ""
    people: People | None = None

    def __init__(self) -> None:
        super().__init__()
        assert self.people is not None
        p = self.people
        self.wallets = [
            (ledger.shop_payable(p.shop_id), p.merchant),
            (ledger.shop_payable(p.other_shop_id), p.other_merchant),
            (ledger.creator_payable(p.creator.id), p.creator),
            (ledger.creator_payable(p.other_creator.id), p.other_creator),
        ]
        self.accounts = sorted(ledger.FIXED_ACCOUNTS) + [w for w, _ in self.wallets]
        self.loop = asyncio.new_event_loop()
        self.engine = create_engine(self.url)
        self.sm = create_sessionmaker(self.engine)
        self.expected: dict[str, int] = defaultdict(int)
        self.posted: dict[str, tuple[str, str, list[tuple[str, int]], int]] = {}
        self.payouts: dict[int, tuple[str, int, str, str]] = {}  # id -> (wallet, amount, bank, status)
        self.transactions = 0
        self.run(self._wipe())

    def run(self, coro):  # type: ignore[no-untyped-def]
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        self.run(self.engine.dispose())
        self.loop.close()

    async def _wipe(self) -> None:
        async with transaction(self.sm) as s:
            for table in LEDGER_TABLES:
                await s.execute(text(f"DELETE FROM {table}"))

    async def _post(self, key: str, kind: str, ref: str, legs: list[tuple[str, int]]) -> int:
        async with transaction(self.sm) as s:
            return (await ledger.post(s, kind=kind, ref=ref, idempotency_key=key, postings=legs)).id

    def _book(self, legs: list[tuple[str, int]]) -> None:
        for account, amount in legs:
            self.expected[account] += amount

    # --- rules ------------------------------------------------------------------------------

    @rule(src=st.integers(0, 10), dst=st.integers(0, 10), amount=amounts)
    def transfer(self, src: int, dst: int, amount: int) -> None:
        assume(src != dst)
        legs = ledger.transfer(self.accounts[src], self.accounts[dst], amount)
        key = f"t{len(self.posted)}"
        tx_id = self.run(self._post(key, "transfer", f"test:{key}", legs))
        self.transactions += 1
        assert tx_id == self.transactions
        self.posted[key] = ("transfer", f"test:{key}", legs, tx_id)
        self._book(legs)

    @rule(
        legs=st.lists(
            st.tuples(st.integers(0, 10), st.integers(-500_000, 500_000).filter(bool)),
            min_size=1,
            max_size=4,
            unique_by=lambda leg: leg[0],
        ),
        sink=st.integers(0, 10),
    )
    def split(self, legs: list[tuple[int, int]], sink: int) -> None:
        """A transaction of several legs, balanced by one more leg on ``sink``."""
        assume(all(i != sink for i, _ in legs))
        named = [(self.accounts[i], amount) for i, amount in legs]
        rest = -sum(amount for _, amount in named)
        if rest:
            named.append((self.accounts[sink], rest))
        assume(len(named) >= 2)
        key = f"s{len(self.posted)}"
        tx_id = self.run(self._post(key, "settlement", f"order:{len(self.posted)}", named))
        self.transactions += 1
        assert tx_id == self.transactions
        self.posted[key] = ("settlement", f"order:{len(self.posted)}", named, tx_id)
        self._book(named)

    @rule(data=st.data())
    def retry(self, data: st.DataObject) -> None:
        assume(self.posted)
        key = data.draw(st.sampled_from(sorted(self.posted)))
        kind, ref, legs, tx_id = self.posted[key]
        assert self.run(self._post(key, kind, ref, list(reversed(legs)))) == tx_id
        changed = [(legs[0][0], legs[0][1] + 1), *legs[1:-1], (legs[-1][0], legs[-1][1] - 1)]
        if len(legs) == 2 and changed[0][1] == 0:
            return
        try:
            self.run(self._post(key, kind, ref, changed))
            raise AssertionError("a reused key with other postings was accepted")
        except Conflict as err:
            assert err.code == "idempotency_mismatch"

    @rule(
        a=st.integers(0, 10), b=st.integers(0, 10), amount=st.integers(10, 2_000_000), off=st.integers(1, 5)
    )
    def unbalanced(self, a: int, b: int, amount: int, off: int) -> None:
        assume(a != b)
        legs = [(self.accounts[a], amount), (self.accounts[b], -amount + off)]
        try:
            self.run(self._post(f"bad{amount}", "transfer", "test:bad", legs))
            raise AssertionError("an unbalanced transaction was accepted")
        except ValidationFailed as err:
            assert err.code == "unbalanced"

    @rule(which=st.integers(0, 3), share=st.floats(0.01, 1.5), bank=st.sampled_from(["ICBC 1234", "FAIL 9"]))
    def request_payout(self, which: int, share: float, bank: str) -> None:
        wallet, owner = self.wallets[which]
        available = self.expected[wallet]
        amount = max(1, int(max(available, 1) * share))

        async def ask() -> int | str:
            try:
                async with transaction(self.sm) as s:
                    return (await ledger.request_payout(s, owner, wallet, amount, bank)).id
            except DomainError as err:
                return err.code

        outcome = self.run(ask())
        if amount > available:
            assert outcome == "insufficient_funds", (amount, available, outcome)
            return
        assert isinstance(outcome, int), outcome
        self.transactions += 1
        self.payouts[outcome] = (wallet, amount, bank, "requested")
        self._book(ledger.transfer(wallet, ledger.PAYOUTS_PENDING, amount))

    @rule(fail_all=st.booleans())
    def bank_answers(self, fail_all: bool) -> None:
        done = self.run(process_payouts(self.sm, fail_if=(lambda p: True) if fail_all else None))
        waiting = [(i, v) for i, v in self.payouts.items() if v[3] == "requested"]
        assert done == len(waiting)
        for payout_id, (wallet, amount, bank, _) in waiting:
            failed = fail_all or "FAIL" in bank  # the sandbox bank refuses accounts containing FAIL
            target = wallet if failed else ledger.EXTERNAL_PAYOUTS
            self._book(ledger.transfer(ledger.PAYOUTS_PENDING, target, amount))
            self.payouts[payout_id] = (wallet, amount, bank, "failed" if failed else "paid")
            self.transactions += 1

    # --- invariants -------------------------------------------------------------------------

    @invariant()
    def books_balance(self) -> None:
        async def facts():  # type: ignore[no-untyped-def]
            async with transaction(self.sm) as s:
                unbalanced = (
                    await s.execute(
                        select(LedgerPosting.transaction_id)
                        .group_by(LedgerPosting.transaction_id)
                        .having(func.sum(LedgerPosting.amount_fen) != 0)
                    )
                ).all()
                sums = dict(
                    (
                        await s.execute(
                            select(LedgerPosting.account, func.sum(LedgerPosting.amount_fen)).group_by(
                                LedgerPosting.account
                            )
                        )
                    ).all()
                )
                stored = {b.account: b.balance_fen for b in await ledger.balances(s)}
                statuses = {i: (await ledger.get_payout(s, i)).status for i in self.payouts}
                return unbalanced, sums, stored, statuses, await ledger.verify(s)

        unbalanced, sums, stored, statuses, report = self.run(facts())
        assert statuses == {i: v[3] for i, v in self.payouts.items()}
        assert unbalanced == []
        assert sum(stored.values()) == 0
        assert {a: int(v) for a, v in sums.items()} == stored
        assert stored == {a: v for a, v in self.expected.items() if a in stored}
        assert all(v == 0 for a, v in self.expected.items() if a not in stored)
        assert report.ok, report.problems
        assert report.transactions_checked == self.transactions


def test_ledger_state_machine(db_url: str) -> None:
    LedgerMachine.url = db_url
    LedgerMachine.people = with_db(db_url, make_people)
    run_state_machine_as_test(
        LedgerMachine,
        settings=settings(
            max_examples=10,
            stateful_step_count=15,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            database=None,
        ),
    )
