"""How much memory an idle warm isolated (namespaces) Python sandbox holds: PSS per sandbox.

    sudo python bench/density.py [--count 200] [--out bench/results/density.json]

Starts ``--count`` sandboxes of one hello function (``def handler(event, context): return
event``, MemorySize 128) on lambdalet's sandbox classes directly (no HTTP), invokes each once
so it is warm, then, with all of them idle, sums the proportional set size (``Pss`` of
``/proc/<pid>/smaps_rollup``: shared pages split between the processes sharing them) of every
process of those sandboxes, and divides by ``--count``. Two kinds, each its own line:

- **started**: sandboxes started one by one for the function (as with no pool, or as a pool
  hands out: a blank sandbox bound is the same three processes). A sandbox's processes are the
  launcher (host pid namespace; a shell once the sandbox is set up), its child the sandbox's
  init (pid 1; the native ``runtime/init.c`` once set up, if the host could build it) and the
  init's child, the runtime. Their PSS per sandbox is also given by role.
- **snapshot**: instances forked from one zygote (SnapStart): each instance is one process;
  the zygote's launcher, init and runtime are counted once, shared by all.

Idle sandboxes may be frozen (``LAMBDALET_FREEZE_IDLE``): freezing does not change their
memory. RSS is reported beside PSS. The count is measured, not extrapolated; ``--count 20``
and ``--count 200`` give the per-sandbox figure at two sizes, which shows how it scales (the
interpreter's shared pages are split among more processes as the count grows). DESIGN
target: <= 8 MB PSS per idle sandbox. Needs root.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from spawn_rate import hello_function, make_spec
from throughput import machine_facts, write_json

from lambdalet.models import Invocation
from lambdalet.sandbox.namespaces import NamespacesBackend, NamespacesSandbox
from lambdalet.sandbox.snapshot import ForkedSandbox, SnapshotRegistry

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_OUT = BENCH_DIR / "results" / "density.json"
TARGET_PSS_MB = 8.0
STARTING_AT_ONCE = 8


@dataclass
class DensityResult:
    """One kind's memory, summed and per sandbox."""

    kind: str
    count: int
    processes: int
    pss_total_mb: float
    rss_total_mb: float
    pss_per_sandbox_mb: float
    rss_per_sandbox_mb: float
    pss_per_sandbox_by_role_mb: dict[str, float] = field(default_factory=dict)


def memory_kb(pid: int) -> tuple[int, int]:
    """(Pss, Rss) of a process in kB, from smaps_rollup; (0, 0) if it is gone."""
    found = {"Pss:": 0, "Rss:": 0}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            for line in rollup:
                key = line.split(maxsplit=1)[0]
                if key in found:
                    found[key] = int(line.split()[1])
    except OSError:
        pass
    return found["Pss:"], found["Rss:"]


def tree(pid: int) -> list[int]:
    """A process and all its descendants."""
    found = [pid]
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as children:
            for child in children.read().split():
                found += tree(int(child))
    except OSError:
        pass
    return found


ROLES = ("launcher", "init", "runtime")


def roles(launcher: int) -> dict[int, str]:
    """A started sandbox's processes by role: the launcher, its child the init, and below it
    the runtime (with whatever the runtime or the init started)."""
    found = {launcher: "launcher"}
    for init in tree(launcher)[1:2]:
        found[init] = "init"
        for pid in tree(init)[1:]:
            found[pid] = "runtime"
    return found


def summarize(
    kind: str, count: int, pids: list[int], role_of: dict[int, str] | None = None
) -> DensityResult:
    """Sum the memory of ``pids``, per sandbox over ``count`` (and by role, if given)."""
    pss = rss = 0
    by_role = dict.fromkeys(ROLES, 0) if role_of else {}
    for pid in pids:
        pid_pss, pid_rss = memory_kb(pid)
        pss += pid_pss
        rss += pid_rss
        if role_of and pid in role_of:
            by_role[role_of[pid]] += pid_pss
    return DensityResult(
        kind=kind,
        count=count,
        processes=len(pids),
        pss_total_mb=pss / 1024,
        rss_total_mb=rss / 1024,
        pss_per_sandbox_mb=pss / 1024 / count,
        rss_per_sandbox_mb=rss / 1024 / count,
        pss_per_sandbox_by_role_mb={role: kb / 1024 / count for role, kb in by_role.items()},
    )


