"""Content-addressed caches, so the same call is never paid for twice.

Every cached call is keyed by the SHA-256 of the canonical JSON of its request: the backend's
identity (model, revision, parameters), the role, the text and the hashes of the images it was
given. A re-run of a finished run, or one that adds a model to a finished comparison, answers
everything it has seen from here. The store is one SQLite file (the run folder's ``cache.sqlite``
by default, or a shared folder named in the spec), safe across threads and processes.

Three wrappers put any backend behind the cache:

* ``CachedMLLM`` - every MLLM role's reply, keyed on the whole request: the backend's identity
  (for the OpenAI backend: max_tokens, extra_body, the response format and token parameter in
  use, hashes of its schemas), the hash of the prompt templates, the T2I prompt budget the
  templates are rendered with and the project version, besides the role's inputs. A reply is
  stored under the identity the backend has once it answered: a call that stepped the response
  format down (``json_schema`` -> ``json_object``) stores its reply under the weaker mode, so
  such a reply is never served to a request that would run in the stronger one (schema-guided
  and free JSON replies differ); a fresh backend pays one miss to learn the step-down again. A
  hit tells the backend (``note_cache_hit``), so the case still records the mode it ran in;
* ``CachedT2I`` - rendered images (a batch renders only its misses, still as one batch);
* ``CachedMetric`` - scores per (metric's full identity: its ``identity()``, class and public
  settings, and the project version; reference, candidate); the reference's features are only
  computed when some candidate is not cached.

A path is no identity: the built-in model backends' identities hold the content of the local files
they load (a LoRA, a single-file checkpoint, a model folder, a metric's checkpoint) and the cached
commit of their hub ids (:mod:`repainter.file_identity`), so a file replaced at the same path is
a miss, never an old render or score.
"""

from __future__ import annotations

import hashlib
import io
import json
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from repainter.backends.base import (
    GeneratedImage,
    Metric,
    MetricWrapper,
    MLLMBackend,
    Reference,
    T2IBackend,
    T2IWrapper,
    current_prompt_budget,
)
from repainter.images import image_sha256
from repainter.prompts import templates_digest
from repainter.schemas import Critique, ImageUnderstandingTree, Judgement
from repainter.spec import canonical_json
from repainter.version import __version__


def request_key(namespace: str, request: dict[str, Any]) -> str:
    return hashlib.sha256(f"{namespace}\n{canonical_json(request)}".encode()).hexdigest()


def request_context() -> dict[str, Any]:
    """What every MLLM request also depends on: templates, T2I prompt budget, project version."""
    return {"templates": templates_digest(), "prompt_budget": current_prompt_budget().as_dict(),
            "repainter": __version__}


_SCALARS = (str, int, float, bool, type(None))


def metric_identity(metric: Metric) -> dict[str, Any]:
    """A metric's full identity for score keys: ``identity()``, its class, its public scalar
    settings (so a setting its ``identity()`` forgets still changes the key) and the version."""
    settings = {k: v for k, v in sorted(vars(metric).items())
                if not k.startswith("_") and isinstance(v, _SCALARS)}
    return {"metric": metric.identity(),
            "class": f"{type(metric).__module__}.{type(metric).__qualname__}",
            "settings": settings, "repainter": __version__}


class CacheCounts:
    """Hit and miss counts per namespace, kept under ``self._lock`` (set by the subclass): what
    every cache the cached backends use reports (:class:`ResponseCache`, the Ray workers'
    ``ServiceCache``)."""

    _lock: threading.Lock

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.misses: Counter[str] = Counter()

    def _count(self, namespace: str, found: bool) -> None:
        """Count one lookup (the caller holds ``self._lock``)."""
        (self.hits if found else self.misses)[namespace] += 1

    def unusable(self, namespace: str) -> None:
        """Count the last hit in ``namespace`` as a miss (its entry pointed at a lost file)."""
        with self._lock:
            self.hits[namespace] -= 1
            self.misses[namespace] += 1

    def stats(self) -> dict[str, dict[str, int]]:
        names = sorted(set(self.hits) | set(self.misses))
        return {n: {"hits": self.hits[n], "misses": self.misses[n]} for n in names}


