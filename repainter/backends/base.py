"""The interfaces every backend implements.

Three roles drive the regeneration loop:

* ``MLLMBackend`` describes a reference into an Image Understanding Tree, rewrites, varies and
  revises prompts, critiques a render against the reference and judges similarity 1-5;
* ``T2IBackend`` renders a batch of prompts, one seed each;
* ``Metric`` compares a batch of candidates with one reference, whose features are prepared once.

Backends are found by name in the registries of :mod:`repainter.registry`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from PIL import Image

from repainter.references import Reference
from repainter.schemas import Critique, ImageUnderstandingTree, Judgement

if TYPE_CHECKING:  # pragma: no cover
    from repainter.weights import WeightRequirement


@dataclass
class GeneratedImage:
    image: Image.Image
    prompt: str
    seed: int
    # Why this image must not be scored as a real render (e.g. "safety_checker_blanked").
    flagged: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    #: Called with the file the run saved this image as (the cache points at it).
    on_saved: Callable[[Any], None] | None = field(default=None, repr=False, compare=False)


class DeclaresRequirements:
    """A component that can say, before it is built, what it needs to run.

    ``repainter doctor`` / ``prefetch`` and the run's preflight ask the registered class, so a
    third-party component (an entry-point plugin) declares its weights and keys the same way
    as a built-in one.
    """

    @classmethod
    def requirements(cls, params: dict[str, Any]) -> list[WeightRequirement]:
        """The weights, files and API keys an instance built with ``params`` needs (a list of
        :class:`repainter.weights.WeightRequirement`). Default: nothing. It must not load,
        download or import anything heavy: it answers from ``params`` alone."""
        return []


class Backend(DeclaresRequirements, ABC):  # noqa: B024 - shared base, no abstract method of its own
    """Common bits: a stable identity recorded with every output."""

    #: Short registry name, set by subclasses.
    kind: ClassVar[str] = ""

    def identity(self) -> dict[str, Any]:
        """What produced an output: recorded with images and used in cache keys."""
        return {"backend": self.kind}

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release models / connections. Default: nothing to release."""


@dataclass(frozen=True)
class PromptBudget:
    """How much prompt a T2I model reads: ``max_tokens`` of ``tokenizer`` (the rest is cut off).

    ``words`` is what the MLLM is asked for: a word count that fits the token budget (comma-
    separated prompt phrases average about 1.4 CLIP tokens a word). Models with no known limit
    keep the default of 70 words.

    >>> PromptBudget(max_tokens=75, tokenizer="CLIPTokenizer").words
    53
    >>> PromptBudget().words
    70
    """

    max_tokens: int | None = None
    tokenizer: str = ""
    tokens_per_word: float = 1.4

    @property
    def words(self) -> int:
        if not self.max_tokens:
            return DEFAULT_PROMPT_WORDS
        return max(8, int(self.max_tokens / self.tokens_per_word))

    def as_dict(self) -> dict[str, Any]:
        return {"max_tokens": self.max_tokens, "tokenizer": self.tokenizer, "words": self.words}


#: The prompt length asked of the MLLM when the T2I model states no budget.
DEFAULT_PROMPT_WORDS = 70

#: The prompt budget of the T2I model the current thread writes prompts for (set by the runner
#: per model and case; MLLM backends put it into the prompt templates).
CURRENT_PROMPT_BUDGET: ContextVar[PromptBudget | None] = ContextVar(
    "repainter_prompt_budget", default=None)


def current_prompt_budget() -> PromptBudget:
    """The budget of the model being worked on, or the default one outside a run."""
    return CURRENT_PROMPT_BUDGET.get() or PromptBudget()


class T2IBackend(Backend):
    """Text-to-image: a batch of prompts with one seed each in, images out (same order).

    ``GeneratedImage.metadata`` may say anything about a render; the keys named in
    ``recorded_metadata`` are the ones worth keeping: the loop stores their (JSON-able, not
    None) values in the candidate's record, under ``metadata``, where a metric that
    ``reads_metadata`` scores them (then and in ``repainter rescore``). Every other key stays
    in memory. A simulated model records the scene it drew this way.
    """

    #: Keys of ``GeneratedImage.metadata`` the run records with each candidate.
    recorded_metadata: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def generate(self, prompts: Sequence[str], seeds: Sequence[int]) -> list[GeneratedImage]: ...

    def prompt_budget(self) -> PromptBudget:
        """How many tokens of a prompt the model reads (default: no known limit)."""
        return PromptBudget()


def recorded_metadata(backend: T2IBackend, generated: GeneratedImage) -> dict[str, Any]:
    """The part of ``generated.metadata`` that ``backend`` marks as worth recording
    (its ``recorded_metadata`` keys whose values are set).

        >>> class Noting(T2IBackend):
        ...     recorded_metadata = ("word",)
        ...     def generate(self, prompts, seeds): ...
        >>> image = GeneratedImage(Image.new("RGB", (1, 1)), "p", 0,
        ...                        metadata={"word": "cat", "seconds": 0.1})
        >>> recorded_metadata(Noting(), image)
        {'word': 'cat'}
    """
    metadata = generated.metadata or {}
    return {key: metadata[key] for key in getattr(backend, "recorded_metadata", ())
            if metadata.get(key) is not None}


