"""Diffusion-augmented interactive retrieval (DAR).

A case is a dialogue about a target image of a gallery: an initial (vague) caption and
question/answer turns. After every turn the dialogue so far is refined into one query; a T2I
model renders ``images_per_turn`` images from it, and the gallery is ranked by a fusion of a
text score (query vs. each gallery image) and an image score (generated images vs. each gallery
image)::

    fused = alpha * z(text) + (1 - alpha) * z(image)

The rank of the target is reported per turn with generated images (``fused``) and without
them (``text`` only), as Hits@1/5/10 and mean rank. ``hits@K`` is cumulative as ChatIR's
evaluation counts it (:func:`repainter.dar.scoring.cumulative_hits`); ``hits@K_per_turn`` is
the figure at each turn alone.

* :mod:`repainter.dar.dialogues`: ChatIR / VisDial style manifests, the plain query
  refinement;
* :mod:`repainter.dar.scoring`: text scorers (``clip`` and the registered ones), image
  embeddings, the fusion;
* :mod:`repainter.dar.spec`: the serialisable :class:`DARSpec` saved with every run;
* :mod:`repainter.dar.run`: :func:`run_dar` (objects in, result out);
* :mod:`repainter.dar.report`: ``dar.jsonl``, ``dar_summary.json`` (typed, versioned records of
  :mod:`repainter.records.dar`), ``dar.md``, ``report/dar.html``;
* :mod:`repainter.dar.folder`: :func:`run_dar_spec` (the one path of the CLI, the Python API and
  notebooks) and :func:`read_result` (older folders are migrated).

``DARSpec()`` runs on the simulation bench's procedural world, whose dialogues, text scorers
(``concepts``, ``scene``) and embedding (``scene_layout``) plug in through the registries of
:mod:`repainter.registry` (``DAR_DIALOGUES``, ``DAR_TEXT_SCORERS``, ``EMBEDDINGS``); see
:mod:`repainter.bench.world.dar`.

>>> from repainter.dar import DARSpec, run_dar_spec
>>> spec = DARSpec(output_dir=str(tmp_path / "dar"), dialogues={"limit": 2})  # doctest: +SKIP
>>> run_dar_spec(spec).summary()["turns"][-1]["fused"]["hits@10"]  # doctest: +SKIP
"""

from repainter.dar.dialogues import (
    Dialogue,
    DialogueError,
    Turn,
    concat_query,
    load_dialogues,
    parse_dialogue,
)
from repainter.dar.folder import read_result, run_dar_spec
from repainter.dar.report import summary_markdown, write_dar
from repainter.dar.run import (
    HITS_AT,
    DARFailure,
    DARResult,
    TurnRecord,
    load_spec_dialogues,
    run_dar,
)
from repainter.dar.scoring import (
    GalleryIndex,
    ahead_and_tied,
    build_text_scorer,
    expected_hits,
    fuse,
    zscore,
)
from repainter.dar.spec import DARSpec, build_dar_spec, load_dar_spec

__all__ = [
    "HITS_AT", "DARFailure", "DARResult", "DARSpec", "Dialogue", "DialogueError",
    "GalleryIndex", "Turn", "ahead_and_tied", "expected_hits", "TurnRecord", "build_dar_spec",
    "build_text_scorer", "concat_query", "fuse", "load_dar_spec", "load_dialogues",
    "load_spec_dialogues", "parse_dialogue", "read_result", "run_dar", "run_dar_spec",
    "summary_markdown", "write_dar", "zscore",
]
