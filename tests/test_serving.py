"""The node's HTTP transport: a response leaves in one write, and nothing held is lost on close.

Every other test talks to the server through it as well."""

from __future__ import annotations

import asyncio
import socket

import uvloop

from lambdalet.api.serving import CoalescedWrites


async def _transport_pair() -> tuple[asyncio.Transport, socket.socket]:
    ours, peer = socket.socketpair()
    peer.setblocking(False)
    transport, _ = await asyncio.get_running_loop().create_connection(asyncio.Protocol, sock=ours)
    return transport, peer


def test_writes_in_one_loop_iteration_leave_together() -> None:
    head = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"

    async def scenario() -> tuple[bool, bytes]:
        transport, peer = await _transport_pair()
        coalesced = CoalescedWrites(transport, asyncio.get_running_loop())
        coalesced.write(head)
        try:
            peer.recv(4096)  # a transport's own write() would have sent it by now
            held = False
        except BlockingIOError:
            held = True
        coalesced.write(b"{}")
        await asyncio.sleep(0.01)
        data = peer.recv(4096)
        coalesced.close()
        peer.close()
        return held, data

    held, data = uvloop.run(scenario())
    assert held
    assert data == head + b"{}"


def test_close_sends_what_is_held_first() -> None:
    async def scenario() -> bytes:
        transport, peer = await _transport_pair()
        coalesced = CoalescedWrites(transport, asyncio.get_running_loop())
        coalesced.write(b"last words")
        coalesced.close()
        await asyncio.sleep(0.01)
        data = peer.recv(4096)
        peer.close()
        return data

    assert uvloop.run(scenario()) == b"last words"
