"""HTML routes: the shop wallet and the creator wallet (balance, statement, payouts), and the ops
ledger page (balances of every account, chain verification). Thin: parse the form into the API's
struct, call ledger.service, render.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body, Parameter
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from trustlive.accounts.service import Principal
from trustlive.catalog import service as catalog
from trustlive.errors import DomainError, Forbidden
from trustlive.ledger import service
from trustlive.ledger.api import before_id, wallet_out
from trustlive.ledger.schemas import PayoutIn
from trustlive.web.forms import bad_fields, fixable, parse, text, yuan
from trustlive.web.i18n import N_, gettext
from trustlive.web.pagination import decode_cursor, encode_cursor
from trustlive.web.policy import allow, signed_in

Form = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]
Cursor = Annotated[str | None, Parameter(max_length=200)]
Prefix = Annotated[str | None, Parameter(max_length=64)]

STATEMENT_PAGE = 20
ACCOUNTS_PAGE = 100

# Statement line kinds and payout states as people read them (shown through _()).
KIND_LABELS = {
    "capture": N_("Payment received"),
    "refund": N_("Refund to buyer"),
    "settlement": N_("Settlement"),
    "payout_request": N_("Payout requested"),
    "payout_paid": N_("Payout paid"),
    "payout_failed": N_("Payout failed, money returned"),
}
PAYOUT_LABELS = {
    "requested": N_("With the bank"),
    "paid": N_("Paid out"),
    "failed": N_("Failed, money returned"),
}
ACCOUNT_LABELS = {
    service.ESCROW: N_("Buyers' money held until settlement"),
    service.PLATFORM_FEE_REVENUE: N_("Platform technical service fees"),
    service.PLATFORM_COMMISSION_REVENUE: N_("Platform share of commissions"),
    service.PAYOUTS_PENDING: N_("Payouts the bank is processing"),
    service.EXTERNAL_BUYER_PAYMENTS: N_("Paid in by buyers (outside world)"),
    service.EXTERNAL_BUYER_REFUNDS: N_("Refunded to buyers (outside world)"),
    service.EXTERNAL_PAYOUTS: N_("Paid out to banks (outside world)"),
    service.EXTERNAL_INSPECTION_FEES: N_("Inspection fees paid to labs (outside world)"),
}
FILTERS = (
    ("", N_("All")),
    ("shop:", N_("Shops")),
    ("creator:", N_("Creators")),
    ("platform:", N_("Platform")),
    ("external:", N_("Outside world")),
)
_PAYOUT_FORM_FIELDS = {r"amount_fen": "amount"}


def _labels() -> dict[str, Any]:
    return {"kind_labels": KIND_LABELS, "payout_labels": PAYOUT_LABELS}


def _payout_form(data: dict[str, Any]) -> tuple[dict[str, str], PayoutIn]:
    form = {"amount": text(data, "amount"), "bank_account": text(data, "bank_account")}
    return form, parse(PayoutIn, {"amount_fen": yuan(form, "amount"), "bank_account": form["bank_account"]})


# --- shop wallet ------------------------------------------------------------------------------


async def _shop_wallet_page(
    db: AsyncSession, me: Principal, shop_id: int | None, cursor: str | None = None, **extra: Any
) -> Template:
    shops = [catalog.shop_out(s) for s in await catalog.shops_of(db, me)]
    if shop_id is None:
        shop = next((s for s in shops if s.owner_id == me.id), shops[0])
    else:
        shop = catalog.shop_out(await catalog.get_shop(db, shop_id))
    wallet = await service.shop_wallet(db, me, shop.id, before_id=before_id(cursor), limit=STATEMENT_PAGE)
    status = extra.pop("status_code", 200)
    context = {
        "shops": shops,
        "shop": shop,
        "wallet": wallet_out(wallet, STATEMENT_PAGE),
        "can_pay_out": shop.owner_id == me.id,
        "payout_action": f"/wallet/shops/{shop.id}/payouts",
        "page_params": f"shop={shop.id}&",
        "is_creator": me.has("creator"),
        "form": {},
        "error": None,
        "bad": set(),
        **_labels(),
        **extra,
    }
    return Template("ledger/wallet.html", context=context, status_code=status)


@get("/wallet", **signed_in())
async def shop_wallet(
    db: AsyncSession, me: Principal, shop: int | None = None, cursor: Cursor = None
) -> Template | Redirect:
    """The wallet of the caller's shop: balance, every posting line by line, payouts. Ops may
    open any shop's with ``?shop=``; a creator without a shop goes to their own wallet."""
    if shop is None and not await catalog.shops_of(db, me):
        if me.has("creator"):
            return Redirect("/wallet/creator", status_code=303)
        if not me.has("merchant"):
            raise Forbidden(
                gettext("The wallet is for merchants, shop staff and creators."), code="no_wallet"
            )
        return Template("ledger/no_shop.html")
    return await _shop_wallet_page(db, me, shop, cursor)


