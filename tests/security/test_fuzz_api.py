"""Property-based fuzzing of the JSON API from its own OpenAPI document (schemathesis): every
operation the document describes, with requests that follow it and requests that break it,
authenticated with a test API key, against the real app, MariaDB and the emulator. Any 5xx
fails the test (schemathesis's `not_a_server_error`), and every answer is JSON.

Bounded by the "paybridge" Hypothesis profile (tests/security/conftest.py)."""

from __future__ import annotations

import json

import schemathesis
from hypothesis import given, settings
from schemathesis import GenerationMode

from tests.support.api import auth_headers

# Every operation, in both modes: three fifths of the profile's examples each (thousands of
# requests in all; the list filters have their own, deeper fuzz in test_fuzz_inputs.py).
PER_OPERATION = settings(max_examples=settings.default.max_examples * 3 // 5)


def _fuzz(operation, mode: GenerationMode, headers: dict[str, str]) -> list[str]:
    """Run one operation's examples; the server errors they met, described."""
    failures: list[str] = []

    @PER_OPERATION
    @given(case=operation.as_strategy(mode))
    def run(case) -> None:
        response = case.call(headers=headers)
        if response.status_code >= 500:
            failures.append(f"{response.status_code} for {case.as_curl_command(headers)}")
            raise AssertionError(failures[-1])
        json.loads(response.content)  # every answer, errors included, is JSON

    try:
        run()
    except AssertionError:
        pass  # recorded (Hypothesis reports the smallest example it found)
    return failures


def test_no_api_operation_answers_a_server_error(app, make_unthrottled_merchant, emu):
    _merchant, key = make_unthrottled_merchant("Fuzzed")
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    headers = {**auth_headers(key)}
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 6, "the OpenAPI document lost its operations"
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            failures += [f"{operation.label} ({mode.value}): {f}" for f in _fuzz(
                operation, mode, headers)]  # fmt: skip
    assert failures == []
