"""Issue 24 item 6: cache identities hold the content of the local files a model is loaded from.

A LoRA file, a single-file checkpoint, a file inside a local model folder or a metric's local
checkpoint replaced at the same path is a new model: a new render, a new score. An unchanged file
keeps its key, in another process too. The first part tests the fingerprint helper alone (no
torch); the second the real backends on the tiny models of ``tiny_models.py``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from repainter import file_identity
from repainter.file_identity import (
    file_sha256,
    hub_commit,
    path_fingerprint,
    source_identity,
    weights_identity,
)


@pytest.fixture(autouse=True)
def own_sidecar(tmp_path, monkeypatch):
    """Memoised hashes go to this test's own folder (inherited by subprocesses)."""
    monkeypatch.setenv("REPAINTER_CACHE", str(tmp_path / "repainter-cache"))


@pytest.fixture
def memoise_fresh_files(monkeypatch):
    """Let files written a moment ago be memoised (the racy-time guard is tested on its own)."""
    monkeypatch.setattr(file_identity, "RACY_SECONDS", -3600.0)


@pytest.fixture
def reads(monkeypatch):
    """Counts the files the helper reads to hash."""
    count = {"n": 0}
    real = hashlib.file_digest

    def counting(handle, digest):
        count["n"] += 1
        return real(handle, digest)

    monkeypatch.setattr(hashlib, "file_digest", counting)
    return count


def _rewrite_keeping_mtime(path: Path, data: bytes) -> None:
    """Replace the content in place, same size, old mtime put back (as ``cp -p`` leaves it)."""
    before = path.stat()
    assert len(data) == before.st_size
    # the file system's timestamp tick (<= 10 ms) moves on, as between any hashing and a later
    # write in real use; a write within the same tick is the racy guard's case (not memoised)
    time.sleep(0.05)
    path.write_bytes(data)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


# -- the helper, no torch -------------------------------------------------------------------------


def test_a_file_is_identified_by_its_content(tmp_path):
    path = tmp_path / "lora.safetensors"
    path.write_bytes(b"weights-v1")
    assert path_fingerprint(path) == {"sha256": hashlib.sha256(b"weights-v1").hexdigest(),
                                      "files": 1, "bytes": 10}
    copy = tmp_path / "elsewhere" / "copy.safetensors"
    copy.parent.mkdir()
    shutil.copy(path, copy)  # a copy (other path, inode, mtime) of the same bytes: the same key
    assert path_fingerprint(copy) == path_fingerprint(path)


def test_a_replaced_file_is_never_answered_from_the_memo(tmp_path, memoise_fresh_files, reads):
    path = tmp_path / "lora.safetensors"
    path.write_bytes(b"weights-v1")
    first = file_sha256(path)
    assert file_sha256(path) == first and reads["n"] == 1  # unchanged: memoised, not re-read
    _rewrite_keeping_mtime(path, b"weights-v2")  # same size, same mtime, other bytes
    assert file_sha256(path) == hashlib.sha256(b"weights-v2").hexdigest() != first
    replacement = tmp_path / "new.safetensors"
    replacement.write_bytes(b"weights-v3")
    time.sleep(0.05)
    os.replace(replacement, path)  # moved onto the path (another inode)
    assert file_sha256(path) == hashlib.sha256(b"weights-v3").hexdigest()


def test_a_file_written_just_now_is_not_memoised(tmp_path, reads):
    # within the file system's timestamp tick a second write could keep the stat unchanged
    path = tmp_path / "fresh.bin"
    path.write_bytes(b"abc")
    file_sha256(path)
    file_sha256(path)
    assert reads["n"] == 2
    assert not file_identity.sidecar_path().exists()


