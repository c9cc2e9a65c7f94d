"""Keep-alive policies on a virtual clock, the replay engine, and the trace simulator."""

from __future__ import annotations

import csv
import importlib.util
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from lambdalet.scheduler.keepalive import (
    POLICY_NAMES,
    FixedKeepAlive,
    HistogramParams,
    HybridHistogramPolicy,
    KeepAlivePolicy,
    make_policy,
)
from lambdalet.scheduler.keepalive.replay import replay_function

MINUTE = 60_000
HOUR = 60 * MINUTE
SIM_PATH = Path(__file__).resolve().parents[1] / "bench" / "keepalive_sim.py"


def drive(
    policy: KeepAlivePolicy, key: str, arrivals_ms: list[int], duration_ms: int = 1_000
) -> None:
    """Tell the policy about sequential invocations that each last ``duration_ms``."""
    for at_ms in arrivals_ms:
        policy.on_invocation(key, at_ms)
        policy.on_invocation_end(key, at_ms + duration_ms)


# -- fixed ----------------------------------------------------------------------------------


def test_fixed_keeps_every_function_the_same_minutes_and_never_prewarms() -> None:
    policy = FixedKeepAlive(20 * MINUTE)
    drive(policy, "f", [0, 30 * MINUTE, 60 * MINUTE])
    assert policy.keep_alive_ms("f") == 20 * MINUTE
    assert policy.keep_alive_ms("never-seen") == 20 * MINUTE
    assert policy.prewarm_after_ms("f") is None
    assert make_policy("fixed").keep_alive_ms("f") == 10 * MINUTE


def test_fixed_refuses_a_negative_keep_alive() -> None:
    with pytest.raises(ValueError, match="keep_alive_ms"):
        FixedKeepAlive(-1)


def test_eviction_takes_the_sandbox_closest_to_expiry_first() -> None:
    policy = FixedKeepAlive(10 * MINUTE)
    now = 12 * MINUTE
    idle_since = {"old": 0, "middle": 5 * MINUTE, "fresh": 11 * MINUTE}
    order = sorted(idle_since, key=lambda s: policy.eviction_priority("f", idle_since[s], now))
    assert order == ["old", "middle", "fresh"]
    assert policy.eviction_priority("f", 11 * MINUTE, now) == 9 * MINUTE
    assert policy.eviction_priority("f", 0, now) == -2 * MINUTE  # overdue


# -- hybrid ---------------------------------------------------------------------------------


def test_hybrid_learns_a_30_minute_timer_and_prewarms_before_it() -> None:
    policy = HybridHistogramPolicy()
    drive(policy, "timer", [i * 30 * MINUTE for i in range(10)])
    windows = policy.windows("timer")
    # Every idle time is 29:59 (bin 29): pre-warm at 0.9 x 29 min, loaded until 1.1 x 30 min.
    assert windows.basis == "histogram"
    assert policy.prewarm_after_ms("timer") == round(0.9 * 29 * MINUTE)
    assert policy.keep_alive_ms("timer") == round(1.1 * 30 * MINUTE) - round(0.9 * 29 * MINUTE)
    prewarm = policy.prewarm_after_ms("timer")
    assert prewarm is not None
    next_arrival_after_end = 30 * MINUTE - 1_000
    assert prewarm < next_arrival_after_end < prewarm + policy.keep_alive_ms("timer")
    assert policy.keep_alive_ms("timer") < 10 * MINUTE


def test_hybrid_uses_the_fallback_until_it_has_seen_enough_idle_times() -> None:
    policy = HybridHistogramPolicy(HistogramParams(min_observations=5))
    assert policy.windows("timer").basis == "fallback"
    drive(policy, "timer", [i * 30 * MINUTE for i in range(5)])  # 4 idle times
    assert policy.windows("timer").basis == "fallback"
    assert policy.prewarm_after_ms("timer") is None
    assert policy.keep_alive_ms("timer") == 10 * MINUTE
    drive(policy, "timer", [5 * 30 * MINUTE])  # the 5th
    assert policy.windows("timer").basis == "histogram"


