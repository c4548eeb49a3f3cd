"""Kept only for tests/e2e/test_dashboard.py, which imports these names from here (tests/e2e is
being rebuilt elsewhere). Everything else imports them from tests/support/."""

from tests.support.factories import PASSWORD, add_payment, make_user  # noqa: F401
