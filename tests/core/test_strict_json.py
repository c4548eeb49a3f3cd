"""strict_json's shortcut (text that cannot hold a long string, a surrogate or an out-of-range
number is only checked for depth) refuses exactly what the full walk refuses."""

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from app.common import strict_json

LIMITS = strict_json.Limits(max_depth=4, max_string=400)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=80)
)
documents = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=30,
)
# Each of what the full walk looks for, written into the text as an outside client would.
UNSAFE = ["null", "1e400", "-12345678901234567890123", '"\\ud800"', '"' + "y" * 401 + '"']


def _full_walk_refuses(text: str) -> bool:
    try:
        strict_json._check(json.loads(text), LIMITS)
    except strict_json.StrictJsonError:
        return True
    return False


def _loads_refuses(text: str) -> bool:
    try:
        strict_json.loads(text.encode("utf-8"), LIMITS)
    except strict_json.StrictJsonError:
        return True
    return False


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(documents, st.sampled_from(UNSAFE), st.booleans())
def test_the_shortcut_refuses_what_the_full_walk_refuses(document, extra, ascii_only):
    text = json.dumps({"d": document, "x": None}, ensure_ascii=ascii_only)
    text = text.replace('"x": null', f'"x": {extra}')
    assert _loads_refuses(text) == _full_walk_refuses(text), text
