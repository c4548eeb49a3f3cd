"""The shopper's pages: catalogue, cart, account, checkout and orders."""

from __future__ import annotations

import secrets

from flask import abort, flash, redirect, render_template, request, url_for

from demo_shop import accounts, catalogue, orders, payments, subscriptions
from demo_shop import cart as carts
from demo_shop.blueprints.shop import bp
from demo_shop.blueprints.shop.forms import (
    ActionForm,
    AddToCartForm,
    CheckoutForm,
    LoginForm,
    RemoveFromCartForm,
    SignupForm,
    UpdateCartForm,
)
from demo_shop.blueprints.shop.shopper import (
    current_customer,
    log_in,
    log_out,
    login_required,
    owned_order,
    safe_next,
    save_cart,
    session_cart,
)
from demo_shop.extensions import db, limiter
from demo_shop.models import Order
from demo_shop.orders import ShopError

# The return pages reload themselves this often, this many times, until the order is settled.
REFRESH_SECONDS = 2
REFRESH_LIMIT = 90


@bp.app_context_processor  # error pages too
def shop_context() -> dict:
    return {
        "shopper": current_customer(),
        "cart_count": sum(session_cart()["items"].values()),
        "action_form": ActionForm(),
        "plans": list(catalogue.PLANS.values()),
    }


# --- catalogue and cart -------------------------------------------------------------------------


@bp.get("/")
def home():
    """Every print on sale, and the subscription plan."""
    return render_template("shop/catalogue.html", products=catalogue.products_on_sale())


@bp.get("/products/<slug>")
def product(slug: str):
    """One print, with a quantity to add to the cart."""
    item = catalogue.product_by_slug(slug) or abort(404, "This print is not in the shop.")
    return render_template(
        "shop/product.html", product=item, form=AddToCartForm(product_id=item.id)
    )


@bp.get("/cart")
def cart():
    """The cart, priced from today's catalogue."""
    return render_template("shop/cart.html", cart=carts.price(session_cart()))


@bp.post("/cart/add")
def cart_add():
    """Add a print to the cart."""
    form = AddToCartForm()
    if _change_cart(form, lambda cart: carts.add(cart, _product_id(form), form.quantity.data)):
        flash("Added to your cart.", "success")
    return redirect(url_for("shop.cart"), 303)


@bp.post("/cart/update")
def cart_update():
    """Change a cart line's quantity (0 removes it)."""
    form = UpdateCartForm()
    _change_cart(form, lambda cart: carts.update(cart, _product_id(form), form.quantity.data))
    return redirect(url_for("shop.cart"), 303)


@bp.post("/cart/remove")
def cart_remove():
    """Take a print out of the cart."""
    form = RemoveFromCartForm()
    if _change_cart(form, lambda cart: carts.remove(cart, _product_id(form))):
        flash("Removed from your cart.", "success")
    return redirect(url_for("shop.cart"), 303)


def _change_cart(form, change) -> bool:
    if not form.validate_on_submit():
        flash(_first_error(form) or "Choose a quantity.", "error")
        return False
    try:
        save_cart(change(session_cart()))
    except carts.CartError as error:
        flash(str(error), "error")
        return False
    return True


def _product_id(form) -> int:
    value = str(form.product_id.data or "")
    if not value.isdigit():
        abort(400, "Unknown product.")
    return int(value)


def _first_error(form) -> str | None:
    return next((errors[0] for errors in form.errors.values() if errors), None)


# --- accounts -----------------------------------------------------------------------------------


# Rate limits on sign-up and log-in: per address (a burst from one place) and per account (a
# guesser spreading over addresses). Only failed log-ins use up the per-account allowance.
SIGNUP_LIMIT_PER_IP = "20 per minute"
SIGNUP_LIMIT_PER_ACCOUNT = "5 per hour"
LOGIN_LIMIT_PER_IP = "20 per minute"
LOGIN_LIMIT_PER_ACCOUNT = "5 per minute"
SIGNED_UP = (
    "Thanks! If {email} is new to the shop, its account is ready: log in with the password you "
    "just chose. If it already had an account, log in with that account's password."
)


def _per_account(action: str):
    def key() -> str:
        email = accounts.normalise_email(request.form.get("email") or "")[:254]
        return f"shop-{action}:{email}"

    return key


