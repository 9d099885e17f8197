"""``runtime.concurrency: auto`` (issue 30): the pacer sizes the cases in flight from the run's
own render and MLLM times, holds back when the MLLM server slows under load, stays sequential
for an in-process MLLM, and every stage says how busy the device was and which limit bound it.
A paced run's results are identical to a sequential one's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from repainter import runner
from repainter.backend_timing import CASE_WORK, BackendClock
from repainter.backends.mllm.openai_config import OpenAIConfig
from repainter.executors.pacing import PROBE, Pacer, mllm_limit
from repainter.spec import build_spec
from repainter.spec.sections import RuntimeSpec
from repainter.testing.run_outputs import run_outputs

MLLM = "mllm:m"


def _answer(clock: BackendClock, calls: int, seconds: float) -> None:
    """``calls`` MLLM calls answered, each after ``seconds``."""
    for _ in range(calls):
        clock.add(f"{MLLM}.describe", seconds)


def _finished_case(pacer: Pacer, render_s: float, renders: int, mllm_s: float, calls: int) -> None:
    """One case's work, as the timed backends would have collected it."""
    with pacer.case_work():
        work = CASE_WORK.get()
        work["t2i:a"] = [render_s * renders, renders, 0.0]
        work[MLLM] = [mllm_s * calls, calls, 0.0]


def _auto(limit: int | None = 64, ceiling: int = 64) -> tuple[Pacer, BackendClock]:
    clock = BackendClock()
    pacer = Pacer("auto", ceiling, clock, MLLM, limit)
    pacer.begin_stage(["a"])
    return pacer, clock


def test_auto_grows_by_doubling_towards_what_the_cases_need():
    pacer, clock = _auto()
    assert pacer.target == 1
    clock.add(f"{MLLM}.describe", 0.01, failed=True)  # a failing server: no growth
    assert pacer.update() == 1
    _answer(clock, 1, 3.0)  # answered by a server: probe with a few
    assert pacer.update() == PROBE
    _finished_case(pacer, render_s=1.0, renders=2, mllm_s=3.0, calls=8)
    targets = []
    for _ in range(4):
        _answer(clock, PROBE, 3.0)  # a window of calls answered in 3 s each
        targets.append(pacer.update())
        assert pacer.update() == targets[-1]  # no new window: no new growth
    # a case: 2 s of renders + 8 calls x 3 s = 13x its render time -> ceil(1.25 x 13) + 1 = 18
    assert pacer.needed == 18
    assert targets == [8, 16, 18, 18]
    assert [step["target"] for step in pacer.trajectory] == [1, PROBE, 8, 16, 18]
    assert "13.0x its render time" in pacer.trajectory[-1]["why"]


def test_auto_stays_under_its_ceiling_and_says_so():
    pacer, clock = _auto(ceiling=10)
    _finished_case(pacer, render_s=1.0, renders=2, mllm_s=3.0, calls=8)
    for _ in range(4):
        _answer(clock, PROBE, 3.0)
        pacer.update()
    assert pacer.target == 10 and pacer.needed == 18
    assert "capped at 10" in pacer.trajectory[-1]["why"]


def test_auto_holds_once_the_mllm_server_slows_under_load():
    pacer, clock = _auto()
    _answer(clock, 1, 3.0)
    _finished_case(pacer, render_s=1.0, renders=2, mllm_s=3.0, calls=8)
    assert pacer.update() == PROBE
    _answer(clock, PROBE, 3.0)
    assert pacer.update() == 8
    _answer(clock, PROBE, 9.0)  # three times slower with more requests in flight
    assert pacer.update() == 8 and pacer.saturated
    assert pacer.trajectory[-1]["target"] == 8
    report = {"device_busy_share": 0.4, "cases_in_flight_avg": 8.0, "cases_in_flight_max": 8,
              "cases": 64, "stage_seconds": 100.0,
              "mllm": {"limit": 64, "in_flight_avg": 7.0, "limit_wait_case_seconds": 0.0}}
    binding, hint = pacer.binding(report)
    assert binding == "mllm server" and "9.00 s a call vs 3.00 s unloaded" in hint


