"""Bad input: each broken reference fails its own case with a clear reason, odd-but-valid images
are converted, and the rest of the run goes on."""

import io
import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from repainter.images import ImageLoadError, load_image
from repainter.runner import run
from repainter.spec import SpecError, build_spec


def _photo(size=(64, 48), seed=0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def _png_bytes(img: Image.Image) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    return buffer.getvalue()


def _tiff_bytes(img: Image.Image) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format="TIFF")
    return buffer.getvalue()


def _write_inputs(root):
    """name -> expected outcome: None (loads) or a phrase the error must contain."""
    root.mkdir()
    expected = {}

    def put(name, data, outcome):
        (root / name).write_bytes(data)
        expected[name] = outcome

    good = _png_bytes(_photo())
    put("good.png", good, None)
    put("truncated.png", good[: len(good) // 2], "cannot decode")
    put("zero.png", b"", "empty file")
    buffer = io.BytesIO()
    _photo().convert("CMYK").save(buffer, format="JPEG")
    put("cmyk.jpg", buffer.getvalue(), None)
    deep = Image.fromarray((np.arange(64 * 48).reshape(48, 64) * 20).astype(np.uint16))
    put("sixteen_bit.png", _png_bytes(deep), None)
    put("palette.png", _png_bytes(_photo().convert("P")), None)
    put("grey_alpha.png", _png_bytes(_photo().convert("LA")), None)
    put("rgba.png", _png_bytes(_photo().convert("RGBA")), None)
    put("tiny.png", _png_bytes(Image.new("RGB", (1, 1), "red")), "below 8 pixels")
    bomb = io.BytesIO()
    Image.new("1", (20000, 20000)).save(bomb, format="PNG")
    put("bomb.png", bomb.getvalue(), "limit")
    frames = [_photo(seed=i).convert("P") for i in range(3)]
    gif = io.BytesIO()
    frames[0].save(gif, format="GIF", save_all=True, append_images=frames[1:])
    put("animated.gif", gif.getvalue(), None)
    rotated = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees on display
    _photo(size=(64, 32)).save(rotated, format="JPEG", exif=exif)
    put("exif_rotated.jpg", rotated.getvalue(), None)
    put("vector.svg", b"<svg xmlns='http://www.w3.org/2000/svg'/>", "vector format")
    put("text.png", b"this is not an image\n", "cannot decode")
    # issue 12 item 4: a float TIFF in [0, 1] is scaled (it used to become all black and be
    # scored as normal); an all-constant reference is refused
    floats = io.BytesIO()
    Image.fromarray(np.asarray(_photo().convert("L"), dtype=np.float32) / 255.0).save(
        floats, format="TIFF")
    put("float.tif", floats.getvalue(), None)
    put("constant.png", _png_bytes(Image.new("RGB", (64, 48), (0, 0, 0))), "constant image")
    put("constant_float.tif", _tiff_bytes(Image.new("F", (64, 48), 7.0)), "constant image")
    # issue 12 item 18: the size is checked before the file is read (sparse: no disk used)
    with (root / "huge.png").open("wb") as handle:
        handle.truncate(1_500_000_000)
    expected["huge.png"] = "byte limit"
    (root / "folder.png").mkdir()
    expected["folder.png"] = "is not a regular file"
    expected["missing.png"] = "not found"
    return expected


@pytest.fixture(scope="module")
def bad_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bad")
    expected = _write_inputs(tmp / "images")
    rows = [{"id": name, "path": f"images/{name}"} for name in expected]
    (tmp / "manifest.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    spec = build_spec({"preset": "world",
        "output_dir": str(tmp / "run"),
        "dataset": {"name": "manifest", "params": {"path": str(tmp / "manifest.jsonl")}},
        "metrics": ["ssim", "color_histogram"],
        "loop": {"rounds": 1, "variants": 1},
    })
    return expected, run(spec)


def test_each_bad_item_fails_alone_with_its_reason(bad_run):
    expected, result = bad_run
    records = {r.case_id: r for r in result.records}
    assert set(records) == set(expected)
    for name, outcome in expected.items():
        record = records[name]
        if outcome is None:
            assert record.status == "done", (name, record.error)
        else:
            assert record.status == "failed", name
            assert outcome in record.error, (name, record.error)
            assert name in record.error or "images/" in record.error
    assert len(expected) >= 16


def test_odd_but_valid_images_are_converted_to_rgb(bad_run):
    _, result = bad_run
    root = result.run_dir
    rotated = Image.open(root / "references" / "exif_rotated.jpg.png")
    assert rotated.size == (32, 64)  # EXIF orientation applied
    for name in ("cmyk.jpg", "sixteen_bit.png", "palette.png", "grey_alpha.png", "rgba.png",
                 "animated.gif", "float.tif"):
        assert Image.open(root / "references" / f"{name}.png").mode == "RGB"
    floats = np.asarray(Image.open(root / "references" / "float.tif.png"), dtype=np.float64)
    grey = np.asarray(_photo().convert("L"), dtype=np.float64)
    assert np.abs(floats[..., 0] - grey).max() <= 1.0  # [0, 1] floats scaled back to 0-255


def test_bomb_is_refused_before_decoding(tmp_path):
    path = tmp_path / "bomb.png"
    Image.new("1", (9000, 9000)).save(path)
    with pytest.raises(ImageLoadError, match="exceeds"):
        load_image(path, max_pixels=1_000_000)


class NaNMetric:
    """A metric that gives NaN for every other candidate."""

    name = "flaky"
    higher_is_better = True
    needs_ground_truth = False

    def prepare(self, reference):
        return None

    def score(self, prepared, candidates):
        return [math.nan if i % 2 else 0.5 for i, _ in enumerate(candidates)]

    def similarity(self, value):
        return value

    def identity(self):
        return {"metric": "flaky"}


def test_nan_scores_are_recorded_as_none_and_never_selected(tmp_path, monkeypatch):
    from repainter.registry import METRICS

    monkeypatch.setitem(METRICS._factories, "flaky", NaNMetric)
    spec = build_spec({"preset": "world",
        "output_dir": str(tmp_path / "run"), "dataset": {"limit": 2},
        "metrics": ["ssim", "flaky"], "selection": {"ssim": 0.5, "flaky": 0.5},
        "loop": {"rounds": 1, "variants": 2}, "runtime": {"cache": False},
    })
    result = run(spec)
    for record in result.records:
        assert record.status == "done"
        second = record.rounds[0].candidates[1]
        assert second.scores["flaky"] is None and second.selection is None
        assert "non-finite" in second.invalid_reason
        assert record.best.variant == 0
    assert (result.run_dir / "results.jsonl").read_text().count("NaN") == 0


spec_values = st.one_of(st.none(), st.booleans(), st.integers(-5, 200), st.floats(allow_nan=True),
                        st.text(max_size=8), st.lists(st.integers(), max_size=3))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(["name", "seed", "judge", "loop", "selection", "metrics",
                                        "t2i", "dataset", "output_dir", "preset", "bogus"]),
                       spec_values, max_size=4))
