"""JWT authorizers of HTTP APIs: verify a bearer token against its issuer's published keys.

As API Gateway does, the keys are found by OpenID discovery: ``<issuer>/.well-known/
openid-configuration`` names a ``jwks_uri``, whose JSON Web Key Set holds the public keys by
``kid``. Keys are cached per issuer; a token signed with a ``kid`` the cache does not know
makes the cache fetch the set again (the issuer rotated its keys), at most once per
``min_refetch_s`` per issuer so that tokens with made-up ``kid``s cannot make lambdalet hammer
the issuer. Fetching uses httpx's async client: the event loop never waits on it. An issuer
whose keys cannot be fetched (and none are cached) makes the request fail with 500
``{"message":"Internal Server Error"}``: the fault is the configuration's, not the caller's.

A token is accepted when its signature verifies with the key of its ``kid`` (RSA: RS256/384/
512; EC: ES256/384/512 — API Gateway documents RSA keys, lambdalet takes EC keys as well),
``iss`` is the authorizer's issuer, ``aud`` holds one of the authorizer's audiences (or, only
when there is no ``aud``, ``client_id`` is one of them), ``exp`` is in the future, ``nbf`` and
``iat`` (when present) are not. A token missing or failing any check is answered 401
``{"message":"Unauthorized"}`` with a ``www-authenticate`` header saying why, as AWS answers;
a route with ``authorizationScopes`` also needs one of them in the token's ``scope`` (space
separated) or ``scp`` claim, or it is answered 403 ``{"message":"Forbidden"}``.

The claims go into ``requestContext.authorizer.jwt.claims`` with their values as text, as AWS
sends them (numbers as digits, lists as ``[a b]``), and the token's scopes into ``.scopes``
when the route asks for scopes (else null).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt

log = logging.getLogger(__name__)

ALGORITHMS_BY_KEY_TYPE = {
    "RSA": ("RS256", "RS384", "RS512"),
    "EC": ("ES256", "ES384", "ES512"),
}
_FETCH_TIMEOUT_S = 5.0


class JwtRejected(Exception):
    """Raised when a request's token does not pass the authorizer; carries the HTTP answer."""

    def __init__(self, status: int, description: str, *, scope: str = "") -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.scope = scope

    @property
    def www_authenticate(self) -> str:
        """The ``www-authenticate`` header value AWS sends with the refusal."""
        error = "insufficient_scope" if self.status == 403 else "invalid_token"
        return f'Bearer scope="{self.scope}" error="{error}" error_description="{self.description}"'


class JwksUnavailable(Exception):
    """Raised when an issuer's discovery document or key set cannot be fetched or read."""


@dataclass
class _IssuerKeys:
    keys: dict[str, jwt.PyJWK] = field(default_factory=dict)
    fetched_at_s: float | None = None
    failure: JwksUnavailable | None = None  # why the last fetch failed, if it did
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class JwksCache:
    """The public keys of every issuer the node's JWT authorizers name, fetched on demand."""

    def __init__(self, *, min_refetch_s: float, clock: Callable[[], float] = time.monotonic):
        self.min_refetch_s = min_refetch_s
        self.clock = clock
        self.fetches = 0  # how many key sets were fetched (for tests and metrics)
        self._issuers: dict[str, _IssuerKeys] = {}

    async def key(self, issuer: str, kid: str) -> jwt.PyJWK | None:
        """The key ``kid`` of ``issuer``; fetches the key set when it is not known yet.

        JwksUnavailable when the set cannot be fetched and none is cached (also while a
        failed fetch is too recent to try again).
        """
        held = self._issuers.setdefault(issuer, _IssuerKeys())
        if kid in held.keys:
            return held.keys[kid]
        async with held.lock:
            if kid in held.keys:  # another request fetched it meanwhile
                return held.keys[kid]
            now_s = self.clock()
            if held.fetched_at_s is not None and now_s - held.fetched_at_s < self.min_refetch_s:
                if held.failure is not None and not held.keys:
                    raise held.failure
                return None
            held.fetched_at_s = now_s  # failures count too: a down issuer is not hammered
            try:
                held.keys = await self._fetch(issuer)
            except JwksUnavailable as error:
                held.failure = error
                if not held.keys:
                    raise
                log.warning("keeping the cached keys of %s: %s", issuer, error)
                return None
            held.failure = None
            return held.keys.get(kid)

    async def _fetch(self, issuer: str) -> dict[str, jwt.PyJWK]:
        """The keys of ``issuer`` by kid, via OpenID discovery."""
        self.fetches += 1
        discovery_url = issuer.rstrip("/") + "/.well-known/openid-configuration"
        try:
            async with httpx.AsyncClient(timeout=_FETCH_TIMEOUT_S) as client:
                discovery = (await client.get(discovery_url)).raise_for_status().json()
                jwks_uri = discovery.get("jwks_uri") if isinstance(discovery, dict) else None
                if not isinstance(jwks_uri, str):
                    raise JwksUnavailable(f"{discovery_url} names no jwks_uri")
                jwks = (await client.get(jwks_uri)).raise_for_status().json()
        except (httpx.HTTPError, json.JSONDecodeError) as error:
            raise JwksUnavailable(f"cannot fetch the keys of {issuer}: {error}") from error
        keys: dict[str, jwt.PyJWK] = {}
        for data in jwks.get("keys", []) if isinstance(jwks, dict) else []:
            if not isinstance(data, dict) or not isinstance(data.get("kid"), str):
                continue
            if data.get("use", "sig") != "sig":
                continue
            try:
                keys[data["kid"]] = jwt.PyJWK(data)
            except jwt.PyJWTError as error:
                log.warning("skipping key %s of %s: %s", data.get("kid"), issuer, error)
        return keys


