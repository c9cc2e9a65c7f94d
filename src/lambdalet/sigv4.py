"""AWS Signature Version 4: verifying it on requests (to AWS_IAM function URLs, and to the AWS
APIs when ``LAMBDALET_VERIFY_SIGNATURES`` is on), and signing requests (lambdalet's client).

Both forms are accepted: the ``Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=...,
Signature=...`` header with ``X-Amz-Date``, and the presigned query string (``X-Amz-Algorithm``,
``X-Amz-Credential``, ``X-Amz-Date``, ``X-Amz-Expires``, ``X-Amz-SignedHeaders``,
``X-Amz-Signature``). The credential scope must name this node's region and the service
(``lambda`` unless told otherwise), the request time must be within 5 minutes of the node's
clock (a presigned URL: not expired), and the signature is compared in constant time.

The payload hash is the ``X-Amz-Content-SHA256`` header when the request sends one (``UNSIGNED-
PAYLOAD`` is accepted only for presigned URLs, as botocore presigns), else the SHA-256 of the
body. Keys come from ``LAMBDALET_CREDENTIALS``; session tokens are not checked (any
``X-Amz-Security-Token`` is accepted as a signed header).
"""

from __future__ import annotations

import hashlib
import hmac
import posixpath
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, unquote

ALGORITHM = "AWS4-HMAC-SHA256"
MAX_SKEW_S = 5 * 60
MAX_EXPIRES_S = 7 * 24 * 3600
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
_AUTHORIZATION = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=([^,\s]+),\s*SignedHeaders=([^,\s]+),\s*Signature=([0-9a-f]+)\s*$"
)
_SPACES = re.compile(r"\s+")


MISSING = "missing"  # no signature at all
UNKNOWN_KEY = "unknown key"  # signed with an access key this node does not have
INVALID = "invalid"  # anything else


class SignatureError(Exception):
    """Raised when a request is not signed, or not signed correctly; the message says why,
    ``reason`` which of AWS's errors it is: :data:`MISSING`, :data:`UNKNOWN_KEY` or
    :data:`INVALID`."""

    def __init__(self, message: str, reason: str = INVALID) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Caller:
    """Who signed a request."""

    access_key: str
    account_id: str

    def authorizer(self) -> dict[str, object]:
        """``requestContext.authorizer.iam`` of a payload-format-2.0 event for this caller."""
        return {
            "iam": {
                "accessKey": self.access_key,
                "accountId": self.account_id,
                "callerId": self.access_key,
                "cognitoIdentity": None,
                "principalOrgId": None,
                "userArn": f"arn:aws:iam::{self.account_id}:root",
                "userId": self.account_id,
            }
        }


@dataclass(frozen=True)
class SignedRequest:
    """The parts of an HTTP request a signature covers."""

    method: str
    raw_path: str
    raw_query: str
    headers: Sequence[tuple[str, str]]
    body: bytes


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    """SigV4's derived key for a day, region and service."""
    key = _hmac(("AWS4" + secret).encode(), date)
    key = _hmac(key, region)
    key = _hmac(key, service)
    return _hmac(key, "aws4_request")


def canonical_path(raw_path: str) -> str:
    """The canonical URI: the path as sent, normalized and URI-encoded once more."""
    normalized = posixpath.normpath(raw_path) if raw_path else "/"
    if normalized.startswith("//"):
        normalized = "/" + normalized.lstrip("/")
    if raw_path.endswith("/") and not normalized.endswith("/"):
        normalized += "/"
    return quote(normalized, safe="/~")


def query_pairs(raw_query: str) -> list[tuple[str, str]]:
    """The query string's (name, value) pairs, decoded."""
    pairs = []
    for part in raw_query.split("&"):
        if part:
            key, _, value = part.partition("=")
            pairs.append((unquote(key), unquote(value)))
    return pairs


def canonical_query(pairs: list[tuple[str, str]]) -> str:
    """The canonical query string: each name and value RFC-3986 encoded, sorted."""
    encoded = sorted((quote(k, safe="-_.~"), quote(v, safe="-_.~")) for k, v in pairs)
    return "&".join(f"{k}={v}" for k, v in encoded)


def canonical_headers(headers: Sequence[tuple[str, str]], signed: list[str]) -> str:
    """The canonical headers block for the signed header names (lower-case, sorted)."""
    values: dict[str, list[str]] = {}
    for name, value in headers:
        values.setdefault(name.lower(), []).append(_SPACES.sub(" ", value.strip()))
    lines = []
    for name in signed:
        if name not in values:
            raise SignatureError(f"The signed header {name} is not in the request")
        lines.append(f"{name}:{','.join(values[name])}\n")
    return "".join(lines)


def _parse_time(amz_date: str) -> float:
    try:
        return datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()
    except ValueError:
        raise SignatureError(
            f"X-Amz-Date {amz_date!r} is not in the form 20150830T123600Z"
        ) from None