@post("/wallet/shops/{shop_id:int}/payouts", **signed_in())
async def request_shop_payout(
    shop_id: int, data: Form, db: AsyncSession, me: Principal
) -> Template | Redirect:
    form: dict[str, str] = {}
    try:
        form, payout_in = _payout_form(data)
        payout = await service.request_payout(
            db, me, service.shop_payable(shop_id), payout_in.amount_fen, payout_in.bank_account
        )
    except DomainError as err:
        await db.rollback()
        return await _shop_wallet_page(
            db,
            me,
            shop_id,
            form=form,
            error=fixable(err),
            bad=bad_fields(err, _PAYOUT_FORM_FIELDS),
            status_code=err.status_code,
        )
    return Redirect(f"/wallet?shop={shop_id}&requested={payout.id}#payouts", status_code=303)


# --- creator wallet ---------------------------------------------------------------------------


# One page for the wallets people hold in their own name (creator, consignor): the same statement
# and payout form, at their own paths.
_PERSONAL = {"creator": service.creator_wallet, "consignor": service.consignor_wallet}


async def _personal_wallet_page(
    db: AsyncSession, me: Principal, kind: str, cursor: str | None = None, **extra: Any
) -> Template:
    wallet = await _PERSONAL[kind](db, me, before_id=before_id(cursor), limit=STATEMENT_PAGE)
    status = extra.pop("status_code", 200)
    context = {
        "shops": [],
        "shop": None,
        "wallet": wallet_out(wallet, STATEMENT_PAGE),
        "can_pay_out": True,
        "payout_action": f"/wallet/{kind}/payouts",
        "page_params": "",
        "is_creator": kind == "creator",
        "is_consignor": kind == "consignor",
        "form": {},
        "error": None,
        "bad": set(),
        **_labels(),
        **extra,
    }
    return Template("ledger/wallet.html", context=context, status_code=status)


async def _request_personal_payout(
    data: Form, db: AsyncSession, me: Principal, kind: str
) -> Template | Redirect:
    form: dict[str, str] = {}
    account = service.creator_payable(me.id) if kind == "creator" else service.consignor_payable(me.id)
    try:
        form, payout_in = _payout_form(data)
        payout = await service.request_payout(db, me, account, payout_in.amount_fen, payout_in.bank_account)
    except DomainError as err:
        await db.rollback()
        return await _personal_wallet_page(
            db, me, kind, form=form, error=fixable(err), bad=bad_fields(err, _PAYOUT_FORM_FIELDS),
            status_code=err.status_code,
        )  # fmt: skip
    return Redirect(f"/wallet/{kind}?requested={payout.id}#payouts", status_code=303)


@get("/wallet/creator", **allow("creator"))
async def creator_wallet(db: AsyncSession, me: Principal, cursor: Cursor = None) -> Template:
    """The creator's wallet: alliance commissions settled to them, line by line, and payouts."""
    return await _personal_wallet_page(db, me, "creator", cursor)


@post("/wallet/creator/payouts", **allow("creator"))
async def request_creator_payout(data: Form, db: AsyncSession, me: Principal) -> Template | Redirect:
    return await _request_personal_payout(data, db, me, "creator")


# --- consignor wallet (docs/consignment.md) ---------------------------------------------------


@get("/wallet/consignor", **signed_in())
async def consignor_wallet(db: AsyncSession, me: Principal, cursor: Cursor = None) -> Template:
    """The consignor's wallet: proceeds of their consigned items sold, line by line, and payouts."""
    return await _personal_wallet_page(db, me, "consignor", cursor)


@post("/wallet/consignor/payouts", **signed_in())
async def request_consignor_payout(data: Form, db: AsyncSession, me: Principal) -> Template | Redirect:
    return await _request_personal_payout(data, db, me, "consignor")


# --- ops --------------------------------------------------------------------------------------


@get("/ops/ledger", **allow("ops"))
async def ops_ledger(
    db: AsyncSession, prefix: Prefix = None, cursor: Cursor = None, verify: bool = False
) -> Template:
    """Balances of every account and, on request, a full verification of the chain."""
    report = await service.verify(db) if verify else None  # first: one consistent snapshot
    decoded = decode_cursor(cursor, "offset")
    start = decoded["offset"] if decoded else 0
    prefix = prefix if prefix in {p for p, _ in FILTERS} else ""
    rows = await service.balances(db, prefix, offset=start, limit=ACCOUNTS_PAGE + 1)
    return Template(
        "ledger/ops.html",
        context={
            "accounts": rows[:ACCOUNTS_PAGE],
            "next_cursor": encode_cursor({"offset": start + ACCOUNTS_PAGE})
            if len(rows) > ACCOUNTS_PAGE
            else None,
            "prefix": prefix,
            "filters": FILTERS,
            "account_labels": ACCOUNT_LABELS,
            "total": await service.total_balance(db),
            "report": report,
        },
    )


@get("/ops/ledger/verify", **allow("ops"))
async def ops_verify(db: AsyncSession, request: Request[Any, Any, Any]) -> Template | Redirect:
    """The verification result: a fragment for htmx, else the ops ledger page with it."""
    if request.headers.get("hx-request") != "true":
        return Redirect("/ops/ledger?verify=true#verify", status_code=303)
    return Template("ledger/_verify.html", context={"report": await service.verify(db)})


routes = [
    shop_wallet,
    request_shop_payout,
    creator_wallet,
    request_creator_payout,
    consignor_wallet,
    request_consignor_payout,
    ops_ledger,
    ops_verify,
]
