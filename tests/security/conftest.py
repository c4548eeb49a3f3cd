"""Fixtures of the security tests (the rest come from tests/conftest.py), and the Hypothesis
profile of their property-based tests."""

import os

import pytest
from hypothesis import HealthCheck, settings

from app.extensions import db
from app.models import Merchant
from tests.core.conftest import restore_api, sqlite_app  # noqa: F401  (second apps)

# The property-based tests (test_fuzz_*.py) run in the suite under "paybridge": a modest number
# of examples, derandomized (the same examples every run: a failure is never luck), no deadline
# (a loaded machine is slow, not wrong) and no example database left in the work tree. For a
# deeper hunt: HYPOTHESIS_PROFILE=paybridge-deep scripts/test.sh tests/security -k fuzz
settings.register_profile(
    "paybridge",
    max_examples=50,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
    ],
)
settings.register_profile(
    "paybridge-deep", parent=settings.get_profile("paybridge"), max_examples=1000,
    derandomize=False,
)  # fmt: skip
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "paybridge"))


@pytest.fixture
def make_unthrottled_merchant(app, make_merchant):
    """`make_merchant` with its own API limits far above what a fuzzer sends: the fuzzers look
    for server errors in the handlers, not at the rate limiter (tested in test_rate_limits.py)."""

    def make(name: str) -> tuple[Merchant, str]:
        merchant, key = make_merchant(name)
        with app.app_context():
            row = db.session.get(Merchant, merchant.id)
            row.api_read_limit = row.api_write_limit = 1_000_000
            db.session.commit()
        return merchant, key

    return make
