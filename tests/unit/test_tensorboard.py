"""Each trial's TensorBoard event file, read back with TensorBoard's own reader; the command."""

from __future__ import annotations

import argparse

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from components.backends.base import FitSettings
from components.errors import BakeoffError
from components.training.epochs import EpochLog
from pipelines import tensorboard


def test_every_epochs_values_are_scalars_tensorboard_reads(tmp_path):
    log = EpochLog(log_to_mlflow=False, events=tmp_path / "trial-0003")
    for epoch, (loss, accuracy) in enumerate([(1.5, 0.5), (0.75, 0.8)]):
        log.begin()
        log.end({"train/loss": loss, "val/accuracy": accuracy}, epoch)
    events = EventAccumulator(str(tmp_path / "trial-0003"))
    events.Reload()
    assert set(events.Tags()["scalars"]) == {"train/loss", "val/accuracy", "epoch_seconds"}
    assert [(s.step, s.value) for s in events.Scalars("val/accuracy")] == [
        (0, pytest.approx(0.5)),
        (1, pytest.approx(0.8)),
    ]


def test_without_a_folder_no_event_file_is_written(tmp_path):
    log = EpochLog(log_to_mlflow=False)
    log.begin()
    log.end({"train/loss": 1.0}, 0)
    assert log._writer is None


def test_a_trial_writes_under_its_studys_folder_and_followers_write_nothing(tmp_path):
    settings = FitSettings("classification", "val/accuracy", 1, 1, 0, tmp_path, None)
    assert settings.events(3) is None
    settings = FitSettings(
        "classification", "val/accuracy", 1, 1, 0, tmp_path, None, events_dir=tmp_path / "s"
    )
    assert settings.events(3) == tmp_path / "s" / "trial-0003"
    follower = settings.follower()
    assert follower.events(3) is None and not follower.log_to_mlflow


def test_the_server_serves_the_log_folder_on_loopback(tmp_path):
    board = tensorboard.server(tmp_path, "127.0.0.1", 6006)
    assert (board.flags.logdir, board.flags.host, board.flags.port) == (
        str(tmp_path),
        "127.0.0.1",
        6006,
    )


def test_no_log_folder_is_one_line(tmp_path):
    args = argparse.Namespace(logdir=str(tmp_path / "none"), host="127.0.0.1", port=6006)
    with pytest.raises(BakeoffError, match="no TensorBoard event files yet"):
        tensorboard.run(args)
