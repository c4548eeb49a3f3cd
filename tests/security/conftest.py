"""Fixtures of the security tests (the rest come from tests/conftest.py), and the Hypothesis
profile of their property-based tests."""

import os

from hypothesis import HealthCheck, settings

from tests.core.conftest import restore_api  # noqa: F401  (a second app rebinds extensions)

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
