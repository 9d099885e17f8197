"""The run spec: one validated, serialisable description of a run.

A spec names the dataset, the T2I model(s), the MLLM, the metrics and the selection weights, the
loop's rounds / variants / early-stop rule, the seed and the output folder. It is loaded from YAML
or TOML, overridden by ``--set key.path=value`` flags, saved as ``spec.yaml`` in every run folder,
and a run is reproduced by running that file again.

The parts: the sections (:mod:`.sections`), :class:`RunSpec` (:mod:`.run_spec`), reading files
(:mod:`.files`), overrides and building (:mod:`.build`) and the hints for unknown keys
(:mod:`.hints`); everything public is importable from here.
"""

from repainter.spec.build import (
    apply_override,
    build_spec,
    load_run_spec,
    load_spec,
    override_spec,
    resolve_spec,
    strategy_change_hint,
)
from repainter.spec.files import (
    MAX_SPEC_BYTES,
    MAX_YAML_ALIASES,
    MAX_YAML_NODES,
    SpecError,
    read_spec_file,
    safe_load_bounded,
)
from repainter.spec.hints import unknown_key_hints
from repainter.spec.run_spec import (
    DEFAULT_OUTPUT_DIR,
    RESERVED_METRIC_LABELS,
    RESERVED_METRIC_PREFIXES,
    RESERVED_METRIC_SUFFIXES,
    RunSpec,
    canonical_json,
    preset_values,
    reserved_label_problem,
)
from repainter.spec.sections import (
    DEFAULT_STRATEGY,
    BudgetSpec,
    ComponentSpec,
    DatasetSpec,
    DecisionSpec,
    EarlyStopSpec,
    FailFastSpec,
    LoopSpec,
    RaySpec,
    RuntimeSpec,
    SpecModel,
    Strategy,
    T2ISpec,
)

__all__ = [
    "DEFAULT_OUTPUT_DIR", "DEFAULT_STRATEGY", "MAX_SPEC_BYTES", "MAX_YAML_ALIASES",
    "MAX_YAML_NODES", "RESERVED_METRIC_LABELS", "RESERVED_METRIC_PREFIXES",
    "RESERVED_METRIC_SUFFIXES", "BudgetSpec", "ComponentSpec", "DatasetSpec", "DecisionSpec",
    "EarlyStopSpec", "FailFastSpec", "LoopSpec", "RaySpec", "RunSpec", "RuntimeSpec",
    "SpecError", "SpecModel", "Strategy", "T2ISpec", "apply_override", "build_spec",
    "canonical_json", "load_run_spec", "load_spec", "override_spec", "preset_values", "read_spec_file",
    "reserved_label_problem", "resolve_spec", "strategy_change_hint", "safe_load_bounded", "unknown_key_hints",
]
