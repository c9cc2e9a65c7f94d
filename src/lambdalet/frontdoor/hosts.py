"""Host-based dispatch: the one ASGI app in front of the Lambda API and the HTTP endpoints.

A request whose Host is ``<id>.<label>.<region>.localhost[:port]`` (or
``<id>.<label>.<region>.<public host>`` when ``LAMBDALET_PUBLIC_URL`` names one) goes to the
app registered for ``<label>`` (``lambda-url`` for function URLs); anything else goes to the
Lambda API app. Clients that cannot set Host use the path form
``/_lambdalet/<segment>/<id>/<path>``, where ``by_path_segment`` maps a segment (``urls``) to a
label. The chosen app finds the id in ``scope["lambdalet.host_id"]`` and the request's own path
(``/<path>`` in the path form) in ``path`` and ``raw_path``.
"""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

HOST_ID = "lambdalet.host_id"
PATH_PREFIX = "/_lambdalet/"
MATCH_CACHE_SIZE = 4096  # distinct Host headers remembered (every request has one)
_UNSEEN: Any = object()


class HostDispatch:
    """Pure ASGI: route by Host header (or path form) to a labelled app, else to the API."""

    def __init__(
        self,
        api_app: ASGIApp,
        by_label: dict[str, ASGIApp],
        *,
        region: str,
        public_host: str | None = None,
        by_path_segment: dict[str, str] | None = None,
    ) -> None:
        self.api_app = api_app
        self.by_label = by_label
        self.region = region
        self.public_host = (public_host or "").lower() or None
        self.by_path_segment = by_path_segment if by_path_segment is not None else {}
        self._matched: dict[str, tuple[str, str] | None] = {}  # match_host's answers by host

    def match_host(self, host: str) -> tuple[str, str] | None:
        """(label, id) when ``host`` is one of the labelled endpoint hosts, else None."""
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        name = name.lower().rstrip(".")
        for suffix in filter(None, ("localhost", self.public_host)):
            tail = f".{self.region}.{suffix}"
            if not name.endswith(tail):
                continue
            parts = name[: -len(tail)].split(".")
            if len(parts) == 2 and parts[0] and parts[1] in self.by_label:
                return parts[1], parts[0]
        return None

    def labelled(self, host: str) -> tuple[str, str] | None:
        """:meth:`match_host`'s answer for ``host``, remembered: every request asks it."""
        matched: tuple[str, str] | None = self._matched.get(host, _UNSEEN)
        if matched is _UNSEEN:
            if len(self._matched) >= MATCH_CACHE_SIZE:
                self._matched.clear()
            matched = self._matched[host] = self.match_host(host)
        return matched

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan and websockets are the API app's
            await self.api_app(scope, receive, send)
            return
        host = ""
        for name, value in scope.get("headers", []):
            if name == b"host":
                host = value.decode("latin-1")
                break
        matched = self.labelled(host) if host else None
        if matched is not None:
            label, host_id = matched
            await self.by_label[label](dict(scope, **{HOST_ID: host_id}), receive, send)
            return
        path: str = scope.get("path", "")
        if path.startswith(PATH_PREFIX):
            routed = self._path_form(scope, path)
            if routed is not None:
                label, inner = routed
                await self.by_label[label](inner, receive, send)
                return
        await self.api_app(scope, receive, send)

    def _path_form(self, scope: Scope, path: str) -> tuple[str, Scope] | None:
        """The label and rewritten scope of a ``/_lambdalet/<segment>/<id>/<path>`` request."""
        segment, _, rest = path[len(PATH_PREFIX) :].partition("/")
        label = self.by_path_segment.get(segment)
        if label is None or label not in self.by_label:
            return None
        host_id, _, inner_path = rest.partition("/")
        if not host_id:
            return None
        raw_path: bytes = scope.get("raw_path") or path.encode()
        raw_prefix = f"{PATH_PREFIX}{segment}/{host_id}".encode()
        inner_raw = raw_path[len(raw_prefix) :] if raw_path.startswith(raw_prefix) else b""
        inner = dict(scope)
        inner["path"] = "/" + inner_path
        inner["raw_path"] = inner_raw or b"/"
        inner[HOST_ID] = host_id
        return label, inner