def _login_failed(response) -> bool:
    return response.status_code != 303


@bp.route("/account/signup", methods=["GET", "POST"])
@limiter.limit(SIGNUP_LIMIT_PER_IP, methods=["POST"])
@limiter.limit(SIGNUP_LIMIT_PER_ACCOUNT, key_func=_per_account("signup"), methods=["POST"])
def signup():
    """Create a shopper account; the answer is the same whether the address had one already."""
    form = SignupForm()
    if form.validate_on_submit():
        try:
            accounts.register(form.email.data, form.name.data, form.password.data)
        except accounts.AccountError as error:
            form.password.errors.append(str(error))
        else:
            db.session.commit()
            flash(SIGNED_UP.format(email=accounts.normalise_email(form.email.data)), "success")
            return redirect(url_for("shop.login", next=safe_next(request.args.get("next"))), 303)
    return render_template("shop/signup.html", form=form), 422 if form.errors else 200


@bp.route("/account/login", methods=["GET", "POST"])
@limiter.limit(LOGIN_LIMIT_PER_IP, methods=["POST"], deduct_when=_login_failed)
@limiter.limit(
    LOGIN_LIMIT_PER_ACCOUNT,
    key_func=_per_account("login"),
    methods=["POST"],
    deduct_when=_login_failed,
)
def login():
    """Log a shopper in (rate limited); a wrong email and a wrong password look the same."""
    form = LoginForm(next=request.args.get("next"))
    if form.validate_on_submit():
        customer = accounts.authenticate(form.email.data, form.password.data)
        if customer is not None:
            log_in(customer)
            flash(f"Welcome back, {customer.name}.", "success")
            return redirect(safe_next(form.next.data) or url_for("shop.home"), 303)
        form.password.errors.append("That email and password do not match an account.")
    return render_template("shop/login.html", form=form), 422 if form.errors else 200


@bp.post("/account/logout")
def logout():
    """Log the shopper out; the cart stays."""
    if ActionForm().validate_on_submit():
        log_out()
        flash("You are logged out.", "info")
    return redirect(url_for("shop.home"), 303)


# --- checkout -----------------------------------------------------------------------------------


@bp.get("/checkout")
@login_required
def checkout():
    """Review the cart before placing the order."""
    priced = carts.price(session_cart())
    if priced.is_empty:
        flash("Your cart is empty.", "info")
        return redirect(url_for("shop.cart"))
    return render_template("shop/checkout.html", cart=priced, form=CheckoutForm(token=priced.token))


@bp.post("/checkout")
@login_required
def place_order():
    """Create the order (once per checkout form) and send the shopper to the hosted page."""
    form = CheckoutForm()
    if not form.validate_on_submit():
        abort(400, "The checkout form is incomplete.")
    cart_state = session_cart()
    try:
        order = orders.place_order(current_customer(), carts.price(cart_state), form.token.data)
    except ShopError as error:
        flash(error.message, "error")
        return redirect(url_for("shop.cart"), 303)
    db.session.commit()
    if cart_state["token"] == form.token.data:
        save_cart(carts.empty_cart())
    return _pay(order)


@bp.get("/subscribe/<slug>")
@login_required
def subscribe(slug: str):
    """A plan's terms, and the button that starts its first payment."""
    plan = catalogue.PLANS.get(slug) or abort(404, "There is no such subscription plan.")
    form = CheckoutForm(token=secrets.token_urlsafe(24))
    return render_template("shop/subscribe.html", plan=plan, form=form)


@bp.post("/subscribe/<slug>")
@login_required
def start_subscription(slug: str):
    """Create the plan's order (once per form) and send the shopper to the hosted page."""
    plan = catalogue.PLANS.get(slug) or abort(404, "There is no such subscription plan.")
    form = CheckoutForm()
    if not form.validate_on_submit():
        abort(400, "The subscribe form is incomplete.")
    try:
        order = orders.place_plan_order(current_customer(), plan, form.token.data)
    except ShopError as error:
        flash(error.message, "error")
        return redirect(url_for("shop.subscribe", slug=slug), 303)
    db.session.commit()
    return _pay(order)