def test_hybrid_falls_back_to_fixed_when_idle_times_are_spread_out() -> None:
    policy = HybridHistogramPolicy()
    at_ms = 0
    arrivals = []
    for i in range(200):  # idle times cycling over 200 different minutes: a flat histogram
        at_ms += ((i * 37) % 200 + 1) * MINUTE
        arrivals.append(at_ms)
    drive(policy, "erratic", arrivals)
    windows = policy.windows("erratic")
    assert windows.basis == "fallback"
    assert windows.prewarm_after_ms is None
    assert windows.keep_alive_ms == 10 * MINUTE


def test_the_hybrid_fallback_is_the_configured_keep_alive() -> None:
    policy = make_policy("hybrid-histogram", keep_alive_ms=240 * MINUTE)
    assert policy.keep_alive_ms("unknown") == 240 * MINUTE
    assert policy.prewarm_after_ms("unknown") is None


def test_hybrid_keeps_a_busy_function_loaded_without_unloading() -> None:
    policy = HybridHistogramPolicy()
    drive(policy, "busy", [i * 10_000 for i in range(100)], duration_ms=100)
    assert policy.prewarm_after_ms("busy") is None
    assert policy.keep_alive_ms("busy") == round(1.1 * MINUTE)


def test_hybrid_forecasts_idle_times_beyond_the_histogram_range() -> None:
    policy = HybridHistogramPolicy()
    drive(policy, "rare", [i * 6 * HOUR for i in range(6)])
    idle_ms = 6 * HOUR - 1_000
    windows = policy.windows("rare")
    assert windows.basis == "forecast"
    assert windows.prewarm_after_ms == round(0.85 * idle_ms)
    assert windows.keep_alive_ms == round(1.15 * idle_ms) - round(0.85 * idle_ms)


def test_arrivals_while_the_function_runs_are_not_idle_times() -> None:
    policy = HybridHistogramPolicy()
    for i in range(6):  # every 30 minutes, two overlapping invocations
        start = i * 30 * MINUTE
        policy.on_invocation("f", start)
        policy.on_invocation("f", start + 1_000)
        policy.on_invocation_end("f", start + 2_000)
        policy.on_invocation_end("f", start + 3_000)
    # Only the gaps between bursts were recorded (5 of them, bin 29), none of 0 s.
    assert policy.windows("f").basis == "histogram"
    assert policy.prewarm_after_ms("f") == round(0.9 * 29 * MINUTE)


def test_a_sandbox_freed_while_others_run_keeps_the_fallback() -> None:
    for scale_out_rule, expected in ((True, 10 * MINUTE), (False, round(1.1 * MINUTE))):
        policy = HybridHistogramPolicy(HistogramParams(fallback_for_scale_out=scale_out_rule))
        drive(policy, "busy", [i * 10_000 for i in range(100)], duration_ms=100)
        policy.on_invocation("busy", 2_000_000)
        policy.on_invocation("busy", 2_000_050)
        policy.on_invocation_end("busy", 2_000_100)  # the other one still runs
        assert policy.keep_alive_ms("busy") == expected
        policy.on_invocation_end("busy", 2_000_150)  # the last one
        assert policy.keep_alive_ms("busy") == round(1.1 * MINUTE)


def test_hybrid_eviction_prefers_the_function_about_to_expire() -> None:
    policy = HybridHistogramPolicy()
    drive(policy, "busy", [i * 10_000 for i in range(100)], duration_ms=100)  # keeps 1.1 min
    now = 2_000_000
    busy = policy.eviction_priority("busy", now - 30_000, now)
    unknown = policy.eviction_priority("unknown", now - 30_000, now)  # fallback, 10 min
    assert busy == 36_000
    assert busy < unknown