def test_the_memo_is_shared_with_later_processes(tmp_path, memoise_fresh_files):
    path = tmp_path / "model.ckpt"
    path.write_bytes(os.urandom(4096))
    expected = path_fingerprint(path)
    # another process finds the hash in the sidecar: it never reads the file
    script = textwrap.dedent(f"""
        import hashlib, json
        def refuse(*args):
            raise AssertionError("re-hashed an unchanged file")
        hashlib.file_digest = refuse
        from repainter.file_identity import path_fingerprint
        print(json.dumps(path_fingerprint({str(path)!r})))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True, env=os.environ.copy())
    assert json.loads(out.stdout) == expected


def test_a_folder_is_identified_by_every_file_in_it(tmp_path):
    folder = tmp_path / "model"
    (folder / "unet").mkdir(parents=True)
    (folder / "model_index.json").write_text("{}")
    (folder / "unet" / "weights.bin").write_bytes(b"0123")
    before = path_fingerprint(folder)
    assert before["files"] == 2 and before["bytes"] == 6
    (folder / ".cache").mkdir()  # download metadata the loaders never read
    (folder / ".cache" / "x.lock").write_text("")
    assert path_fingerprint(folder) == before
    _rewrite_keeping_mtime(folder / "unet" / "weights.bin", b"0124")
    assert path_fingerprint(folder)["sha256"] != before["sha256"]
    (folder / "unet" / "weights.bin").write_bytes(b"0123")
    assert path_fingerprint(folder) == before  # the same content again: the same key
    (folder / "unet" / "weights.bin").rename(folder / "unet" / "other.bin")
    assert path_fingerprint(folder)["sha256"] != before["sha256"]  # names count too


def test_a_lora_in_a_shared_folder_is_identified_by_its_own_file(tmp_path):
    (tmp_path / "a.safetensors").write_bytes(b"a")
    (tmp_path / "b.safetensors").write_bytes(b"b")
    ident = source_identity(str(tmp_path), weight_name="a.safetensors")
    assert ident["sha256"] == hashlib.sha256(b"a").hexdigest() and ident["files"] == 1
    (tmp_path / "b.safetensors").write_bytes(b"B")  # another LoRA of the folder changed
    assert source_identity(str(tmp_path), weight_name="a.safetensors") == ident


def test_hub_ids_are_identified_by_their_cached_commit(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    refs = tmp_path / "hub" / "models--org--model" / "refs"
    refs.mkdir(parents=True)
    (refs / "main").write_text("a" * 40)
    assert hub_commit("org/model") == "a" * 40
    assert hub_commit("org/model", "b" * 40) == "b" * 40  # a pinned commit is itself
    assert hub_commit("org/other") is None  # not cached: nothing claimed
    local = tmp_path / "lora.safetensors"
    local.write_bytes(b"x")
    sources = [("org/model", None, None), (str(local), None, None)]
    assert weights_identity(sources, hub=True) == {
        "org/model": {"hub": "org/model", "revision": None, "commit": "a" * 40}}
    assert list(weights_identity(sources, hub=False)) == [str(local)]
    (refs / "main").write_text("c" * 40)  # the hub model was updated in the cache
    assert weights_identity(sources, hub=True)["org/model"]["commit"] == "c" * 40


def test_a_missing_local_path_is_left_to_the_loader(tmp_path):
    assert source_identity(str(tmp_path / "gone.safetensors")) == {"missing": True}


def test_an_unwritable_sidecar_is_said_once(tmp_path, monkeypatch, memoise_fresh_files, caplog):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("REPAINTER_CACHE", str(blocker))
    monkeypatch.setattr(file_identity, "_sidecar_warned", False)
    path = tmp_path / "w.bin"
    path.write_bytes(b"w")
    with caplog.at_level(logging.WARNING, logger="repainter.file_identity"):
        assert file_sha256(path) == hashlib.sha256(b"w").hexdigest()
    assert "hashed again in every process" in caplog.text


# -- the backends, on tiny real models ------------------------------------------------------------


def _other_safetensors(path: Path, factor: float) -> None:
    """Rewrite a .safetensors file in place with every float tensor scaled (same size)."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(path), "pt") as handle:
        metadata = handle.metadata()
    tensors = load_file(str(path))
    scaled = {k: (v * factor if v.is_floating_point() else v) for k, v in tensors.items()}
    before = path.stat()
    time.sleep(0.05)  # the timestamp tick moves on (see _rewrite_keeping_mtime)
    save_file(scaled, str(path), metadata=metadata)
    assert path.stat().st_size == before.st_size
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # as `cp -p` would leave it


_RENDER_IN_ANOTHER_PROCESS = """
import json, sys
from repainter.backends.t2i.diffusers import DiffusersT2I
from repainter.cache import CachedT2I, ResponseCache
cache = ResponseCache(sys.argv[1])
params = json.loads(sys.argv[2])
(render,) = CachedT2I(DiffusersT2I(**params), cache).generate(["a red cat"], [3])
print(json.dumps({"cache": render.metadata.get("cache"), "stats": cache.stats()}))
cache.close()
"""


@pytest.mark.models
@pytest.mark.slow
def test_a_replaced_lora_file_renders_anew(tiny_sd_path, tiny_sd_lora_path, tmp_path):
    import numpy as np

    from repainter.backends.t2i.diffusers import DiffusersT2I
    from repainter.cache import CachedT2I, ResponseCache

    lora_file = tmp_path / "style.safetensors"
    shutil.copy(tiny_sd_lora_path / "pytorch_lora_weights.safetensors", lora_file)
    params = {"model": str(tiny_sd_path), "device": "cpu", "steps": 2, "guidance_scale": 3.0,
              "lora": [{"path": str(lora_file)}]}
    cache = ResponseCache(tmp_path / "cache.sqlite")
    (first,) = CachedT2I(DiffusersT2I(**params), cache).generate(["a red cat"], [3])
    cache.flush()
    # another process, the same unchanged file: the key is stable, the render a hit
    out = subprocess.run([sys.executable, "-c", _RENDER_IN_ANOTHER_PROCESS,
                          str(tmp_path / "cache.sqlite"), json.dumps(params)],
                         capture_output=True, text=True, env=os.environ.copy())
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1])["cache"] == "hit"
    _other_safetensors(lora_file, 2.0)  # another LoRA at the same path, same size and mtime
    replaced = DiffusersT2I(**params)
    (second,) = CachedT2I(replaced, cache).generate(["a red cat"], [3])
    assert "cache" not in second.metadata and cache.stats()["t2i"]["misses"] == 2
    assert np.abs(np.asarray(second.image, float) - np.asarray(first.image, float)).mean() > 1.0
    weights = replaced.identity()["weights"][str(lora_file)]
    assert weights["sha256"] == hashlib.sha256(lora_file.read_bytes()).hexdigest()
    assert second.metadata["weights"] == replaced.identity()["weights"]  # recorded per render
    cache.close()


