"""A node: one running lambdalet with its store, code blobs, router and async dispatcher.

The API, the CLI's ``serve`` and the tests all build a Node from one Settings object; this is
the Python API the HTTP layer is a thin skin over.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import random
import uuid

from lambdalet.config import Settings
from lambdalet.errors import ResourceNotFoundException
from lambdalet.metering.recorder import Recorder
from lambdalet.models import LATEST, Alias, AsyncEvent, FunctionConfig, Invocation, now_ms
from lambdalet.sandbox import make_backend
from lambdalet.scheduler.async_queue import AsyncDispatcher
from lambdalet.scheduler.router import InvokeOutcome, Router
from lambdalet.store import BlobStore, Store, make_store

log = logging.getLogger(__name__)


def new_request_id() -> str:
    """A request id in AWS's form (a UUID)."""
    return str(uuid.uuid4())


class Node:
    """Everything one lambdalet process runs, started and stopped together."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store: Store = make_store(settings)
        self.blobs = BlobStore(settings.data_dir / "code")
        self.recorder = Recorder(self.store)
        self.router = Router(
            settings, make_backend(settings.sandbox_backend), self.blobs, self.recorder
        )
        self.code_lock = asyncio.Lock()
        self._random = random.Random()
        self.dispatcher = AsyncDispatcher(self.store, self.run_async_event, settings.async_workers)

    async def start(self) -> None:
        """Open the store and start the background loops."""
        await self.store.open()
        await asyncio.to_thread(self.blobs.sweep_scratch)
        self.recorder.start()
        self.router.start()
        await self.dispatcher.start()

    async def stop(self) -> None:
        """Stop taking work, finish what runs, flush records, close the store."""
        await self.dispatcher.stop()
        await self.router.stop()
        await self.recorder.stop()
        await self.store.close()

    async def function(
        self, name: str, qualifier: str | None = None, *, route: bool = False
    ) -> FunctionConfig:
        """The configuration a name and qualifier ($LATEST, a version or an alias) stand for.

        With ``route`` an alias picks among its versions by their weights, as Invoke does;
        without, it stands for its primary version. ResourceNotFoundException if unknown.
        """
        latest = await self.store.get_function(name)
        if latest is None:
            raise ResourceNotFoundException(
                f"Function not found: {self.settings.function_arn(name)}"
            )
        if qualifier in (None, LATEST):
            return latest
        assert qualifier is not None
        missing = ResourceNotFoundException(
            f"Function not found: {self.settings.function_arn(name, qualifier)}"
        )
        if qualifier.isdigit():
            version = await self.store.get_version(name, int(qualifier))
            if version is None:
                raise missing
            return version
        alias = await self.store.get_alias(name, qualifier)
        if alias is None:
            raise missing
        target = self.pick_version(alias) if route else alias.function_version
        return await self.function(name, target)

    def pick_version(self, alias: Alias) -> str:
        """The version an invocation of ``alias`` runs, drawn by the routing weights."""
        draw = self._random.random()
        for version, weight in alias.additional_version_weights.items():
            if draw < weight:
                return version
            draw -= weight
        return alias.function_version

    async def invoke(
        self,
        function: FunctionConfig,
        payload: bytes,
        *,
        request_id: str,
        client_context: str | None = None,
        invoked_qualifier: str | None = None,
    ) -> InvokeOutcome:
        """Run one invocation of ``function`` now and wait for its result."""
        invocation = Invocation(
            request_id=request_id,
            payload=payload or b"{}",
            function_arn=self.settings.function_arn(function.name, invoked_qualifier),
            deadline_unix_ms=now_ms() + function.timeout_s * 1000,
            client_context=client_context,
            trace_id=_trace_id(),
        )
        return await self.router.invoke(function, invocation)

    async def enqueue(
        self, function_name: str, qualifier: str | None, payload: bytes, request_id: str
    ) -> None:
        """Durably accept an async event; it is committed when this returns."""
        await self.store.enqueue_event(function_name, qualifier or LATEST, payload, request_id)
        self.dispatcher.notify()

    async def run_async_event(self, event: AsyncEvent) -> None:
        """Run one queued event (the dispatcher calls this)."""
        try:
            config = await self.function(event.function_name, event.qualifier, route=True)
        except ResourceNotFoundException:
            log.warning(
                "dropping async event %s: %s:%s is gone",
                event.request_id,
                event.function_name,
                event.qualifier,
            )
            return
        outcome = await self.invoke(
            config,
            event.payload,
            request_id=event.request_id,
            invoked_qualifier=None if event.qualifier == LATEST else event.qualifier,
        )
        if outcome.result.function_error:
            log.info(
                "async event %s of %s failed: %s",
                event.request_id,
                event.function_name,
                outcome.result.payload[:500],
            )


def _trace_id() -> str:
    """An X-Ray-style trace header value."""
    epoch = f"{now_ms() // 1000:08x}"
    return f"Root=1-{epoch}-{uuid.uuid4().hex[:24]};Parent={uuid.uuid4().hex[:16]};Sampled=0"


def decode_client_context(value: str) -> str:
    """The JSON text of a base64 ClientContext header; ValueError if it is not that."""
    text = base64.b64decode(value, validate=True).decode("utf-8")
    if not isinstance(json.loads(text), dict):
        raise ValueError("client context is not a JSON object")
    return text
