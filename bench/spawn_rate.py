"""How many new isolated (namespaces) Python sandboxes this machine starts per second.

    sudo python bench/spawn_rate.py [--seconds 5] [--workers 8] [--pool 16]
                                    [--out bench/results/spawn_rate.json]

Measured in one process, on lambdalet's sandbox classes directly (no HTTP), with one hello
function (``def handler(event, context): return event``, MemorySize 128). Each worker loops:
get a new sandbox READY for the function, invoke it once, stop it; the rate is sandboxes
that answered their invocation per second of wall time, over ``--seconds``, with
``--workers`` loops at once. Modes, each its own line:

- **no pool**: every sandbox is started from scratch (launcher, namespaces, root, cgroups,
  interpreter, init): ``NamespacesBackend.create(spec).start()``.
- **pool, burst**: ``--pool`` blank sandboxes are parked first (not timed), then the workers
  acquire (bind) them until they run out: the rate a full pool serves a burst at.
- **pool, sustained**: a pool of ``--pool`` that refills itself in the background while the
  workers take from it, as the router uses it: once it is empty, an acquire waits for the
  next blank sandbox to park while the runtime's blank zygote refills it (up to
  ``sandbox/pool.py``'s ``BLANK_WAIT_S``), and one that gets none starts a sandbox from
  scratch: the long-run rate, bounded by how fast blank sandboxes start.
- **snapshot**: every sandbox is an instance forked from one zygote of the function
  (SnapStart; the zygote's own start is not timed).

Also printed per mode: the p50 and p99 of one sandbox's time to READY, and the CPU time one
sandbox cost (start, invocation and stop), over every process and thread this benchmark
started, sandboxes included, with the kernel's work in them: the benchmark moves itself into
a ``cpuacct`` cgroup v1 of its own (which the sandboxes' own cgroups do not replace; without
a cpuacct hierarchy the column is empty). ``cores × 1000 ÷ CPU ms`` is the rate the machine's
cores would bound it to if nothing else ran: on a shared machine the wall-clock rate varies
with the others' load, the CPU time much less. Baseline in the same run: ``os.fork()`` of
this interpreter with the handler imported (child answers on a pipe, exits), one after
another, per second. DESIGN target: >= 100 new isolated sandboxes/s on 2 cores. Writes
everything to ``--out``. Needs root (the namespaces backend).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness import percentile
from throughput import machine_facts, write_json

from lambdalet.config import Settings
from lambdalet.models import FunctionConfig, Invocation
from lambdalet.sandbox.base import SandboxSpec
from lambdalet.sandbox.namespaces import NamespacesBackend
from lambdalet.sandbox.pool import SandboxPool
from lambdalet.sandbox.snapshot import SnapshotRegistry

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_OUT = BENCH_DIR / "results" / "spawn_rate.json"
HELLO = "def handler(event, context):\n    return event\n"
TARGET_PER_S = 100.0
RUNTIME = "python3.11"


@dataclass
class ModeResult:
    """One mode's rate and per-sandbox start times."""

    mode: str
    description: str
    sandboxes: int = 0
    seconds: float = 0.0
    per_s: float = 0.0
    ready_p50_ms: float | None = None
    ready_p99_ms: float | None = None
    failures: int = 0
    reason: str = ""
    cpu_ms_per_sandbox: float | None = None
    cpu_bound_per_s: float | None = None  # cores × 1000 / cpu_ms_per_sandbox
    ready_ms: list[float] = field(default_factory=list)


def hello_function(version: str = "$LATEST", snap: bool = False) -> FunctionConfig:
    """The benchmark's function."""
    return FunctionConfig(
        name="bench-spawn",
        runtime=RUNTIME,
        handler="app.handler",
        role="arn:aws:iam::000000000000:role/bench",
        code_sha256_hex="0" * 64,
        code_size_bytes=len(HELLO),
        revision_id="r1",
        last_modified_ms=0,
        version=version,
        snap_start_apply_on="PublishedVersions" if snap else "None",
    )


def make_spec(work_dir: Path, function: FunctionConfig) -> SandboxSpec:
    """A spec for the hello function, its code in ``work_dir``."""
    code_dir = work_dir / "code"
    if not code_dir.exists():
        code_dir.mkdir(parents=True)
        (code_dir / "app.py").write_text(HELLO)
        (work_dir / "opt").mkdir()
        (work_dir / "sandboxes").mkdir()
    return SandboxSpec(
        function=function,
        code_dir=code_dir,
        opt_dir=work_dir / "opt",
        runtimes=Settings().runtimes,
        region="us-east-1",
        scratch_root=work_dir / "sandboxes",
        cache_dir=work_dir / "cache",
    )


