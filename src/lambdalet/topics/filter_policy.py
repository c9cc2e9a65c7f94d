"""SNS subscription filter policies: checking a policy and matching a message against it.

A policy is a JSON object whose keys name message attributes (scope ``MessageAttributes``,
the default) or keys of a JSON message body (scope ``MessageBody``, where values may be
nested objects). Each leaf is a list of conditions, any one of which may match: exact
strings and numbers, ``prefix``, ``suffix``, ``equals-ignore-case``, ``anything-but`` (values,
or a ``prefix``/``suffix``), ``numeric`` comparisons and ranges, ``exists`` and ``cidr``. Every
key of a policy must match; ``"$or": [policy, ...]`` matches when one of its policies does.

As on AWS: a ``Number`` attribute (or a JSON number) matches numeric conditions, a ``String``
attribute string conditions, a ``String.Array`` attribute matches when one of its elements
does, ``Binary`` attributes never match, and a missing key matches only ``{"exists": false}``.
Limits: five keys in a policy, 150 combinations of conditions in all, numbers within ±1e9.
"""

from __future__ import annotations

import ipaddress
import json
import math
from typing import Any

MESSAGE_ATTRIBUTES = "MessageAttributes"
MESSAGE_BODY = "MessageBody"
SCOPES = (MESSAGE_ATTRIBUTES, MESSAGE_BODY)
MAX_KEYS = 5
MAX_COMBINATIONS = 150
MAX_NUMBER = 1e9
_NUMERIC_OPERATORS = ("=", "<", "<=", ">", ">=")
_MISSING = object()


class FilterPolicyError(ValueError):
    """Raised when a filter policy cannot be used; the message says why."""


def parse(text: str, scope: str = MESSAGE_ATTRIBUTES) -> dict[str, Any]:
    """The policy a FilterPolicy attribute holds, if SNS would accept it for ``scope``."""
    if scope not in SCOPES:
        raise FilterPolicyError(f"FilterPolicyScope must be one of {', '.join(SCOPES)}")
    try:
        policy = json.loads(text)
    except ValueError as error:
        raise FilterPolicyError(f"failed to parse JSON: {error}") from None
    if not isinstance(policy, dict):
        raise FilterPolicyError("the policy must be a JSON object")
    combinations = _check_policy(policy, nested=scope == MESSAGE_BODY, path="")
    if combinations > MAX_COMBINATIONS:
        raise FilterPolicyError(
            f"Filter policy is too complex: {combinations} combinations of conditions, at"
            f" most {MAX_COMBINATIONS} are allowed"
        )
    return policy


def _check_policy(policy: dict[str, Any], *, nested: bool, path: str) -> int:
    """Check one (sub-)policy; return how many combinations of conditions it makes."""
    if not policy:
        raise FilterPolicyError(f"empty object at {path or 'the top level'}")
    leaf_keys = [key for key in policy if key != "$or"]
    if not path and len(leaf_keys) > MAX_KEYS:
        raise FilterPolicyError(
            f"Filter policy can not have more than {MAX_KEYS} keys, it has {len(leaf_keys)}"
        )
    combinations = 1
    for key, value in policy.items():
        where = f"{path}.{key}" if path else key
        if key == "$or":
            if not isinstance(value, list) or len(value) < 2:
                raise FilterPolicyError("$or must be a list of at least two policies")
            total = 0
            for option in value:
                if not isinstance(option, dict):
                    raise FilterPolicyError("each policy of $or must be a JSON object")
                total += _check_policy(option, nested=nested, path=path)
            combinations *= total
        elif isinstance(value, dict):
            if not nested:
                raise FilterPolicyError(
                    f'"{where}" must be an array of conditions: nested keys are allowed only'
                    " with FilterPolicyScope MessageBody"
                )
            combinations *= _check_policy(value, nested=True, path=where)
        elif isinstance(value, list):
            if not value:
                raise FilterPolicyError(f'"{where}" must not be an empty array')
            for condition in value:
                _check_condition(condition, where)
            combinations *= len(value)
        else:
            raise FilterPolicyError(f'"{where}" must be an object or an array')
    return combinations


def _check_number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise FilterPolicyError(f'"{where}": numeric values must be numbers')
    if abs(value) > MAX_NUMBER:
        raise FilterPolicyError(f'"{where}": numbers must be between -1e9 and 1e9')
    return float(value)


def _check_string(value: Any, operator: str, where: str) -> None:
    if not isinstance(value, str):
        raise FilterPolicyError(f'"{where}": {operator} must be given a string')


def _check_condition(condition: Any, where: str) -> None:
    if condition is None or isinstance(condition, str):
        return
    if isinstance(condition, bool):
        raise FilterPolicyError(f'"{where}": true and false are not valid conditions')
    if isinstance(condition, int | float):
        _check_number(condition, where)
        return
    if not isinstance(condition, dict):
        raise FilterPolicyError(f'"{where}": a condition must be a string, number or object')
    if len(condition) != 1:
        raise FilterPolicyError(f'"{where}": a condition object must have exactly one operator')
    ((operator, operand),) = condition.items()
    if operator in ("prefix", "suffix", "equals-ignore-case"):
        _check_string(operand, operator, where)
    elif operator == "exists":
        if not isinstance(operand, bool):
            raise FilterPolicyError(f'"{where}": exists must be true or false')
    elif operator == "anything-but":
        _check_anything_but(operand, where)
    elif operator == "numeric":
        _check_numeric(operand, where)
    elif operator == "cidr":
        _check_string(operand, operator, where)
        try:
            ipaddress.ip_network(operand, strict=False)
        except ValueError:
            raise FilterPolicyError(f'"{where}": {operand!r} is not a CIDR block') from None
    else:
        raise FilterPolicyError(f'"{where}": unrecognized match type {operator}')


