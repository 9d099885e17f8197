"""Two measurements behind issue 16 / issue 12 item 17, printed (no file written):

* a shared diffusers pipeline rendered by two labels at once, with and without the per-pipeline
  lock: the largest mean absolute difference (grey levels) from the sequential renders, on the
  tiny random StableDiffusionPipeline of the tests (so the size of the error is not that of a real
  model; that it is non-zero is the point);
* a loopback server sending its reply one byte every 0.05 s against a 0.5 s total deadline.

    python bench/real_backends.py
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def shared_pipeline_race(repeats: int = 3) -> dict[str, float]:
    import repainter.backends.t2i.diffusers as diffusers_backend
    from tests.backends.tiny_models import build_tiny_sd_pipeline

    folder = build_tiny_sd_pipeline(Path(tempfile.mkdtemp()))
    labels = {"a": diffusers_backend.DiffusersT2I(model=str(folder), device="cpu", steps=2),
              "b": diffusers_backend.DiffusersT2I(model=str(folder), device="cpu", steps=5)}
    prompts, seeds = ["a red cat", "a blue dog"], [1, 2]
    sequential = {name: m.generate(prompts, seeds) for name, m in labels.items()}

    def worst() -> float:
        diffs = []
        for _ in range(repeats):
            out: dict[str, list] = {}
            threads = [threading.Thread(target=lambda n=n, m=m, out=out: out.__setitem__(
                n, m.generate(prompts, seeds))) for n, m in labels.items()]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            diffs += [np.abs(np.asarray(s.image, int) - np.asarray(c.image, int)).mean()
                      for name in labels for s, c in zip(sequential[name], out[name])]
        return float(max(diffs))

    with_lock = worst()
    original = diffusers_backend.pipeline_lock
    diffusers_backend.pipeline_lock = lambda pipe: threading.Lock()  # a lock nobody shares
    try:
        without_lock = worst()
    finally:
        diffusers_backend.pipeline_lock = original
    return {"with_lock": with_lock, "without_lock": without_lock}


def dripping_server(drip_s: float = 0.05, timeout: float = 0.5) -> dict[str, float]:
    from repainter.backends.mllm.openai_compat import MLLMCallError, OpenAIMLLM
    from repainter.testing import OpenAICompatServer, ServerProfile
    from repainter.testing.openai_server import canned_reply, completion

    os.environ["BENCH_DRIP_KEY"] = "sk-bench"
    with OpenAICompatServer(profile=ServerProfile(drip_s=drip_s)) as server:
        mllm = OpenAIMLLM(model="fake", base_url=server.url, api_key_env="BENCH_DRIP_KEY",
                          timeout=timeout, max_retries=0)
        start = time.monotonic()
        try:
            mllm.judge(Image.new("RGB", (8, 8)), Image.new("RGB", (8, 8)))
        except MLLMCallError:
            pass
        seconds = time.monotonic() - start
    reply = len(json.dumps(completion(json.dumps(canned_reply("Judgement")))))
    return {"failed_after_s": round(seconds, 2), "reply_bytes": reply,
            "transfer_without_deadline_s": round(reply * drip_s, 1)}


if __name__ == "__main__":
    print("shared pipeline, max mean |diff| from sequential renders:", shared_pipeline_race())
    print("one byte per 0.05 s, timeout 0.5 s:", dripping_server())
