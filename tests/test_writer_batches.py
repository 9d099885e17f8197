"""The run's writer gathers queued jobs and runs them in one go (issue 28: one hand-over of the
interpreter per batch, not per job), in order; a reader or a full queue never waits for the
gathering."""

import threading

from repainter.writer import BackgroundWriter

FOREVER = 3600.0  # a linger no test could wait out: only a wake-up ends it


def test_jobs_wait_for_the_batch_and_run_in_order_when_flushed():
    writer = BackgroundWriter(linger=FOREVER)
    done = []
    for i in range(5):
        writer.submit([f"k{i}"], lambda i=i: done.append(i))
    assert done == [] and writer.pending("k0")  # still gathering
    writer.flush()
    assert done == [0, 1, 2, 3, 4] and not writer.pending("k4")
    writer.close()


def test_a_reader_settling_a_key_wakes_the_writer():
    writer = BackgroundWriter(linger=FOREVER)
    done = []
    writer.submit(["render.png"], lambda: done.append("render"))
    writer.settle("render.png")
    assert done == ["render"]
    writer.close()


def test_a_full_queue_wakes_the_writer_instead_of_waiting_for_the_batch():
    writer = BackgroundWriter(max_queued=2, linger=FOREVER)
    done = []
    submitter = threading.Thread(
        target=lambda: [writer.submit([f"k{i}"], lambda i=i: done.append(i)) for i in range(6)])
    submitter.start()
    submitter.join(timeout=60)
    assert not submitter.is_alive(), "the loop waited on a full queue the writer never drained"
    writer.close()
    assert done == list(range(6))


def test_close_runs_what_is_still_gathering():
    writer = BackgroundWriter(linger=FOREVER)
    done = []
    writer.submit(["k"], lambda: done.append(1))
    writer.close()
    assert done == [1]
