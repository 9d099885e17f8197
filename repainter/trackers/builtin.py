"""The built-in trackers. Each imports its package on use, so listing them costs nothing."""

from __future__ import annotations

import io
import os
import re
import socket
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from PIL import Image

from repainter.trackers.base import TRACKERS, Tracker, TrackerError
from repainter.trackers.payload import Payload


def _leaderboard_markdown(payload: Payload) -> str:
    from repainter.report.markdown import markdown_table  # escapes labels (<, >, &, |)

    return "\n".join(markdown_table(
        list(payload.table_columns),
        [["" if v is None else str(v) for v in row] for row in payload.table_rows]))


#: MLflow 3 keeps its file store (``./mlruns``) in maintenance mode behind this variable.
ALLOW_FILE_STORE = "MLFLOW_ALLOW_FILE_STORE"


def _is_file_store(tracking_uri: str) -> bool:
    return tracking_uri.startswith("file:") or "://" not in tracking_uri


@contextmanager
def file_store_allowed(tracking_uri: str) -> Iterator[None]:
    """Inside the block MLflow opens a file-store ``tracking_uri``: ``MLFLOW_ALLOW_FILE_STORE``
    is set while it runs and removed after, so the process's environment is left as it was (a
    value the user set, even ``false``, is theirs and is kept)."""
    if not _is_file_store(tracking_uri) or ALLOW_FILE_STORE in os.environ:
        yield
        return
    os.environ[ALLOW_FILE_STORE] = "true"
    try:
        yield
    finally:
        os.environ.pop(ALLOW_FILE_STORE, None)


def default_tracking_uri() -> str:
    """``./mlruns`` of the working folder, as a file URI: where the tracker writes by default."""
    return Path("mlruns").absolute().as_uri()


@contextmanager
def mlflow_client(tracking_uri: str | None = None) -> Iterator[Any]:
    """An ``MlflowClient`` to read back what the tracker wrote (default ``./mlruns``), with the
    file store allowed inside the block as the tracker's writes have it::

        with mlflow_client() as client:
            runs = client.search_runs([client.get_experiment_by_name("repainter").experiment_id])
    """
    from mlflow.tracking import MlflowClient

    uri = tracking_uri or default_tracking_uri()
    with file_store_allowed(uri):
        yield MlflowClient(tracking_uri=uri)


#: MLflow's own HTTP retries (7 with exponential backoff by default: minutes against a refused
#: port), bounded while repainter logs unless the user set them.
_MLFLOW_HTTP_BOUNDS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
                       "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                       "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}


@contextmanager
def bounded_mlflow_http() -> Iterator[None]:
    """Inside the block MLflow's HTTP calls retry twice and time out after 10 s (unless set)."""
    added = [key for key in _MLFLOW_HTTP_BOUNDS if key not in os.environ]
    for key in added:
        os.environ[key] = _MLFLOW_HTTP_BOUNDS[key]
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)


def check_reachable(uri: str, seconds: float) -> None:
    """Raise TrackerError unless the host of an http(s) ``uri`` accepts a TCP connection within
    ``seconds``: a refused or unreachable server fails the tracker at once with the reason."""
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname, port), timeout=seconds).close()
    except OSError as exc:
        reason = "no answer" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise TrackerError(f"cannot reach the tracking server {parts.hostname}:{port} "
                           f"({reason} within {seconds:g} s)") from None


@TRACKERS.register("mlflow")
class MLflowTracker(Tracker):
    """MLflow: a local ``./mlruns`` file store by default, or any ``tracking_uri`` (a server,
    or ``sqlite:///mlflow.db`` with the full ``mlflow`` package). MLflow 3 keeps its file store in
    maintenance mode behind ``MLFLOW_ALLOW_FILE_STORE``; repainter sets it while it writes a file
    store, and :func:`mlflow_client` while it reads one back. A server is checked first (a TCP
    connection within ``connect_timeout`` s) and the whole log has ``timeout`` s."""

    extra = package = "mlflow"

    def __init__(self, tracking_uri: str | None = None, experiment: str = "repainter",
                 run_name: str | None = None, timeout: float = 120.0,
                 connect_timeout: float = 5.0):
        import mlflow  # noqa: F401 - fail at construction when the package is missing

        self.tracking_uri = tracking_uri or default_tracking_uri()
        self.experiment = experiment
        self.run_name = run_name
        self.timeout = float(timeout)
        self.connect_timeout = float(connect_timeout)

    def log(self, payload: Payload) -> str:
        check_reachable(self.tracking_uri, self.connect_timeout)
        with bounded_mlflow_http(), mlflow_client(self.tracking_uri) as client:
            where = self._log(client, payload)
        if _is_file_store(self.tracking_uri):  # others read it back only with the variable set
            where += f"; read it with {ALLOW_FILE_STORE}=true set"
        return where

    def _log(self, client: Any, payload: Payload) -> str:
        from mlflow.entities import Metric, Param, RunTag

        found = client.get_experiment_by_name(self.experiment)
        experiment_id = found.experiment_id if found else client.create_experiment(self.experiment)
        run = client.create_run(experiment_id, run_name=self.run_name or payload.run_name,
                                tags=payload.tags)
        run_id = run.info.run_id
        now = int(time.time() * 1000)
        params = [Param(_mlflow_key(k), v[:6000]) for k, v in payload.params.items()]
        metrics = [Metric(_mlflow_key(k), v, now, 0) for k, v in payload.metrics.items()]
        metrics += [Metric(_mlflow_key(k), v, now, step) for step, values in payload.curves.items()
                    for k, v in values.items()]
        for start in range(0, max(len(params), len(metrics)), 100):  # MLflow's batch limits
            client.log_batch(run_id, params=params[start:start + 100],
                             metrics=metrics[start:start + 100],
                             tags=[RunTag("source", "repainter")] if start == 0 else [])
        client.log_table(run_id, {c: [row[i] for row in payload.table_rows]
                                  for i, c in enumerate(payload.table_columns)}, "leaderboard.json")
        client.log_text(run_id, _leaderboard_markdown(payload), "leaderboard.md")
        for _caption, path in payload.images:
            client.log_artifact(run_id, str(path), "grids")
        client.set_terminated(run_id, "FINISHED" if payload.tags.get("status") == "finished"
                              else "FAILED")
        return f"{self.tracking_uri} (experiment {self.experiment}, run {run_id})"


