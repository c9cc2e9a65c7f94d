"""Keeping and collecting code zips sent in requests (functions' Code, layers' Content)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
from typing import Any

from lambdalet.api.codezip import MAX_ZIPPED_BYTES, extract_zip, missing_entry
from lambdalet.errors import InvalidParameterValueException, InvalidRequestContentException
from lambdalet.node import Node


async def keep_zip(
    node: Node, code: Any, required: tuple[str, ...] | None, field: str
) -> tuple[str, int]:
    """Check and keep the base64 zip in ``code["ZipFile"]``; return (SHA-256 hex, size).

    ``field`` names the request member (``Code`` or ``Content``) in error messages. A refused
    zip leaves nothing behind.
    """
    if not isinstance(code, dict) or "ZipFile" not in code:
        if isinstance(code, dict) and ("S3Bucket" in code or "ImageUri" in code):
            raise InvalidParameterValueException(
                "lambdalet takes code as ZipFile only; S3 locations and images are not supported"
            )
        raise InvalidParameterValueException(f"{field}.ZipFile is required (a base64-encoded zip)")
    try:
        zip_bytes = await asyncio.to_thread(base64.b64decode, code["ZipFile"], validate=True)
    except (binascii.Error, TypeError, ValueError):
        raise InvalidRequestContentException(f"{field}.ZipFile is not valid base64") from None
    if len(zip_bytes) > MAX_ZIPPED_BYTES:
        raise InvalidParameterValueException(
            f"Zipped size must be smaller than {MAX_ZIPPED_BYTES} bytes"
            f" (this zip is {len(zip_bytes)} bytes)"
        )
    sha256_hex = hashlib.sha256(zip_bytes).hexdigest()
    blobs = node.blobs
    async with node.code_lock:
        if not blobs.has(sha256_hex):
            scratch = blobs.scratch_dir()
            await asyncio.to_thread(extract_zip, zip_bytes, scratch, required)
            await asyncio.to_thread(blobs.put, sha256_hex, zip_bytes, scratch)
        elif required is not None:
            missing = missing_entry(blobs.tree_path(sha256_hex), required)
            if missing is not None:
                raise missing
    return sha256_hex, len(zip_bytes)


async def collect_code(node: Node, *sha256_hexes: str) -> None:
    """Delete code blobs no function or layer version refers to any more."""
    async with node.code_lock:
        for sha256_hex in sha256_hexes:
            if sha256_hex and not await node.store.code_in_use(sha256_hex):
                await asyncio.to_thread(node.blobs.delete, sha256_hex)