class ResponseCache(CacheCounts):
    """A SQLite key-value store of JSON values (and optional blobs), with hit / miss counts.

    Writes are batched: entries wait in memory (where ``get`` finds them) and are committed
    ``batch_size`` at a time, and at the end of every case (``flush``). A killed process loses
    at most the last uncommitted entries, which are recomputed; results never depend on them.
    """

    def __init__(self, path: str | Path, batch_size: int = 64):
        super().__init__()
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.batch_size = max(1, int(batch_size))
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        with self._lock, self._conn:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS entries (key TEXT PRIMARY KEY, namespace TEXT, "
                "value TEXT NOT NULL, blob BLOB)"
            )
        self._pending: dict[str, tuple[str, str, bytes | None]] = {}
        self.commits = 0

    def get(self, namespace: str, key: str) -> tuple[Any, bytes | None] | None:
        with self._lock:
            waiting = self._pending.get(key)
            row = (waiting[1], waiting[2]) if waiting else self._conn.execute(
                "SELECT value, blob FROM entries WHERE key = ?", (key,)).fetchone()
            self._count(namespace, bool(row))
        return (json.loads(row[0]), row[1]) if row else None

    def put(self, namespace: str, key: str, value: Any, blob: bytes | None = None) -> None:
        text = json.dumps(value, allow_nan=False, ensure_ascii=False)
        with self._lock:
            self._pending[key] = (namespace, text, blob)
            if len(self._pending) >= self.batch_size:
                self._commit()

    def flush(self) -> None:
        """Commit the waiting entries (one transaction)."""
        with self._lock:
            self._commit()

    def _commit(self) -> None:
        if not self._pending:
            return
        rows = [(key, ns, text, blob) for key, (ns, text, blob) in self._pending.items()]
        with self._conn:
            self._conn.executemany(
                "INSERT OR REPLACE INTO entries (key, namespace, value, blob) VALUES (?, ?, ?, ?)",
                rows,
            )
        self._pending.clear()
        self.commits += 1

    def close(self) -> None:
        with self._lock:
            self._commit()
            self._conn.close()


class CachedMLLM(MLLMBackend):
    """Any MLLM backend, answering repeated requests from the cache."""

    def __init__(self, inner: MLLMBackend, cache: ResponseCache):
        self.inner, self.cache = inner, cache
        self.kind = getattr(inner, "kind", "")

    def identity(self) -> dict[str, Any]:
        return self.inner.identity()

    def _key(self, role: str, request: dict[str, Any]) -> str:
        return request_key("mllm", {"backend": self.inner.identity(), "role": role, **request,
                                    **request_context()})

    def _call(self, role: str, request: dict[str, Any], compute: Callable[[], Any],
              encode: Callable[[Any], Any], decode: Callable[[Any], Any]) -> Any:
        found = self.cache.get("mllm", self._key(role, request))
        if found is not None:
            noted = getattr(self.inner, "note_cache_hit", None)
            if noted is not None:
                noted(role)
            return decode(found[0])
        result = compute()
        # keyed by the identity after the call: the response format it actually ran in
        self.cache.put("mllm", self._key(role, request), encode(result))
        return result

    def describe(self, image, context=()):
        steps = [{"image": image_sha256(step["image"]) if step.get("image") is not None else None,
                  "text": step.get("text", "")} for step in context]
        return self._call(
            "describe", {"image": image_sha256(image), "context": steps},
            lambda: self.inner.describe(image, context),
            lambda r: r.model_dump(mode="json"), ImageUnderstandingTree.model_validate,
        )

    def rewrite_prompt(self, draft, iut):
        return self._call("rewrite_prompt", {"draft": draft, "iut": iut.model_dump(mode="json")},
                          lambda: self.inner.rewrite_prompt(draft, iut), str, str)

    def refine_dialogue(self, caption, dialog):
        request = {"caption": caption, "dialog": [list(turn) for turn in dialog]}
        return self._call("refine_dialogue", request,
                          lambda: self.inner.refine_dialogue(caption, dialog), str, str)

    def write_variants(self, prompt, n, iut, critique, seed):
        request = {"prompt": prompt, "n": n, "iut": iut.model_dump(mode="json"), "seed": seed,
                   "critique": critique.model_dump(mode="json") if critique else None}
        return self._call("write_variants", request,
                          lambda: self.inner.write_variants(prompt, n, iut, critique, seed),
                          list, list)

    def critique(self, reference, candidate, prompt):
        request = {"reference": image_sha256(reference), "candidate": image_sha256(candidate),
                   "prompt": prompt}
        return self._call("critique", request,
                          lambda: self.inner.critique(reference, candidate, prompt),
                          lambda r: r.model_dump(mode="json"), Critique.model_validate)

    def revise(self, prompt, critique, iut):
        request = {"prompt": prompt, "critique": critique.model_dump(mode="json"),
                   "iut": iut.model_dump(mode="json")}
        return self._call("revise", request, lambda: self.inner.revise(prompt, critique, iut),
                          str, str)

    def judge(self, reference, candidate):
        request = {"reference": image_sha256(reference), "candidate": image_sha256(candidate)}
        return self._call("judge", request, lambda: self.inner.judge(reference, candidate),
                          lambda r: r.model_dump(mode="json"), Judgement.model_validate)

    def usage(self) -> dict[str, float]:
        return self.inner.usage()

    def case_usage(self, model: str, case_id: str) -> dict[str, float]:
        return self.inner.case_usage(model, case_id)  # cache hits cost nothing

    def adaptations(self) -> list[dict[str, Any]]:
        summary = getattr(self.inner, "adaptations", None)
        return summary() if summary is not None else []

    def case_adaptations(self, model: str, case_id: str) -> list[dict[str, Any]]:
        summary = getattr(self.inner, "case_adaptations", None)
        return summary(model, case_id) if summary is not None else []

    def close(self) -> None:
        self.inner.close()


