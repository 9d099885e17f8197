"""Every adaptation the OpenAI-compatible MLLM makes is recorded where a reader looks (issue 24,
item 5): per case in the case record's ``mllm_adaptations``, per MLLM label in run.json, once in
the log; silent context truncation is refused where it is demonstrated and recorded where it is
suspected; the temperature is sent only when set; an image-limit rejection gives advice that
fits the limit and says it is permanent.

The end-to-end tests run ``repainter.run`` with the world bench's T2I model and an ``openai``
MLLM pointed at the loopback server, which answers as the real servers do.
"""

from __future__ import annotations

import json
import logging

import pytest
from PIL import Image

pytest.importorskip("openai")

from repainter.backend_timing import CURRENT_CASE  # noqa: E402
from repainter.backends.mllm.adaptations import check_prompt_tokens, summarize  # noqa: E402
from repainter.backends.mllm.openai_compat import MLLMCallError, OpenAIMLLM  # noqa: E402
from repainter.cache import CachedMLLM, ResponseCache  # noqa: E402
from repainter.records import load_case_record  # noqa: E402
from repainter.runner import run  # noqa: E402
from repainter.spec import build_spec  # noqa: E402
from repainter.testing import OpenAICompatServer, ServerProfile  # noqa: E402

KEY_ENV = "REPAINTER_ADAPTATIONS_TEST_KEY"
LOGGER = "repainter.backends.mllm.adaptations"
COLOURS = [(200, 40, 40), (40, 160, 60), (40, 60, 200), (220, 200, 40)]


@pytest.fixture(autouse=True)
def _key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, "sk-adaptations-test-key")


