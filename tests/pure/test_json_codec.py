"""addons/wire/json_codec.py: JSON read as the stdlib reads it (orjson where it can), lone UTF-16
surrogates repaired, and a ValueError for anything that is not JSON.

The fuzzing uses the JSON values of tests/pure/test_fuzz_transforms.py.
"""

import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from addons.wire.json_codec import from_json, parse_json, to_json
from tests.pure.test_fuzz_transforms import DEEP, FUZZ, json_values


def test_json_helpers_accept_what_javascript_sends():
    # JSON.stringify escapes lone surrogates; orjson refuses them, the fallback takes them and
    # repairs them (LiteLLM would refuse them), a pair written as two escapes joined.
    body = (
        b'{"messages": [{"role": "user", "content": "broken \\ud800 pair \\uD83D\\uDE00"}],'
        b' "\\udfff": 1, "n": 123456789012345678901234}'
    )
    parsed, repaired = parse_json(body)
    assert parsed["messages"][0]["content"] == "broken \ufffd pair \U0001f600" and "\ufffd" in parsed
    assert repaired == 2
    again, repaired = parse_json(to_json(parsed))  # written by the stdlib: orjson refuses the 78-bit int
    assert again["messages"] == parsed["messages"] and repaired == 0
    with pytest.raises(ValueError):
        from_json(b"{not json")


@FUZZ
@given(json_values.filter(lambda value: not has_huge_int(value)))
def test_from_json_reads_what_the_stdlib_reads(value):
    # ... but for lone UTF-16 surrogates, which become U+FFFD (LiteLLM refuses them).
    raw = json.dumps(value).encode()
    assert from_json(raw) == repaired(json.loads(raw))


LONE_SURROGATE = re.compile("[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]")


def repaired(value):
    """`value` with its lone surrogates (keys too) replaced by U+FFFD."""
    if isinstance(value, str):
        return LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [repaired(item) for item in value]
    if isinstance(value, dict):
        return {repaired(key): repaired(item) for key, item in value.items()}
    return value


def has_huge_int(value) -> bool:
    """Integers beyond 64 bits: orjson reads them as floats (see the report on addons/messages/tokens.py)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return not -(2**63) <= value < 2**64
    if isinstance(value, list):
        return any(map(has_huge_int, value))
    if isinstance(value, dict):
        return any(map(has_huge_int, value.values()))
    return False


@FUZZ
@given(st.binary(max_size=200))
def test_from_json_raises_value_error_on_any_bytes(raw):
    # Anything else (RecursionError, UnicodeDecodeError that is not a ValueError...) fails the test.
    try:
        value = from_json(raw)
    except ValueError:
        return
    assert from_json(to_json(value)) == value or value != value  # NaN aside, what it read writes back


@pytest.mark.parametrize("raw", DEEP, ids=["array", "object"])
def test_from_json_refuses_deep_nesting_with_value_error(raw):
    with pytest.raises(ValueError):
        from_json(raw)


@pytest.mark.parametrize("raw", [b"NaN", b'{"max_tokens": Infinity}', b"[-Infinity]"])
def test_from_json_refuses_what_is_not_json_but_python_reads(raw):
    with pytest.raises(ValueError):
        from_json(raw)