class MLLMBackend(Backend):
    """The multimodal model's roles in the loop."""

    @abstractmethod
    def describe(
        self, image: Image.Image, context: Sequence[dict[str, Any]] = ()
    ) -> ImageUnderstandingTree:
        """Describe a reference image as an Image Understanding Tree."""

    @abstractmethod
    def rewrite_prompt(self, draft: str, iut: ImageUnderstandingTree) -> str:
        """Turn the template-filled draft into a comma-separated T2I prompt."""

    @abstractmethod
    def write_variants(
        self,
        prompt: str,
        n: int,
        iut: ImageUnderstandingTree,
        critique: Critique | None,
        seed: int,
    ) -> list[str]:
        """Write ``n`` prompt variants of ``prompt`` (the first may be ``prompt`` itself)."""

    @abstractmethod
    def critique(self, reference: Image.Image, candidate: Image.Image, prompt: str) -> Critique:
        """List concrete differences of ``candidate`` from ``reference``."""

    @abstractmethod
    def revise(self, prompt: str, critique: Critique, iut: ImageUnderstandingTree) -> str:
        """Revise ``prompt`` so that the next render fixes the differences in ``critique``."""

    @abstractmethod
    def judge(self, reference: Image.Image, candidate: Image.Image) -> Judgement:
        """Aesthetic and semantic similarity of ``candidate`` to ``reference``, 1-5 each."""

    def refine_dialogue(self, caption: str, dialog: Sequence[tuple[str, str]]) -> str:
        """Merge a caption and (question, answer) turns into one T2I prompt (DAR mode).

        Optional: only diffusion-augmented retrieval (:mod:`repainter.dar`) calls it.
        """
        raise NotImplementedError(
            f"MLLM backend {type(self).__name__} cannot refine dialogues; use one that "
            "implements refine_dialogue or set mllm: null (the query is then the caption and "
            "answers joined)")

    def usage(self) -> dict[str, float]:
        """Calls, tokens, latency and cost so far (backends without a bill report calls only)."""
        return {}

    def case_usage(self, model: str, case_id: str) -> dict[str, float]:
        """Tokens and cost of the calls made for one case (see ``instrument.CURRENT_CASE``)."""
        return {}


class Metric(DeclaresRequirements, ABC):
    """An image-image metric: a reference and a batch of candidates in, one score each out.

    ``prepare`` computes the reference's features once per case; ``score`` compares a batch of
    candidates with them. ``similarity`` maps a raw score to "higher is closer" for selection.
    """

    name: ClassVar[str] = ""
    higher_is_better: ClassVar[bool] = True
    #: True where the metric compares against the dataset's ground truth, not the image.
    needs_ground_truth: ClassVar[bool] = False
    #: A key of the candidates' recorded metadata (see ``T2IBackend.recorded_metadata``) that
    #: this metric scores instead of their pixels: the loop calls :meth:`score_metadata` with
    #: the values of the candidates that carry it; the others are left unscored. None: pixels.
    reads_metadata: ClassVar[str | None] = None

    @abstractmethod
    def prepare(self, reference: Reference) -> Any: ...

    @abstractmethod
    def score(self, prepared: Any, candidates: Sequence[Image.Image]) -> list[float]: ...

    def __call__(self, reference: Reference, candidates: Sequence[Image.Image]) -> list[float]:
        return self.score(self.prepare(reference), candidates)

    def score_metadata(self, prepared: Any, values: Sequence[Any]) -> list[float]:
        """Scores of the candidates' recorded metadata values under ``reads_metadata``."""
        raise NotImplementedError(f"metric {self.name!r} does not score candidate metadata")

    def similarity(self, value: float) -> float:
        """Map a raw score onto "higher is closer" (distances in [0, 1] become 1 - d)."""
        return value if self.higher_is_better else 1.0 - value

    def identity(self) -> dict[str, Any]:
        return {"metric": self.name}


# -- wrappers ------------------------------------------------------------------------------------


class T2IWrapper(T2IBackend):
    """A T2I backend around another (cache, throttle): identity and close go to the inner one."""

    def __init__(self, inner: T2IBackend):
        self.inner = inner
        self.kind = getattr(inner, "kind", "")

    def identity(self) -> dict[str, Any]:
        return self.inner.identity()

    def generate(self, prompts: Sequence[str], seeds: Sequence[int]) -> list[GeneratedImage]:
        return self.inner.generate(prompts, seeds)

    def prompt_budget(self) -> PromptBudget:
        return self.inner.prompt_budget()

    @property
    def recorded_metadata(self) -> tuple[str, ...]:  # type: ignore[override]
        return tuple(getattr(self.inner, "recorded_metadata", ()))

    def close(self) -> None:
        self.inner.close()


class MetricWrapper(Metric):
    """A metric around another (cache, lock): its name, direction and identity are the inner's."""

    def __init__(self, inner: Metric):
        self.inner = inner
        self.name = inner.name
        self.higher_is_better = inner.higher_is_better
        self.needs_ground_truth = inner.needs_ground_truth
        self.reads_metadata = getattr(inner, "reads_metadata", None)

    def identity(self) -> dict[str, Any]:
        return self.inner.identity()

    def similarity(self, value: float) -> float:
        return self.inner.similarity(value)

    def prepare(self, reference: Reference) -> Any:
        return self.inner.prepare(reference)

    def score(self, prepared: Any, candidates: Sequence[Image.Image]) -> list[float]:
        return self.inner.score(prepared, candidates)

    def score_metadata(self, prepared: Any, values: Sequence[Any]) -> list[float]:
        return self.inner.score_metadata(prepared, values)
