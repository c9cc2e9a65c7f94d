"""``network: none``: functions that opt out of the network get an empty network namespace.

Lambda has no such setting (a function without a VPC always reaches the internet), so the
opt-in is a function tag, the AWS-shaped place for a platform's own per-function switches:
``lambdalet:network`` = ``none`` (set with CreateFunction's ``Tags``; read when a
sandbox starts). Other values, or no tag, keep the host's network (DESIGN: host
network by default). Only the ``namespaces`` backend honours it.

Inside, the sandbox sees only a loopback interface. Its Runtime API stays reachable: the
Python runtime talks over an inherited socketpair, and for runtimes that speak HTTP
(Node.js, Java, custom) ``AWS_LAMBDA_RUNTIME_API`` is ``127.0.0.1:9001``, which a relay
(``runtime/netns.py``) forwards to the sandbox's Runtime API server on the host.
"""

from __future__ import annotations

from typing import Any

from lambdalet.models import FunctionConfig
from lambdalet.runtime import launch
from lambdalet.runtime.netns import INSIDE_ADDRESS

TAG = "lambdalet:network"
NONE = "none"


def wants_no_network(function: FunctionConfig) -> bool:
    """Whether the function asked for no network (tag ``lambdalet:network`` = ``none``)."""
    return function.tags.get(TAG, "").strip().lower() == NONE


def _relayed(function: FunctionConfig) -> bool:
    return wants_no_network(function) and launch.family(function.runtime) != "python"


def runtime_api_inside(function: FunctionConfig, host_address: str) -> str:
    """``AWS_LAMBDA_RUNTIME_API`` as the runtime must see it: the relay's address when the
    function has no network, else the host server's own."""
    if _relayed(function):
        host, port = INSIDE_ADDRESS
        return f"{host}:{port}"
    return host_address


def plan_entries(function: FunctionConfig, host_address: str) -> dict[str, Any]:
    """What ``runtime/isolate.py``'s plan needs for the function's network."""
    if not wants_no_network(function):
        return {"network_none": False}
    relay = None
    if _relayed(function):
        host, _, port = host_address.rpartition(":")
        relay = [host, int(port)]
    return {"network_none": True, "relay": relay}