@pytest.mark.models
def test_a_replaced_checkpoint_or_model_file_changes_the_key(tiny_sd_path, tiny_sd_single_file,
                                                             tmp_path):
    from repainter.backends.t2i.diffusers import DiffusersT2I
    from repainter.cache import request_key

    def key(t2i):
        return request_key("t2i", {"backend": t2i.identity(), "prompt": "p", "seed": 0})

    single = tmp_path / "fine-tune.safetensors"
    shutil.copy(tiny_sd_single_file, single)
    from_file = {"model": str(single), "config": str(tiny_sd_path), "device": "cpu", "steps": 2}
    before = DiffusersT2I(**from_file)
    assert key(DiffusersT2I(**from_file)) == key(before)  # unchanged: the same key
    _other_safetensors(single, 0.5)
    after = DiffusersT2I(**from_file)
    assert key(after) != key(before) and after.pipe is not before.pipe  # loaded anew

    folder = tmp_path / "tiny-sd"
    shutil.copytree(tiny_sd_path, folder)
    local = {"model": str(folder), "device": "cpu", "steps": 2}
    before = DiffusersT2I(**local)
    _other_safetensors(folder / "vae" / "diffusion_pytorch_model.safetensors", 0.5)
    after = DiffusersT2I(**local)
    assert key(after) != key(before) and after.pipe is not before.pipe


@pytest.mark.models
def test_a_replaced_clip_checkpoint_is_scored_anew(tiny_open_clip_checkpoint, tmp_path):
    import torch
    from PIL import Image

    from repainter.backends.base import Reference
    from repainter.backends.metrics.clip_i import ClipImageSimilarity
    from repainter.cache import CachedMetric, ResponseCache

    from .tiny_models import TINY_OPEN_CLIP, TINY_OPEN_CLIP_NAME

    checkpoint = tmp_path / "clip.pt"
    shutil.copy(tiny_open_clip_checkpoint, checkpoint)
    params = {"model": TINY_OPEN_CLIP_NAME, "pretrained": None, "checkpoint": str(checkpoint),
              "model_config": TINY_OPEN_CLIP, "device": "cpu"}
    cache = ResponseCache(tmp_path / "cache.sqlite")
    ref = Reference("r", Image.new("RGB", (40, 40), (200, 30, 30)))
    candidate = Image.new("RGB", (40, 40), (30, 30, 200))

    def score():
        metric = CachedMetric(ClipImageSimilarity(**params), cache)
        return metric.score(metric.prepare(ref), [candidate])[0]

    first = score()
    assert score() == first and cache.stats()["metric"] == {"hits": 1, "misses": 1}
    state = torch.load(checkpoint, weights_only=True)
    torch.save({k: v.flip(0) if v.dim() else v for k, v in state.items()}, checkpoint)
    assert score() != first and cache.stats()["metric"]["misses"] == 2
    cache.close()


@pytest.mark.models
def test_a_changed_dinov2_folder_file_changes_the_key(tiny_dinov2_path, tmp_path):
    from repainter.backends.metrics.dinov2 import DinoV2Similarity
    from repainter.cache import metric_identity

    folder = tmp_path / "dinov2"
    shutil.copytree(tiny_dinov2_path, folder)
    before = metric_identity(DinoV2Similarity(model=str(folder), device="cpu"))
    assert metric_identity(DinoV2Similarity(model=str(folder), device="cpu")) == before
    config = folder / "preprocessor_config.json"
    data = json.loads(config.read_text())
    data["image_mean"] = [0.5, 0.5, 0.5]
    config.write_text(json.dumps(data))
    assert metric_identity(DinoV2Similarity(model=str(folder), device="cpu")) != before


@pytest.mark.models
def test_a_replaced_lpips_backbone_changes_the_key(tmp_path):
    import torch

    from repainter.backends.metrics.lpips import LPIPSDistance
    from repainter.cache import metric_identity

    from .tiny_models import build_random_alexnet_checkpoint

    path = build_random_alexnet_checkpoint(tmp_path)
    before = LPIPSDistance(net="alex", device="cpu", backbone_weights=str(path))
    state = torch.load(path, weights_only=True)
    state["features.0.bias"] = state["features.0.bias"] + 1.0
    torch.save(state, path)
    after = LPIPSDistance(net="alex", device="cpu", backbone_weights=str(path))
    assert metric_identity(after) != metric_identity(before) and after._model is not before._model