def _check_anything_but(operand: Any, where: str) -> None:
    if isinstance(operand, dict):
        if len(operand) != 1 or next(iter(operand)) not in ("prefix", "suffix"):
            raise FilterPolicyError(
                f'"{where}": anything-but takes a value, a list of values, or one prefix or suffix'
            )
        _check_string(next(iter(operand.values())), "anything-but prefix/suffix", where)
        return
    values = operand if isinstance(operand, list) else [operand]
    if not values:
        raise FilterPolicyError(f'"{where}": anything-but must not be an empty list')
    for value in values:
        if isinstance(value, str):
            continue
        _check_number(value, where)


def _check_numeric(operand: Any, where: str) -> None:
    if not isinstance(operand, list) or len(operand) not in (2, 4):
        raise FilterPolicyError(
            f'"{where}": numeric must be a list like [">", 0] or [">", 0, "<=", 5]'
        )
    operators = operand[0::2]
    bounds = [_check_number(value, where) for value in operand[1::2]]
    for operator in operators:
        if operator not in _NUMERIC_OPERATORS:
            raise FilterPolicyError(f'"{where}": unrecognized numeric operator {operator!r}')
    if len(operand) == 4:
        if operators[0] not in (">", ">=") or operators[1] not in ("<", "<="):
            raise FilterPolicyError(
                f'"{where}": a numeric range must be a lower bound (> or >=) then an upper'
                " bound (< or <=)"
            )
        if bounds[0] >= bounds[1]:
            raise FilterPolicyError(f'"{where}": the bottom must be less than the top')


# Matching.


def matches(
    policy: dict[str, Any] | None,
    scope: str,
    message: str,
    attributes: dict[str, dict[str, Any]],
) -> bool:
    """Whether a message (with its attributes) passes a subscription's filter policy."""
    if not policy:
        return True
    if scope == MESSAGE_BODY:
        try:
            body = json.loads(message)
        except ValueError:
            return False
        return isinstance(body, dict) and _matches_object(policy, body)
    values: dict[str, Any] = {}
    for name, attribute in attributes.items():
        value = attribute_value(attribute)
        if value is not _MISSING:
            values[name] = value
    return _matches_object(policy, values)


def attribute_value(attribute: dict[str, Any]) -> Any:
    """What a message attribute stands for in matching: a string, a number or a list."""
    data_type = str(attribute.get("DataType", ""))
    text = attribute.get("StringValue")
    if data_type.startswith("Binary") or not isinstance(text, str):
        return _MISSING
    if data_type.startswith("Number"):
        try:
            return float(text)
        except ValueError:
            return _MISSING
    if data_type == "String.Array":
        try:
            items = json.loads(text)
        except ValueError:
            return _MISSING
        return items if isinstance(items, list) else _MISSING
    return text


def _matches_object(policy: dict[str, Any], values: dict[str, Any]) -> bool:
    for key, expected in policy.items():
        if key == "$or":
            if not any(_matches_object(option, values) for option in expected):
                return False
            continue
        value = values.get(key, _MISSING)
        if isinstance(expected, dict):
            if not isinstance(value, dict) or not _matches_object(expected, value):
                return False
        elif not _matches_conditions(expected, value):
            return False
    return True


def _matches_conditions(conditions: list[Any], value: Any) -> bool:
    candidates = value if isinstance(value, list) else [value]
    for condition in conditions:
        if isinstance(condition, dict) and "exists" in condition:
            present = value is not _MISSING
            if present == condition["exists"]:
                return True
            continue
        if value is _MISSING:
            continue
        if any(_matches_condition(condition, candidate) for candidate in candidates):
            return True
    return False


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _matches_condition(condition: Any, value: Any) -> bool:
    if condition is None:
        return value is None
    if isinstance(condition, str):
        return isinstance(value, str) and value == condition
    if _is_number(condition):
        return _is_number(value) and float(value) == float(condition)
    ((operator, operand),) = condition.items()
    if operator == "prefix":
        return isinstance(value, str) and value.startswith(operand)
    if operator == "suffix":
        return isinstance(value, str) and value.endswith(operand)
    if operator == "equals-ignore-case":
        return isinstance(value, str) and value.casefold() == operand.casefold()
    if operator == "anything-but":
        return _matches_anything_but(operand, value)
    if operator == "numeric":
        return _is_number(value) and _matches_numeric(operand, float(value))
    if operator == "cidr":
        return _matches_cidr(operand, value)
    return False


def _matches_anything_but(operand: Any, value: Any) -> bool:
    if isinstance(operand, dict):
        ((operator, text),) = operand.items()
        if not isinstance(value, str):
            return True
        return not (value.startswith(text) if operator == "prefix" else value.endswith(text))
    excluded = operand if isinstance(operand, list) else [operand]
    for item in excluded:
        if isinstance(item, str) and value == item:
            return False
        if _is_number(item) and _is_number(value) and float(item) == float(value):
            return False
    return True


def _matches_numeric(operand: list[Any], value: float) -> bool:
    for operator, bound in zip(operand[0::2], operand[1::2], strict=True):
        bound = float(bound)
        passed = {
            "=": value == bound,
            "<": value < bound,
            "<=": value <= bound,
            ">": value > bound,
            ">=": value >= bound,
        }[operator]
        if not passed:
            return False
    return True


def _matches_cidr(block: str, value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        return ipaddress.ip_address(value) in ipaddress.ip_network(block, strict=False)
    except ValueError:
        return False
