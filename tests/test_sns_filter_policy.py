"""Filter policies: a table of policies, messages and whether they match, and invalid policies."""

from __future__ import annotations

import json
from typing import Any

import pytest

from lambdalet.topics import filter_policy
from lambdalet.topics.filter_policy import MESSAGE_ATTRIBUTES, MESSAGE_BODY, FilterPolicyError


def s(value: str) -> dict[str, str]:
    return {"DataType": "String", "StringValue": value}


def n(value: str) -> dict[str, str]:
    return {"DataType": "Number", "StringValue": value}


def array(*values: Any) -> dict[str, str]:
    return {"DataType": "String.Array", "StringValue": json.dumps(list(values))}


BINARY = {"DataType": "Binary", "BinaryValue": "AAE="}

# (policy, message attributes, expected)
ATTRIBUTE_CASES: list[tuple[dict[str, Any], dict[str, dict[str, str]], bool]] = [
    ({"store": ["example_corp"]}, {"store": s("example_corp")}, True),
    ({"store": ["example_corp"]}, {"store": s("other")}, False),
    ({"store": ["example_corp"]}, {}, False),
    ({"store": ["a", "b"]}, {"store": s("b")}, True),
    ({"price": [100]}, {"price": n("100.0")}, True),
    ({"price": [100]}, {"price": s("100")}, False),  # a number matches Number attributes only
    ({"price": ["100"]}, {"price": n("100")}, False),  # a string matches String attributes only
    ({"name": [{"prefix": "ord"}]}, {"name": s("order-1")}, True),
    ({"name": [{"prefix": "ord"}]}, {"name": s("sale")}, False),
    ({"file": [{"suffix": ".png"}]}, {"file": s("cat.png")}, True),
    ({"file": [{"suffix": ".png"}]}, {"file": s("cat.jpg")}, False),
    ({"name": [{"equals-ignore-case": "BLUE"}]}, {"name": s("blue")}, True),
    ({"name": [{"equals-ignore-case": "BLUE"}]}, {"name": s("blues")}, False),
    ({"state": [{"anything-but": "done"}]}, {"state": s("open")}, True),
    ({"state": [{"anything-but": "done"}]}, {"state": s("done")}, False),
    ({"state": [{"anything-but": ["done", "gone"]}]}, {"state": s("gone")}, False),
    ({"state": [{"anything-but": "done"}]}, {}, False),  # a missing key is not "anything"
    ({"code": [{"anything-but": [1, 2]}]}, {"code": n("3")}, True),
    ({"code": [{"anything-but": [1, 2]}]}, {"code": n("2")}, False),
    ({"state": [{"anything-but": {"prefix": "in"}}]}, {"state": s("invalid")}, False),
    ({"state": [{"anything-but": {"prefix": "in"}}]}, {"state": s("valid")}, True),
    ({"state": [{"anything-but": {"suffix": "ed"}}]}, {"state": s("closed")}, False),
    ({"price": [{"numeric": [">", 0, "<=", 150]}]}, {"price": n("150")}, True),
    ({"price": [{"numeric": [">", 0, "<=", 150]}]}, {"price": n("0")}, False),
    ({"price": [{"numeric": [">", 0, "<=", 150]}]}, {"price": n("150.5")}, False),
    ({"price": [{"numeric": ["=", 3.5]}]}, {"price": n("3.5")}, True),
    ({"price": [{"numeric": [">=", 10]}]}, {"price": s("20")}, False),
    ({"price": [{"numeric": ["<", 0]}]}, {"price": n("-1e2")}, True),
    ({"tag": [{"exists": True}]}, {"tag": s("x")}, True),
    ({"tag": [{"exists": True}]}, {}, False),
    ({"tag": [{"exists": False}]}, {}, True),
    ({"tag": [{"exists": False}]}, {"tag": s("x")}, False),
    ({"ip": [{"cidr": "10.0.0.0/24"}]}, {"ip": s("10.0.0.7")}, True),
    ({"ip": [{"cidr": "10.0.0.0/24"}]}, {"ip": s("10.0.1.7")}, False),
    ({"sport": ["rugby"]}, {"sport": array("soccer", "rugby")}, True),
    ({"sport": ["rugby"]}, {"sport": array("soccer")}, False),
    ({"level": [3]}, {"level": array(1, 3)}, True),
    ({"data": [{"exists": True}]}, {"data": BINARY}, False),  # Binary attributes never match
    ({"a": ["x"], "b": ["y"]}, {"a": s("x"), "b": s("y")}, True),
    ({"a": ["x"], "b": ["y"]}, {"a": s("x"), "b": s("z")}, False),
    ({"a": ["x"], "b": ["y"]}, {"a": s("x")}, False),
    ({"$or": [{"a": ["x"]}, {"b": ["y"]}]}, {"b": s("y")}, True),
    ({"$or": [{"a": ["x"]}, {"b": ["y"]}]}, {"a": s("y"), "b": s("x")}, False),
    ({"c": ["1"], "$or": [{"a": ["x"]}, {"b": ["y"]}]}, {"a": s("x")}, False),
    ({"c": ["1"], "$or": [{"a": ["x"]}, {"b": ["y"]}]}, {"a": s("x"), "c": s("1")}, True),
]

