"""addons/messages/memo.py: what was worked out from a value, found again by the value's identity.

A session's next request and its memo, through the request pipeline: tests/pure/test_history.py.
"""

from addons.messages.memo import INTERNED_KINDS, Kind, Memo, interned


def test_memo_computes_once_per_object_and_kind_and_carries_over():
    first = Memo()
    value = {"a": 1}
    calls = []
    assert first.get("k", value, lambda v: calls.append(v) or 1) == 1
    assert first.get("k", value, lambda v: calls.append(v) or 2) == 1
    assert first.get("other", value, lambda v: calls.append(v) or 3) == 3
    assert first.get("k", {"a": 1}, lambda v: calls.append(v) or 4) == 4  # equal, not the same
    second = Memo(first)
    assert second.get("k", value, lambda v: calls.append(v) or 5) == 1
    assert len(calls) == 3
    third = Memo(second)  # only what the second one used goes on
    assert third.get("other", value, lambda v: 6) == 6


def test_an_entry_keeps_its_value_so_its_id_is_never_another_objects():
    memo = Memo()
    # Each value is dropped by the caller at once: without the memo holding it, the next one
    # would often get its id, and with it the answer worked out for the one before.
    answers = [memo.get("k", {"n": n}, lambda value: value["n"]) for n in range(1000)]
    assert answers == list(range(1000))


def test_an_interned_kind_is_one_string_per_equal_tuple():
    kind = (Kind.STRIP_MESSAGE, frozenset({"text"}), False, "mx")
    name = interned(kind)
    assert interned((Kind.STRIP_MESSAGE, frozenset({"text"}), False, "".join(["m", "x"]))) is name
    others = {interned((*kind[:3], f"model {n}")) for n in range(INTERNED_KINDS)}
    assert name not in others and len(others) == INTERNED_KINDS
    # dropped for the others: a new string, never one another tuple has
    assert interned(kind) not in {name, *others}
