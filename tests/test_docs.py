"""The documentation: every code block in README.md and docs/ is checked, and the site builds.

The rule for a fenced code block (its info string decides):

* ``python``: run in a subprocess whose working folder is a fresh temporary one (the runs it
  starts land there). A block that cannot run here (it needs a GPU, weights, a server or the
  network) has ``<!-- not-run: REASON -->`` on the line before it and is skipped with REASON.
* ``yaml``: a run spec, whole or in part: validated with ``repainter.spec.build_spec`` and
  checked as ``repainter validate`` checks it (registered names, params that fit), except the
  dataset's paths, which name folders of the reader's own.
* ``toml`` is parsed; ``json`` is parsed (a block that is not one document as JSON Lines).
* ``bash``, ``console``, ``sh``, ``text``: shell-only, never run (they install packages, start
  servers or need real models). The README's two set-up commands are the ones CI runs verbatim:
  checked below against ``.ci/run``.
* Any other info string, or none, fails: every block says what it is.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
SHELL_ONLY = {"bash", "console", "sh", "text"}
CHECKED = {"python", "yaml", "toml", "json"}
NOT_RUN = re.compile(r"<!--\s*not-run:\s*(.+?)\s*-->")
FENCE = re.compile(r"^(\s*)(```+)\s*([\w+-]*)")
README_COMMANDS = (
    "python3 -m venv .venv && . .venv/bin/activate && pip install -e . && repainter run",
    "python3 -m venv .venv && . .venv/bin/activate && pip install -e '.[dev]' && python -m pytest",
)
README_MAX_LINES = 200


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    not_run: str | None  # the reason of a <!-- not-run: ... --> marker before it

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def code_blocks(text: str, page: Path = ROOT / "README.md") -> list[Block]:
    """The fenced code blocks of Markdown ``text``, with their info string and marker.

    >>> [(b.lang, b.code, b.not_run) for b in code_blocks("<!-- not-run: GPU -->\\n```python\\nx\\n```\\n")]
    [('python', 'x\\n', 'GPU')]
    """
    lines = text.splitlines()
    blocks, i = [], 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent, fence, lang = opening.groups()
        end = next((j for j in range(i + 1, len(lines))
                    if lines[j].strip() == fence and lines[j].startswith(indent)), len(lines))
        body = "".join(line[len(indent):] + "\n" for line in lines[i + 1:end])
        before = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        marker = NOT_RUN.search(before)
        blocks.append(Block(page, i + 1, lang.lower(), body, marker.group(1) if marker else None))
        i = end + 1
    return blocks


def all_blocks() -> list[Block]:
    return [b for page in PAGES for b in code_blocks(page.read_text(encoding="utf-8"), page)]


def blocks_of(lang: str) -> list:
    return [pytest.param(b, id=b.id) for b in all_blocks() if b.lang == lang]


def test_code_blocks_are_read_with_their_kind_and_not_run_marker():
    text = ("<!-- not-run: needs a GPU -->\n\n```python\nimport torch\n```\n"
            "* item\n\n    ```yaml\n    seed: 1\n    ```\n```\nplain\n```\n")
    blocks = code_blocks(text)
    assert [(b.lang, b.code, b.not_run, b.line) for b in blocks] == [
        ("python", "import torch\n", "needs a GPU", 3),
        ("yaml", "seed: 1\n", None, 8),
        ("", "plain\n", None, 11),
    ]


def test_the_docs_have_pages_and_blocks_of_each_checked_kind():
    assert (ROOT / "docs" / "index.md").is_file()
    assert {b.lang for b in all_blocks()} >= CHECKED


def test_every_block_is_checked_or_shell_only():
    unknown = [f"{b.id} ({b.lang or 'no info string'})" for b in all_blocks()
               if b.lang not in CHECKED | SHELL_ONLY]
    assert not unknown, f"blocks that are neither checked nor shell-only: {unknown}"


def test_a_not_run_marker_says_why_and_stands_on_a_python_block():
    misplaced = [b.id for b in all_blocks() if b.not_run is not None and b.lang != "python"]
    assert not misplaced, f"not-run markers before blocks that are not python: {misplaced}"


@pytest.mark.parametrize("block", blocks_of("python"))
def test_python_block_runs(block: Block, tmp_path):
    if block.not_run:
        pytest.skip(f"marked not-run: {block.not_run}")
    env = {**os.environ, "REPAINTER_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg"}
    done = subprocess.run([sys.executable, "-c", block.code], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{block.id} failed:\n{done.stderr[-3000:]}"


def _spec_problems(data: dict) -> list[str]:
    """What ``repainter validate`` finds in spec values ``data``, the dataset's paths aside."""
    from repainter.preflight import component_problems, dataset_problems, spec_problems
    from repainter.registry import DATASETS
    from repainter.spec import ComponentSpec, build_spec

    spec = build_spec(data)
    problems = [p for p in spec_problems(spec) if p not in dataset_problems(spec)]
    dataset = ComponentSpec(name=spec.dataset.name, params=spec.dataset.params)
    return problems + component_problems(DATASETS, [dataset])


