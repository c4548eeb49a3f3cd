"""Merchants' settings and dashboard users.

They take explicit arguments, flush, and leave the commit to the caller (view or CLI), so the
change and its audit row land in one transaction.
"""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select
from werkzeug.security import check_password_hash, generate_password_hash

from app.accounts.passwords import check_password
from app.accounts.sessions import end_user_sessions
from app.common.timezones import checked_zone_name
from app.errors import ValidationError
from app.extensions import db
from app.models import Merchant, User, utcnow


def set_time_zone(merchant: Merchant, name: str) -> tuple[str, str]:
    """Change the zone the merchant's dashboard days and times are in; (old, new)."""
    try:
        new = checked_zone_name(name)
    except ValueError as exc:
        raise ValidationError(str(exc), param="time_zone") from None
    old = merchant.time_zone
    merchant.time_zone = new
    db.session.flush()
    return old, new


def normalize_email(email: str) -> str:
    """A dashboard user's email as stored: valid by email-validator's rules (as the
    dashboard's forms check it; no quoted local parts, no markup), lower case; else
    ValidationError saying what is wrong."""
    try:
        checked = validate_email((email or "").strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        message = f"{email!r} is not a valid email address: {exc}"
        raise ValidationError(message, param="email") from None
    normalized = checked.normalized.lower()
    if len(normalized) > 254:
        raise ValidationError("The email address is longer than 254 characters.", param="email")
    return normalized


def create_user(email: str, password: str, *, merchant_id: int | None, operator: bool) -> User:
    """A dashboard user; the caller commits."""
    email = normalize_email(email)
    check_password(password, email=email)
    if not operator:
        if merchant_id is None or db.session.get(Merchant, merchant_id) is None:
            raise ValidationError(
                "A merchant user needs an existing --merchant-id.", param="merchant_id"
            )
    elif merchant_id is not None and db.session.get(Merchant, merchant_id) is None:
        raise ValidationError("No merchant with that id.", param="merchant_id")
    if db.session.scalar(select(User.id).where(User.email == email)) is not None:
        raise ValidationError("A user with this email exists already.", param="email")
    user = User(
        email=email,
        role=User.ROLE_OPERATOR if operator else User.ROLE_MERCHANT,
        merchant_id=merchant_id,
    )
    user.set_password(password)
    db.session.add(user)
    db.session.flush()
    return user


def set_password(user: User, password: str) -> int:
    """Give a user a new password and end every session they have open (whoever may hold a
    copy of one); how many sessions that ended."""
    check_password(password, email=user.email)
    user.set_password(password)
    db.session.flush()
    return end_user_sessions(user.id, "password_change")


def find_user_by_email(email: str) -> User | None:
    return db.session.scalar(select(User).where(User.email == (email or "").strip().lower()))


# A hash to compare against when the email is unknown, so both paths take the same time.
_DUMMY_HASH = generate_password_hash("paybridge-no-such-user")


def check_login(email: str, password: str) -> tuple[User | None, bool]:
    """The user the email names (None if nobody) and whether the password is theirs; an unknown
    email costs the same hashing as a wrong password, so timing does not tell them apart."""
    user = find_user_by_email(email)
    if user is None:
        check_password_hash(_DUMMY_HASH, password)
        return None, False
    return user, user.check_password(password)


def record_login(user: User) -> None:
    """Note a successful log-in on the user (the audit log keeps every one)."""
    user.last_login_at = utcnow()
