"""Datasets: folder, manifest (JSONL / CSV, path safety, checksums), Hugging Face imagefolder."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image

from repainter.datasets import (
    DatasetError,
    FolderDataset,
    HFImageDataset,
    ItemError,
    ManifestDataset,
    load_dataset,
)
from repainter.images import ImageLoadError
from repainter.spec import build_spec


def _png(path: Path, color="red", size=(32, 24)) -> Path:
    """A ``color`` image with a black square in the lower right (a constant image is refused
    as a reference)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.new("RGB", size, color)
    img.paste((0, 0, 0), (size[0] // 2, size[1] // 2, size[0], size[1]))
    img.save(path)
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _csv(path: Path, rows: list[dict], fields: list[str]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture
def images(tmp_path) -> Path:
    root = tmp_path / "data"
    _png(root / "img" / "a.png", "red")
    _png(root / "img" / "b.png", "green", (40, 30))
    _png(root / "img" / "c.jpg", "blue")
    return root


# -- manifest: happy paths ----------------------------------------------------------------------


def test_jsonl_manifest_loads_categories_licence_and_size(images):
    manifest = _jsonl(images / "m.jsonl", [
        {"id": "a", "path": "img/a.png", "category": "warm", "license": "CC0-1.0"},
        {"id": "b", "path": "img/b.png", "category": "cool", "width": 40, "height": 30,
         "sha256": _sha(images / "img" / "b.png")},
        {"id": 3, "path": "./img/../img/c.jpg"},
    ])
    dataset = ManifestDataset(str(manifest), license="default-licence")
    items = dataset.items()
    assert [i.id for i in items] == ["a", "b", "3"]
    assert [i.category for i in items] == ["warm", "cool", "default"]
    ref = items[0].load()
    assert ref.image.size == (32, 24) and ref.image.mode == "RGB"
    assert ref.license == "CC0-1.0" and ref.category == "warm"
    assert items[1].load().license == "default-licence"
    assert items[2].load().source.endswith("c.jpg")


def test_csv_manifest_with_bom_and_quoted_fields(images):
    manifest = _csv(images / "m.csv", [
        {"id": "a", "path": "img/a.png", "category": "warm", "license": "CC-BY 4.0, attribution"},
        {"id": "b", "path": "img/b.png", "category": "", "license": ""},
    ], ["id", "path", "category", "license"])
    manifest.write_bytes(b"\xef\xbb\xbf" + manifest.read_bytes())
    items = ManifestDataset(str(manifest), license="fallback").items()
    assert [(i.id, i.category) for i in items] == [("a", "warm"), ("b", "default")]
    assert items[0].load().license == "CC-BY 4.0, attribution"
    assert items[1].load().license == "fallback"


def test_csv_manifest_needs_an_id_column(images):
    manifest = _csv(images / "m.csv", [{"name": "a", "path": "img/a.png"}], ["name", "path"])
    with pytest.raises(DatasetError, match="'id' column"):
        ManifestDataset(str(manifest)).items()


def test_select_by_category_limit_offset_and_ids(images):
    manifest = _jsonl(images / "m.jsonl", [
        {"id": f"i{n}", "path": "img/a.png", "category": "even" if n % 2 == 0 else "odd"}
        for n in range(6)
    ])
    dataset = ManifestDataset(str(manifest))
    assert [i.id for i in dataset.select(["even"])] == ["i0", "i2", "i4"]
    assert [i.id for i in dataset.select(["odd"], limit=2)] == ["i1", "i3"]
    assert [i.id for i in dataset.select(None, limit=2, offset=3)] == ["i3", "i4"]
    assert [i.id for i in dataset.select(ids=["i5", "i1"])] == ["i1", "i5"]
    with pytest.raises(DatasetError, match="unknown item ids"):
        dataset.select(ids=["nope"])
    with pytest.raises(DatasetError, match="no items in categories"):
        dataset.select(["missing"])
    with pytest.raises(DatasetError, match="after offset"):
        dataset.select(offset=10)


# -- manifest: dataset-level errors -------------------------------------------------------------


@pytest.mark.parametrize("rel", ["../outside.png", "img/../../outside.png", "/etc/passwd"])
def test_paths_that_leave_the_manifest_folder_are_rejected(images, rel):
    _png(images.parent / "outside.png")
    manifest = _jsonl(images / "m.jsonl", [{"id": "x", "path": rel}])
    with pytest.raises(DatasetError, match="leaves the manifest folder"):
        ManifestDataset(str(manifest)).items()


def test_allow_outside_root_permits_paths_outside(images):
    _png(images.parent / "outside.png", "yellow")
    manifest = _jsonl(images / "m.jsonl", [{"id": "x", "path": "../outside.png"}])
    ref = ManifestDataset(str(manifest), allow_outside_root=True).items()[0].load()
    assert ref.image.getpixel((0, 0)) == (255, 255, 0)


@pytest.mark.parametrize("rows, message", [
    ([{"id": "a", "path": "img/a.png"}, {"id": "a", "path": "img/b.png"}], "duplicate id 'a'"),
    ([{"path": "img/a.png"}], "needs an 'id'"),
    ([{"id": "a"}], "exactly one of 'path' or 'url'"),
    ([{"id": "a", "path": "img/a.png", "url": "https://example.org/a.png"}], "exactly one of"),
    ([{"id": "a", "url": "ftp://example.org/a.png"}], "must be an http"),
    ([{"id": "a", "url": "file:///etc/passwd"}], "must be an http"),
    ([{"id": "a", "path": "img/a.png", "sha256": "abc"}], "64 hexadecimal"),
    ([{"id": "a", "path": "img/a.png", "width": -3}], "positive integer"),
    ([{"id": ["a"], "path": "img/a.png"}], "must be a string"),
    ([{"id": "a\nb", "path": "img/a.png"}], "control characters"),
    ([{"id": "a", "path": "."}], "names the manifest folder"),
])
def test_malformed_rows_are_dataset_errors(images, rows, message):
    manifest = _jsonl(images / "m.jsonl", rows)
    with pytest.raises(DatasetError, match=message):
        ManifestDataset(str(manifest)).items()


@pytest.mark.parametrize("text, message", [
    ("", "lists no images"),
    ("\n\n   \n", "lists no images"),
    ("not json\n", r"m.jsonl:1: not JSON"),
    ('["a", "b"]\n', "must be a JSON object"),
])
def test_empty_or_broken_jsonl_manifest(images, text, message):
    (images / "m.jsonl").write_text(text)
    with pytest.raises(DatasetError, match=message):
        ManifestDataset(str(images / "m.jsonl")).items()


def test_empty_csv_manifest(images):
    (images / "m.csv").write_text("id,path\n")
    with pytest.raises(DatasetError, match="lists no images"):
        ManifestDataset(str(images / "m.csv")).items()


def test_missing_manifest_file(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        ManifestDataset(str(tmp_path / "nope.jsonl"))


# -- manifest: per-item errors raise from load(), not items() ---------------------------------


def test_missing_file_fails_only_its_item(images):
    manifest = _jsonl(images / "m.jsonl", [
        {"id": "ok", "path": "img/a.png"}, {"id": "gone", "path": "img/missing.png"},
    ])
    items = ManifestDataset(str(manifest)).items()
    assert items[0].load().id == "ok"
    with pytest.raises(ItemError, match="gone: .*missing.png not found"):
        items[1].load()


def test_sha256_mismatch_fails_the_item_with_both_digests(images):
    good = _sha(images / "img" / "a.png")
    manifest = _jsonl(images / "m.jsonl", [
        {"id": "good", "path": "img/a.png", "sha256": good.upper()},
        {"id": "bad", "path": "img/b.png", "sha256": good},
    ])
    items = ManifestDataset(str(manifest)).items()
    assert items[0].load().id == "good"
    with pytest.raises(ItemError, match=f"bad: sha256 mismatch.*expects {good}"):
        items[1].load()


def test_symlink_out_of_root_is_rejected(images):
    outside = _png(images.parent / "secret.png", "white")
    (images / "img" / "link.png").symlink_to(outside)
    (images / "img" / "inside.png").symlink_to(images / "img" / "a.png")
    manifest = _jsonl(images / "m.jsonl", [
        {"id": "link", "path": "img/link.png"}, {"id": "inside", "path": "img/inside.png"},
    ])
    items = ManifestDataset(str(manifest)).items()
    with pytest.raises(ItemError, match="outside the manifest folder"):
        items[0].load()
    assert items[1].load().image.getpixel((0, 0)) == (255, 0, 0)
    # a symlinked directory is caught the same way
    (images / "linkdir").symlink_to(images.parent)
    manifest = _jsonl(images / "m2.jsonl", [{"id": "via-dir", "path": "linkdir/secret.png"}])
    with pytest.raises(ItemError, match="outside the manifest folder"):
        ManifestDataset(str(manifest)).items()[0].load()


def test_size_mismatch_and_undecodable_file_fail_the_item(images):
    (images / "img" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    manifest = _jsonl(images / "m.jsonl", [
        {"id": "size", "path": "img/a.png", "width": 10, "height": 10},
        {"id": "rotated", "path": "img/a.png", "width": 24, "height": 32},
        {"id": "broken", "path": "img/broken.png"},
    ])
    items = ManifestDataset(str(manifest)).items()
    with pytest.raises(ItemError, match="32x24, the manifest says 10x10"):
        items[0].load()
    assert items[1].load().image.size == (32, 24)
    with pytest.raises(ImageLoadError, match="cannot decode"):
        items[2].load()


def test_a_run_goes_on_past_a_broken_item_and_records_the_licence(images, tmp_path):
    manifest = _jsonl(images / "m.jsonl", [
        {"id": "a", "path": "img/a.png", "category": "warm", "license": "CC0-1.0"},
        {"id": "gone", "path": "img/missing.png"},
    ])
    import repainter

    spec = build_spec({"preset": "world",
        "output_dir": str(tmp_path / "run"),
        "dataset": {"name": "manifest", "params": {"path": str(manifest)}},
        "metrics": ["ssim", "color_histogram"], "judge": False,
        "loop": {"rounds": 1, "variants": 1},
    })
    result = repainter.run(spec)
    by_id = {r.case_id: r for r in result.records}
    assert by_id["a"].status == "done" and by_id["a"].license == "CC0-1.0"
    assert by_id["gone"].status == "failed" and "not found" in by_id["gone"].error


# -- property: the parser never escapes the root and fails only with DatasetError ---------------

_segments = st.sampled_from(["..", ".", "img", "a.png", "", "~", "/", "\\", "..\\..", "%2e%2e",
                             "\x00", "é", " ", "img/a.png", "../img", "b.png", "img//"])
_paths = st.one_of(
    st.sampled_from(["img/a.png", "./img/a.png", "img/../img/a.png", "img/b.png", "img//a.png"]),
    st.lists(_segments, min_size=1, max_size=6).map("/".join),
    st.lists(_segments, min_size=1, max_size=6).map("".join),
    st.text(alphabet=string.printable + "é\x00", max_size=30),
)
_good_ids = st.text(alphabet=string.ascii_letters + string.digits + "-_. é/<>", min_size=1, max_size=10)
_ids = st.one_of(_good_ids, _good_ids, _good_ids, st.text(max_size=12), st.integers(), st.none(),
                 st.booleans(), st.lists(st.integers(), max_size=2), st.floats(allow_nan=True))
_row = st.fixed_dictionaries(
    {"id": _ids, "path": _paths},
    optional={"sha256": st.one_of(st.none(), st.just(""), st.text(max_size=70),
                                  st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)),
              "width": st.one_of(st.none(), st.integers(), st.text(max_size=3))},
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(_row, min_size=1, max_size=4, unique_by=lambda r: repr(r["id"])), as_csv=st.booleans())
def test_manifest_parser_property(tmp_path_factory, rows, as_csv):
    root = tmp_path_factory.mktemp("prop") / "ds"
    _png(root / "img" / "a.png")
    if as_csv:
        clean = [{k: ("" if v is None else str(v)) for k, v in r.items()} for r in rows]
        clean = [{k: v.replace("\x00", "") for k, v in r.items()} for r in clean]
        manifest = _csv(root / "m.csv", clean, ["id", "path", "sha256", "width"])
    else:
        manifest = root / "m.jsonl"
        manifest.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    dataset = ManifestDataset(str(manifest))
    try:
        entries = dataset.entries()
    except DatasetError:
        event("rejected")
        return
    event("accepted")
    resolved_root = root.resolve()
    assert entries and len({e.id for e in entries}) == len(entries)
    for entry in entries:
        assert entry.path is not None and entry.path.is_relative_to(resolved_root)
        assert os.path.normpath(entry.path) == str(entry.path)
    for item in dataset.items():
        try:
            ref = item.load()
        except (ItemError, ImageLoadError):
            continue
        assert Path(ref.source).resolve().is_relative_to(resolved_root)


# -- folder -------------------------------------------------------------------------------------


def test_folder_dataset_categories_and_unique_ids(tmp_path):
    _png(tmp_path / "cats" / "x.png")
    _png(tmp_path / "cats" / "x.jpg", "blue")
    _png(tmp_path / "dogs" / "deep" / "y.png")
    _png(tmp_path / "top.png")
    _png(tmp_path / ".hidden" / "z.png")
    (tmp_path / "notes.txt").write_text("not an image")
    dataset = load_dataset("folder", {"path": str(tmp_path), "license": "CC0-1.0"})
    items = dataset.items()
    assert sorted(i.id for i in items) == ["cats__x.jpg", "cats__x.png", "dogs__deep__y", "top"]
    assert {i.id: i.category for i in items}["dogs__deep__y"] == "dogs"
    assert {i.id: i.category for i in items}["top"] == "default"
    assert items[0].load().license == "CC0-1.0"
    assert [i.id for i in dataset.select(["dogs"])] == ["dogs__deep__y"]


def test_folder_dataset_errors(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        FolderDataset(str(tmp_path / "nope"))
    with pytest.raises(DatasetError, match="holds no images"):
        FolderDataset(str(tmp_path)).items()
    (tmp_path / "bad.png").write_bytes(b"")
    item = FolderDataset(str(tmp_path)).items()[0]
    with pytest.raises(ImageLoadError, match="empty file"):
        item.load()


# -- Hugging Face -------------------------------------------------------------------------------


def _hf():
    hf = pytest.importorskip("datasets")
    if not hasattr(hf, "load_dataset"):
        pytest.skip("Hugging Face datasets is not installed")
    return hf


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    hf = _hf()
    monkeypatch.setattr(hf.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache", raising=False)
    return tmp_path / "hf-cache"


def test_hf_imagefolder_lazy_decode_and_categories(tmp_path, hf_cache):
    folder = tmp_path / "imgs"
    _png(folder / "portrait" / "p1.png", "red")
    _png(folder / "portrait" / "p2.png", "green")
    _png(folder / "scene" / "s1.png", "blue", (20, 10))
    dataset = load_dataset("hf", {"path": "imagefolder", "data_dir": str(folder),
                                  "category_column": "label", "license": "CC0-1.0",
                                  "cache_dir": str(hf_cache)})
    assert isinstance(dataset, HFImageDataset)
    items = dataset.items()
    assert len(items) == 3
    assert sorted(i.category for i in items) == ["portrait", "portrait", "scene"]
    assert dataset._ds.features["image"].decode is False  # images decode on load only
    scene = next(i for i in items if i.category == "scene")
    ref = scene.load()
    assert ref.image.size == (20, 10) and ref.image.mode == "RGB"
    assert ref.license == "CC0-1.0" and ref.source.startswith("hf:imagefolder")
    assert [i.id for i in dataset.select(["scene"])] == [scene.id]


def test_hf_id_column_and_missing_column(tmp_path, hf_cache):
    folder = tmp_path / "imgs"
    _png(folder / "a.png")
    _png(folder / "b.png")
    (folder / "metadata.jsonl").write_text(
        '{"file_name": "a.png", "name": "alpha"}\n{"file_name": "b.png", "name": "beta"}\n')
    base = {"path": "imagefolder", "data_dir": str(folder), "cache_dir": str(hf_cache)}
    items = load_dataset("hf", {**base, "id_column": "name"}).items()
    assert sorted(i.id for i in items) == ["alpha", "beta"]
    assert items[0].load().image.mode == "RGB"
    with pytest.raises(DatasetError, match="no column 'nope'"):
        load_dataset("hf", {**base, "category_column": "nope"}).items()


def test_hf_unavailable_hub_dataset_is_a_clear_error(tmp_path, hf_cache, monkeypatch):
    hf = _hf()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hf.config, "HF_HUB_OFFLINE", True, raising=False)
    try:
        import huggingface_hub.constants as hub_constants

        monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True, raising=False)
    except ImportError:
        pass
    dataset = HFImageDataset("repainter-test/definitely-not-a-dataset",
                             cache_dir=str(hf_cache))
    with pytest.raises(DatasetError) as info:
        dataset.items()
    message = str(info.value)
    assert "repainter-test/definitely-not-a-dataset" in message
    assert "imagefolder" in message and "offline" in message.lower()
