"""The environment a run ran in, recorded in run.json and shown in the report.

Package versions come from the installed distributions' metadata (no heavy import); the device
is described through torch only when torch is already imported (a run that used a model-backed
component), so the offline world never pays for importing torch.

    >>> env = capture()
    >>> sorted(env) == ["device", "git", "packages", "platform", "python"]
    True
"""

from __future__ import annotations

import platform
import subprocess
import sys
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

from repainter.version import __version__

#: Distributions whose versions change results.
PACKAGES = ("repainter", "torch", "diffusers", "transformers", "open_clip_torch", "lpips",
            "openai", "langgraph", "numpy", "pillow", "scikit-image")


def package_versions() -> dict[str, str | None]:
    # repainter's own version from the source that runs (an editable install's metadata can lag)
    versions: dict[str, str | None] = {"repainter": __version__}
    for name in PACKAGES[1:]:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


@lru_cache(maxsize=1)
def git_state() -> dict[str, Any] | None:
    """Commit and dirtiness of the checkout repainter runs from (None outside a git checkout)."""
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=5)
        if commit.returncode != 0:
            return None
        status = subprocess.run(["git", "-C", str(root), "status", "--porcelain",
                                 "--untracked-files=no"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip())}


def device_info() -> dict[str, Any]:
    """GPU name, memory and CUDA version when torch is loaded; else just the CPU."""
    info: dict[str, Any] = {"cpu": platform.processor() or platform.machine()}
    torch = sys.modules.get("torch")
    if torch is None:
        info["torch_loaded"] = False
        return info
    info["torch_loaded"] = True
    try:
        if torch.cuda.is_available():
            index = torch.cuda.current_device()
            props = torch.cuda.get_device_properties(index)
            info.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1),
                        gpu_count=torch.cuda.device_count(), cuda=torch.version.cuda)
        elif getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            info["gpu"] = "Apple MPS"
    except Exception as exc:  # noqa: BLE001 - a broken driver must not fail the run record
        info["gpu_error"] = f"{type(exc).__name__}: {exc}"
    return info


def capture() -> dict[str, Any]:
    """Versions, git commit, platform and device, as recorded in run.json's ``environment``."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": package_versions(),
        "git": git_state(),
        "device": device_info(),
    }


def summary_facts(env: dict[str, Any] | None) -> list[tuple[str, str]]:
    """Short (label, value) pairs of an environment record for the report's facts list.

        >>> summary_facts({"git": {"commit": "0123456789ab", "dirty": True},
        ...                "packages": {"torch": "2.4.0", "diffusers": None},
        ...                "device": {"cpu": "x86_64", "gpu": "H100", "gpu_memory_gib": 80.0,
        ...                           "cuda": "12.4"}})
        [('git commit', '0123456789 (uncommitted changes)'), ('versions', 'torch 2.4.0'), ('device', 'H100, 80.0 GiB, CUDA 12.4')]
    """
    if not env:
        return []
    facts = []
    git = env.get("git")
    if git:
        facts.append(("git commit", git["commit"][:10] + (" (uncommitted changes)"
                                                         if git.get("dirty") else "")))
    versions = [f"{name} {version}" for name, version in (env.get("packages") or {}).items()
                if version and name != "repainter"]
    if versions:
        facts.append(("versions", ", ".join(versions)))
    device = env.get("device") or {}
    if device.get("gpu"):
        parts = [device["gpu"]]
        if device.get("gpu_memory_gib"):
            parts.append(f"{device['gpu_memory_gib']} GiB")
        if device.get("cuda"):
            parts.append(f"CUDA {device['cuda']}")
        facts.append(("device", ", ".join(parts)))
    elif device.get("cpu"):
        facts.append(("device", f"CPU ({device['cpu']})"))
    return facts
