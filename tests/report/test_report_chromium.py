"""The report in a real browser: headless Chromium renders it, its images load, and script
injected through model text does not run."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import repainter
from repainter.report.html import write_report
from repainter.result import RunResult
from repainter.spec import build_spec

CHROMIUM = next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser"),
                             "/usr/bin/chromium") if p and Path(p).exists()), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium binary")

TITLE_SCRIPT = "<script>document.title='PWNED'</script>"
ONERROR_IMG = "<img src=x onerror=\"document.body.setAttribute('data-pwned','1')\">"
#: Marks the body with how many images the page has and which failed to load.
IMAGE_PROBE = """<script>
window.addEventListener('load', () => {
  const imgs = Array.from(document.images);
  const broken = imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.getAttribute('src'));
  document.body.setAttribute('data-images', String(imgs.length));
  document.body.setAttribute('data-broken', JSON.stringify(broken));
});
</script>"""


def _chromium(tmp_path: Path, page: Path, *extra: str) -> str:
    profile = tmp_path / f"profile-{len(list(tmp_path.iterdir()))}"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", "--disable-dev-shm-usage", f"--user-data-dir={profile}",
           "--virtual-time-budget=5000", *extra, page.as_uri()]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=90,
                          check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("chromium") / "run"
    repainter.run(build_spec({
        "preset": "world",  # the procedural world: its records have the fields changed below
        "output_dir": str(root), "dataset": {"limit": 3}, "loop": {"rounds": 2, "variants": 2},
    }))
    hostile = f"{TITLE_SCRIPT} {ONERROR_IMG}"
    path = min((root / "cases" / "procedural").glob("*.json"))
    record = json.loads(path.read_text(encoding="utf-8"))
    record["iut"]["global_description"] = hostile
    record["rounds"][0]["critique"]["summary"] = hostile
    record["rounds"][1]["prompt"] += " " + hostile
    record["judgement"]["rationale"] = hostile
    path.write_text(json.dumps(record), encoding="utf-8")
    failed = max((root / "cases" / "procedural").glob("*.json"))
    other = json.loads(failed.read_text(encoding="utf-8"))
    failed.write_text(json.dumps({
        "case_id": other["case_id"], "model": other["model"], "status": "failed",
        "error": "loop: RuntimeError: " + hostile, "rounds": [], "final_scores": {},
    }), encoding="utf-8")
    write_report(root)
    return root


def _without_csp(page: Path, name: str, extra_script: str = "", open_all: bool = False) -> Path:
    """A copy of the page without its CSP (so escaping alone is tested), next to the original."""
    html = page.read_text(encoding="utf-8")
    html = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", html)
    assert "Content-Security-Policy" not in html
    if open_all:
        html = html.replace('<details class="case"', '<details open class="case"')
        html = html.replace(' loading="lazy"', "")
    html = html.replace("</body>", extra_script + "</body>")
    copy = page.with_name(name)
    copy.write_text(html, encoding="utf-8")
    return copy


def test_rendered_page_shows_the_leaderboard(run_dir, tmp_path):
    dom = _chromium(tmp_path, run_dir / "report" / "index.html", "--dump-dom")
    leaderboard = RunResult.load(run_dir).leaderboard  # from the records, as edited above
    assert "Leaderboard" in dom and "procedural" in dom
    assert f"{leaderboard[0].selection.mean:.3f}" in dom
    assert len(re.findall(r"<img\b", dom)) >= 3 * 2 * 2
    assert re.search(r"<title>repainter · world · dataset world</title>", dom)  # names the dataset


def test_every_image_loads(run_dir, tmp_path):
    page = _without_csp(run_dir / "report" / "index.html", "probe-images.html", IMAGE_PROBE,
                        open_all=True)
    dom = _chromium(tmp_path, page, "--dump-dom")
    body = re.search(r"<body[^>]*>", dom).group(0)
    count = int(re.search(r'data-images="(\d+)"', body).group(1))
    broken = json.loads(re.search(r'data-broken="([^"]*)"', body).group(1).replace("&quot;", '"'))
    assert count >= 3 * 2 * 2 + 2
    assert broken == []


@pytest.mark.parametrize("with_csp", [True, False])
def test_injected_script_does_not_run(run_dir, tmp_path, with_csp):
    page = run_dir / "report" / "index.html"
    if not with_csp:  # escaping alone must hold, without the CSP's second line of defence
        page = _without_csp(page, "no-csp.html")
    dom = _chromium(tmp_path, page, "--dump-dom")
    body = re.search(r"<body[^>]*>", dom).group(0)
    assert "data-pwned" not in body
    assert re.search(r"<title>(.*?)</title>", dom).group(1) != "PWNED"
    assert not re.search(r"<img[^>]*src=\"x\"", dom)
    # the text itself is shown literally
    assert "&lt;script&gt;document.title='PWNED'&lt;/script&gt;" in dom
    assert "&lt;img src=x onerror=\"document.body.setAttribute('data-pwned','1')\"&gt;" in dom


def test_screenshot_is_not_blank(run_dir, tmp_path):
    shot = tmp_path / "report.png"
    _chromium(tmp_path, run_dir / "report" / "index.html", f"--screenshot={shot}",
              "--window-size=1280,1800", "--hide-scrollbars")
    image = np.asarray(Image.open(shot).convert("RGB"), dtype=np.float64)
    assert image.shape[:2] == (1800, 1280)
    assert image.std() > 10  # text, tables, plots: far from a blank page
    colours = len(np.unique(image.reshape(-1, 3)[::7], axis=0))
    assert colours > 100  # the progress plot and thumbnails drew


def test_dar_page_renders_images_and_escapes_manifest_text(tmp_path):
    """The DAR page in a browser: every render loads, hostile dialogue text stays text."""
    from repainter.dar import build_dar_spec, run_dar_spec

    manifest = tmp_path / "dialogues.jsonl"
    rows = [{"id": f"d{k}", "target": f"single-0{k}", "caption": f"a shape {TITLE_SCRIPT}",
             "dialog": [{"question": "which?", "answer": f"a red circle {ONERROR_IMG}"}]}
            for k in range(2)]
    manifest.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    spec = build_dar_spec({"output_dir": str(tmp_path / "dar"), "mllm": None,
                           "gallery": {"name": "world", "limit": 8},
                           "dialogues": {"manifest": str(manifest)}})
    run_dar_spec(spec)
    page = spec.run_dir / "report" / "dar.html"
    copy = _without_csp(page, "probe-dar.html", IMAGE_PROBE, open_all=True)
    dom = _chromium(tmp_path, copy, "--dump-dom")
    body = re.search(r"<body[^>]*>", dom).group(0)
    assert int(re.search(r'data-images="(\d+)"', body).group(1)) >= 2 * 2 + 1  # renders + plot
    assert re.search(r'data-broken="([^"]*)"', body).group(1) == "[]"
    assert "data-pwned" not in body
    assert re.search(r"<title>(.*?)</title>", dom).group(1) != "PWNED"
    assert "&lt;script&gt;document.title='PWNED'&lt;/script&gt;" in dom
