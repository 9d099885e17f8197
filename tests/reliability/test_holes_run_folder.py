"""Issue 27, rows 1-7 and 15 and the blank ``output_dir``: a run, a meta-evaluation, an export
and DAR write only into their own folders, take the folder lock, and read only what they should.

Every test failed on ea98471 and passes now (docs/run-folder.md states the policies).
"""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from repainter.images import image_sha256, load_image
from repainter.runner import run
from repainter.spec import build_spec
from repainter.store import LOCK_FILE, RunFolderBusyError, RunFolderError


def _noise(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8))


def _images(folder: Path, names=("a.png", "b.png")) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for seed, name in enumerate(names):
        _noise(seed).save(folder / name)
    return folder


def _spec(images: Path, out: Path | str, **extra):
    return build_spec({"preset": "world", "output_dir": str(out),
                       "dataset": {"name": "folder", "params": {"path": str(images)}},
                       "metrics": ["ssim", "color_histogram"], "judge": False,
                       "loop": {"rounds": 1, "variants": 2}, **extra})


@contextmanager
def _held_by_another_writer(folder: Path):
    """The folder's lock held through a second open file: what another process would hold."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / LOCK_FILE, "a+", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        handle.write("pid 1 (run: test)\n")
        handle.flush()
        yield


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("holes")
    images = _images(root / "images")
    run(_spec(images, root / "run"))
    return root / "run"


def test_output_folder_with_its_own_spec_and_user_files_is_refused(tmp_path):
    """Row 1: the user's spec.yaml was overwritten and the run written among their files."""
    mine = tmp_path / "p"
    mine.mkdir()
    own_spec = "name: mine\nloop: {rounds: 7}\n"
    (mine / "spec.yaml").write_text(own_spec)
    (mine / "n.txt").write_text("x\n")
    with pytest.raises(RunFolderError, match="not a repainter run folder"):
        run(_spec(_images(tmp_path / "images"), mine))
    assert (mine / "spec.yaml").read_text() == own_spec
    assert sorted(p.name for p in mine.iterdir()) == ["n.txt", "spec.yaml"]
    (mine / "n.txt").unlink()  # the user's spec.yaml alone is not overwritten either
    with pytest.raises(RunFolderError, match="no run started from"):
        run(_spec(_images(tmp_path / "images"), mine))
    assert (mine / "spec.yaml").read_text() == own_spec


def test_meta_eval_run_dir_from_a_config_file_must_be_a_run_folder(tmp_path):
    """Row 2: ``run_dir:`` in a config file was not checked (``--run`` was)."""
    from repainter.cli import app

    user = tmp_path / "u"
    user.mkdir()
    (user / "mine.txt").write_text("keep")
    config = tmp_path / "c.yaml"
    config.write_text(f"run_dir: {user}\noutput_dir: {tmp_path / 'me'}\n"
                      "degradation_images: [camera]\ndegradation_size: 32\n")
    result = CliRunner().invoke(app, ["meta-eval", "-c", str(config), "--quick",
                                      "--parts", "degradations"])
    assert result.exit_code != 0
    assert "not a repainter run folder" in result.output
    assert sorted(p.name for p in user.iterdir()) == ["mine.txt"]
    assert not (tmp_path / "me").exists(), "nothing may run before the folders are checked"


def test_export_preferences_refuses_an_out_folder_with_other_files(finished_run, tmp_path):
    """Row 3: export-preferences overwrote data.jsonl in a folder of the user's files."""
    from repainter.export import ExportError, export_preferences

    out = tmp_path / "e"
    out.mkdir()
    (out / "data.jsonl").write_text("mine\n")
    with pytest.raises(ExportError, match="not an export of"):
        export_preferences(finished_run, out, force=True)
    assert (out / "data.jsonl").read_text() == "mine\n"
    fresh = tmp_path / "fresh"
    export_preferences(finished_run, fresh, force=True)
    export_preferences(finished_run, fresh, force=True)  # its own earlier export: replaced
    assert export_preferences(finished_run, out, force=True, overwrite=True).read_text() != "mine\n"


def test_non_utf8_file_name_fails_its_item_not_the_run(tmp_path):
    """Row 4: a file name that is not UTF-8 failed the whole run with a traceback."""
    images = _images(tmp_path / "images", names=("a.png",))
    latin = os.path.join(os.fsencode(images), b"latin\xe9.png")
    with open(latin, "wb") as handle:
        _noise(5).save(handle, format="PNG")
    result = run(_spec(images, tmp_path / "run"))
    by_id = {r.case_id: r for r in result.records}
    assert by_id["a"].status == "done"
    assert by_id["latin\\xe9"].status == "failed"
    assert "not valid UTF-8" in by_id["latin\\xe9"].error
    assert run(_spec(images, tmp_path / "run")).records, "a resume fails the same way, cleanly"


