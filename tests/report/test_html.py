"""The HTML report, built from a small real run: content, image paths, diffs, escaping."""

from __future__ import annotations

import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest
from typer.testing import CliRunner

import repainter
from repainter.cli import app
from repainter.report.diff import compact_diff, word_diff
from repainter.report.html import write_report
from repainter.spec import build_spec

SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    root = tmp_path_factory.mktemp("html") / "run"
    result = repainter.run(build_spec({
        "output_dir": str(root), "dataset": {"limit": 3}, "loop": {"rounds": 2, "variants": 2},
        "t2i": ["procedural", {"name": "procedural", "label": "colour_blind & co",
                               "params": {"ignore": ["color"]}}],
    }))
    return result


@pytest.fixture
def run_copy(finished, tmp_path) -> Path:
    target = tmp_path / "run"
    shutil.copytree(finished.run_dir, target)
    return target


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def _tags(html: str) -> list[tuple[str, dict]]:
    parser = _Tags()
    parser.feed(html)
    return parser.tags


def test_every_run_writes_its_report(finished):
    page = finished.run_dir / "report" / "index.html"
    assert page.exists()
    assert (finished.run_dir / "report" / "plots" / "progress.png").exists()
    assert (finished.run_dir / "leaderboard.tex").exists()


def test_leaderboard_values_and_sections(finished):
    html = (finished.run_dir / "report" / "index.html").read_text(encoding="utf-8")
    for row in finished.leaderboard:
        assert f"{row.selection.mean:.3f}" in html
        assert f"{row.selection.ci_low:.3f}" in html
        assert f"{row.selection.round1:.3f}" in html
    assert "colour_blind &amp; co" in html  # a label with markup characters is escaped
    assert "Paired comparisons" in html and "p-value" in html
    assert "By category" in html
    assert "CC0-1.0" in html  # the dataset licence from the records
    assert "spec.yaml" in html and finished.spec.fingerprint() in html
    assert html.count('<details class="case"') == 3
    assert "<script" not in html.lower()  # the report has no script of its own
    assert "Content-Security-Policy" in html


def test_images_are_relative_and_exist(finished):
    report_dir = finished.run_dir / "report"
    html = (report_dir / "index.html").read_text(encoding="utf-8")
    tags = _tags(html)
    sources = [a["src"] for t, a in tags if t == "img"]
    links = [a["href"] for t, a in tags if t == "a" and not a["href"].startswith("#")]
    assert len(sources) > 3 * 2 * 2 * 2  # references, bests and every candidate
    assert any(s.startswith("../references/") for s in sources)
    assert any(s.startswith("../images/") for s in sources)
    for url in sources + links:
        assert not re.match(r"^[a-z]+:", url) and not url.startswith("/"), url  # offline, relative
        assert (report_dir / url).resolve().is_file(), url
    assert all('loading="lazy"' in m for m in re.findall(r"<img [^>]*\.\./images/[^>]*>", html))


def test_prompt_diffs_between_rounds(finished):
    html = (finished.run_dir / "report" / "index.html").read_text(encoding="utf-8")
    assert "<ins>" in html and "<del>" in html
    # the world's revisions change words between round 1 and round 2 of some case
    record = next(r for r in finished.records
                  if r.status == "done" and r.rounds[0].prompt != r.rounds[1].prompt)
    inserted = [t for op, t in word_diff(record.rounds[0].prompt, record.rounds[1].prompt)
                if op == "ins"]
    assert inserted and any(f"<ins>{t}</ins>" in html for t in inserted)


def test_word_diff_units():
    assert word_diff("a red square", "a blue square") == [
        ("eq", "a "), ("del", "red"), ("ins", "blue"), ("eq", " square")]
    assert word_diff("same", "same") == [("eq", "same")]
    assert word_diff(None, "new words") == [("ins", "new words")]
    text = " ".join(f"w{i}" for i in range(20))
    compact = compact_diff(word_diff(text, text + " more"))
    assert compact[0][0] == "eq" and compact[0][1].startswith("…") and len(compact[0][1]) < 20
    assert compact[-1] == ("ins", " more")


