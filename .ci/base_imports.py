"""Import every module of ``repainter`` that must work with the base install alone.

Run it in a venv made with only ``pip install -e .`` (``.ci/run`` does): it exits non-zero and
names each module whose import fails, so a module-level import of a package that only an extra
(or nothing) declares fails CI. ``tests/test_declared_imports.py`` reads :data:`EXTRA_ONLY` to
check statically that these modules are the only ones importing an extra at load.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import traceback
from pathlib import Path

#: Modules that need an extra to be imported at all: module -> (extra, why). Every other module
#: of the package imports with the base install; its extra packages are imported inside the
#: functions that use them.
EXTRA_ONLY: dict[str, tuple[str, str]] = {
    "repainter.backends._torch": ("models", "torch helpers (device, model cache) for the model backends"),
    "repainter.backends.metrics.clip_i": ("models", "open_clip image embeddings on torch"),
    "repainter.backends.metrics.dinov2": ("models", "DINOv2 embeddings (transformers, torch)"),
    "repainter.backends.metrics.lpips": ("models", "LPIPS on a torchvision backbone"),
    "repainter.backends.t2i.diffusers": ("models", "diffusers pipelines on torch"),
}


def base_modules() -> list[str]:
    """Every module of the installed package but those in :data:`EXTRA_ONLY` (found from its
    files, so a package that fails to import still has its modules tried)."""
    root = Path(importlib.util.find_spec("repainter").origin).parent
    names = []
    for path in root.rglob("*.py"):
        parts = path.relative_to(root.parent).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return sorted(name for name in names if name not in EXTRA_ONLY)


def main() -> int:
    failures = []
    modules = base_modules()
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - every failure is reported, none stops the scan
            failures.append(name)
            print(f"FAILED {name}: {type(exc).__name__}: {exc}", file=sys.stderr)
            traceback.print_exc(limit=-3, file=sys.stderr)
    print(f"{len(modules) - len(failures)} of {len(modules)} base modules import "
          f"({len(EXTRA_ONLY)} extra-only modules not tried)")
    if failures:
        print("modules that fail to import with the base install: " + ", ".join(failures),
              file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
