"""JSON sent by devices, parsed so that deep nesting is a refusal, not a RecursionError.

`json.loads` recurses once per nesting level: a 200 KB payload of brackets exhausts the stack and
raises RecursionError, which is no ValueError. Later merges and dumps recurse too, so parsed
documents are also held to a depth limit, measured without recursion.
"""

from __future__ import annotations

import json


class BadJson(ValueError):
    """Not JSON, or nested deeper than allowed; the message is safe to send back."""


def depth(value: object) -> int:
    """Levels of objects and arrays: 0 for a scalar, 1 for {"a": 1}, 2 for {"a": [1]}."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children = list(item.values())
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in children)
    return deepest


def parse(data: bytes | str, max_depth: int) -> object:
    """The JSON value in `data`, nested at most `max_depth` levels, or BadJson."""
    try:
        value = json.loads(data)
    except RecursionError:
        raise BadJson(f"JSON nested deeper than {max_depth} levels") from None
    except ValueError:
        raise BadJson("not JSON") from None
    if depth(value) > max_depth:
        raise BadJson(f"JSON nested deeper than {max_depth} levels")
    return value
