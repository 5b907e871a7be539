"""One place that turns every error into a clear response: JSON under /api, a page elsewhere.

Domain errors keep their status and code. Litestar's own errors (validation, 404, 405, CSRF) are
mapped onto the same shape. Anything else is a bug: it is logged with its traceback and the client
gets a plain 500 without internals.
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import quote

import sqlalchemy.exc
from litestar import MediaType, Request, Response
from litestar.exceptions import (
    HTTPException,
    MethodNotAllowedException,
    NotAuthorizedException,
    NotFoundException,
    PermissionDeniedException,
    ValidationException,
)
from litestar.response import Redirect, Template

from trustlive.errors import (
    DomainError,
    FieldError,
    Forbidden,
    NotFound,
    ValidationFailed,
    field_from_message,
)
from trustlive.web import i18n
from trustlive.web.i18n import N_
from trustlive.web.security import LANG_COOKIE

log = logging.getLogger("trustlive.web")

_KEY_RE = re.compile(r"at `\$\.?([^`]*)`")


def wants_json(request: Request[Any, Any, Any]) -> bool:
    if request.url.path.startswith("/api/") or request.url.path.startswith("/schema"):
        return True
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def _from_validation(exc: ValidationException) -> ValidationFailed:
    fields: list[FieldError] = []
    extra = exc.extra if isinstance(exc.extra, list) else []
    for item in extra:
        if not isinstance(item, dict):
            continue
        message = str(item.get("message", "invalid value"))
        fields.append(FieldError(field_from_message(message, item.get("key")), message))
    detail = exc.detail if exc.detail and "Validation failed" not in exc.detail else ""
    if not fields:
        found = _KEY_RE.search(detail or "")
        fields.append(FieldError(found.group(1) if found else "body", detail or "invalid request"))
    summary = "; ".join(f"{f.field}: {f.message}" for f in fields)
    return ValidationFailed(summary, fields=fields)


def _unstorable(exc: BaseException) -> bool:
    """The database (or its driver) refused a value: a DBAPI DataError, PostgreSQL's SQLSTATE class
    22 ("data exception": out of range, NUL in text, ...), or an int too large to bind."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, sqlalchemy.exc.DataError | OverflowError):
            return True
        if str(getattr(current, "sqlstate", "") or "").startswith("22"):
            return True
        current = getattr(current, "orig", None) or current.__cause__
    return False


def to_domain_error(exc: Exception) -> DomainError:
    if isinstance(exc, DomainError):
        return exc
    if isinstance(exc, ValidationException):
        return _from_validation(exc)
    if isinstance(exc, NotFoundException):
        return NotFound(N_("no such page or resource"))
    if isinstance(exc, MethodNotAllowedException):
        err = DomainError(N_("method not allowed here"), code="method_not_allowed")
        err.status_code = 405
        return err
    if isinstance(exc, PermissionDeniedException):
        if "CSRF" in (exc.detail or ""):
            return Forbidden(
                N_("the form expired or came from elsewhere; reload the page and try again"),
                code="csrf_failed",
            )
        return Forbidden(exc.detail or "forbidden")
    if isinstance(exc, NotAuthorizedException):
        from trustlive.errors import Unauthorized

        return Unauthorized(exc.detail or "sign in first")
    if isinstance(exc, HTTPException):
        err = DomainError(exc.detail or "request refused", code="http_error")
        err.status_code = exc.status_code
        return err
    if _unstorable(exc):
        # A value the database cannot hold (a number past its column's range, a NUL in text) that
        # got past the checks in front: the request's transaction is rolled back, nothing changed.
        # Logged, since a check in front should have caught it.
        log.warning("a value the database cannot store was refused: %s", exc)
        return ValidationFailed(N_("a value is out of range or cannot be stored"), code="bad_value")
    err = DomainError(N_("something went wrong on our side; it has been logged"), code="internal_error")
    err.status_code = 500
    return err