async def warm_one(sandbox: Any, index: int) -> None:
    """Invoke a READY sandbox once."""
    answer = await sandbox.invoke(Invocation(f"r{index}", b"{}", "arn:bench", 2**62), 10_000)
    if answer.function_error:
        raise RuntimeError(f"sandbox {index} failed: {answer.payload[:200]!r}")


async def measure(count: int, work_dir: Path) -> list[DensityResult]:
    """Both kinds, one after the other, each with ``count`` idle warm sandboxes."""
    backend = NamespacesBackend()
    spec = make_spec(work_dir, hello_function())
    results = []
    print(f"starting {count} sandboxes ...", flush=True)
    started: list[NamespacesSandbox] = []
    try:
        for first in range(0, count, STARTING_AT_ONCE):
            batch = [backend.create(spec) for _ in range(min(STARTING_AT_ONCE, count - first))]
            await asyncio.gather(*(sandbox.start() for sandbox in batch))
            started += batch
            await asyncio.gather(*(warm_one(s, first + i) for i, s in enumerate(batch)))
        await asyncio.sleep(1.0)  # idle
        role_of: dict[int, str] = {}
        for sandbox in started:
            if sandbox._process is not None:
                role_of |= roles(sandbox._process.pid)
        results.append(summarize("started", count, list(role_of), role_of))
    finally:
        await asyncio.gather(*(s.stop() for s in started), return_exceptions=True)
    print(f"forking {count} instances from a snapshot ...", flush=True)
    snapshots = SnapshotRegistry(backend)
    snap_spec = make_spec(work_dir, hello_function("1", snap=True))
    instances: list[ForkedSandbox] = []
    try:
        for first in range(0, count, STARTING_AT_ONCE):
            batch_size = min(STARTING_AT_ONCE, count - first)
            forked = await asyncio.gather(
                *(snapshots.acquire(snap_spec) for _ in range(batch_size))
            )
            instances += forked
            await asyncio.gather(*(warm_one(s, first + i) for i, s in enumerate(forked)))
        await asyncio.sleep(1.0)
        zygote = next(iter(snapshots._zygotes.values()))
        assert zygote._process is not None
        zygote_pids = set(tree(zygote._process.pid))
        instance_pids = {i.host_pid for i in instances if i.host_pid is not None}
        # The zygote's tree holds the instances (its children): count each process once.
        results.append(summarize("snapshot", count, sorted(zygote_pids | instance_pids)))
    finally:
        await asyncio.gather(*(i.stop() for i in instances), return_exceptions=True)
        await snapshots.stop()
    return results


def main(argv: list[str] | None = None) -> int:
    """Measure, print and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else "")
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("density needs root: the namespaces backend builds the sandboxes")
        return 1
    facts = machine_facts()
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    work_dir = Path(tempfile.mkdtemp(prefix="lambdalet-density-"))
    try:
        import uvloop

        results = uvloop.run(measure(args.count, work_dir))
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    print(
        f"\n{'kind':<12}{'sandboxes':>10}{'processes':>10}{'PSS MB':>10}{'RSS MB':>10}"
        f"{'PSS/sandbox':>13}{'RSS/sandbox':>13}{'÷ target':>10}"
    )
    for result in results:
        print(
            f"{result.kind:<12}{result.count:>10}{result.processes:>10}"
            f"{result.pss_total_mb:>10.1f}{result.rss_total_mb:>10.1f}"
            f"{result.pss_per_sandbox_mb:>13.2f}{result.rss_per_sandbox_mb:>13.2f}"
            f"{result.pss_per_sandbox_mb / TARGET_PSS_MB:>9.2f}×"
        )
    for result in results:
        if result.pss_per_sandbox_by_role_mb:
            parts = ", ".join(
                f"{role} {mb:.2f}" for role, mb in result.pss_per_sandbox_by_role_mb.items()
            )
            print(f"{result.kind} PSS/sandbox by role (MB): {parts}")
    for result in results:
        verdict = "MET" if result.pss_per_sandbox_mb <= TARGET_PSS_MB else "NOT MET"
        print(
            f"target: <= {TARGET_PSS_MB:g} MB PSS per idle sandbox, {result.kind}:"
            f" {result.pss_per_sandbox_mb:.2f} MB  {verdict}"
        )
    document = {
        "benchmark": "density",
        "started_at": started_at,
        "command": " ".join([sys.executable, *sys.argv]),
        "settings": {"count": args.count, "memory_mb": 128},
        "machine": facts | {"loadavg_at_end": list(os.getloadavg())},
        "results": [asdict(result) for result in results],
        "target": {"pss_per_sandbox_mb": TARGET_PSS_MB},
    }
    write_json(args.out, document)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