class CachedT2I(T2IWrapper):
    """Any T2I backend; a batch renders only the (prompt, seed) pairs not seen before.

    With ``saved_by_caller`` (the regeneration loop, which saves every render into the run
    folder and reports the file through ``GeneratedImage.on_saved``) a render is stored once:
    its cache entry points at that PNG, and no second copy is encoded into the cache; an entry
    whose file is gone is a miss and renders again. Otherwise the entry holds the PNG itself
    (read either way).
    """

    def __init__(self, inner: T2IBackend, cache: ResponseCache, saved_by_caller: bool = False):
        super().__init__(inner)
        self.cache = cache
        self.saved_by_caller = saved_by_caller

    def generate(self, prompts: Sequence[str], seeds: Sequence[int]) -> list[GeneratedImage]:
        identity = self.inner.identity()
        keys = [request_key("t2i", {"backend": identity, "prompt": p, "seed": s})
                for p, s in zip(prompts, seeds, strict=True)]
        results: list[GeneratedImage | None] = []
        for prompt, seed, key in zip(prompts, seeds, keys, strict=True):
            found = self.cache.get("t2i", key)
            image = _stored_render(found)
            if image is None:
                if found is not None:
                    self.cache.unusable("t2i")
                results.append(None)
                continue
            meta = found[0]
            results.append(GeneratedImage(image, prompt, seed, meta["flagged"],
                                          {**meta["metadata"], "cache": "hit"}))
        missing = [i for i, r in enumerate(results) if r is None]
        if missing:
            rendered = self.inner.generate([prompts[i] for i in missing], [seeds[i] for i in missing])
            for i, generated in zip(missing, rendered, strict=True):
                meta = {"flagged": generated.flagged,
                        "metadata": json.loads(json.dumps(generated.metadata, default=str))}
                if self.saved_by_caller:
                    generated.on_saved = self._remember(keys[i], meta)
                else:
                    buffer = io.BytesIO()
                    generated.image.save(buffer, format="PNG")
                    self.cache.put("t2i", keys[i], meta, buffer.getvalue())
                results[i] = generated
        return results  # type: ignore[return-value]

    def _remember(self, key: str, meta: dict[str, Any]) -> Callable[[Path], None]:
        def saved(path: Path) -> None:
            self.cache.put("t2i", key, {**meta, "file": str(Path(path).resolve())})

        return saved


def _stored_render(found: tuple[Any, bytes | None] | None) -> Image.Image | None:
    """The image a cache entry points at (or holds), or None where there is none any more."""
    if found is None:
        return None
    meta, blob = found
    try:
        if meta.get("file"):
            image = Image.open(meta["file"])
        elif blob is not None:
            image = Image.open(io.BytesIO(blob))
        else:
            return None
        image.load()
    except OSError:  # the file was deleted or damaged: render again
        return None
    return image.convert("RGB")


class _LazyReference:
    """A reference whose metric features are computed only if some score is not cached."""

    def __init__(self, metric: Metric, reference: Reference):
        self.metric, self.reference = metric, reference
        self.key = {"image": image_sha256(reference.image),
                    "ground_truth": reference.ground_truth if metric.needs_ground_truth else None}
        self._features: Any = None
        self._ready = False
        self._lock = threading.Lock()

    def features(self) -> Any:
        with self._lock:
            if not self._ready:
                self._features, self._ready = self.metric.prepare(self.reference), True
            return self._features


class CachedMetric(MetricWrapper):
    """Any metric; scores are cached per (metric identity and version, reference, candidate)."""

    def __init__(self, inner: Metric, cache: ResponseCache):
        super().__init__(inner)
        self.cache = cache

    def prepare(self, reference: Reference) -> _LazyReference:
        return _LazyReference(self.inner, reference)

    def score_metadata(self, prepared: _LazyReference, values: Sequence[Any]) -> list[float]:
        # scores of recorded metadata are cheap and keyed by no image: computed, never cached
        return self.inner.score_metadata(prepared.features(), values)

    def score(self, prepared: _LazyReference, candidates: Sequence[Image.Image]) -> list[float]:
        identity = metric_identity(self.inner)
        keys = [request_key("metric", {**identity, "reference": prepared.key,
                                       "candidate": image_sha256(c)}) for c in candidates]
        scores: list[float | None] = []
        for key in keys:
            found = self.cache.get("metric", key)
            scores.append(None if found is None else float(found[0]))
        missing = [i for i, s in enumerate(scores) if s is None]
        if missing:
            computed = self.inner.score(prepared.features(), [candidates[i] for i in missing])
            for i, value in zip(missing, computed, strict=True):
                value = float(value)
                if value == value and abs(value) != float("inf"):  # never cache NaN / inf
                    self.cache.put("metric", keys[i], value)
                scores[i] = value
        return scores  # type: ignore[return-value]
