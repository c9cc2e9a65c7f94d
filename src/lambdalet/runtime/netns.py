"""An empty network namespace for a sandbox, and the relay that keeps its Runtime API reachable.

Used by ``runtime/isolate.py`` (standard library only) for functions that asked for no network
(``lambdalet.sandbox.network``). The sandbox's init, still the host's root and still in the
host's network namespace, calls :func:`isolate_network`, which:

1. when the runtime speaks HTTP to the Runtime API, forks the relay: a process that stays in
   the host's network namespace, drops to ``nobody`` with no_new_privs and the sandbox's
   system call filter, and waits for a listening socket;
2. unshares a new network namespace (owned by the host's user namespace: nothing inside can
   configure it) and brings its loopback interface up;
3. listens on 127.0.0.1:9001 inside it and hands the listener to the relay over a socketpair.

The relay accepts each connection the runtime opens to 127.0.0.1:9001 and copies it, both
ways, to a connection of its own to the host's per-sandbox Runtime API server (two threads
per connection; a runtime keeps one or two open). It is a child of the sandbox's init, in its
pid namespace and cgroups: it ends with the sandbox. The Python runtime talks over an
inherited socketpair and needs no relay.
"""

from __future__ import annotations

# Everything is imported up front: ``isolate.py`` imports this module before it pivots into the
# sandbox's root, where neither this directory nor, for other runtimes, the stdlib may be.
import array  # noqa: F401  (socket.send_fds and recv_fds import it when called)
import contextlib
import ctypes
import fcntl
import os
import socket
import struct
import threading

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

CLONE_NEWNET = 0x40000000
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
INSIDE_ADDRESS = ("127.0.0.1", 9001)
NOBODY = 65534
CHUNK = 65536


def loopback_up() -> None:
    """Bring ``lo`` up in the current network namespace (it starts down)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as control:
        request = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(control, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(control, SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))


def _copy(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(CHUNK):
            target.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_WR)


def _relay_connection(inside: socket.socket, host: str, port: int) -> None:
    # Not create_connection: getaddrinfo would load the idna codec, which is not in the root.
    outside = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        outside.connect((host, port))
    except OSError:
        inside.close()
        outside.close()
        return
    back = threading.Thread(target=_copy, args=(outside, inside), daemon=True)
    back.start()
    _copy(inside, outside)
    back.join()
    inside.close()
    outside.close()


def serve(channel: socket.socket, host: str, port: int, confine: Callable[[], None]) -> None:
    """As the relay: receive the listener, confine this process, relay until the end."""
    _, fds, _, _ = socket.recv_fds(channel, 1, 1)
    channel.close()
    listener = socket.socket(fileno=fds[0])
    confine()
    while True:
        connection, _ = listener.accept()
        threading.Thread(
            target=_relay_connection, args=(connection, host, port), daemon=True
        ).start()


def isolate_network(relay_to: list[Any] | None, confine: Callable[[], None]) -> None:
    """Move the calling process (the sandbox's init) into an empty network namespace; with
    ``relay_to`` (the host Runtime API's ``[host, port]``) relay 127.0.0.1:9001 inside to it.

    ``confine`` is run by the relay once it holds its listener: it drops privileges and
    installs the system call filter.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    if relay_to is None:
        _unshare_network(libc)
        loopback_up()
        return
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    relay = os.fork()
    if relay == 0:
        code = 0
        try:
            ours.close()
            keep = theirs.fileno()
            os.closerange(3, keep)
            os.closerange(keep + 1, 65536)
            serve(theirs, str(relay_to[0]), int(relay_to[1]), confine)
        except BaseException as error:
            os.write(2, f"[lambdalet] network relay failed: {error}\n".encode())
            code = 1
        os._exit(code)
    theirs.close()
    with ours:
        _unshare_network(libc)
        loopback_up()
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        with listener:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(INSIDE_ADDRESS)
            listener.listen(64)
            socket.send_fds(ours, [b"L"], [listener.fileno()])


def _unshare_network(libc: Any) -> None:
    if libc.unshare(CLONE_NEWNET) != 0:
        number = ctypes.get_errno()
        raise OSError(number, f"unshare(CLONE_NEWNET): {os.strerror(number)}")


def drop_to_nobody() -> None:
    """Become ``nobody`` (not the sandbox's user: the runtime cannot signal the relay)."""
    os.setgroups([])
    os.setresgid(NOBODY, NOBODY, NOBODY)
    os.setresuid(NOBODY, NOBODY, NOBODY)