def bearer_token(value: str | None) -> str | None:
    """The token of an ``Authorization`` value, with or without the ``Bearer`` prefix."""
    if value is None:
        return None
    value = value.strip()
    if value[:7].lower() == "bearer ":
        value = value[7:].strip()
    return value or None


def claim_text(value: Any) -> str:
    """A claim's value as AWS passes it on: text, lists as ``[a b]``."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + " ".join(claim_text(item) for item in value) + "]"
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def token_scopes(claims: dict[str, Any]) -> list[str]:
    """The scopes a token grants: its ``scope`` (space separated) or ``scp`` claim."""
    for name in ("scope", "scp"):
        value = claims.get(name)
        if isinstance(value, str):
            return value.split()
        if isinstance(value, list):
            return [str(item) for item in value]
    return []


async def authorize(
    keys: JwksCache,
    token: str | None,
    *,
    issuer: str,
    audiences: list[str],
    required_scopes: list[str],
) -> dict[str, Any]:
    """``requestContext.authorizer`` for a valid token; JwtRejected saying why it is not."""
    if token is None:
        raise JwtRejected(401, "the token is missing")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise JwtRejected(401, "the token is not a valid JWT") from None
    kid, algorithm = header.get("kid"), header.get("alg")
    if not isinstance(kid, str):
        raise JwtRejected(401, "the token has no kid header")
    key = await keys.key(issuer, kid)
    if key is None:
        raise JwtRejected(401, f"the token's kid {kid} is not a key of the issuer")
    allowed = ALGORITHMS_BY_KEY_TYPE.get(str(key.key_type), ())
    if not isinstance(algorithm, str) or algorithm not in allowed:
        raise JwtRejected(401, f"the token's alg {algorithm} does not fit its key")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key.key,
            algorithms=[algorithm],
            options={"require": ["exp"], "verify_aud": False, "verify_iss": False},
        )
    except jwt.ExpiredSignatureError:
        raise JwtRejected(401, "the token has expired") from None
    except jwt.ImmatureSignatureError:
        raise JwtRejected(401, "the token is not valid yet") from None
    except jwt.MissingRequiredClaimError:
        raise JwtRejected(401, "the token has no exp claim") from None
    except jwt.InvalidSignatureError:
        raise JwtRejected(401, "the token's signature is invalid") from None
    except jwt.PyJWTError as error:
        raise JwtRejected(401, f"the token is invalid: {error}") from None
    if claims.get("iss") != issuer:
        raise JwtRejected(401, "the token does not have a valid issuer")
    if "aud" in claims:
        token_audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if not set(map(str, token_audiences)) & set(audiences):
            raise JwtRejected(401, "the token does not have a valid audience")
    elif claims.get("client_id") not in audiences:
        raise JwtRejected(401, "the token does not have a valid audience")
    scopes = token_scopes(claims)
    if required_scopes and not set(scopes) & set(required_scopes):
        raise JwtRejected(
            403, "the token does not have a valid scope", scope=" ".join(required_scopes)
        )
    return {
        "jwt": {
            "claims": {name: claim_text(value) for name, value in claims.items()},
            "scopes": scopes if required_scopes else None,
        }
    }
