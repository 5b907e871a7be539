"""HTML routes for paying: the buyer's "Pay" buttons, the return page after the provider, and
the sandbox provider's own hosted pay page (which plays another company's site)."""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from litestar import Request, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body, Parameter
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from trustlive.accounts.service import Principal
from trustlive.config import Settings
from trustlive.errors import DomainError, ValidationFailed
from trustlive.orders import pages as order_pages
from trustlive.orders.service import OrderPolicy
from trustlive.payments import service
from trustlive.web.forms import bad_fields, invalid, text, yuan
from trustlive.web.i18n import N_, gettext
from trustlive.web.policy import public, signed_in

Form = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]

# Shown through _(status) in templates; listed here so extraction finds them.
_LABELS = (
    N_("requires_payment"), N_("succeeded"), N_("failed"), N_("partially_refunded"), N_("refunded"),
    N_("pending"), N_("late_payment"), N_("refunded_late"),
)  # fmt: skip


# --- ours: start paying, come back -------------------------------------------------------------


@post("/orders/{order_id:int}/pay", **signed_in())
async def pay_order(order_id: int, db: AsyncSession, me: Principal, settings: Settings) -> Redirect:
    """The order page's "Pay" button: off to the provider's pay page (the same one if pressed twice)."""
    intent = await service.start_payment(db, me, [order_id], service.default_provider(settings))
    return Redirect(intent.pay_url or f"/pay/return?intent={intent.id}", status_code=303)


@post("/checkouts/{checkout_id:int}/pay", **signed_in())
async def pay_checkout(checkout_id: int, db: AsyncSession, me: Principal, settings: Settings) -> Redirect:
    """After checkout: pay every order of it that is still unpaid, in one go."""
    intent = await service.start_checkout_payment(db, me, checkout_id, service.default_provider(settings))
    return Redirect(intent.pay_url or f"/pay/return?intent={intent.id}", status_code=303)


@get("/pay/return", **signed_in())
async def pay_return(
    db: AsyncSession, me: Principal, request: Request[Any, Any, Any], intent: Annotated[int, Parameter(ge=1)]
) -> Template:
    """Where the provider sends the buyer back. Shows "payment processing" until the provider's
    webhook has arrived (htmx polls this page's status block), then the outcome."""
    payment = await service.get_payment(db, me, intent)
    name = "payments/_status.html" if request.headers.get("hx-request") == "true" else "payments/return.html"
    return Template(name, context={"payment": payment})


_REFUND_FIELDS = {r"amount_fen": "amount"}


def _refund_amount(form: dict[str, str]) -> int:
    try:
        return yuan(form, "amount")
    except ValidationFailed:
        raise invalid("amount", gettext("enter an amount in yuan above zero, e.g. 12.50")) from None


@post("/console/orders/{order_id:int}/refund", **signed_in())
async def refund_order(
    order_id: int, data: Form, db: AsyncSession, me: Principal, order_policy: OrderPolicy
) -> Template | Redirect:
    """The shop console's (or ops') refund form: ``amount`` in yuan, ``reason``, and a hidden
    ``idempotency_key`` rendered with the form (a double submit refunds once). Errors the shop
    can fix come back on the console's order page with the form marked; refusals go to the error
    page; success goes back to the order."""
    form = {"amount": text(data, "amount"), "reason": text(data, "reason")}
    key = text(data, "idempotency_key") or f"web-{secrets.token_urlsafe(16)}"
    try:
        amount = _refund_amount(form)
        if not form["reason"]:
            raise invalid("reason", gettext("say why the money goes back"))
        await service.refund(db, me, order_id, amount, form["reason"], key)
    except DomainError as err:
        await db.rollback()
        return await order_pages.console_order_page(
            db, me, order_id, order_policy, error=err, form=form, error_form="refund",
            bad=bad_fields(err, _REFUND_FIELDS),
        )  # fmt: skip
    return Redirect(f"/console/orders/{order_id}?done=refunded", status_code=303)


# --- the sandbox provider's hosted pay page ----------------------------------------------------


@get("/sandbox/pay/{ref:str}", **public())
async def sandbox_page(ref: str, db: AsyncSession) -> Template:
    """The sandbox's cashier page (public, like any provider's hosted page)."""
    charge = await service.sandbox_charge(db, ref)
    return Template("payments/sandbox_pay.html", context={"charge": charge, "declined": False})


@post("/sandbox/pay/{ref:str}", **public())
async def sandbox_answer(ref: str, data: Form, db: AsyncSession, settings: Settings) -> Template | Redirect:
    """Pay -> captured, back to the shop; Decline -> a failed attempt, the page stays to retry."""
    pay = text(data, "action") == "pay"
    try:
        charge = await service.sandbox_answer(db, settings, ref, pay)
    except DomainError as err:
        if err.code != "already_paid":
            raise
        await db.rollback()
        charge = await service.sandbox_charge(db, ref)
        return Redirect(charge.return_url, status_code=303)
    if pay:
        return Redirect(charge.return_url, status_code=303)
    return Template("payments/sandbox_pay.html", context={"charge": charge, "declined": True})


routes = [pay_order, pay_checkout, pay_return, refund_order, sandbox_page, sandbox_answer]