def test_forget_drops_what_was_learnt() -> None:
    policy = HybridHistogramPolicy()
    drive(policy, "timer", [i * 30 * MINUTE for i in range(10)])
    policy.forget("timer")
    assert policy.windows("timer").basis == "fallback"


def test_policies_never_read_the_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_clock() -> float:
        raise AssertionError("a policy read the clock")

    policies = [make_policy(name) for name in POLICY_NAMES]
    with monkeypatch.context() as patch:
        for name in ("time", "monotonic", "perf_counter", "time_ns", "monotonic_ns"):
            patch.setattr(time, name, no_clock)
        for policy in policies:
            drive(policy, "timer", [i * 30 * MINUTE for i in range(10)])
            policy.keep_alive_ms("timer")
            policy.prewarm_after_ms("timer")
            policy.eviction_priority("timer", 0, 5 * MINUTE)


def test_make_policy_refuses_unknown_names_and_options() -> None:
    with pytest.raises(ValueError, match="fixed.*hybrid-histogram"):
        make_policy("lru")
    with pytest.raises(ValueError, match="cv_treshold"):
        make_policy("hybrid-histogram", cv_treshold=3)
    with pytest.raises(ValueError, match="no options"):
        make_policy("fixed", margin=0.2)
    with pytest.raises(ValueError, match="whole"):
        make_policy("hybrid-histogram", min_observations=2.5)
    policy = make_policy("hybrid-histogram", keep_alive_ms=5 * MINUTE, cv_threshold=3)
    assert isinstance(policy, HybridHistogramPolicy)
    assert policy.params.cv_threshold == 3.0
    assert policy.params.fallback_keep_alive_ms == 5 * MINUTE


def test_histogram_params_are_checked() -> None:
    with pytest.raises(ValueError, match="percentile"):
        HistogramParams(head_percentile=99.5, tail_percentile=99)
    with pytest.raises(ValueError, match="bin_ms"):
        HistogramParams(bin_ms=0)


# -- replay ---------------------------------------------------------------------------------


def test_replay_of_an_always_on_function_has_one_cold_start() -> None:
    arrivals = [i * MINUTE for i in range(60)]
    outcome = replay_function(
        FixedKeepAlive(10 * MINUTE),
        "f",
        arrivals,
        duration_ms=1_000,
        memory_mb=1024,
        end_ms=60 * MINUTE,
    )
    assert (outcome.invocations, outcome.cold_starts) == (60, 1)
    # 59 idle gaps of 59 s, then idle from the last end to the end of the replay (59 s).
    assert outcome.idle_gb_s == pytest.approx(60 * 59)


def test_replay_counts_concurrent_arrivals_as_cold_starts() -> None:
    outcome = replay_function(
        FixedKeepAlive(10 * MINUTE),
        "f",
        [0, 100, 5_000],
        duration_ms=1_000,
        memory_mb=512,
        end_ms=MINUTE,
    )
    assert outcome.cold_starts == 2
    assert outcome.scale_up_cold_starts == 1
    assert outcome.peak_loaded_sandboxes == 2


def test_replay_of_a_timer_prewarms_and_wastes_less_than_fixed() -> None:
    arrivals = [i * 30 * MINUTE for i in range(16)]
    end_ms = 8 * HOUR

    def run(policy: KeepAlivePolicy) -> tuple[int, int, float]:
        outcome = replay_function(
            policy, "timer", arrivals, duration_ms=1_000, memory_mb=1024, end_ms=end_ms
        )
        return outcome.cold_starts, outcome.prewarm_starts, outcome.idle_gb_s

    fixed = run(FixedKeepAlive(10 * MINUTE))
    hybrid = run(HybridHistogramPolicy(HistogramParams(min_observations=5)))
    assert fixed[:2] == (16, 0)
    assert fixed[2] == pytest.approx(16 * 600)
    # Cold until 5 idle times are known (the 6th arrival), then pre-warmed every time; the
    # 11th pre-warm, after the last run, loads at 7:56 and waits until the replay ends.
    assert hybrid[:2] == (6, 11)
    assert hybrid[2] < fixed[2]