def _mlflow_key(key: str) -> str:
    """MLflow keys allow letters, digits, ``_ - . / `` and spaces."""
    return re.sub(r"[^A-Za-z0-9_\-./ ]", "_", key)


@TRACKERS.register("tensorboard")
class TensorBoardTracker(Tracker):
    """TensorBoard event files (scalars, the leaderboard as text, image grids) in ``log_dir``
    (default ``RUN/tensorboard``); view with ``tensorboard --logdir RUN/tensorboard``."""

    extra = package = "tensorboard"

    def __init__(self, log_dir: str | None = None):
        from tensorboard.summary.writer.event_file_writer import EventFileWriter  # noqa: F401

        self.log_dir = log_dir

    def log(self, payload: Payload) -> str:
        from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, types_pb2
        from tensorboard.compat.proto.tensor_shape_pb2 import TensorShapeProto
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        folder = Path(self.log_dir) if self.log_dir else payload.run_dir / "tensorboard"
        writer = EventFileWriter(str(folder))
        now = time.time()

        def write(step: int, *values: summary_pb2.Summary.Value) -> None:
            writer.add_event(event_pb2.Event(wall_time=now, step=step,
                                             summary=summary_pb2.Summary(value=list(values))))

        write(0, *(summary_pb2.Summary.Value(tag=k, simple_value=v)
                   for k, v in payload.metrics.items()))
        for step, values in sorted(payload.curves.items()):
            write(step, *(summary_pb2.Summary.Value(tag=k, simple_value=v) for k, v in values.items()))
        text = tensor_pb2.TensorProto(
            dtype=types_pb2.DT_STRING, string_val=[_leaderboard_markdown(payload).encode("utf-8")],
            tensor_shape=TensorShapeProto(dim=[TensorShapeProto.Dim(size=1)]))
        text_meta = summary_pb2.SummaryMetadata(
            plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="text"))
        write(0, summary_pb2.Summary.Value(tag="leaderboard", metadata=text_meta, tensor=text))
        for caption, path in payload.images:
            data = path.read_bytes()
            with Image.open(io.BytesIO(data)) as img:
                width, height = img.size
            image = summary_pb2.Summary.Image(height=height, width=width, colorspace=3,
                                              encoded_image_string=data)
            write(0, summary_pb2.Summary.Value(tag=f"grids/{caption}", image=image))
        writer.flush()
        writer.close()
        return str(folder)


@TRACKERS.register("wandb")
class WandbTracker(Tracker):
    """Weights & Biases; ``mode: offline`` (the default) needs no network or account and writes
    to ``RUN/wandb`` (upload later with ``wandb sync``)."""

    extra = package = "wandb"

    def __init__(self, project: str = "repainter", mode: str = "offline", entity: str | None = None,
                 dir: str | None = None):
        import wandb  # noqa: F401

        self.project, self.mode, self.entity, self.dir = project, mode, entity, dir

    def log(self, payload: Payload) -> str:
        import wandb

        folder = Path(self.dir) if self.dir else payload.run_dir
        folder.mkdir(parents=True, exist_ok=True)
        os.environ.setdefault("WANDB_SILENT", "true")
        run = wandb.init(project=self.project, entity=self.entity, mode=self.mode,
                         dir=str(folder), name=payload.run_name, config=payload.params,
                         tags=[payload.tags.get("dataset", "")], reinit="create_new")
        try:
            for step, values in sorted(payload.curves.items()):
                run.log(values, step=step)
            run.summary.update(payload.metrics)
            run.log({"leaderboard": wandb.Table(columns=payload.table_columns,
                                                data=payload.table_rows),
                     "grids": [wandb.Image(str(path), caption=caption)
                               for caption, path in payload.images]})
            where = run.dir
        finally:
            run.finish(exit_code=0 if payload.tags.get("status") == "finished" else 1)
        return str(Path(where).parent)