def _pay(order: Order):
    """To the order's hosted checkout page, or back to the order with the reason why not."""
    order_id = order.id
    try:
        checkout_url = payments.start_payment(order)
    except ShopError as error:
        db.session.commit()  # what PayBridge said is worth keeping (e.g. the payment it kept)
        flash(error.message, "error")
        return redirect(url_for("shop.order", order_id=order_id), 303)
    db.session.commit()
    return redirect(checkout_url, 303)


# --- orders -------------------------------------------------------------------------------------


def require_button_post() -> None:
    """A button's POST (pay, cancel, reorder…): its CSRF token must verify, 400 otherwise."""
    if not ActionForm().validate_on_submit():
        abort(400, "The form is incomplete.")


@bp.get("/orders")
@login_required
def order_list():
    """My orders, newest first, as the shop last heard from PayBridge."""
    return render_template("shop/orders.html", orders=orders.customer_orders(current_customer().id))


@bp.get("/orders/<int:order_id>")
@login_required
def order(order_id: int):
    """One order: items, payment, refunds, the subscription and its charges, as the shop last
    heard of them (PayBridge's notifications, and the shopper's return)."""
    item = owned_order(order_id)
    subscription = subscriptions.subscription_state(item) if item.plan else None
    return render_template(
        "shop/order.html", order=item, reachable=True, subscription=subscription,
        charges=subscriptions.subscription_charges(item) if item.plan else [],
    )  # fmt: skip


@bp.get("/orders/<int:order_id>/success")
@login_required
def order_success(order_id: int):
    """Back from checkout. Coming back is no proof of payment: ask PayBridge, show its answer."""
    return _return_page(owned_order(order_id), "success")


@bp.get("/orders/<int:order_id>/cancelled")
@login_required
def order_cancelled(order_id: int):
    """The shopper left the checkout: nothing is paid unless PayBridge says so."""
    return _return_page(owned_order(order_id), "cancelled")


def _return_page(order: Order, kind: str):
    reachable = payments.refresh_payment(order)
    db.session.commit()
    count = request.args.get("n", 0, type=int)
    # Left the checkout with it still open: a settled state (the shopper chose to leave).
    waiting = not order.is_final and not (kind == "cancelled" and order.payment_status != "PENDING")
    refresh = waiting and count < REFRESH_LIMIT
    return render_template(
        "shop/return.html", order=order, kind=kind, reachable=reachable,
        refresh=refresh, refresh_seconds=REFRESH_SECONDS,
        refresh_url=url_for(f"shop.order_{kind}", order_id=order.id, n=count + 1),
    )  # fmt: skip


@bp.post("/orders/<int:order_id>/pay")
@login_required
def order_pay(order_id: int):
    """Pay again: the same order, the same payment, the same checkout page."""
    require_button_post()
    return _pay(owned_order(order_id))


@bp.post("/orders/<int:order_id>/cancel")
@login_required
def order_cancel(order_id: int):
    """Give up on an unpaid order: PayBridge stops its payment."""
    require_button_post()
    try:
        payments.cancel_order(owned_order(order_id))
        flash("The payment was stopped and your order is cancelled. Nothing was charged.", "info")
    except ShopError as error:
        flash(error.message, "error")
    db.session.commit()
    return redirect(url_for("shop.order", order_id=order_id), 303)


@bp.post("/orders/<int:order_id>/reorder")
@login_required
def order_reorder(order_id: int):
    """Put a past order's prints back in the cart (a failed payment cannot be paid again)."""
    require_button_post()
    cart, skipped = session_cart(), 0
    for product_id, quantity in orders.reorder_items(owned_order(order_id)):
        try:
            cart = carts.add(cart, product_id, quantity)
        except carts.CartError:
            skipped += 1
    save_cart(cart)
    if skipped:
        flash("Some prints could not be added back (no longer available, or too many).", "info")
    else:
        flash("The order's prints are back in your cart.", "success")
    return redirect(url_for("shop.cart"), 303)


@bp.post("/orders/<int:order_id>/subscription/cancel")
@login_required
def cancel_subscription(order_id: int):
    """Stop the order's subscription at the end of the period already paid for."""
    require_button_post()
    try:
        subscriptions.cancel_subscription(owned_order(order_id))
        flash("Your subscription ends at the end of the period you paid for.", "success")
    except ShopError as error:
        flash(error.message, "error")
    return redirect(url_for("shop.order", order_id=order_id), 303)
