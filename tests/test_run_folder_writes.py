"""Issue 28 items 4 and 5: case files written off the loop (one durable commit per case), a
re-run that reads no unchanged record, and run.json's wall time covering the whole call."""

from __future__ import annotations

import os
import time

import pytest
from PIL import Image

import repainter.images as images
import repainter.runner as runner
import repainter.store as store_module
from repainter.record_index import INDEX, LazyRecords
from repainter.runner import run
from repainter.store import RunStore
from repainter.writer import BackgroundWriter, WriterError


def test_a_case_record_is_written_only_after_its_files_are_fsynced(tmp_path, monkeypatch):
    synced: list[str] = []
    real_fsync = os.fsync

    def tracking_fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        return real_fsync(fd)

    monkeypatch.setattr(images.os, "fsync", tracking_fsync)
    store = RunStore(tmp_path)
    with store.writing_in_background():
        store.save_render("images/m/c/r1_v0.png", Image.new("RGB", (16, 16), "red"), "c")
        store.save_description("c", {"x": 1})
        record = runner.CaseRecord(case_id="c", model="m", status="failed", error="e",
                                   rounds=[], final_scores={})
        store.write_case_record(record)
        assert store.read_case_record("m", "c") is record  # served from memory while queued
    render = str(tmp_path / "images/m/c/r1_v0.png")
    record_file = [p for p in synced if "cases/m" in p and p.endswith(".tmp")]
    assert render in synced and str(tmp_path / "descriptions/c.json") in synced
    # the files of the case before its record (the record's own fsync is of its temp file)
    assert synced.index(render) < synced.index(record_file[0])
    assert store.read_case_record("m", "c").error == "e"


def test_a_failed_background_write_fails_the_run_loudly(tmp_path):
    writer = BackgroundWriter()
    writer.submit(["a"], lambda: (_ for _ in ()).throw(OSError(28, "No space left on device")))
    with pytest.raises(WriterError, match="No space left"):
        writer.flush()
    with pytest.raises(WriterError):
        writer.submit(["b"], lambda: None)
    with pytest.raises(WriterError):
        writer.close()


def test_a_rerun_of_a_finished_run_reads_no_record_and_times_the_whole_call(small_spec,
                                                                             monkeypatch):
    first = run(small_spec)
    first_ids = [r.case_id for r in first.records]  # the result's records, read from their files
    assert (small_spec.run_dir / INDEX).is_file()
    reads = []
    real = store_module.load_case_file
    monkeypatch.setattr(store_module, "load_case_file", lambda *a: reads.append(a) or real(*a))
    real_prepare = runner.prepare

    def slow_prepare(*args, **kwargs):  # time spent reading the folder must count
        time.sleep(0.3)
        return real_prepare(*args, **kwargs)

    monkeypatch.setattr(runner, "prepare", slow_prepare)
    again = run(small_spec)
    assert reads == []
    assert again.info.wall_seconds >= 0.3
    assert again.info.failures == first.info.failures
    assert again.info.render_flags == first.info.render_flags
    assert isinstance(again.records, LazyRecords) and again.failed == []
    assert [r.case_id for r in again.records] == first_ids  # read now
    assert len(reads) == len(first_ids)


def test_a_record_changed_after_indexing_is_read_again(small_spec):
    first = run(small_spec)
    record = first.records[0]
    path = small_spec.run_dir / RunStore(small_spec.run_dir).record_relpath(record.model,
                                                                           record.case_id)
    path.write_text("{not json", encoding="utf-8")  # another inode/size: the index entry is stale
    again = run(small_spec)
    assert again.info.cases.reused == len(first.records) - 1
    assert again.info.cases.done == 1
