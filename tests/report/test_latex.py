"""The LaTeX (booktabs) leaderboard."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from repainter.records import CaseRecord
from repainter.report.latex import latex_escape, leaderboard_latex, main_metrics
from repainter.report.leaderboard import build_leaderboard, write_leaderboard


def _record(model, case, r1, final, ssim=0.8, psnr=20.0):
    return CaseRecord(
        model=model, case_id=case, status="done", rounds=[{}, {}],
        round1_best={"selection": r1, "scores": {"ssim": ssim - 0.1, "psnr": psnr - 2}},
        final_scores={"selection": final, "ssim": ssim, "psnr": psnr, "judge_semantic": 4.0},
    )


NASTY = r"sd_1.5 & 50% #1 {x} $y$ ~z ^w \q"
RECORDS = [
    _record(NASTY, "a", 0.5, 0.9), _record(NASTY, "b", 0.6, 0.8),
    _record("plain", "a", 0.2, 0.3), _record("plain", "b", 0.4, 0.5),
    CaseRecord(model="plain", case_id="c", status="failed", error="x", final_scores={}),
]


def _unescaped(line: str, char: str) -> int:
    return len(re.findall(r"(?<!\\)" + re.escape(char), line))


def test_escape():
    assert latex_escape("a_b") == r"a\_b"
    assert latex_escape(NASTY) == (r"sd\_1.5 \& 50\% \#1 \{x\} \$y\$ \textasciitilde{}z "
                                   r"\textasciicircum{}w \textbackslash{}q")


def test_booktabs_table_with_escaped_names():
    rows = build_leaderboard(RECORDS)
    tex = leaderboard_latex(rows)
    assert "\\toprule" in tex and "\\midrule" in tex and "\\bottomrule" in tex
    assert latex_escape(NASTY) in tex and NASTY not in tex
    body = tex[tex.index("\\midrule") + len("\\midrule"):tex.index("\\bottomrule")].strip().splitlines()
    assert len(body) == 2
    header = tex.splitlines()[tex.splitlines().index("\\toprule") + 1]
    columns = _unescaped(header, "&") + 1
    spec = re.search(r"\\begin\{tabular\}\{([a-z]+)\}", tex).group(1)
    assert len(spec) == columns
    for line in body:
        assert _unescaped(line, "&") + 1 == columns and line.endswith("\\\\")
    first = body[0]
    assert first.startswith("1 & " + latex_escape(NASTY))
    assert "\\textbf{0.850}" in first and "[0.800, 0.900]" in first  # final with its 95% CI
    assert "$+$0.300" in first  # steerability
    assert "0.550" in first  # selection of round 1's best
    assert "psnr" in header and "ssim" in header and "judge\\_semantic" in header


def test_main_metrics_order_and_limit():
    rows = build_leaderboard(RECORDS)
    assert main_metrics(rows) == ["ssim", "psnr", "judge_semantic"]
    assert main_metrics(rows, limit=1) == ["ssim"]


def test_write_leaderboard_writes_tex(tmp_path):
    rows = build_leaderboard(RECORDS)
    write_leaderboard(rows, tmp_path, RECORDS)
    tex = (tmp_path / "leaderboard.tex").read_text()
    assert tex == leaderboard_latex(rows)


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="no pdflatex")
def test_compiles(tmp_path):  # pragma: no cover - only where TeX is installed
    tex = leaderboard_latex(build_leaderboard(RECORDS))
    doc = "\\documentclass{article}\\usepackage{booktabs}\\begin{document}" + tex + "\\end{document}"
    (tmp_path / "t.tex").write_text(doc)
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "t.tex"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout[-2000:]
