"""Experiment trackers: MLflow, Weights & Biases and TensorBoard behind one small interface.

A finished run is sent to every tracker its spec names (``runtime.trackers``), or later with
``repainter track RUN --tracker mlflow``::

    runtime:
      trackers:
        - {name: mlflow, params: {tracking_uri: null, experiment: repainter}}   # ./mlruns
        - {name: tensorboard, params: {log_dir: null}}                          # RUN/tensorboard
        - {name: wandb, params: {mode: offline, project: repainter}}            # RUN/wandb

Each receives the same :class:`~repainter.trackers.payload.Payload`: the spec as flat params,
per-model metrics with their 95% intervals, per-round curves of the best-ever selection score,
the leaderboard table and a few image grids (reference beside each model's best render).
Install with ``pip install -e '.[mlflow]'`` / ``'.[wandb]'`` / ``'.[tensorboard]'``.
MLflow 3 opens a file store such as ``./mlruns`` only with ``MLFLOW_ALLOW_FILE_STORE=true``:
read one back with ``repainter.trackers.builtin.mlflow_client()``, which sets it for its block.
"""

from repainter.trackers.base import TRACKERS, Tracker, TrackerError, track_run
from repainter.trackers.payload import Payload, build_payload

__all__ = ["TRACKERS", "Payload", "Tracker", "TrackerError", "build_payload", "track_run"]