def test_an_in_process_mllm_stays_sequential():
    pacer, clock = _auto(limit=None)  # the simulation's MLLM has no request limit
    assert pacer.target == 1
    _finished_case(pacer, render_s=0.01, renders=2, mllm_s=0.5, calls=8)
    _answer(clock, 8, 0.5)
    assert pacer.update() == 1 and pacer.in_process
    report = {"device_busy_share": 0.1, "cases_in_flight_avg": 1.0, "cases_in_flight_max": 1,
              "cases": 64, "stage_seconds": 10.0,
              "mllm": {"limit": None, "in_flight_avg": 0.9, "limit_wait_case_seconds": 0.0}}
    assert pacer.binding(report) == ("case work", None)


def _report(share: float, in_flight: float, in_flight_max: int, mllm_in_flight: float,
            limit_wait: float, limit: int = 4) -> dict:
    return {"device_busy_share": share, "cases_in_flight_avg": in_flight,
            "cases_in_flight_max": in_flight_max, "cases": 64, "stage_seconds": 100.0,
            "mllm": {"limit": limit, "in_flight_avg": mllm_in_flight,
                     "limit_wait_case_seconds": limit_wait}}


def test_the_binding_limit_is_named_with_the_setting_to_change():
    pacer, _ = _auto()
    assert pacer.binding(_report(0.9, 16, 18, 12, 0.0)) == ("device", None)
    # cases waited behind the MLLM's limit of 4: 3.9 in flight at 36% busy -> x 1.25 / 0.36
    # = 13.5, rounded up to a multiple of 4
    binding, hint = pacer.binding(_report(0.36, 16, 16, 3.9, 170.0))
    assert binding == "mllm.params.concurrency"
    assert hint.startswith("raise `mllm.params.concurrency` to 16 to keep the device busy")
    pacer.needed, pacer.ceiling = 40, 24
    binding, hint = pacer.binding(_report(0.5, 23, 24, 11, 0.0, limit=64))
    assert binding == "runtime.max_concurrency" and "to 40" in hint
    pacer.memory_cap = 24  # the ceiling came from free memory, not the setting
    assert pacer.binding(_report(0.5, 23, 24, 11, 0.0, limit=64))[0] == "memory"
    pacer.memory_cap = None

    # a case taking 36x its render time: 64 cases leave the device at most 64 / (64 + 35) busy
    pacer.needed, pacer.ceiling, pacer.ratio = 46, 64, 36.0
    binding, hint = pacer.binding(_report(0.6, 40, 51, 21, 0.0, limit=64))
    assert binding == "cases" and "at most 65% busy" in hint
    assert pacer.binding(_report(0.3, 40, 51, 21, 0.0, limit=64))[0] == "case work"

    fixed = Pacer(1, 64, BackendClock(), MLLM, 64)
    fixed.begin_stage(["a"])
    binding, hint = fixed.binding(_report(0.09, 1, 1, 0.9, 0.0, limit=64))
    assert binding == "runtime.concurrency"
    assert hint == "raise `runtime.concurrency` to 12 to keep the device busy (or set it to `auto`)"


def test_auto_is_the_default_and_an_int_still_fixes_it():
    assert RuntimeSpec().concurrency == "auto" and RuntimeSpec().max_concurrency == 64
    assert RuntimeSpec(concurrency=3).concurrency == 3
    for bad in (0, 257):
        with pytest.raises(ValueError, match="auto or an integer from 1 to 256"):
            RuntimeSpec(concurrency=bad)
    assert "max_concurrency" not in RuntimeSpec().model_dump()  # older specs keep their text
    assert RuntimeSpec(max_concurrency=8).model_dump()["max_concurrency"] == 8


def test_the_mllm_limit_defaults_by_where_the_server_is():
    assert OpenAIConfig(model="m", base_url="http://127.0.0.1:8000/v1").concurrency == 64
    assert OpenAIConfig(model="m").concurrency == 16  # a hosted API
    assert OpenAIConfig(model="m", concurrency=3).concurrency == 3

    class Wrapper:  # the cache and the timer wrap the backend
        def __init__(self, inner):
            self.inner = inner

    class Backend:
        config = OpenAIConfig(model="m", concurrency=5)

    assert mllm_limit(Wrapper(Wrapper(Backend()))) == 5
    assert mllm_limit(Wrapper(object())) is None


