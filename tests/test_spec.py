import json

import pytest
import tomli_w
import yaml

from repainter.spec import RunSpec, SpecError, apply_override, build_spec, load_spec


def test_default_spec_is_the_simulation_bench():
    spec = RunSpec()
    assert spec.dataset.name == "world"
    assert [t.name for t in spec.t2i] == ["sim"]
    assert spec.mllm.name == "sim-describer"
    assert spec.loop.rounds == 3 and spec.loop.variants == 3


def test_yaml_round_trip_keeps_everything(tmp_path):
    spec = build_spec({
        "name": "study", "t2i": [{"name": "procedural", "label": "p1", "params": {"jitter": 0.1}},
                                 {"name": "procedural", "label": "p2"}],
        "loop": {"rounds": 4, "early_stop": {"patience": 2, "min_delta": 0.01}},
        "seed": 7,
    })
    path = tmp_path / "spec.yaml"
    path.write_text(spec.to_yaml())
    again = load_spec(path)
    assert again == spec
    assert again.fingerprint() == spec.fingerprint()


def test_toml_spec_loads(tmp_path):
    path = tmp_path / "spec.toml"
    path.write_text(tomli_w.dumps({"name": "t", "loop": {"rounds": 2}}))
    assert load_spec(path).loop.rounds == 2


def test_overrides_address_defaults_and_parse_values():
    spec = build_spec({}, ["loop.rounds=5", "t2i.0.params.jitter=0.25", "dataset.categories=[a, b]"])
    assert spec.loop.rounds == 5
    assert spec.t2i[0].params == {"jitter": 0.25}
    assert spec.dataset.categories == ["a", "b"]


@pytest.mark.parametrize(
    "data, message",
    [
        ({"loop": {"rounds": 0}}, "rounds"),
        ({"selection": {"nope": 1.0}}, "not listed"),
        ({"selection": {"ssim": -1.0}}, ">= 0"),
        ({"t2i": [{"name": "procedural"}, {"name": "procedural"}]}, "distinct labels"),
        ({"unknown_key": 1}, "unknown_key"),
        ({"name": "../escape"}, "name"),
        ({"preset": "nope"}, "unknown preset"),
    ],
)
def test_invalid_specs_name_the_problem(data, message):
    with pytest.raises(SpecError, match=message):
        build_spec(data)


def test_bad_override_is_a_spec_error():
    with pytest.raises(SpecError):
        apply_override({}, "no-equals-sign")
    with pytest.raises(SpecError):
        build_spec({}, ["t2i.3.name=x"])


def test_preset_fills_defaults_and_spec_keys_win():
    spec = build_spec({"preset": "paper", "loop": {"rounds": 5}})
    assert spec.selection == {"clip_i": 0.5, "dinov2": 0.5}
    assert spec.loop.rounds == 5 and spec.loop.variants == 3
    assert spec.loop.revise_from == "round_best"


def test_fingerprint_ignores_output_dir_only():
    a, b = RunSpec(output_dir="x"), RunSpec(output_dir="y")
    assert a.fingerprint() == b.fingerprint()
    assert RunSpec(seed=1).fingerprint() != a.fingerprint()


def test_spec_file_errors_are_readable(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("loop: [unclosed")
    with pytest.raises(SpecError, match="cannot parse"):
        load_spec(bad)
    with pytest.raises(SpecError, match="cannot read"):
        load_spec(tmp_path / "missing.yaml")
    listed = tmp_path / "list.yaml"
    listed.write_text(yaml.safe_dump([1, 2]))
    with pytest.raises(SpecError, match="mapping"):
        load_spec(listed)


def test_spec_json_is_canonical():
    dumped = RunSpec().model_dump(mode="json")
    assert json.loads(json.dumps(dumped)) == dumped


# -- issue 12: presets apply wherever given; reserved labels; bounded YAML ----------------------


def test_preset_given_as_override_applies(tmp_path):
    """Item 1: ``--set preset=paper`` used to be recorded but not applied."""
    path = tmp_path / "spec.yaml"
    path.write_text("loop: {rounds: 5}\n")
    spec = load_spec(path, ["preset=paper"])
    assert spec.preset == "paper"
    assert spec.selection == {"clip_i": 0.5, "dinov2": 0.5}
    assert [m.name for m in spec.metrics] == ["clip_i", "dinov2", "lpips", "ssim"]
    assert spec.loop.rounds == 5  # the file's own value still wins over the preset


def test_preset_applies_in_python_construction_and_overrides():
    from repainter.spec import override_spec

    assert RunSpec(preset="gill").selection == {"clip_i": 1.0}
    switched = override_spec(RunSpec(seed=3), ["preset=paper", "loop.rounds=2"])
    assert switched.selection == {"clip_i": 0.5, "dinov2": 0.5}
    assert (switched.seed, switched.loop.rounds) == (3, 2)
    # re-loading a saved expanded spec gives the same spec
    assert build_spec(yaml.safe_load(switched.to_yaml())) == switched


def test_unknown_preset_is_an_error_everywhere(tmp_path):
    with pytest.raises(SpecError, match="unknown preset"):
        build_spec({}, ["preset=nonexistent"])
    with pytest.raises(ValueError, match="unknown preset"):
        RunSpec(preset="nonexistent")
    from typer.testing import CliRunner

    from repainter.cli import app

    path = tmp_path / "spec.yaml"
    path.write_text("seed: 1\n")
    result = CliRunner().invoke(app, ["validate", str(path), "--set", "preset=nonexistent"])
    assert result.exit_code != 0 and "unknown preset" in result.output


@pytest.mark.parametrize("label", ["done", "steerability", "selection", "model", "rank",
                                   "judge_aesthetic", "ssim_round1", "ssim_ci_low"])
def test_metric_labels_must_not_be_reserved(label):
    """Item 11: a metric labelled like a built-in field overwrote it or crashed the leaderboard."""
    with pytest.raises(SpecError, match="reserved"):
        build_spec({"metrics": [{"name": "ssim", "label": label}, "color_histogram"],
                    "selection": {"color_histogram": 1.0}})


def test_billion_laughs_yaml_is_refused_quickly(tmp_path):
    """Item 16: nested aliases (a few hundred bytes) expanded to billions of nodes."""
    lines = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, 9):
        prev, cur = chr(96 + i), chr(97 + i)
        lines.append(f"{cur}: &{cur} [{', '.join(['*' + prev] * 9)}]")
    path = tmp_path / "laughs.yaml"
    path.write_text("\n".join(lines) + "\n")
    assert path.stat().st_size < 600
    with pytest.raises(SpecError, match="aliases"):
        load_spec(path)


def test_few_aliases_still_load(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text("seed: &s 4\ndataset: {name: world, limit: *s}\n")
    assert load_spec(path).dataset.limit == 4


def test_oversized_spec_file_is_refused_before_reading(tmp_path):
    path = tmp_path / "big.yaml"
    with path.open("wb") as handle:
        handle.truncate(5_000_000)  # sparse: costs no disk
    with pytest.raises(SpecError, match="limit"):
        load_spec(path)
