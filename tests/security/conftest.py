"""Fixtures of the security tests (the rest come from tests/conftest.py)."""

from tests.core.conftest import restore_api  # noqa: F401  (a second app rebinds extensions)