def test_replay_refuses_unsorted_arrivals() -> None:
    with pytest.raises(ValueError, match="sorted"):
        replay_function(FixedKeepAlive(), "f", [5, 1], duration_ms=1, memory_mb=1, end_ms=MINUTE)


# -- the simulator on a tiny trace ----------------------------------------------------------


@pytest.fixture(scope="module")
def sim() -> Iterator[ModuleType]:
    spec = importlib.util.spec_from_file_location("keepalive_sim", SIM_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[spec.name]


def write_trace(folder: Path, functions: dict[str, tuple[str, list[int]]]) -> None:
    """Write invocations/durations/memory CSVs in the Azure sample's layout."""
    minutes = len(next(iter(functions.values()))[1])
    labels = [str(480 + m) for m in range(minutes)]
    with (folder / "invocations.csv").open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["HashOwner", "HashApp", "HashFunction", "Trigger", *labels])
        for name, (trigger, counts) in functions.items():
            out.writerow(["owner", f"app-{name}", name, trigger, *counts])
    with (folder / "durations.csv").open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["HashOwner", "HashApp", "HashFunction", "Average", "Count"])
        for name in functions:
            out.writerow(["owner", f"app-{name}", name, 1000, 1])
    with (folder / "memory.csv").open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["HashFunction", "HashOwner", "HashApp", "SampleCount", "AverageAllocatedMb"])
        for name in functions:
            out.writerow([name, "owner", f"app-{name}", 1, 1024])


@pytest.mark.parametrize("spread", ["random", "even"])
def test_simulator_on_a_tiny_trace(sim: ModuleType, tmp_path: Path, spread: str) -> None:
    minutes = 480
    always = [1] * minutes
    timer = [1 if m % 30 == 0 else 0 for m in range(minutes)]
    write_trace(tmp_path, {"always": ("http", always), "timer": ("timer", timer)})
    out = tmp_path / "results"
    sim.main(["--data", str(tmp_path), "--out", str(out), "--spread", spread, "--no-plot"])
    report = json.loads((out / "keepalive.json").read_text())
    by_label = {r["label"]: r for r in report["policies"]}
    assert report["window"] == {
        "first_minute": 480,
        "minutes": minutes,
        "functions": 2,
        "apps": 2,
        "invocations": minutes + 16,
    }
    for label in ("fixed-5min", "fixed-10min", "fixed-20min"):
        # "always" is cold once; the 30-minute timer every time.
        assert by_label[label]["cold_starts"] == 1 + 16
    assert by_label["fixed-60min"]["cold_starts"] == 2
    hybrid = by_label["hybrid-histogram"]
    assert hybrid["cold_starts"] == 1 + 6  # the timer until 5 idle times are known
    assert hybrid["prewarm_starts"] == 11  # the last one waits for the window's end
    assert hybrid["functions_by_basis_at_end"] == {"histogram": 2}
    ratio = hybrid["vs_fixed_10min"]
    assert ratio["cold_starts"] == pytest.approx(7 / 17)
    assert ratio["wasted_memory_gb_s"] < 1
    fixed = by_label["fixed-10min"]
    # "always": idle 59 s of every minute; the timer: 10 minutes after each of 16 runs.
    assert fixed["wasted_memory_gb_s"] == pytest.approx(16 * 600 + minutes * 59, rel=0.02)


def test_simulator_draws_the_plot(sim: ModuleType, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    write_trace(tmp_path, {"timer": ("timer", [1 if m % 30 == 0 else 0 for m in range(240)])})
    sim.main(["--data", str(tmp_path), "--out", str(tmp_path)])
    assert (tmp_path / "keepalive.png").read_bytes().startswith(b"\x89PNG")