def _picture(side: int, n: int) -> Image.Image:
    """A flat-coloured square on a flat background (small as a PNG, never constant)."""
    image = Image.new("RGB", (side, side), COLOURS[n % 4])
    image.paste(COLOURS[(n + 2) % 4], (side // 4, side // 4, side // 2, side // 2))
    return image


def _manifest(tmp_path, rows):
    """A manifest of references: (id, side, context images before it) each, flat colours."""
    lines = []
    for n, (case_id, side, n_context) in enumerate(rows):
        context = []
        for k in range(n_context):
            name = f"{case_id}-ctx{k}.png"
            _picture(side, n + k + 1).save(tmp_path / name)
            context.append({"path": name, "text": f"step {k} of the story"})
        _picture(side, n).save(tmp_path / f"{case_id}.png")
        lines.append(json.dumps({"id": case_id, "path": f"{case_id}.png", "context": context}))
    manifest = tmp_path / "refs.jsonl"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


def _run(tmp_path, server, rows, rounds=1, **params):
    manifest = _manifest(tmp_path, rows)
    mllm = {"model": "m", "base_url": server.url, "api_key_env": KEY_ENV,
            "retry_initial_wait": 0.001, "retry_max_wait": 0.01, "timeout": 10.0, **params}
    return run(build_spec({
        "preset": "world", "output_dir": str(tmp_path / "run"),
        "dataset": {"name": "manifest", "params": {"path": str(manifest)}},
        "mllm": {"name": "openai", "label": "remote", "params": mllm},
        "metrics": ["ssim", "color_histogram"], "loop": {"rounds": rounds, "variants": 1}}))


def _records(result) -> dict:
    """Case records as written to the run folder, by case id."""
    found = {}
    for path in (result.run_dir / "cases").rglob("*.json"):
        record = load_case_record(json.loads(path.read_text()))
        found[record.case_id] = record
    return found


def _by_kind(entries) -> dict:
    return {(e["kind"] if isinstance(e, dict) else e.kind): e for e in entries}


def _run_json(result) -> dict:
    return json.loads((result.run_dir / "run.json").read_text())


def _warnings(caplog, kind: str) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == LOGGER and f"adapted a request: {kind}" in r.getMessage()]


# -- end to end: the case record, run.json and the log ------------------------------------------


def test_step_down_and_token_switch_are_recorded_per_case_per_run_and_logged_once(
        tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger=LOGGER)
    # a reasoning model without json_schema: max_tokens and json_schema are both 400s, and any
    # temperature but 1 is too, so the default (none sent) must work
    profile = ServerProfile(reasoning=True, response_formats=("json_object",))
    with OpenAICompatServer(profile=profile, record_bodies=True) as server:
        result = _run(tmp_path, server, [("a", 64, 0), ("b", 64, 0)], max_tokens=4000)
        bodies = list(server.bodies)
    records = _records(result)
    assert {r.status for r in records.values()} == {"done"}
    assert not any("temperature" in body for body in bodies)
    for record in records.values():
        kinds = _by_kind(record.mllm_adaptations)
        fmt, token = kinds["response_format"], kinds["token_param"]
        assert (fmt.requested, fmt.used) == ("json_schema", "json_object")
        assert (token.requested, token.used) == ("max_tokens", "max_completion_tokens")
        # every call of the case ran that way: its own and the description it starts from
        assert fmt.calls == record.mllm_usage.calls + 1 == token.calls
    assert "not supported" in _by_kind(records["a"].mllm_adaptations)["response_format"].detail
    summary = _by_kind(_run_json(result)["mllm_adaptations"]["remote"])
    calls = _run_json(result)["mllm_usage"]["calls"]
    assert summary["response_format"]["calls"] == calls == summary["token_param"]["calls"]
    assert len(_warnings(caplog, "response_format")) == 1
    assert len(_warnings(caplog, "token_param")) == 1


def test_downscaled_dropped_and_combined_images_are_recorded(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger=LOGGER)
    # vLLM's default of one image per request: max_images 1 drops the story's images and sends
    # critique / judge pairs side by side; max_image_side 32 downscales every 64 px image
    with OpenAICompatServer(profile="vllm-v0") as server:
        result = _run(tmp_path, server, [("story", 64, 2)], rounds=2, max_images=1,
                      max_image_side=32)
    (record,) = _records(result).values()
    assert record.status == "done"
    kinds = _by_kind(record.mllm_adaptations)
    dropped, combined = kinds["context_images_dropped"], kinds["images_combined"]
    assert (dropped.requested, dropped.used, dropped.count) == ("2 context images", "0 kept", 2)
    assert (combined.requested, combined.used) == ("2 images", "1 side-by-side image")
    assert combined.calls == 2  # critique and judge
    assert (kinds["image_downscaled"].requested, kinds["image_downscaled"].used) == (
        "64x64", "32x32")
    run_level = _by_kind(_run_json(result)["mllm_adaptations"]["remote"])
    assert set(run_level) == {"context_images_dropped", "images_combined", "image_downscaled"}
    assert run_level["images_combined"]["count"] == 2
    assert len(_warnings(caplog, "image_downscaled")) == 1


def test_ollama_default_context_refuses_cut_requests_and_records_the_suspicion(tmp_path):
    # Ollama's /v1 with its default context: the story's request (3 images) is cut to exactly
    # 2048 tokens, images first; the plain one fits but is at risk without context_tokens
    with OpenAICompatServer(profile="ollama") as server:
        result = _run(tmp_path, server, [("story", 64, 2), ("plain", 64, 0)])
        dropped = server.stats()["images_dropped"]
    assert dropped >= 2  # the server did drop the story's images
    records = _records(result)
    story, plain = records["story"], records["plain"]
    assert story.status == "failed" and "OLLAMA_CONTEXT_LENGTH" in story.error
    assert "context_tokens" in story.error and "2048" in story.error
    assert "context_truncated" in _by_kind(story.mllm_adaptations)
    assert plain.status == "done"
    suspected = _by_kind(plain.mllm_adaptations)["context_truncated_suspected"]
    assert "Ollama endpoint without context_tokens" in suspected.detail
    run_level = _by_kind(_run_json(result)["mllm_adaptations"]["remote"])
    assert {"context_truncated", "context_truncated_suspected", "response_format"} <= set(
        run_level)


def test_a_request_over_context_tokens_is_refused_and_recorded(tmp_path):
    # the story's describe (3 images at ~768 tokens) cannot fit 2500 tokens: not sent at all
    with OpenAICompatServer(record_bodies=True) as server:
        result = _run(tmp_path, server, [("story", 64, 2), ("plain", 64, 0)],
                      context_tokens=2500)
        described = sum(1 for b in server.bodies  # requests with the story's 3 images
                        if sum(p["type"] == "image_url" for p in b["messages"][1]["content"]) == 3)
    records = _records(result)
    story = records["story"]
    assert story.status == "failed" and described == 0
    assert "over context_tokens=2500" in story.error
    refused = _by_kind(story.mllm_adaptations)["context_refused"]
    assert (refused.used, refused.detail) == ("context_tokens=2500", "not sent")
    assert records["plain"].status == "done"
    assert "context_refused" in _by_kind(_run_json(result)["mllm_adaptations"]["remote"])


def test_low_prompt_tokens_are_a_recorded_suspicion(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger=LOGGER)
    # a server that drops whole images past its context and counts only what it kept
    profile = ServerProfile(context_tokens=1500, truncation="kept")
    with OpenAICompatServer(profile=profile) as server:
        result = _run(tmp_path, server, [("story", 768, 2)])
        assert server.stats()["images_dropped"] >= 3
    (record,) = _records(result).values()
    assert record.status == "done"  # used, not refused: usage alone does not prove it
    suspected = _by_kind(record.mllm_adaptations)["context_truncated_suspected"]
    assert "prompt tokens of at least about" in suspected.detail and suspected.calls >= 1
    assert "context_truncated_suspected" in _by_kind(
        _run_json(result)["mllm_adaptations"]["remote"])
    assert len(_warnings(caplog, "context_truncated_suspected")) == 1


def test_a_run_without_adaptations_records_none(tmp_path):
    with OpenAICompatServer() as server:
        result = _run(tmp_path, server, [("a", 64, 0)])
    (record,) = _records(result).values()
    assert record.status == "done" and record.mllm_adaptations == []
    path = next((result.run_dir / "cases").rglob("*.json"))
    assert "mllm_adaptations" not in json.loads(path.read_text())  # old records look the same
    assert _run_json(result)["mllm_adaptations"] == {}


# -- the cache keeps modes apart --------------------------------------------------------------


def _img(color=(200, 30, 30)):
    return Image.new("RGB", (64, 48), color)


def _backend(server, **params):
    return OpenAIMLLM(**{"model": "fake", "base_url": server.url, "api_key_env": KEY_ENV,
                         "retry_initial_wait": 0.001, "retry_max_wait": 0.01, **params})


def test_a_json_object_reply_is_never_served_to_a_json_schema_request(tmp_path):
    profile = ServerProfile(response_formats=("json_object",))
    with OpenAICompatServer(profile=profile, record_bodies=True) as server:
        cache = ResponseCache(tmp_path / "cache.sqlite")
        first = CachedMLLM(_backend(server), cache)
        first.judge(_img(), _img((0, 0, 200)))  # json_schema refused, answered as json_object
        assert server.requests == 2
        fresh = CachedMLLM(_backend(server), cache)  # starts in json_schema mode again
        fresh.judge(_img(), _img((0, 0, 200)))
        assert server.requests == 4  # a miss: the stored reply was made as json_object
        token = CURRENT_CASE.set(("sd", "c1"))
        try:
            fresh.judge(_img(), _img((0, 0, 200)))  # now in json_object mode: a hit
        finally:
            CURRENT_CASE.reset(token)
        assert server.requests == 4 and cache.stats()["mllm"]["hits"] == 1
        # the case answered from the cache still records the mode its reply was made in
        (entry,) = fresh.case_adaptations("sd", "c1")
        assert (entry["kind"], entry["used"]) == ("response_format", "json_object")
        assert fresh.case_usage("sd", "c1")["calls"] == 0  # a hit costs nothing
        cache.close()


# -- temperature, vLLM advice, error keys ----------------------------------------------------


def test_temperature_is_sent_only_when_set():
    with OpenAICompatServer(record_bodies=True) as server:
        _backend(server).judge(_img(), _img())
        _backend(server, temperature=0.3).judge(_img(), _img())
        unset, chosen = server.bodies
    assert "temperature" not in unset and chosen["temperature"] == 0.3
    with OpenAICompatServer() as server:
        assert _backend(server).identity()["temperature"] is None


def test_a_server_taking_no_images_gets_advice_that_fits_and_is_permanent():
    with OpenAICompatServer(profile=ServerProfile(max_images=0)) as server:
        with pytest.raises(MLLMCallError) as info:
            _backend(server).describe(_img())
    message = str(info.value)
    assert "accepts no images for this model" in message and "text-only" in message
    assert "N >= 2" in message and '{"image": 1}' not in message
    assert info.value.reason_key == "image_limit" and info.value.permanent
    with OpenAICompatServer(profile="vllm-v0") as server:
        with pytest.raises(MLLMCallError) as info:
            _backend(server).judge(_img(), _img())
    message = str(info.value)
    assert "at most 1 image(s)" in message and "this call sends 2" in message
    assert '{"image": 2}' in message and "max_images: 1" in message


@pytest.mark.parametrize("profile,key,permanent", [
    (ServerProfile(error_status=503, should_retry="false"), "http_503", True),
    (ServerProfile(content_filter=True), "content_filter", False),  # about the content
    (ServerProfile(images=False), "no_image_support", True),
])
def test_rejections_carry_a_reason_key_and_permanence(profile, key, permanent):
    with OpenAICompatServer(profile=profile) as server:
        with pytest.raises(MLLMCallError) as info:
            _backend(server, max_retries=0).judge(_img(), _img())
    assert (info.value.reason_key, info.value.permanent) == (key, permanent)


def test_failures_that_outlast_the_retries_are_not_permanent():
    with OpenAICompatServer(profile=ServerProfile(error_status=503)) as server:
        with pytest.raises(MLLMCallError) as info:
            _backend(server, max_retries=1).judge(_img(), _img())
    assert (info.value.reason_key, info.value.permanent) == ("http_503", False)


# -- the truncation rules, unit by unit ------------------------------------------------------


def test_truncation_rules():
    common = {"text_chars": 3400, "image_tokens": 768, "image_detail": None}
    three = [(768, 768)] * 3
    # the whole context_tokens read: demonstrated
    kind, _ = check_prompt_tokens(4096, image_sizes=three, context_tokens=4096, ollama=False,
                                  **common)
    assert kind == "context_truncated"
    # exactly a default Ollama context, for a larger request: demonstrated
    kind, _ = check_prompt_tokens(2048, image_sizes=three, context_tokens=None, ollama=False,
                                  **common)
    assert kind == "context_truncated"
    # far below a low estimate: suspected; a server spending few tokens per image is not
    kind, _ = check_prompt_tokens(900, image_sizes=three, context_tokens=None, ollama=False,
                                  **common)
    assert kind == "context_truncated_suspected"
    assert check_prompt_tokens(900, image_sizes=[(64, 48)] * 3, context_tokens=None,
                               ollama=False, **common) is None
    assert check_prompt_tokens(1200, image_sizes=three, context_tokens=None, ollama=False,
                               **{**common, "image_detail": "low"}) is None
    # an Ollama endpoint without context_tokens: every image request is at risk
    kind, why = check_prompt_tokens(1500, image_sizes=[(64, 48)], context_tokens=None,
                                    ollama=True, **common)
    assert kind == "context_truncated_suspected" and "Ollama" in why
    assert check_prompt_tokens(1500, image_sizes=[(64, 48)], context_tokens=8192, ollama=True,
                               **common) is None


def test_summaries_count_calls_and_images_per_kind():
    notes = [{"kind": "image_downscaled", "requested": "1024x1024", "used": "768x768"},
             {"kind": "image_downscaled", "requested": "512x1024", "used": "384x768"}]
    (entry,) = summarize([{"task": "judge", "adaptations": notes},
                          {"task": "critique", "adaptations": notes[:1]}])
    assert (entry["count"], entry["calls"], entry["first_task"]) == (3, 2, "judge")
    assert entry["requested"] == "1024x1024"  # the first call's sizes


def test_ray_workers_adaptations_are_added_up():
    from repainter.executors.base import Execution
    from repainter.executors.ray_pool import RayExecutor
    from repainter.spec import RaySpec

    switched = {"kind": "token_param", "requested": "max_tokens",
                "used": "max_completion_tokens", "count": 3, "calls": 3, "first_task": "judge"}
    report = {"models": {}, "mllm_usage": {"calls": 3}, "mllm_adaptations": [switched],
              "backend": {"seconds": {}, "calls": {}}, "busy_seconds": 0.0}
    executor = RayExecutor(RaySpec())
    executor._on_every_actor = lambda ray, method, *args, **kwargs: [report, dict(report)]
    execution = Execution()
    executor._collect(None, execution)
    (entry,) = execution.mllm_adaptations
    assert (entry["count"], entry["calls"]) == (6, 6) and switched["count"] == 3


def test_a_grid_records_adaptations_per_mllm_label(tmp_path):
    with OpenAICompatServer(profile="no-structured-output") as server:
        remote = {"name": "openai", "label": "remote",
                  "params": {"model": "m", "base_url": server.url, "api_key_env": KEY_ENV,
                             "retry_initial_wait": 0.001, "retry_max_wait": 0.01}}
        result = run(build_spec({
            "name": "grid", "output_dir": str(tmp_path / "run"),
            "mllm": [{"name": "sim-describer", "label": "sharp"}, remote],
            "t2i": [{"name": "sim", "label": "good"}], "metrics": ["scene_truth"],
            "selection": {"scene_truth": 1.0}, "judge": False,
            "loop": {"rounds": 1, "variants": 2}, "dataset": {"limit": 2}}))
    adaptations = _run_json(result)["mllm_adaptations"]
    assert set(adaptations) == {"remote"}  # the simulated describer adapts nothing
    assert _by_kind(adaptations["remote"])["response_format"]["used"] == "none"