def _inject(run_dir: Path) -> tuple[str, str]:
    """Put hostile text in every model-written field of one record; fail another with it."""
    hostile = f"{SCRIPT} {IMG}"
    done = min((run_dir / "cases").glob("procedural/*.json"))
    record = json.loads(done.read_text(encoding="utf-8"))
    record["iut"]["global_description"] = "IUT " + hostile
    record["iut"]["objects"][0]["name"] = hostile
    record["rounds"][0]["critique"]["summary"] = "CRITIQUE " + hostile
    record["rounds"][0]["critique"]["differences"][0]["description"] = hostile
    record["rounds"][1]["prompt"] += " " + hostile
    record["rounds"][1]["candidates"][1]["prompt"] += " " + hostile
    record["best"]["prompt"] = "BEST " + hostile
    record["judgement"]["rationale"] = "RATIONALE " + hostile
    done.write_text(json.dumps(record), encoding="utf-8")
    from repainter.store import slug

    failed = max((run_dir / "cases" / slug("colour_blind & co")).glob("*.json"))
    other = json.loads(failed.read_text(encoding="utf-8"))
    failed.write_text(json.dumps({
        "case_id": other["case_id"], "model": other["model"], "category": other["category"],
        "status": "failed", "error": "loop: RuntimeError: the backend crashed " + hostile,
        "traceback": ["Traceback (most recent call last):\n", f"RuntimeError: {hostile}\n"],
        "rounds": [], "final_scores": {},
    }), encoding="utf-8")
    return record["case_id"], other["case_id"]


def test_model_text_is_escaped(run_copy):
    _inject(run_copy)
    html = write_report(run_copy).read_text(encoding="utf-8")
    assert SCRIPT not in html and IMG not in html
    assert "<script" not in html.lower()
    assert not re.search(r"<img[^>]*src=[\"']?x[\s>\"']", html)
    escaped_script = "&lt;script&gt;alert(1)&lt;/script&gt;"
    escaped_img = "&lt;img src=x onerror=alert(1)&gt;"
    for marker in ("IUT", "CRITIQUE", "BEST", "RATIONALE", "the backend crashed"):
        assert f"{marker} {escaped_script} {escaped_img}" in html, marker
    # the diff of round 2 (built from tokens) shows the inserted text escaped
    assert re.search(r"<ins>[^<]*&lt;[^<]*</ins>", html)
    # onerror only ever appears as escaped text, never as an attribute
    assert all("onerror" not in attrs for _, attrs in _tags(html))


def test_failed_cases_listed_with_reasons(run_copy):
    _, failed_case = _inject(run_copy)
    html = write_report(run_copy).read_text(encoding="utf-8")
    section = html[html.index('id="failures"'):html.index('id="run"')]
    assert failed_case in section
    assert "the backend crashed" in section and "Traceback (most recent call last)" in section
    assert "Failures (1)" in html
    assert 'class="tag bad">failed' in html


def test_page_caps_details_for_many_cases(run_copy):
    html = write_report(run_copy, max_cases=2, max_detailed=1).read_text(encoding="utf-8")
    assert html.count('<details class="case"') == 2
    assert html.count('class="cands"') == 2 * 2  # one detailed reference: 2 models x 2 rounds
    assert "the page details the first 1 references" in html
    assert "1 more references are on the other pages" in html
    # the rest are paged, not dropped: page 2 holds the third reference's card
    page2 = (run_copy / "report" / "cases-2.html").read_text(encoding="utf-8")
    assert page2.count('<details class="case"') == 1 and 'id="leaderboard"' not in page2
    assert 'href="cases-2.html#cases"' in html and 'href="index.html#cases"' in page2


def test_cli_report(run_copy):
    (run_copy / "report").rename(run_copy / "old-report")
    result = CliRunner().invoke(app, ["report", str(run_copy)])
    assert result.exit_code == 0, result.output
    assert (run_copy / "report" / "index.html").exists()
    bad = CliRunner().invoke(app, ["report", str(run_copy / "nope")])
    assert bad.exit_code == 2


def test_word_diff_of_huge_prompts_stays_linear(monkeypatch):
    """Issue 12 item 15: 1000-word prompts took 68 s per diff; a 199k-character reply made the
    report run past 10 minutes. The token matcher now only ever sees a bounded stretch."""
    import difflib

    from repainter.report import diff

    seen = []
    real = difflib.SequenceMatcher

    def bounded(isjunk, a, b, autojunk=True):
        seen.append(max(len(a), len(b)))
        assert max(len(a), len(b)) <= diff.MAX_DIFF_TOKENS, "the matcher got the whole prompt"
        return real(isjunk, a, b, autojunk=autojunk)

    monkeypatch.setattr(diff.difflib, "SequenceMatcher", bounded)
    words = [f"w{i % 7}" for i in range(40_000)]  # long and repetitive: the worst case
    old = " ".join(words)
    new = " ".join(words[:100] + ["changed"] + words[100:30_000] + ["tail"])
    segments = word_diff(old, new)
    assert "".join(t for op, t in segments if op != "ins") == old
    assert "".join(t for op, t in segments if op != "del") == new
    # small prompts still get the token-level diff
    assert word_diff("a red square", "a blue square") == [
        ("eq", "a "), ("del", "red"), ("ins", "blue"), ("eq", " square")]
    assert seen and max(seen) <= diff.MAX_DIFF_TOKENS
