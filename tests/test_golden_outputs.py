"""A refactor changes no output: a fresh run of ``tests/fixtures/run_v0.spec.yaml`` writes the
same records, results.jsonl, leaderboards, report and images as the run stored in
``tests/fixtures/golden_v1/`` (written at commit 7a54b22, before issue 25's restructuring, with
``repainter run -s tests/fixtures/run_v0.spec.yaml -o DIR``; images kept as a sha256 manifest).

What may differ is said here, nowhere else:

* what a clock or a folder decides: wall-clock seconds (``timings``, ``*seconds*`` keys, the
  ``s/case`` columns, the report's time cells, wall time and start), the run folder's path and
  the dataset's absolute path (``source``), the git commit, and run.json (all of it: timings and
  environment; its stable keys are checked apart) and the report's repainter version;
* the spec's fingerprint in the report: the fixture spec pins defaults that changed since (the
  MLLM's ``rephrase: next`` and ``loop.strategy: refine``, issue 26), which changes the spec's
  hash, not what runs;
* fields that moved, listed in :data:`MOVED` (old key -> where it lives now), and
  ``schema_version`` (a moved field is a new version);
* fields added on purpose since, listed in :data:`NEW_CASE_FIELDS` (checked to be there, then
  left out of the comparison).

Version policy (docs/development.md): the version changes with every release that changes a
score. :data:`GOLDEN_VERSION` is the version the stored run was written with; scores that differ
from it under the same version fail :func:`test_changed_scores_come_with_a_new_version`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "fixtures" / "golden_v1"
SPEC = ROOT / "tests" / "fixtures" / "run_v0.spec.yaml"

#: Keys whose values a clock or the folder's place decides.
VOLATILE_KEYS = {"timings", "source", "schema_version"}
#: A field that moved: old key -> (new parent key, new key). A candidate's drawn scene is the
#: sim's metadata (issue 25: the bench travels as metadata, not as a core field).
MOVED: dict[str, tuple[str, str]] = {"drawn": ("metadata", "drawn_scene")}
#: Top-level case-record fields added on purpose after the golden run. ``metrics``: each
#: metric's identity, repainter version and library versions (issue 27).
NEW_CASE_FIELDS = {"metrics"}
#: ``repainter_version`` of the stored run (written at commit 7a54b22).
GOLDEN_VERSION = "0.1.0"


def _clean(value):
    """``value`` with volatile keys dropped and moved fields in their new place."""
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if not isinstance(value, dict):
        return value
    out = {}
    for key, item in value.items():
        if key in VOLATILE_KEYS or "seconds" in key:
            continue
        if key in MOVED and item is not None:
            parent, new = MOVED[key]
            out.setdefault(parent, {})[new] = _clean(item)
            continue
        if key in MOVED:  # a None that moved is simply absent now
            continue
        out[key] = _clean(item)
    return {k: v for k, v in out.items() if v != {} or k not in {p for p, _ in MOVED.values()}}


def _json(path: Path):
    return _clean(json.loads(path.read_text(encoding="utf-8")))


def _jsonl(path: Path):
    return [_clean(json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()]


def _csv(path: Path):
    rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))
    return [{k: v for k, v in row.items() if "seconds" not in k} for row in rows]


def _markdown(path: Path) -> str:
    """The Markdown leaderboard without its three s/case cells (the first table)."""
    lines, in_board = path.read_text(encoding="utf-8").splitlines(), False
    for i, line in enumerate(lines):
        in_board = line.startswith("| rank |") or (in_board and line.startswith("|"))
        if in_board:
            lines[i] = "|".join(line.split("|")[:-4] + [""])
    return "\n".join(lines)


def _html(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"(<h3>run.json</h3>)<pre class=\"code\">.*?</pre>", r"\1RUN_JSON", text,
                  flags=re.S)
    text = re.sub(r"\b[0-9.]+ (s|ms|min|h)(?=</)", "TIME", text)  # a duration before a closing tag
    # the repainter version moves with score changes (GOLDEN_VERSION, checked apart)
    # the spec shown: the fixture pins the describer's old revision, written out here alone
    text = text.replace("mllm:\n  name: sim-describer\n  params:\n    rephrase: next\n",
                        "mllm:\n  name: sim-describer\n  params: {}\n")
    # the fingerprint hashes the spec, whose fixture now pins the describer's revision of the
    # time (``rephrase: next``, issue 26): the run is the same, the spec text is not
    for fact in ("wall time", "started", "git commit", "repainter", "fingerprint"):
        text = re.sub(rf"<dt>{fact}</dt><dd>[^<]*</dd>", f"<dt>{fact}</dt><dd>X</dd>", text)
    text = re.sub(r"(/[\w.-]+)+/datasets/", "CHECKOUT/datasets/", text)  # the dataset's place
    return re.sub(r"(/[\w.-]+)+/(golden_raw|run)\b", "RUN_DIR", text)


def _manifest(run_dir: Path) -> dict[str, str]:
    return {str(p.relative_to(run_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
            for folder in ("images", "references") for p in sorted((run_dir / folder).rglob("*.png"))}


@pytest.fixture(scope="module")
def fresh_run(tmp_path_factory) -> Path:
    from repainter.runner import run
    from repainter.spec import load_spec

    out = tmp_path_factory.mktemp("golden") / "run"
    run(load_spec(SPEC, [f"output_dir={out}"]))
    return out


def test_records_and_descriptions_are_unchanged(fresh_run):
    for folder in ("cases", "descriptions"):
        stored = sorted(p.relative_to(GOLDEN) for p in (GOLDEN / folder).rglob("*.json"))
        written = sorted(p.relative_to(fresh_run) for p in (fresh_run / folder).rglob("*.json"))
        assert written == stored
        for relative in stored:
            fresh = _json(fresh_run / relative)
            if folder == "cases":
                assert NEW_CASE_FIELDS <= set(fresh), relative
                fresh = {k: v for k, v in fresh.items() if k not in NEW_CASE_FIELDS}
            assert fresh == _json(GOLDEN / relative), relative


def _scores(lines: list[dict]) -> list:
    return [(line.get("model"), line.get("case_id"), line.get("final_scores")) for line in lines]


def test_changed_scores_come_with_a_new_version(fresh_run):
    """A change that moves a score must bump repainter/version.py (then the golden run is written
    anew at the new version and :data:`GOLDEN_VERSION` follows it)."""
    from repainter.version import __version__

    if _scores(_jsonl(fresh_run / "results.jsonl")) != _scores(_jsonl(GOLDEN / "results.jsonl")):
        assert __version__ != GOLDEN_VERSION, (
            f"scores differ from the golden run of {GOLDEN_VERSION} but the version did not "
            "change: bump repainter/version.py (docs/development.md, version policy)")


def test_results_and_leaderboards_are_unchanged(fresh_run):
    assert _jsonl(fresh_run / "results.jsonl") == _jsonl(GOLDEN / "results.jsonl")
    assert _json(fresh_run / "leaderboard.json") == _json(GOLDEN / "leaderboard.json")
    assert _csv(fresh_run / "leaderboard.csv") == _csv(GOLDEN / "leaderboard.csv")
    assert _markdown(fresh_run / "leaderboard.md") == _markdown(GOLDEN / "leaderboard.md")
    assert (fresh_run / "leaderboard.tex").read_text() == (GOLDEN / "leaderboard.tex").read_text()


def test_the_report_is_unchanged(fresh_run):
    assert _jsonl(fresh_run / "report" / "cards.jsonl")[1:] == \
        _jsonl(GOLDEN / "report" / "cards.jsonl")[1:]  # line 1: a digest over timings too
    assert _html(fresh_run / "report" / "index.html") == _html(GOLDEN / "report" / "index.html")


def test_images_are_unchanged(fresh_run):
    stored = dict(line.split()[::-1] for line in (GOLDEN / "images.sha256").read_text().splitlines())
    assert _manifest(fresh_run) == stored


def test_run_json_keeps_its_stable_keys(fresh_run):
    info = json.loads((fresh_run / "run.json").read_text())
    assert info["status"] == "finished" and info["cases"]["done"] == 6
    assert info["settings"] == {"preset": None, "why": "the spec's own metrics and selection"}
    assert info["spec"]["selection"] == {"lab_layout": 1.0}