def test_a_reference_changed_after_its_case_finished_is_run_again(tmp_path):
    """Row 5: a finished case kept the old reference's scores after the file changed."""
    images = _images(tmp_path / "images", names=("a.png",))
    spec = _spec(images, tmp_path / "run")
    first = run(spec).records[0]
    _noise(9).save(images / "a.png")  # the user replaces the reference, then runs again
    new_digest = image_sha256(load_image(images / "a.png"))
    assert first.reference_sha256 != new_digest
    again = run(spec)
    assert again.records[0].reference_sha256 == new_digest
    assert any("changed since" in w for w in again.info.warnings)


def test_a_rescored_unfinished_run_resumes_with_the_original_command(tmp_path):
    """Row 6: rescore rewrote spec.yaml, then the original command refused the folder."""
    from repainter.rescore import rescore

    spec = _spec(_images(tmp_path / "images"), tmp_path / "run")
    run(spec, case_ids=["a"])  # an unfinished run: case b has not run yet
    rescore(tmp_path / "run", ["psnr"], report=False)
    resumed = run(spec)  # the original command, unchanged
    assert {r.case_id: r.status for r in resumed.records} == {"a": "done", "b": "done"}
    assert all("psnr" in r.final_scores for r in resumed.records), "b is scored with psnr too"
    assert resumed.info.resumed


def test_folder_dataset_refuses_symlinks_out_of_its_root(tmp_path):
    """Row 7: the folder dataset followed ../outside.png and /etc/passwd out of its root."""
    from repainter.datasets import ItemError, load_dataset

    images = _images(tmp_path / "images", names=("a.png",))
    _noise(3).save(tmp_path / "outside.png")
    (images / "o.png").symlink_to("../outside.png")
    (images / "x.png").symlink_to("/etc/passwd")
    items = {i.id: i for i in load_dataset("folder", {"path": str(images)}).items()}
    assert items["a"].load().image.size == (32, 32)
    for name in ("o", "x"):
        with pytest.raises(ItemError, match="outside the dataset folder"):
            items[name].load()
    allowed = load_dataset("folder", {"path": str(images), "allow_outside_root": True})
    assert {i.id: i for i in allowed.items()}["o"].load().image.size == (32, 32)


def test_export_preferences_and_dar_take_the_folder_lock(finished_run, tmp_path):
    """Row 15: export-preferences and dar wrote while another process held the folder."""
    from repainter.dar import load_dar_spec, run_dar_spec
    from repainter.export import ExportError, export_preferences

    with _held_by_another_writer(finished_run):
        with pytest.raises(ExportError, match="in use"):
            export_preferences(finished_run, tmp_path / "e", force=True)
    dar_dir = tmp_path / "dar"
    spec = load_dar_spec(None, [f"output_dir={dar_dir}", "dialogues.limit=1"])
    with _held_by_another_writer(dar_dir):
        with pytest.raises(RunFolderBusyError):
            run_dar_spec(spec)
    assert sorted(p.name for p in dar_dir.iterdir()) == [LOCK_FILE]


def test_blank_output_dir_is_refused_not_the_current_folder(tmp_path, monkeypatch):
    """Leftover: ``output_dir: ""`` ran in the current folder."""
    images = _images(tmp_path / "images", names=("a.png",))
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    with pytest.raises(RunFolderError, match="output_dir is empty"):
        run(_spec(images, ""))
    assert list(here.iterdir()) == []


def test_a_seeds_run_never_overwrites_another_specs_spec_yaml(tmp_path):
    """A multi-seed run wrote the folder's spec.yaml unchecked: a user's own file was lost."""
    import repainter
    from repainter.store import RunFolderError

    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "spec.yaml").write_text("name: mine\nloop: {rounds: 7}\n")
    with pytest.raises(RunFolderError, match="another spec"):
        repainter.run(None, overrides=["seeds=[0, 1]", "dataset.limit=1", "loop.rounds=1",
                                       "loop.variants=1", f"output_dir={folder}"])
    assert (folder / "spec.yaml").read_text() == "name: mine\nloop: {rounds: 7}\n"