KEY_ENV = "PACING_TEST_KEY"


def _spec(folder: Path, url: str, **runtime):
    return build_spec({
        "output_dir": str(folder), "dataset": {"limit": 6, "params": {"size": 64}},
        "t2i": [{"name": "procedural", "params": {"size": 64, "latency_s": 0.02}}],
        "mllm": {"name": "openai", "params": {"model": "m", "base_url": url,
                                              "api_key_env": KEY_ENV}},
        "metrics": ["ssim", "color_histogram"], "selection": {"ssim": 0.5, "color_histogram": 0.5},
        "loop": {"rounds": 2, "variants": 2}, "runtime": {"cache": False, **runtime}})


@pytest.mark.slow
def test_a_paced_run_matches_a_sequential_one_and_reports_its_pacing(tmp_path, monkeypatch):
    from repainter.testing import OpenAICompatServer

    monkeypatch.setenv(KEY_ENV, "k")
    with OpenAICompatServer(latency=0.05) as server:
        paced = runner.run(_spec(tmp_path / "auto", server.url))
        sequential = runner.run(_spec(tmp_path / "one", server.url, concurrency=1))
    assert run_outputs(tmp_path / "auto") == run_outputs(tmp_path / "one")
    images = sorted(p.relative_to(tmp_path / "auto") for p in (tmp_path / "auto").rglob("*.png"))
    assert images == sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*.png"))
    for image in images:
        assert (tmp_path / "auto" / image).read_bytes() == (tmp_path / "one" / image).read_bytes()

    info = json.loads((tmp_path / "auto" / "run.json").read_text())
    assert info["executor"]["concurrency"] == "auto"
    assert [step["target"] for step in info["executor"]["concurrency_trajectory"]][:2] == [1, PROBE]
    assert info["executor"]["max_in_flight"] >= 2  # it did run cases at once
    pacing = info["pacing"]["procedural"]
    assert pacing["mllm"]["limit"] == 64  # concurrency: auto on loopback, as it ran
    assert 0.0 < pacing["device_busy_share"] <= 1.0 and pacing["binding"]
    assert paced.summary()["pacing"]["procedural"]["binding"] == pacing["binding"]
    assert sequential.info.executor["concurrency"] == 1
    assert sequential.info.pacing["procedural"]["cases_in_flight_max"] == 1
    log = (tmp_path / "auto" / "logs" / "run.log").read_text()
    assert "procedural: device busy" in log and f"binding: {pacing['binding']}" in log


def test_a_gauge_integrates_calls_in_flight_and_those_beyond_the_limit():
    from repainter.backend_timing import Gauge

    gauge = Gauge(limit=2)
    gauge._since = 0.0
    for now in (0.0, 0.0, 0.0):  # three calls at t=0: one waits behind the limit of 2
        gauge.move(1, now)
    gauge.move(-1, 1.0)  # one answered at t=1
    gauge.move(-1, 3.0)
    gauge.move(-1, 4.0)
    assert gauge.snapshot(10.0) == {"busy": 4.0, "area": 3.0 + 2 * 2.0 + 1.0, "over": 1.0}


def test_the_summary_prints_each_models_busy_share_binding_and_hint():
    from types import SimpleNamespace

    from rich.console import Console

    from repainter.cli.run import _print_pacing

    report = {"stage_seconds": 100.0, "cases": 64, "cases_in_flight_avg": 4.0,
              "cases_in_flight_max": 4, "device_busy_share": 0.3, "device_busy_seconds": 30.0,
              "device_idle_seconds": 70.0, "device_wait_case_seconds": 1.0,
              "mllm": {"limit": 4, "in_flight_avg": 3.9, "limit_wait_case_seconds": 200.0},
              "binding": "mllm.params.concurrency",
              "hint": "raise `mllm.params.concurrency` to 16 to keep the device busy"}
    out = Console(record=True, width=300)
    _print_pacing(out, SimpleNamespace(info=SimpleNamespace(pacing={"sdxl": report})))
    text = out.export_text()
    assert "sdxl: device busy 30% of 100.0 s" in text and "MLLM in flight 3.9 of limit 4" in text
    assert "binding: mllm.params.concurrency" in text
    assert "hint raise `mllm.params.concurrency` to 16 to keep the device busy" in text