def test_spec_parser_accepts_or_explains_anything(data):
    try:
        spec = build_spec(data)
    except SpecError as exc:
        assert str(exc)
    else:
        assert spec.fingerprint()


def test_ground_truth_metrics_are_skipped_where_there_is_no_ground_truth(bad_run, tmp_path):
    _, result = bad_run  # a manifest dataset: no ground truth
    spec = result.spec.model_copy(update={
        "output_dir": str(tmp_path / "gt"),
        "metrics": [*result.spec.metrics, type(result.spec.metrics[0])(name="object_f1")],
    })
    again = run(spec)
    done = [r for r in again.records if r.status == "done"]
    assert done and all("object_f1" not in r.final_scores for r in done)


def test_sixteen_bit_and_float_images_keep_their_brightness():
    """Issue 12 item 4: 16-bit images are mapped from their full range, not stretched by their
    own maximum; float images in [0, 1] are scaled by 255 (they used to become all black)."""
    from repainter.images import to_rgb

    dark16 = Image.fromarray(np.full((8, 8), 32768, dtype=np.uint16))  # mid-grey in 16 bits
    assert to_rgb(dark16).getpixel((0, 0)) == (128, 128, 128)
    assert to_rgb(Image.new("F", (8, 8), 0.25)).getpixel((0, 0)) == (64, 64, 64)
    assert to_rgb(Image.new("F", (8, 8), 200.0)).getpixel((0, 0)) == (200, 200, 200)
    rgba = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    assert to_rgb(rgba).getpixel((0, 0)) == (255, 255, 255)  # transparent: white, not black
