"""Replay the Azure Functions 2019 sample through lambdalet's keep-alive policies.

    python bench/keepalive_sim.py [--data DIR] [--out DIR] [--spread random|even] [--seed N]
                                  [--no-plot]

Reads ``invocations.csv``, ``durations.csv`` and ``memory.csv`` (the layout described in the
data's README), drives the very classes the router uses (``make_policy``) with a virtual clock
through :func:`lambdalet.scheduler.keepalive.replay.replay_function`, and reports, per policy:
cold starts (overall and the distribution over functions, including the paper's 75th percentile
of per-function cold-start %), pre-warms, and idle memory-time in GB-seconds. Ratios are against
``fixed-10min`` measured in the same run. Writes ``keepalive.json`` and ``keepalive.png`` (a
Pareto plot; needs matplotlib) to ``--out`` (default ``bench/results``).

How the trace becomes arrivals and sandboxes (all documented choices, none tuned per policy):

- **Unit.** One function is one unit with its own sandboxes, as lambdalet keeps them; Azure
  kept whole apps loaded, the paper's policy is per app.
- **Within a minute.** The trace only counts invocations per minute. ``--spread random``
  (default) places a minute's c invocations uniformly at random in it, seeded per function with
  ``(seed, HashFunction)`` so results do not depend on row order; ``--spread even`` places them
  at ``(k + 0.5) / c`` of the minute (the README's ``compute_stats.py`` rule).
- **Duration.** Every invocation of a function lasts its ``Average`` from ``durations.csv``
  (whole-day mean, excluding cold-start time), at least 1 ms.
- **Memory.** A sandbox holds ``AverageAllocatedMb`` from ``memory.csv`` while loaded: the
  app's committed memory divided among its functions, as the README explains.
- **Concurrency** is counted: one sandbox serves one invocation at a time.
- **Window.** The replay starts with nothing loaded and nothing learnt at the first minute
  column and stops at the end of the last; sandboxes idle at the end count until then.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lambdalet.scheduler.keepalive import (
    HybridHistogramPolicy,
    KeepAlivePolicy,
    make_policy,
)
from lambdalet.scheduler.keepalive.base import MINUTE_MS
from lambdalet.scheduler.keepalive.replay import ReplayOutcome, replay_function

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "azure-functions-2019"
DEFAULT_OUT = Path(__file__).resolve().parent / "results"
BASELINE = "fixed-10min"


@dataclass(frozen=True)
class PolicySpec:
    """One policy to replay: a label for the report and how to build it with make_policy."""

    label: str
    name: str
    keep_alive_ms: int
    options: dict[str, float] = field(default_factory=dict)

    def build(self) -> KeepAlivePolicy:
        return make_policy(self.name, keep_alive_ms=self.keep_alive_ms, **self.options)


POLICIES = (
    PolicySpec("fixed-5min", "fixed", 5 * MINUTE_MS),
    PolicySpec(BASELINE, "fixed", 10 * MINUTE_MS),
    PolicySpec("fixed-20min", "fixed", 20 * MINUTE_MS),
    PolicySpec("fixed-60min", "fixed", 60 * MINUTE_MS),
    # lambdalet's defaults: 10-minute fallback, scale-out sandboxes keep the fallback.
    PolicySpec("hybrid-histogram", "hybrid-histogram", 10 * MINUTE_MS),
    # The same without the scale-out rule: the function's windows apply to every sandbox.
    PolicySpec(
        "hybrid-no-scale-out-rule",
        "hybrid-histogram",
        10 * MINUTE_MS,
        {"fallback_for_scale_out": 0},
    ),
    # Closest to the paper's reading: 4-hour standard keep-alive, no scale-out rule (still per
    # function, with our min_observations and the median stand-in for ARIMA).
    PolicySpec(
        "hybrid-paper-literal",
        "hybrid-histogram",
        10 * MINUTE_MS,
        {"fallback_keep_alive_ms": 240 * MINUTE_MS, "fallback_for_scale_out": 0},
    ),
)


@dataclass(frozen=True)
class FunctionRow:
    """One function of the trace: ids, trigger, per-minute counts, duration and memory."""

    function: str
    app: str
    trigger: str
    counts: tuple[int, ...]
    duration_ms: int
    memory_mb: float


@dataclass(frozen=True)
class Trace:
    """The functions of a trace and the first minute label of its window."""

    first_minute: int
    minutes: int
    functions: tuple[FunctionRow, ...]


def load_trace(folder: Path) -> Trace:
    """Read the three CSV files of a trace folder; refuse functions missing from one of them."""
    with (folder / "invocations.csv").open(newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = list(reader)
    minute_labels = [int(label) for label in header[4:]]
    if minute_labels != list(range(minute_labels[0], minute_labels[0] + len(minute_labels))):
        raise SystemExit(f"{folder}/invocations.csv: minute columns are not consecutive")
    with (folder / "durations.csv").open(newline="") as f:
        durations = {row["HashFunction"]: float(row["Average"]) for row in csv.DictReader(f)}
    with (folder / "memory.csv").open(newline="") as f:
        memory = {
            row["HashFunction"]: float(row["AverageAllocatedMb"]) for row in csv.DictReader(f)
        }
    functions = []
    for row in rows:
        function = row[2]
        if function not in durations or function not in memory:
            raise SystemExit(f"{folder}: function {function} lacks a duration or memory row")
        functions.append(
            FunctionRow(
                function=function,
                app=row[1],
                trigger=row[3],
                counts=tuple(int(count) for count in row[4:]),
                duration_ms=max(1, round(durations[function])),
                memory_mb=memory[function],
            )
        )
    return Trace(minute_labels[0], len(minute_labels), tuple(functions))


def arrivals(row: FunctionRow, spread: str, seed: int) -> Iterator[int]:
    """The function's arrival times in ms from the window's start, sorted."""
    rng = random.Random(f"{seed}:{row.function}")
    for minute, count in enumerate(row.counts):
        start = minute * MINUTE_MS
        if spread == "even":
            offsets = [int((k + 0.5) * MINUTE_MS / count) for k in range(count)]
        else:
            offsets = sorted(rng.randrange(MINUTE_MS) for _ in range(count))
        for offset in offsets:
            yield start + offset


def percentile(values: Sequence[float], pct: float) -> float:
    """Linear-interpolation percentile (numpy's default), without numpy."""
    ordered = sorted(values)
    if not ordered:
        return 0.0
    rank = (len(ordered) - 1) * pct / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def distribution(values: Sequence[float]) -> dict[str, float]:
    """Mean and percentiles of per-function values."""
    return {
        "mean": sum(values) / len(values) if values else 0.0,
        **{f"p{p}": percentile(values, p) for p in (50, 75, 90, 99)},
    }


def simulate(trace: Trace, specs: Sequence[PolicySpec], spread: str, seed: int) -> dict[str, Any]:
    """Replay every function through every policy; return the report as plain data."""
    end_ms = trace.minutes * MINUTE_MS
    policies = {spec.label: spec.build() for spec in specs}
    outcomes: dict[str, list[tuple[FunctionRow, ReplayOutcome]]] = {s.label: [] for s in specs}
    for row in trace.functions:
        times = list(arrivals(row, spread, seed))
        for label, policy in policies.items():
            outcome = replay_function(
                policy,
                row.function,
                times,
                duration_ms=row.duration_ms,
                memory_mb=row.memory_mb,
                end_ms=end_ms,
            )
            outcomes[label].append((row, outcome))
    results = [summarise(spec, policies[spec.label], outcomes[spec.label]) for spec in specs]
    baseline = next((r for r in results if r["label"] == BASELINE), None)
    if baseline is not None:
        for result in results:
            result["vs_" + BASELINE.replace("-", "_")] = ratios(result, baseline)
    return {
        "window": {
            "first_minute": trace.first_minute,
            "minutes": trace.minutes,
            "functions": len(trace.functions),
            "apps": len({row.app for row in trace.functions}),
            "invocations": sum(sum(row.counts) for row in trace.functions),
        },
        "model": {
            "spread": spread,
            "seed": seed,
            "unit": "function",
            "concurrency": "counted: one sandbox serves one invocation at a time",
            "duration": "durations.csv Average per function, >= 1 ms",
            "memory": "memory.csv AverageAllocatedMb per function (app value / its functions)",
            "start": "nothing loaded, nothing learnt",
        },
        "baseline": BASELINE,
        "policies": results,
    }


def summarise(
    spec: PolicySpec, policy: KeepAlivePolicy, outcomes: list[tuple[FunctionRow, ReplayOutcome]]
) -> dict[str, Any]:
    """One policy's totals and per-function distribution."""
    invocations = sum(o.invocations for _, o in outcomes)
    cold = sum(o.cold_starts for _, o in outcomes)
    per_function = [o.cold_start_pct for _, o in outcomes]
    triggers = sorted({row.trigger for row, _ in outcomes})
    result: dict[str, Any] = {
        "label": spec.label,
        "policy": repr(policy),
        "invocations": invocations,
        "cold_starts": cold,
        "cold_start_pct": 100.0 * cold / invocations if invocations else 0.0,
        "function_cold_start_pct": distribution(per_function),
        "scale_up_cold_starts": sum(o.scale_up_cold_starts for _, o in outcomes),
        "functions_never_warm": sum(1 for _, o in outcomes if o.cold_starts == o.invocations),
        "prewarm_starts": sum(o.prewarm_starts for _, o in outcomes),
        "sandbox_starts": cold + sum(o.prewarm_starts for _, o in outcomes),
        "wasted_memory_gb_s": sum(o.idle_gb_s for _, o in outcomes),
        "function_cold_start_pct_by_trigger": {
            trigger: distribution(
                [o.cold_start_pct for row, o in outcomes if row.trigger == trigger]
            )
            for trigger in triggers
        },
    }
    if isinstance(policy, HybridHistogramPolicy):
        bases: dict[str, int] = {}
        for row, _ in outcomes:
            basis = policy.windows(row.function).basis
            bases[basis] = bases.get(basis, 0) + 1
        result["functions_by_basis_at_end"] = bases
    return result


def ratios(result: dict[str, Any], baseline: dict[str, Any]) -> dict[str, float | None]:
    """A policy's numbers divided by the baseline's (None where the baseline is 0)."""

    def ratio(a: float, b: float) -> float | None:
        return a / b if b else None

    return {
        "cold_starts": ratio(result["cold_starts"], baseline["cold_starts"]),
        "p75_function_cold_start_pct": ratio(
            result["function_cold_start_pct"]["p75"], baseline["function_cold_start_pct"]["p75"]
        ),
        "wasted_memory_gb_s": ratio(result["wasted_memory_gb_s"], baseline["wasted_memory_gb_s"]),
    }


def table(report: dict[str, Any]) -> str:
    """A small text table of the report, ratios against the baseline."""
    key = "vs_" + BASELINE.replace("-", "_")
    lines = [
        f"{'policy':<30}{'cold %':>8}{'p75 fn cold %':>15}{'wasted GB-s':>13}"
        f"{'cold x':>8}{'p75 x':>7}{'memory x':>10}{'pre-warms':>11}"
    ]
    for r in report["policies"]:
        rel = r.get(key, {})

        def show(name: str, rel: dict[str, float | None] = rel) -> str:
            value = rel.get(name)
            return "-" if value is None else f"{value:.2f}"

        lines.append(
            f"{r['label']:<30}{r['cold_start_pct']:>8.3f}"
            f"{r['function_cold_start_pct']['p75']:>15.2f}{r['wasted_memory_gb_s']:>13,.0f}"
            f"{show('cold_starts'):>8}{show('p75_function_cold_start_pct'):>7}"
            f"{show('wasted_memory_gb_s'):>10}{r['prewarm_starts']:>11,}"
        )
    return "\n".join(lines)


def plot(report: dict[str, Any], path: Path) -> None:
    """Pareto plot: idle memory against fixed-10min on x, cold starts on y, a point per policy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    key = "vs_" + BASELINE.replace("-", "_")
    policies = report["policies"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    panels = (
        ("p75 of per-function cold-start % (paper's metric)", _p75_function_cold_pct),
        ("cold starts, % of all invocations", _cold_pct),
    )
    for ax, (title, y_of) in zip(axes, panels, strict=True):
        fixed = [r for r in policies if r["label"].startswith("fixed-")]
        ax.plot(
            [r[key]["wasted_memory_gb_s"] for r in fixed],
            [y_of(r) for r in fixed],
            "o-",
            color="tab:gray",
            label="fixed keep-alive",
        )
        for r in fixed:
            ax.annotate(
                r["label"].removeprefix("fixed-"),
                (r[key]["wasted_memory_gb_s"], y_of(r)),
                textcoords="offset points",
                xytext=(5, 5),
            )
        for marker, r in zip("s^Dv", [r for r in policies if r not in fixed], strict=False):
            ax.plot(r[key]["wasted_memory_gb_s"], y_of(r), marker, markersize=9, label=r["label"])
        ax.set_xlabel(f"wasted idle memory, relative to {BASELINE}")
        ax.set_ylabel(title)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    window = report["window"]
    fig.suptitle(
        f"Keep-alive policies on the Azure Functions 2019 sample: {window['functions']} functions, "
        f"{window['minutes'] // 60} h, spread={report['model']['spread']}; lower left is better",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _p75_function_cold_pct(result: dict[str, Any]) -> float:
    return float(result["function_cold_start_pct"]["p75"])


def _cold_pct(result: dict[str, Any]) -> float:
    return float(result["cold_start_pct"])


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the simulation from the command line; return the report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="trace folder")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results folder")
    parser.add_argument("--spread", choices=("random", "even"), default="random")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG (no matplotlib)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    trace = load_trace(args.data)
    report = simulate(trace, POLICIES, args.spread, args.seed)
    report["data"] = str(args.data)
    report["elapsed_s"] = round(time.perf_counter() - started, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "keepalive.json").write_text(json.dumps(report, indent=2) + "\n")
    if not args.no_plot:
        plot(report, args.out / "keepalive.png")
    print(table(report))
    print(f"({report['elapsed_s']} s; results in {args.out})")
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