def verify(
    request: SignedRequest,
    keys: Mapping[str, tuple[str, str]],
    *,
    region: str,
    service: str = "lambda",
    now_s: float | None = None,
) -> Caller:
    """The caller whose valid signature ``request`` carries; SignatureError if it has none."""
    now_s = time.time() if now_s is None else now_s
    header_values = {name.lower(): value for name, value in request.headers}
    pairs = query_pairs(request.raw_query)
    query = dict(pairs)
    authorization = header_values.get("authorization")
    presigned = authorization is None and "X-Amz-Signature" in query
    if authorization is not None:
        match = _AUTHORIZATION.match(authorization)
        if match is None:
            raise SignatureError("The Authorization header is not an AWS4-HMAC-SHA256 signature")
        credential, signed_headers, signature = match.groups()
        amz_date = header_values.get("x-amz-date", "")
        if not amz_date:
            raise SignatureError("The request has no X-Amz-Date header")
        signed_at_s = _parse_time(amz_date)
        if abs(now_s - signed_at_s) > MAX_SKEW_S:
            raise SignatureError(
                "Signature expired: the request time is more than 5 minutes from the server's"
            )
        payload_hash = header_values.get("x-amz-content-sha256") or ""
        if payload_hash == UNSIGNED_PAYLOAD:
            raise SignatureError("UNSIGNED-PAYLOAD is accepted for presigned URLs only")
    elif presigned:
        if query.get("X-Amz-Algorithm") != ALGORITHM:
            raise SignatureError(f"X-Amz-Algorithm must be {ALGORITHM}")
        credential = query.get("X-Amz-Credential", "")
        signed_headers = query.get("X-Amz-SignedHeaders", "")
        signature = query["X-Amz-Signature"]
        amz_date = query.get("X-Amz-Date", "")
        signed_at_s = _parse_time(amz_date)
        expires = query.get("X-Amz-Expires", "")
        if not expires.isdigit() or not 1 <= int(expires) <= MAX_EXPIRES_S:
            raise SignatureError("X-Amz-Expires must be a number of seconds up to 604800")
        if now_s > signed_at_s + int(expires) or signed_at_s - now_s > MAX_SKEW_S:
            raise SignatureError("The presigned URL has expired or is not valid yet")
        pairs = [(k, v) for k, v in pairs if k != "X-Amz-Signature"]
        payload_hash = header_values.get("x-amz-content-sha256") or ""
    else:
        raise SignatureError("The request is not signed", MISSING)
    parts = credential.split("/")
    if len(parts) != 5 or parts[4] != "aws4_request":
        raise SignatureError(f"Malformed credential {credential!r}")
    access_key, date, scope_region, scope_service, _ = parts
    if date != amz_date[:8]:
        raise SignatureError("The credential date does not match X-Amz-Date")
    if scope_region != region or scope_service != service:
        raise SignatureError(
            f"The credential scope must be {region}/{service}, not {scope_region}/{scope_service}"
        )
    if access_key not in keys:
        raise SignatureError("The security token included in the request is invalid", UNKNOWN_KEY)
    secret, account_id = keys[access_key]
    signed = signed_headers.split(";")
    if "host" not in signed:
        raise SignatureError("The host header must be signed")
    body_hash = hashlib.sha256(request.body).hexdigest()
    checked = payload_hash and payload_hash != UNSIGNED_PAYLOAD
    if checked and not hmac.compare_digest(payload_hash, body_hash):
        raise SignatureError("The body does not match X-Amz-Content-SHA256")
    # Without the header, a presigned URL may have been signed either way (botocore hashes
    # the empty body; other signers use UNSIGNED-PAYLOAD): both are tried.
    candidates = [payload_hash] if payload_hash else [body_hash]
    if presigned and not payload_hash:
        candidates.append(UNSIGNED_PAYLOAD)
    key = signing_key(secret, date, scope_region, scope_service)
    scope = f"{date}/{scope_region}/{scope_service}/aws4_request"
    canonical = [
        request.method,
        canonical_path(request.raw_path),
        canonical_query(pairs),
        canonical_headers(request.headers, signed),
        signed_headers,
    ]
    matched = False
    for candidate in candidates:
        expected = _signature(key, [*canonical, candidate], amz_date, scope)
        matched = hmac.compare_digest(expected, signature) or matched
    if not matched:
        raise SignatureError(
            "The request signature we calculated does not match the signature you provided"
        )
    return Caller(access_key=access_key, account_id=account_id)


SQS_TARGET_PREFIX = "AmazonSQS."  # X-Amz-Target of SQS's JSON protocol


def service_of(method: str, path: str, target: str = "") -> str:
    """The credential-scope service of a request to one of the AWS APIs lambdalet serves, by
    its path (and, for ``POST /``, its ``X-Amz-Target``): SQS and SNS share ``POST /``."""
    if path == "/" and method == "POST":
        return "sqs" if target.startswith(SQS_TARGET_PREFIX) else "sns"
    if path.startswith("/schedules"):
        return "scheduler"
    if path.startswith("/v2/"):
        return "apigateway"
    return "lambda"


def _signature(key: bytes, canonical_request: list[str], amz_date: str, scope: str) -> str:
    """The hex signature of a canonical request's lines."""
    digest = hashlib.sha256("\n".join(canonical_request).encode()).hexdigest()
    string_to_sign = "\n".join([ALGORITHM, amz_date, scope, digest])
    return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()


def sign(
    request: SignedRequest,
    access_key: str,
    secret: str,
    *,
    region: str,
    service: str,
    now_s: float | None = None,
) -> dict[str, str]:
    """The ``X-Amz-Date`` and ``Authorization`` headers that sign ``request``: every header it
    holds (``host`` among them) and its body, as :func:`verify` checks them."""
    amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now_s))
    headers = [*request.headers, ("x-amz-date", amz_date)]
    signed = sorted({name.lower() for name, _ in headers})
    scope = f"{amz_date[:8]}/{region}/{service}/aws4_request"
    canonical = [
        request.method,
        canonical_path(request.raw_path),
        canonical_query(query_pairs(request.raw_query)),
        canonical_headers(headers, signed),
        ";".join(signed),
        hashlib.sha256(request.body).hexdigest(),
    ]
    key = signing_key(secret, amz_date[:8], region, service)
    signature = _signature(key, canonical, amz_date, scope)
    credential = f"{access_key}/{scope}"
    authorization = (
        f"{ALGORITHM} Credential={credential}, SignedHeaders={';'.join(signed)},"
        f" Signature={signature}"
    )
    return {"x-amz-date": amz_date, "authorization": authorization}
