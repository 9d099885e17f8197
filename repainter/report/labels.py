"""Column headers for people: metric keys as words, with their scale where one is not 0-1.

    >>> metric_header("judge_aesthetic"), metric_header("clip_i")
    ('judge: aesthetic (1-5)', 'clip_i')
"""

from __future__ import annotations

#: The MLLM judge rates on 1-5 scales (prompts/judge.j2).
JUDGE_SCALE = "1-5"


def metric_header(key: str) -> str:
    if key.startswith("judge_"):
        return f"judge: {key.removeprefix('judge_')} ({JUDGE_SCALE})"
    return key