class CpuMeter:
    """CPU time of this process and everything it starts, through a cpuacct cgroup (v1) of
    its own; ``None`` readings where there is none."""

    ROOT = Path("/sys/fs/cgroup/cpuacct")

    def __init__(self) -> None:
        self.directory: Path | None = None
        if not (self.ROOT / "cpuacct.usage").exists():
            return
        directory = self.ROOT / f"lambdalet-spawn-rate-{os.getpid()}"
        try:
            directory.mkdir()
            (directory / "cgroup.procs").write_text(str(os.getpid()))
        except OSError:
            with contextlib.suppress(OSError):
                directory.rmdir()
            return
        self.directory = directory

    def read_ns(self) -> int | None:
        """Nanoseconds of CPU used so far."""
        if self.directory is None:
            return None
        return int((self.directory / "cpuacct.usage").read_text())

    def charge(self, result: ModeResult, since_ns: int | None) -> None:
        """Set ``result``'s CPU per sandbox from a reading taken when its mode began."""
        now_ns = self.read_ns()
        if now_ns is None or since_ns is None or result.sandboxes == 0:
            return
        result.cpu_ms_per_sandbox = (now_ns - since_ns) / 1e6 / result.sandboxes
        result.cpu_bound_per_s = (os.cpu_count() or 1) * 1000 / result.cpu_ms_per_sandbox

    def close(self) -> None:
        """Move back to the root cgroup and remove this one."""
        if self.directory is None:
            return
        with contextlib.suppress(OSError):
            (self.ROOT / "cgroup.procs").write_text(str(os.getpid()))
            self.directory.rmdir()


async def run_workers(
    result: ModeResult,
    get_ready: Callable[[], Awaitable[Any]],
    seconds: float,
    workers: int,
    stop_when_none: bool = False,
) -> None:
    """``workers`` loops of get-ready, invoke once, stop, for ``seconds``."""
    deadline = time.perf_counter() + seconds
    stopping: list[asyncio.Task[None]] = []

    async def loop() -> None:
        while time.perf_counter() < deadline:
            began = time.perf_counter()
            try:
                sandbox = await get_ready()
            except Exception as error:  # counted, and the run goes on
                result.failures += 1
                result.reason = repr(error)[:300]
                continue
            if sandbox is None:
                if stop_when_none:
                    return
                continue
            result.ready_ms.append((time.perf_counter() - began) * 1000)
            invocation = Invocation(f"r{result.sandboxes}", b"{}", "arn:bench", 2**62)
            answer = await sandbox.invoke(invocation, 10_000)
            if answer.function_error:
                result.failures += 1
            else:
                result.sandboxes += 1
            stopping.append(asyncio.create_task(sandbox.stop()))

    began = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(workers)))
    result.seconds = time.perf_counter() - began
    await asyncio.gather(*stopping, return_exceptions=True)
    result.per_s = result.sandboxes / result.seconds if result.seconds else 0.0
    if result.ready_ms:
        ordered = sorted(result.ready_ms)
        result.ready_p50_ms = percentile(ordered, 0.5)
        result.ready_p99_ms = percentile(ordered, 0.99)


async def measure(args: argparse.Namespace, work_dir: Path, meter: CpuMeter) -> list[ModeResult]:
    """Every mode, one after another."""
    backend = NamespacesBackend()
    spec = make_spec(work_dir, hello_function())
    results: list[ModeResult] = []

    async def from_scratch() -> Any:
        sandbox = backend.create(spec)
        await sandbox.start()
        return sandbox

    print("no pool ...", flush=True)
    plain = ModeResult("no pool", "every sandbox started from scratch")
    since = meter.read_ns()
    await run_workers(plain, from_scratch, args.seconds, args.workers)
    meter.charge(plain, since)
    results.append(plain)

    settings = Settings()

    def new_pool() -> SandboxPool:
        return SandboxPool(
            backend,
            size=args.pool,
            runtimes=settings.runtimes,
            region="us-east-1",
            scratch_root=work_dir / "sandboxes",
            cache_dir=work_dir / "cache",
        )

    print("pool, burst ...", flush=True)
    pool = new_pool()
    await pool.wait_filled(RUNTIME, timeout_s=120)
    pool.refilling = False  # the burst drains what was parked
    burst = ModeResult("pool, burst", f"a pool of {args.pool} parked blank sandboxes, drained")
    since = meter.read_ns()
    await run_workers(burst, lambda: pool.acquire(spec), 60.0, args.workers, stop_when_none=True)
    meter.charge(burst, since)
    await pool.stop()
    results.append(burst)

    print("pool, sustained ...", flush=True)
    pool = new_pool()
    await pool.wait_filled(RUNTIME, timeout_s=120)

    async def pooled_or_scratch() -> Any:
        return await pool.acquire(spec) or await from_scratch()

    sustained = ModeResult(
        "pool, sustained", f"a pool of {args.pool} refilling itself; from scratch if none comes"
    )
    since = meter.read_ns()
    await run_workers(sustained, pooled_or_scratch, args.seconds, args.workers)
    meter.charge(sustained, since)
    await pool.stop()
    results.append(sustained)

    print("snapshot ...", flush=True)
    snapshots = SnapshotRegistry(backend)
    snap_spec = make_spec(work_dir, hello_function("1", snap=True))
    warm = await snapshots.acquire(snap_spec)  # starts the zygote: not timed
    await warm.stop()
    forked = ModeResult("snapshot", "instances forked from one zygote (SnapStart)")
    since = meter.read_ns()
    await run_workers(forked, lambda: snapshots.acquire(snap_spec), args.seconds, args.workers)
    meter.charge(forked, since)
    await snapshots.stop()
    results.append(forked)
    return results