@pytest.mark.parametrize("block", blocks_of("yaml"))
def test_yaml_block_is_a_valid_spec(block: Block):
    data = yaml.safe_load(block.code)
    assert isinstance(data, dict), f"{block.id}: a spec is a mapping"
    assert _spec_problems(data) == []


def test_the_spec_check_finds_an_unknown_name_and_bad_params():
    problems = _spec_problems({"t2i": [{"name": "no-such-model"}],
                               "metrics": [{"name": "ssim", "params": {"no_such_param": 1}}],
                               "selection": {"ssim": 1.0}})
    assert len(problems) == 2, problems


@pytest.mark.parametrize("block", blocks_of("toml"))
def test_toml_block_parses(block: Block):
    assert tomllib.loads(block.code)


@pytest.mark.parametrize("block", blocks_of("json"))
def test_json_block_parses(block: Block):
    try:
        assert json.loads(block.code) is not None
    except json.JSONDecodeError:  # JSON Lines
        rows = [json.loads(line) for line in block.code.splitlines() if line.strip()]
        assert rows


def test_readme_is_short():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines"


def test_readme_set_up_commands_are_the_ones_ci_runs_verbatim():
    readme = [b.code.strip() for b in code_blocks((ROOT / "README.md").read_text("utf-8"))
              if b.lang == "bash"]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    for command in README_COMMANDS:
        assert command in readme, f"README.md lost its command block: {command}"
        assert any(line.strip() == command for line in ci), f".ci/run does not run: {command}"


def test_readme_links_point_at_files_that_exist():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)\s#]+)(?:#[^)]*)?\)", text)
    local = [t for t in targets if "://" not in t and not t.startswith("mailto:")]
    assert local, "the README links to the docs and the evidence files"
    missing = [t for t in local if not (ROOT / t).exists()]
    assert not missing, f"README.md links to missing files: {missing}"


#: Where a path named in inline code (`bench/dar_eval.py`) is a repository path to check.
REPO_FOLDERS = ("repainter/", "bench/", "examples/", "datasets/", "tests/", "graphs/", "prompts/",
                "validity/", ".ci/", "docs/")


def test_repository_paths_named_in_the_docs_exist():
    missing = []
    for page in PAGES:
        prose = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
        for span in re.findall(r"`([^`]+)`", prose):
            if re.search(r"[<{*]", span):  # a pattern such as images/<model>/, not a path
                continue
            for token in re.findall(r"[\w./-]+", span):
                path = token.split(":")[0].rstrip(".,")
                if path.startswith(REPO_FOLDERS) and not (ROOT / path).exists():
                    missing.append(f"{page.relative_to(ROOT)}: {path}")
    assert not missing, f"the docs name paths that do not exist: {missing}"


def _resolves(dotted: str) -> bool:
    """Whether ``repainter.a.b`` names a module, or an attribute of the longest module prefix."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            target = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            if not hasattr(target, name):
                return False
            target = getattr(target, name)
        return True
    return False


def _entry_point_groups() -> set[str]:
    """``repainter.t2i`` and the like: entry-point group names, not Python objects."""
    from repainter import registry

    kinds = {r.kind for r in vars(registry).values() if isinstance(r, registry.Registry)}
    return {f"repainter.{kind}" for kind in kinds} | {registry.PLUGIN_GROUP, "repainter.commands"}


def test_python_names_in_the_docs_exist():
    named = set()
    for page in PAGES:
        prose = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
        named |= set(re.findall(r"`(repainter(?:\.\w+)+)", prose))
    assert named, "the docs name the Python API"
    missing = sorted(n for n in named - _entry_point_groups() if not _resolves(n))
    assert not missing, f"the docs name Python objects that do not exist: {missing}"


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None,
                    reason="mkdocs is not installed (pip install -e '.[docs]')")
def test_docs_site_builds_strictly_with_no_broken_link(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"),
         "-d", str(tmp_path / "site")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "site" / "index.html").is_file()
    # the evidence files are served from the repository, under repo/
    assert (tmp_path / "site" / "repo" / "VALIDITY" / "index.html").is_file()
