"""The demo storefront's pages, and its notify endpoint for PayBridge's signed notifications."""

from __future__ import annotations

import functools
from urllib.parse import urlsplit

from flask import (
    abort,
    current_app,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from sqlalchemy import select

from app.errors import PayBridgeError
from app.extensions import csrf, db, limiter
from app.payments.currencies import exponent
from app.shop import cart as carts
from app.shop import notify, services
from app.shop.models import Order, Product, ShopCustomer
from app.shop.services import ShopError

from . import bp
from .forms import (
    ActionForm,
    AddToCartForm,
    CheckoutForm,
    LoginForm,
    RemoveFromCartForm,
    SignupForm,
    UpdateCartForm,
)

# The shop's own session keys: shoppers are not dashboard users (Flask-Login is theirs).
SESSION_CUSTOMER = "shop_customer_id"
SESSION_CART = "shop_cart"
# Success and cancel pages reload themselves this often, this many times, while not final.
REFRESH_SECONDS = 2
REFRESH_LIMIT = 90

CURRENCY_SYMBOLS = {"EUR": "€", "USD": "$", "GBP": "£"}


@bp.app_template_filter("shop_money")
def money(amount: int, currency: str) -> str:
    """Minor units as a price a person reads: 2900, EUR → €29.00."""
    currency = (currency or "").upper()
    digits = exponent(currency)
    value = f"{amount / 10**digits:,.{digits}f}" if digits else f"{amount:,}"
    symbol = CURRENCY_SYMBOLS.get(currency)
    return f"{symbol}{value}" if symbol else f"{value} {currency}"


def current_customer() -> ShopCustomer | None:
    if "shop_customer" not in g:
        customer_id = session.get(SESSION_CUSTOMER)
        customer = None
        if isinstance(customer_id, int):
            customer = db.session.get(ShopCustomer, customer_id)
        if customer is None:
            session.pop(SESSION_CUSTOMER, None)
        g.shop_customer = customer
    return g.shop_customer


def login_required(view):
    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        if current_customer() is None:
            flash("Please log in or create an account first.", "info")
            return redirect(url_for("shop.login", next=request.full_path.rstrip("?")))
        return view(*args, **kwargs)

    return wrapped


def safe_next(target: str | None) -> str | None:
    """A local path to go back to after logging in; anything else (other hosts) is dropped."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else None


def session_cart() -> dict:
    return carts.normalise(session.get(SESSION_CART))


def save_cart(cart: dict) -> None:
    session[SESSION_CART] = cart


@bp.context_processor
def shop_context() -> dict:
    return {
        "shop_customer": current_customer(),
        "cart_count": sum(session_cart()["items"].values()),
        "action_form": ActionForm(),
    }


def owned_order(order_id: int) -> Order:
    order = services.customer_order(current_customer().id, order_id)
    if order is None:
        abort(404, "No such order in your account.")
    return order


# --- catalogue and cart -------------------------------------------------------------------------


@bp.get("/")
def catalogue():
    """The home page: every print on sale."""
    products = db.session.execute(
        select(Product).where(Product.active.is_(True)).order_by(Product.position, Product.id)
    ).scalars()
    return render_template("shop/catalogue.html", products=list(products))


@bp.get("/products/<slug>")
def product(slug: str):
    """One print, with a quantity to add to the cart."""
    item = db.session.execute(
        select(Product).where(Product.slug == slug, Product.active.is_(True))
    ).scalar_one_or_none()
    if item is None:
        abort(404, "This print is not in the shop.")
    form = AddToCartForm(product_id=item.id)
    return render_template("shop/product.html", product=item, form=form)


@bp.get("/cart")
def cart():
    """The cart, priced from today's catalogue."""
    priced = carts.price(session_cart())
    return render_template(
        "shop/cart.html", cart=priced, update_form=UpdateCartForm, remove_form=RemoveFromCartForm
    )


def _product_id(form) -> int:
    value = form.product_id.data or ""
    if not str(value).isdigit():
        abort(400, "Unknown product.")
    return int(value)


@bp.post("/cart/add")
def cart_add():
    """Add a print to the cart."""
    form = AddToCartForm()
    if not form.validate_on_submit():
        flash(_first_error(form) or "Choose a quantity to add.", "error")
        return redirect(url_for("shop.cart"), 303)
    try:
        save_cart(carts.add(session_cart(), _product_id(form), form.quantity.data))
    except carts.CartError as error:
        flash(str(error), "error")
        return redirect(url_for("shop.cart"), 303)
    flash("Added to your cart.", "success")
    return redirect(url_for("shop.cart"), 303)


@bp.post("/cart/update")
def cart_update():
    """Change a cart line's quantity (0 removes it)."""
    form = UpdateCartForm()
    if not form.validate_on_submit():
        flash(_first_error(form) or "Choose a quantity.", "error")
        return redirect(url_for("shop.cart"), 303)
    try:
        save_cart(carts.update(session_cart(), _product_id(form), form.quantity.data))
    except carts.CartError as error:
        flash(str(error), "error")
    return redirect(url_for("shop.cart"), 303)


@bp.post("/cart/remove")
def cart_remove():
    """Take a print out of the cart."""
    form = RemoveFromCartForm()
    if form.validate_on_submit():
        try:
            save_cart(carts.remove(session_cart(), _product_id(form)))
            flash("Removed from your cart.", "success")
        except carts.CartError as error:
            flash(str(error), "error")
    return redirect(url_for("shop.cart"), 303)


def _first_error(form) -> str | None:
    for errors in form.errors.values():
        if errors:
            return errors[0]
    return None


# --- accounts -----------------------------------------------------------------------------------


@bp.route("/account/signup", methods=["GET", "POST"])
@limiter.limit("20 per minute", methods=["POST"])
def signup():
    """Create a shopper account and log it in."""
    form = SignupForm()
    if form.validate_on_submit():
        try:
            customer = services.register_customer(
                form.email.data, form.name.data, form.password.data
            )
        except ShopError as error:
            form.email.errors.append(error.message)
        else:
            db.session.commit()
            session[SESSION_CUSTOMER] = customer.id
            flash(f"Welcome, {customer.name}! Your account is ready.", "success")
            return redirect(safe_next(request.args.get("next")) or url_for("shop.catalogue"), 303)
    return render_template("shop/signup.html", form=form), 200 if not form.errors else 422


@bp.route("/account/login", methods=["GET", "POST"])
@limiter.limit("20 per minute", methods=["POST"])
def login():
    """Log a shopper in (rate limited)."""
    form = LoginForm(next=request.args.get("next"))
    if form.validate_on_submit():
        customer = services.authenticate(form.email.data, form.password.data)
        if customer is not None:
            db.session.commit()
            session[SESSION_CUSTOMER] = customer.id
            flash(f"Welcome back, {customer.name}.", "success")
            return redirect(safe_next(form.next.data) or url_for("shop.catalogue"), 303)
        form.password.errors.append("That email and password do not match an account.")
    return render_template("shop/login.html", form=form), 200 if not form.errors else 422


@bp.post("/account/logout")
def logout():
    """Log the shopper out; the cart and any dashboard login stay."""
    if ActionForm().validate_on_submit():
        session.pop(SESSION_CUSTOMER, None)
        flash("You are logged out.", "info")
    return redirect(url_for("shop.catalogue"), 303)


# --- checkout and orders ------------------------------------------------------------------------


@bp.get("/checkout")
@login_required
def checkout():
    """Review the cart before placing the order."""
    priced = carts.price(session_cart())
    if priced.is_empty:
        flash("Your cart is empty.", "info")
        return redirect(url_for("shop.cart"))
    form = CheckoutForm(token=priced.token)
    return render_template("shop/checkout.html", cart=priced, form=form)


@bp.post("/checkout")
@login_required
def place_order():
    """Create the order (once per checkout form) and send the shopper to the hosted page."""
    form = CheckoutForm()
    if not form.validate_on_submit():
        abort(400, "The checkout form is incomplete.")
    cart_state = session_cart()
    try:
        order, _ = services.place_order(
            current_customer(), carts.price(cart_state), form.token.data
        )
    except ShopError as error:
        flash(error.message, "error")
        return redirect(url_for("shop.cart"), 303)
    db.session.commit()
    if cart_state["token"] == form.token.data:
        save_cart(carts.empty_cart())
    return _pay(order)


@bp.post("/orders/<int:order_id>/pay")
@login_required
def order_pay(order_id: int):
    """Try paying again: the same order, the same payment, the same checkout page."""
    if not ActionForm().validate_on_submit():
        abort(400, "The form is incomplete.")
    return _pay(owned_order(order_id))


def _pay(order: Order):
    order_id = order.id
    try:
        payment = services.start_payment(order)
    except ShopError as error:
        db.session.commit()
        flash(error.message, "error")
        return redirect(url_for("shop.order", order_id=order_id), 303)
    checkout_url = payment.checkout_url
    db.session.commit()
    return redirect(checkout_url, 303)


@bp.get("/orders")
@login_required
def orders():
    """My orders, newest first, each with its payment status from PayBridge."""
    mine = services.customer_orders(current_customer().id)
    return render_template("shop/orders.html", orders=mine, payments=services.payment_views(mine))


@bp.get("/orders/<int:order_id>")
@login_required
def order(order_id: int):
    """One order: items, status, and what the shopper can do next."""
    item = owned_order(order_id)
    return render_template("shop/order.html", order=item, payment=services.payment_view(item))


def _refresh_state(order: Order, payment) -> tuple[bool, int]:
    """(reload again?, next counter): until both the payment and the order are final."""
    count = request.args.get("n", 0, type=int)
    settled = order.is_final and (payment is None or payment.is_final)
    return (not settled and count < REFRESH_LIMIT), count + 1


@bp.get("/orders/<int:order_id>/success")
@login_required
def order_success(order_id: int):
    """The shopper is back from checkout; that is not proof of payment, so show the real state."""
    item = owned_order(order_id)
    payment = services.payment_view(item)
    refresh, n = _refresh_state(item, payment)
    return render_template(
        "shop/return.html", order=item, payment=payment, kind="success",
        refresh=refresh, refresh_seconds=REFRESH_SECONDS,
        refresh_url=url_for("shop.order_success", order_id=item.id, n=n),
    )  # fmt: skip


@bp.get("/orders/<int:order_id>/cancelled")
@login_required
def order_cancelled(order_id: int):
    """The shopper left the checkout: nothing is paid unless PayBridge says so."""
    item = owned_order(order_id)
    payment = services.payment_view(item)
    # An open checkout is a stable state here (the shopper chose to leave); only a payment
    # that is being confirmed is worth watching.
    watching = payment is not None and payment.status in ("PENDING", "SUCCESS", "FAILED")
    refresh, n = _refresh_state(item, payment)
    return render_template(
        "shop/return.html", order=item, payment=payment, kind="cancelled",
        refresh=refresh and watching, refresh_seconds=REFRESH_SECONDS,
        refresh_url=url_for("shop.order_cancelled", order_id=item.id, n=n),
    )  # fmt: skip


@bp.post("/orders/<int:order_id>/cancel")
@login_required
def order_cancel(order_id: int):
    """Give up on an unpaid order: its payment is expired at PayBridge and becomes FAILED."""
    if not ActionForm().validate_on_submit():
        abort(400, "The form is incomplete.")
    item = owned_order(order_id)
    try:
        services.cancel_order(item)
    except ShopError as error:
        db.session.rollback()
        flash(error.message, "error")
        return redirect(url_for("shop.order", order_id=order_id), 303)
    db.session.commit()
    flash("The payment was stopped. Your order will show as not paid in a moment.", "info")
    return redirect(url_for("shop.order", order_id=order_id), 303)


@bp.post("/orders/<int:order_id>/reorder")
@login_required
def order_reorder(order_id: int):
    """Put a past order's prints back in the cart (a failed payment cannot be paid again)."""
    if not ActionForm().validate_on_submit():
        abort(400, "The form is incomplete.")
    state = session_cart()
    skipped = 0
    for product_id, quantity in services.reorder_items(owned_order(order_id)):
        try:
            state = carts.add(state, product_id, quantity)
        except carts.CartError:
            skipped += 1
    save_cart(state)
    if skipped:
        flash("Some prints could not be added back (no longer available, or too many).", "info")
    else:
        flash("The order's prints are back in your cart.", "success")
    return redirect(url_for("shop.cart"), 303)


# --- notifications from PayBridge ---------------------------------------------------------------


@bp.post("/shop/notify")
@csrf.exempt
def notify_endpoint():
    """PayBridge's signed notification about our payment: verify, dedupe, apply."""
    body = request.get_data(cache=False)
    try:
        payload = notify.verify(body, dict(request.headers), services.signing_secrets())
    except notify.NotificationRejected as error:
        current_app.logger.warning("shop notify rejected: %s", error)
        raise PayBridgeError(error.code, f"Notification refused: {error}.") from None
    result = notify.apply(request.headers["webhook-id"], payload)
    db.session.commit()
    return jsonify({"received": True, "outcome": result.outcome})