def fork_rate(seconds: float, meter: CpuMeter) -> ModeResult:
    """Baseline: os.fork() of this interpreter, the handler imported, one after another."""
    namespace: dict[str, Any] = {}
    exec(compile(HELLO, "app.py", "exec"), namespace)
    handler = namespace["handler"]
    result = ModeResult("plain fork (baseline)", "os.fork() of this interpreter, serially")
    deadline = time.perf_counter() + seconds
    began = time.perf_counter()
    since = meter.read_ns()
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        read_end, write_end = os.pipe()
        child = os.fork()
        if child == 0:
            os.write(write_end, repr(handler({}, None)).encode())
            os._exit(0)
        os.close(write_end)
        os.read(read_end, 100)
        os.close(read_end)
        os.waitpid(child, 0)
        result.ready_ms.append((time.perf_counter() - start) * 1000)
        result.sandboxes += 1
    result.seconds = time.perf_counter() - began
    result.per_s = result.sandboxes / result.seconds
    meter.charge(result, since)
    ordered = sorted(result.ready_ms)
    result.ready_p50_ms = percentile(ordered, 0.5)
    result.ready_p99_ms = percentile(ordered, 0.99)
    return result


def main(argv: list[str] | None = None) -> int:
    """Measure, print the table and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else "")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--pool", type=int, default=16)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("spawn_rate needs root: the namespaces backend builds the sandboxes")
        return 1
    facts = machine_facts()
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    work_dir = Path(tempfile.mkdtemp(prefix="lambdalet-spawn-"))
    meter = CpuMeter()
    try:
        import uvloop

        results = uvloop.run(measure(args, work_dir, meter))
        baseline = fork_rate(min(args.seconds, 2.0), meter)
    finally:
        meter.close()
        shutil.rmtree(work_dir, ignore_errors=True)
    results.append(baseline)
    print(
        f"\n{'mode':<24}{'sandboxes/s':>12}{'÷ fork':>9}{'ready p50':>11}{'ready p99':>11}"
        f"{'CPU/sandbox':>13}{'CPU bound/s':>13}{'n':>7}{'failed':>8}   (ms)"
    )
    for result in results:
        cpu = f"{result.cpu_ms_per_sandbox:>13.1f}" if result.cpu_ms_per_sandbox else f"{'':>13}"
        bound = f"{result.cpu_bound_per_s:>13.0f}" if result.cpu_bound_per_s else f"{'':>13}"
        print(
            f"{result.mode:<24}{result.per_s:>12.1f}{result.per_s / baseline.per_s:>8.3f}×"
            f"{result.ready_p50_ms or 0:>11.2f}{result.ready_p99_ms or 0:>11.2f}{cpu}{bound}"
            f"{result.sandboxes:>7}{result.failures:>8}   {result.description}"
        )
        if result.reason:
            print(f"{'':<24}last failure: {result.reason}")
    print(f"target: >= {TARGET_PER_S:.0f} new isolated sandboxes/s on {os.cpu_count()} cores:")
    for result in results[:-1]:
        verdict = "MET" if result.per_s >= TARGET_PER_S else "NOT MET"
        print(f"  {result.mode:<22}{result.per_s:>8.1f}/s  {verdict}")
    document = {
        "benchmark": "spawn_rate",
        "started_at": started_at,
        "command": " ".join([sys.executable, *sys.argv]),
        "settings": {"seconds": args.seconds, "workers": args.workers, "pool": args.pool},
        "machine": facts | {"loadavg_at_end": list(os.getloadavg())},
        "modes": [asdict(r) | {"over_plain_fork": r.per_s / baseline.per_s} for r in results],
        "target": {"per_s": TARGET_PER_S},
    }
    write_json(args.out, document)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
