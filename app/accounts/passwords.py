"""What a dashboard password must be, checked by the account service itself, so that every way
of setting one (`flask users create` / `set-password`, by flag, environment or prompt, and the
dashboard's own password change) is held to it.

A dashboard user sees payments and can refund them: its password is judged by zxcvbn (the
estimator the demo shop uses too), which counts the guesses a password takes from dictionaries,
keyboard patterns, sequences and the user's own email address, and must score at least 3
("safely unguessable") in every environment. scripts/demo.sh's logins (config.DEMO_PASSWORDS)
are refused wherever the configuration does not allow them (everywhere but the demo and the
suite), however they score.
"""

from __future__ import annotations

import re

from flask import current_app
from zxcvbn import zxcvbn

from app.config import DEMO_PASSWORDS
from app.errors import ValidationError

MIN_LENGTH = 10
MAX_LENGTH = 200
# zxcvbn's scores run 0-4; 3 is "safely unguessable: moderate protection from offline
# slow-hash scenario" (fewer than 10^10 guesses is a 2).
MIN_SCORE = 3
# zxcvbn's matching grows faster than linearly with length: judge the first this many.
JUDGED_CHARACTERS = 100


def check_password(password: str, *, email: str = "") -> None:
    """ValidationError (param "password") saying why `password` may not be a dashboard
    user's; nothing when it may."""
    password = password or ""
    if password in DEMO_PASSWORDS:
        if current_app.config.get("DEMO_PASSWORDS_ALLOWED", False):
            return
        raise ValidationError(
            "That is one of the demo's published passwords: choose another.", param="password"
        )
    if len(password) < MIN_LENGTH:
        raise ValidationError(f"Passwords have at least {MIN_LENGTH} characters.", param="password")
    if len(password) > MAX_LENGTH:
        raise ValidationError(f"Passwords have at most {MAX_LENGTH} characters.", param="password")
    # The user's own address, whole and word by word (ops.team@shop.example: ops, team, shop).
    whole = [value for value in (email.lower(), email.lower().partition("@")[0]) if value]
    user_inputs = whole + [word for value in whole for word in re.split(r"[^\w]+", value) if word]
    verdict = zxcvbn(password[:JUDGED_CHARACTERS], user_inputs=user_inputs)
    if verdict["score"] >= MIN_SCORE:
        return
    feedback = verdict["feedback"]
    advice = " ".join(filter(None, [feedback.get("warning"), *feedback.get("suggestions", [])]))
    message = f"This password is too easy to guess. {advice}".strip()
    raise ValidationError(message, param="password")
