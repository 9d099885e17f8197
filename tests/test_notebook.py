"""examples/quickstart.ipynb runs top to bottom in a fresh kernel (in a temp working folder)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "quickstart.ipynb"

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("matplotlib")


@pytest.fixture
def python3_kernel(tmp_path, monkeypatch) -> str:
    """A ``python3`` kernel spec that runs *this* interpreter, first on JUPYTER_PATH.

    A user-level ``python3`` spec may point at another Python without repainter; writing our own
    into a temp data dir (searched before user and system dirs) avoids touching either.
    """
    spec_dir = tmp_path / "jupyter" / "kernels" / "python3"
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (repainter tests)",
        "language": "python",
    }))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    return "python3"


def test_quickstart_notebook_executes(tmp_path, python3_kernel):
    work = tmp_path / "work"
    work.mkdir()
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        nb, kernel_name=python3_kernel, timeout=120,
        resources={"metadata": {"path": str(work)}},
    )
    client.execute()

    outputs = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    html = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    assert any("repainter run" in h and "data:image/png;base64," in h for h in html)
    assert any("best_ever_selection" in h for h in html)  # the to_pandas table
    assert any("image/png" in o.get("data", {}) for o in outputs)  # the matplotlib plot
    assert (work / "runs" / "quickstart" / "leaderboard.md").exists()  # ran in the temp folder
