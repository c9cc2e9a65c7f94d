"""Route keys of HTTP APIs and how a request picks one, as API Gateway does.

A route key is ``$default`` or ``<METHOD> <path>``, where METHOD is an HTTP method or ``ANY``
and the path's segments are literals, ``{name}`` (exactly one segment) or, last only,
``{name+}`` (one or more segments). A request takes the most specific route matching it:
segment by segment from the left, a literal beats ``{name}``, which beats ``{name+}``; at
equal paths an explicit method beats ``ANY``; ``$default`` only when nothing else matches.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

DEFAULT_ROUTE = "$default"
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "ANY")
_VARIABLE = re.compile(r"^\{([A-Za-z0-9._:-]+)(\+?)\}$")
_LITERAL = re.compile(r"^[A-Za-z0-9._~:@!$&'()*,;=%-]*$")

LITERAL, VARIABLE, GREEDY = 0, 1, 2


class RouteKeyError(ValueError):
    """Raised when a route key is not ``$default`` nor ``<METHOD> /<path>``; says why."""


@dataclass(frozen=True)
class RoutePattern:
    """A parsed route key: method (None for ``$default``) and ``(kind, text)`` segments."""

    route_key: str
    method: str | None
    segments: tuple[tuple[int, str], ...]

    def match(self, method: str, path: str) -> dict[str, str] | None:
        """The (decoded) path parameters when ``method`` and the raw, percent-encoded ``path``
        match, else None; segments are split before decoding, so ``%2F`` stays in one."""
        if self.method is None:
            return {}
        if self.method not in ("ANY", method):
            return None
        parts = [] if path in ("", "/") else path.removeprefix("/").split("/")
        params: dict[str, str] = {}
        for index, (kind, text) in enumerate(self.segments):
            if kind == GREEDY:
                rest = parts[index:]
                if not rest or rest == [""]:
                    return None
                params[text] = unquote("/".join(rest))
                return params
            if index >= len(parts):
                return None
            if kind == LITERAL:
                if unquote(parts[index]) != text:
                    return None
            elif parts[index] == "":
                return None
            else:
                params[text] = unquote(parts[index])
        return params if len(parts) == len(self.segments) else None

    def specificity(self) -> tuple[tuple[int, ...], int]:
        """A sort key: smaller is more specific (see the module docstring)."""
        if self.method is None:
            return ((3,), 2)
        return (tuple(kind for kind, _ in self.segments), 1 if self.method == "ANY" else 0)


def parse_route_key(route_key: str) -> RoutePattern:
    """The pattern of a route key; RouteKeyError saying what is wrong with it."""
    if route_key == DEFAULT_ROUTE:
        return RoutePattern(route_key, None, ())
    method, space, path = route_key.partition(" ")
    if not space or method not in METHODS:
        raise RouteKeyError(
            f"Invalid route key '{route_key}': use '$default' or '<METHOD> /<path>' with METHOD"
            f" one of {', '.join(METHODS)}"
        )
    if not path.startswith("/") or " " in path:
        raise RouteKeyError(f"Invalid route key '{route_key}': the path must start with '/'")
    raw_segments = [] if path == "/" else path[1:].split("/")
    segments: list[tuple[int, str]] = []
    names: set[str] = set()
    for index, segment in enumerate(raw_segments):
        variable = _VARIABLE.match(segment)
        if variable is not None:
            name, greedy = variable.group(1), variable.group(2)
            if greedy and index != len(raw_segments) - 1:
                raise RouteKeyError(
                    f"Invalid route key '{route_key}': a greedy path variable"
                    f" '{{{name}+}}' must be the last segment"
                )
            if name in names:
                raise RouteKeyError(
                    f"Invalid route key '{route_key}': path variable '{name}' appears twice"
                )
            names.add(name)
            segments.append((GREEDY if greedy else VARIABLE, name))
        elif segment == "" or not _LITERAL.match(segment) or "{" in segment or "}" in segment:
            raise RouteKeyError(
                f"Invalid route key '{route_key}': segment '{segment}' is neither a literal"
                " nor a path variable like {id} or {proxy+}"
            )
        else:
            segments.append((LITERAL, segment))
    return RoutePattern(route_key, method, tuple(segments))


def select_route(
    patterns: list[RoutePattern], method: str, path: str
) -> tuple[RoutePattern, dict[str, str]] | None:
    """The most specific pattern matching the request, with its path parameters; or None."""
    best: tuple[RoutePattern, dict[str, str]] | None = None
    for pattern in patterns:
        params = pattern.match(method, path)
        if params is None:
            continue
        if best is None or pattern.specificity() < best[0].specificity():
            best = (pattern, params)
    return best