# (policy, JSON message body, expected)
BODY_CASES: list[tuple[dict[str, Any], Any, bool]] = [
    ({"store": ["example_corp"]}, {"store": "example_corp"}, True),
    ({"order": {"kind": ["gift"]}}, {"order": {"kind": "gift"}}, True),
    ({"order": {"kind": ["gift"]}}, {"order": {"kind": "book"}}, False),
    ({"order": {"kind": ["gift"]}}, {"order": "gift"}, False),
    (
        {"order": {"item": {"price": [{"numeric": [">", 10]}]}}},
        {"order": {"item": {"price": 11}}},
        True,
    ),
    (
        {"order": {"item": {"price": [{"numeric": [">", 10]}]}}},
        {"order": {"item": {"price": "11"}}},
        False,
    ),
    ({"tags": ["b"]}, {"tags": ["a", "b"]}, True),
    ({"items": {"sku": ["x"]}}, {"items": {"sku": ["y", "x"]}}, True),
    ({"flag": [None]}, {"flag": None}, True),
    ({"flag": [{"exists": False}]}, {"other": 1}, True),
    ({"a": {"b": [{"exists": True}]}}, {"a": {"b": 0}}, True),
    ({"$or": [{"a": [1]}, {"b": {"c": ["d"]}}]}, {"b": {"c": "d"}}, True),
    ({"store": ["x"]}, "not json", False),
    ({"store": ["x"]}, ["store", "x"], False),
]

INVALID: list[tuple[str, str, str]] = [
    ("{", MESSAGE_ATTRIBUTES, "failed to parse JSON"),
    ("[]", MESSAGE_ATTRIBUTES, "must be a JSON object"),
    ("{}", MESSAGE_ATTRIBUTES, "empty object"),
    ('{"a": "x"}', MESSAGE_ATTRIBUTES, "must be an object or an array"),
    ('{"a": []}', MESSAGE_ATTRIBUTES, "must not be an empty array"),
    ('{"a": [true]}', MESSAGE_ATTRIBUTES, "true and false are not valid"),
    ('{"a": [{"b": ["c"]}]}', MESSAGE_ATTRIBUTES, "unrecognized match type b"),
    ('{"a": {"b": ["c"]}}', MESSAGE_ATTRIBUTES, "nested keys are allowed only"),
    ('{"a": [{"prefix": 1}]}', MESSAGE_ATTRIBUTES, "prefix must be given a string"),
    ('{"a": [{"prefix": "x", "suffix": "y"}]}', MESSAGE_ATTRIBUTES, "exactly one operator"),
    ('{"a": [{"exists": "yes"}]}', MESSAGE_ATTRIBUTES, "exists must be true or false"),
    ('{"a": [{"numeric": [">"]}]}', MESSAGE_ATTRIBUTES, "numeric must be a list"),
    ('{"a": [{"numeric": ["!=", 1]}]}', MESSAGE_ATTRIBUTES, "unrecognized numeric operator"),
    ('{"a": [{"numeric": [">", "1"]}]}', MESSAGE_ATTRIBUTES, "must be numbers"),
    ('{"a": [{"numeric": ["<", 5, ">", 1]}]}', MESSAGE_ATTRIBUTES, "lower bound"),
    ('{"a": [{"numeric": [">", 5, "<", 1]}]}', MESSAGE_ATTRIBUTES, "bottom must be less"),
    ('{"a": [{"numeric": [">", 1e10]}]}', MESSAGE_ATTRIBUTES, "between -1e9 and 1e9"),
    ('{"a": [{"anything-but": []}]}', MESSAGE_ATTRIBUTES, "must not be an empty list"),
    ('{"a": [{"anything-but": {"exists": true}}]}', MESSAGE_ATTRIBUTES, "one prefix or suffix"),
    ('{"a": [{"cidr": "10.0.0.0/99"}]}', MESSAGE_ATTRIBUTES, "not a CIDR block"),
    ('{"$or": [{"a": ["x"]}]}', MESSAGE_ATTRIBUTES, "at least two policies"),
    (
        '{"a":["1"],"b":["1"],"c":["1"],"d":["1"],"e":["1"],"f":["1"]}',
        MESSAGE_ATTRIBUTES,
        "more than 5 keys",
    ),
    (json.dumps({k: list(range(6)) for k in "abc"}), MESSAGE_ATTRIBUTES, "too complex"),
    ('{"a": ["x"]}', "Everything", "FilterPolicyScope must be one of"),
]


@pytest.mark.parametrize(("policy", "attributes", "expected"), ATTRIBUTE_CASES)
def test_message_attribute_scope(
    policy: dict[str, Any], attributes: dict[str, dict[str, str]], expected: bool
) -> None:
    parsed = filter_policy.parse(json.dumps(policy), MESSAGE_ATTRIBUTES)
    assert filter_policy.matches(parsed, MESSAGE_ATTRIBUTES, "ignored", attributes) is expected


@pytest.mark.parametrize(("policy", "body", "expected"), BODY_CASES)
def test_message_body_scope(policy: dict[str, Any], body: Any, expected: bool) -> None:
    parsed = filter_policy.parse(json.dumps(policy), MESSAGE_BODY)
    text = body if isinstance(body, str) else json.dumps(body)
    # The body scope ignores attributes, even ones that would match.
    attributes = {"store": s("x")}
    assert filter_policy.matches(parsed, MESSAGE_BODY, text, attributes) is expected


@pytest.mark.parametrize(("text", "scope", "reason"), INVALID)
def test_invalid_policies(text: str, scope: str, reason: str) -> None:
    with pytest.raises(FilterPolicyError) as raised:
        filter_policy.parse(text, scope)
    assert reason in str(raised.value)


def test_no_policy_matches_everything() -> None:
    assert filter_policy.matches(None, MESSAGE_ATTRIBUTES, "x", {})
    assert filter_policy.matches({}, MESSAGE_BODY, "not json", {})