def handle_exception(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    err = to_domain_error(exc)
    if err.status_code >= 500:
        log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    headers = dict(err.headers)
    if wants_json(request):
        return Response(
            err.to_dict(), status_code=err.status_code, media_type=MediaType.JSON, headers=headers
        )
    # Errors raised by middleware (CSRF) are rendered after LocaleMiddleware has reset the language,
    # and unmatched paths never reach it: set the request's language again for the page. The value
    # lives in this request's context only (each request runs in its own task).
    locale = request.scope.get("state", {}).get("locale") or i18n.negotiate(
        request.cookies.get(LANG_COOKIE),
        request.headers.get("accept-language"),
        request.app.state.settings.default_locale,
    )
    i18n.set_locale(locale)
    if err.status_code == 401:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return Redirect(f"/login?next={quote(target)}")
    return Template(
        "error.html",
        context={
            "status": err.status_code,
            "code": err.code,
            # JSON keeps the English text; pages translate the messages the catalog knows.
            "message": explain(err),
            "fields": err.fields,
            "title": _title(err.status_code),
        },
        status_code=err.status_code,
        headers=headers,
    )


# What a person is told on a page, per error code. Service messages are written for API clients
# (English, with field paths); pages show these instead, translated. Validation errors keep their
# own message: forms raise them with a specific, translated text.
ERROR_TEXT = {
    "invalid_credentials": N_("Wrong username or password."),
    "login_throttled": N_("Too many failed sign-ins. Please wait a while and try again."),
    "username_taken": N_("That username is already taken."),
    "role_not_self_service": N_("That role can only be granted by platform operations."),
    "role_required": N_("Your account does not have the role this needs."),
    "ops_only": N_("Only platform operations can do this."),
    "self_demotion": N_("You cannot remove your own ops role."),
    "user_not_found": N_("There is no account with that username."),
    "shop_exists": N_("You already own a shop."),
    "shop_name_taken": N_("Another shop already uses this name."),
    "slug_taken": N_("That address is already taken."),
    "shop_not_found": N_("We could not find that shop."),
    "not_your_shop": N_("This is not your shop."),
    "already_staff": N_("That account is already on this shop's staff."),
    "staff_not_found": N_("That account is not on this shop's staff (the owner cannot be removed)."),
    "category_not_found": N_("We could not find that category."),
    "product_not_found": N_("We could not find that product."),
    "sku_not_found": N_("We could not find that SKU."),
    "image_not_found": N_("We could not find that image."),
    "sku_code_taken": N_("That SKU code is already used in this shop."),
    "no_active_sku": N_("A product needs at least one SKU on sale before it can be published."),
    "category_closed": N_("This product's category is closed."),
    "not_published": N_("Only a published product can be taken off the shelf."),
    "too_many_images": N_("A product can have at most 9 images."),
    "payload_too_large": N_("That file is too large."),
    "unsupported_media_type": N_("Only JPEG, PNG or WebP images are accepted."),
    "bad_cursor": N_("That page link is broken; start again from the first page."),
    # orders
    "not_on_sale": N_("This item is not on sale any more."),
    "out_of_stock": N_("There is not enough stock left for this quantity."),
    "limit_exceeded": N_("That is more than one buyer may buy of this item."),
    "address_not_found": N_("Choose one of your own addresses."),
    "too_many_addresses": N_("You can keep at most 20 addresses. Delete one first."),
    "cart_full": N_("Your cart is full. Check out or remove some items first."),
    "cart_empty": N_("Your cart is empty."),
    "cart_item_not_found": N_("Your cart has changed meanwhile. Check it and try again."),
    "order_not_found": N_("We could not find that order."),
    "checkout_not_found": N_("We could not find those orders."),
    "invalid_transition": N_(
        "This order cannot do that in its current state; it may have changed meanwhile."
    ),
    "not_payable": N_("This order is not awaiting payment."),
    "idempotency_key_required": N_("This form has expired. Reload the page and try again."),
    "bad_idempotency_key": N_("This form has expired. Reload the page and try again."),
    "idempotency_mismatch": N_(
        "This form was already sent with other details. Reload the page and try again."
    ),
    "not_shop_staff": N_("The shop console is for merchants and shop staff."),
    # payments
    "already_paid": N_("This order is already paid."),
    "payment_not_found": N_("We could not find that payment."),
    "provider_payment_not_found": N_("The payment provider does not know this payment."),
    "unknown_provider": N_("We do not work with that payment provider."),
    "provider_refused": N_("The payment provider refused. Please try again later."),
    "refund_exceeds_payment": N_("That is more than is left to refund on this order."),
    "not_refundable": N_(
        "This order cannot be refunded: it was never paid, or it is cancelled, refunded or settled."
    ),
    # ledger and wallets
    "insufficient_funds": N_("The wallet does not hold that much. Ask for at most the balance shown."),
    "not_your_wallet": N_("This is not your wallet."),
    "not_a_wallet": N_("Only shop and creator wallets can be paid out."),
    "no_wallet": N_("The wallet is for merchants, shop staff and creators."),
    "payout_not_found": N_("We could not find that payout."),
}


def explain(err: DomainError) -> str:
    """The message a page shows for ``err``, in the request's language."""
    text = ERROR_TEXT.get(err.code)
    return i18n.gettext(text) if text else i18n.gettext(err.message)


def _title(status: int) -> str:
    _ = i18n.gettext
    return {
        400: _("That request did not make sense"),
        403: _("You cannot do that"),
        404: _("We could not find that"),
        405: _("That action is not possible here"),
        409: _("That conflicts with what is already there"),
        413: _("That file is too large"),
        415: _("That file type is not accepted"),
        422: _("Please check what you entered"),
        429: _("Too many attempts"),
    }.get(status, _("Something went wrong"))
