"""TFX's data components off the in-process DirectRunner, on Beam's own engines.

Beam's portability layer, the path a Flink or Spark job server takes: Beam's
local job service and an external worker pool (both ship in ``apache-beam``),
started here on localhost. The DirectRunner in ``multi_processing`` mode with
two workers is the other. Both must produce what the in-memory DirectRunner
does: the same examples in every split, the same transformed examples, the
same statistics. Then the whole TensorFlow stage (Evaluator included) runs
through the portable runner.
"""

from __future__ import annotations

import glob
import os
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from components.contracts import SPLITS
from tests.conftest import run, set_params, smoke_repository, stage_env

pytestmark = pytest.mark.slow

MULTI_PROCESSING = ("--direct_running_mode=multi_processing", "--direct_num_workers=2")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def portable(tmp_path_factory):
    """Beam's job service and an external worker pool on localhost: their Beam options."""
    job, pool = free_port(), free_port()
    logs = tmp_path_factory.mktemp("beam")
    services = [
        subprocess.Popen(
            [sys.executable, "-m", module, option],
            # The pool starts workers with `python` from PATH: this environment's. They
            # load the Keras 2 models TFX 1.16 writes, as the stage's own process does.
            env=stage_env() | {"TF_USE_LEGACY_KERAS": "1"},
            stdout=(logs / f"{name}.log").open("w"),
            stderr=subprocess.STDOUT,
        )
        for name, module, option in (
            ("job", "apache_beam.runners.portability.local_job_service_main", f"--port={job}"),
            ("pool", "apache_beam.runners.worker.worker_pool_main", f"--service_port={pool}"),
        )
    ]
    try:
        for port in (job, pool):
            deadline = time.monotonic() + 120
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    assert all(s.poll() is None for s in services), (logs / "job.log").read_text()
                    assert time.monotonic() < deadline, f"no Beam service on port {port}"
                    time.sleep(0.5)
        yield (
            "--runner=PortableRunner",
            f"--job_endpoint=localhost:{job}",
            "--environment_type=EXTERNAL",
            f"--environment_config=localhost:{pool}",
        )
    finally:
        for service in services:
            service.terminate()
            service.wait(timeout=30)


@pytest.fixture(scope="module")
def cleaned(tmp_path_factory):
    """A copy of the repository on iris, with the clean splits."""
    repo = smoke_repository(
        tmp_path_factory.mktemp("runners"),
        ingest={"name": "iris", "builtin": "iris", "image_shape": None},
        train_tensorflow={"min_accuracy": 0.0, "max_drop": 1.0},
    )
    run(["dvc", "repro", "clean"], repo)
    return repo


def data_components(repo: Path, folder: Path, beam_args: tuple[str, ...]) -> Path:
    """ExampleGen through Transform of the stage's own pipeline, with these Beam options."""
    from tfx import v1 as tfx
    from tfx.orchestration.pipeline import RunOptions

    from components.training import driver
    from pipelines.tfx_pipeline import DIRECT_RUNNER_ARGS, create_pipeline
    from pipelines.tfx_runner import stage_config

    job = driver.prepare(
        "tensorflow",
        repo / "params.yaml",
        repo / "data/clean",
        repo / "data/clean/preprocessing.json",
        repo,
    )
    config = replace(
        stage_config(job, folder / "push", repo / "schemas/iris.yaml"),
        root=folder / "root",
        metadata=folder / "metadata.sqlite",
        beam_args=DIRECT_RUNNER_ARGS + beam_args,
        enable_cache=False,
    )
    tfx.orchestration.LocalDagRunner().run(
        create_pipeline(config), run_options=RunOptions(to_nodes=["Transform"])
    )
    return folder / "root"


def records(root: Path, pattern: str) -> list:
    import tensorflow as tf

    files = sorted(glob.glob(str(root / pattern)))
    assert files, f"nothing at {root / pattern}"
    dataset = tf.data.TFRecordDataset(files, compression_type="GZIP")
    return [tf.train.Example.FromString(record.numpy()) for record in dataset]


def values(feature) -> tuple:
    kind = feature.WhichOneof("kind")
    return tuple(getattr(feature, kind).value) if kind else ()


def outputs(root: Path, split: str) -> dict:
    """A split's examples by row key, its transformed rows in order, its statistics."""
    from tensorflow_metadata.proto.v0 import statistics_pb2

    examples = {}
    for example in records(root, f"FileBasedExampleGen/examples/*/Split-{split}/*.gz"):
        row = {name: values(f) for name, f in example.features.feature.items()}
        examples[row["_row_key"][0]] = row
    transformed = np.array(
        [
            [*values(e.features.feature["inputs"]), *values(e.features.feature["label"])]
            for e in records(root, f"Transform/transformed_examples/*/Split-{split}/*.gz")
        ]
    )
    [stats_file] = glob.glob(str(root / f"StatisticsGen/statistics/*/Split-{split}/*.pb"))
    statistics = statistics_pb2.DatasetFeatureStatisticsList.FromString(
        Path(stats_file).read_bytes()
    )
    return {
        "examples": examples,
        # Workers may write rows in another order: compare them sorted.
        "transformed": transformed[np.lexsort(transformed.T[::-1])],
        "statistics": statistics.datasets[0],
    }


def numbers(statistics) -> dict:
    """Each feature's count, mean, deviation, extremes and zeros, or its distinct strings."""
    found = {"examples": statistics.num_examples}
    for feature in statistics.features:
        name = feature.path.step[0]
        if feature.HasField("num_stats"):
            one = feature.num_stats
            found[name] = [one.common_stats.num_non_missing, one.mean, one.std_dev, one.min]
            found[name] += [one.max, one.num_zeros]
        else:
            found[name] = [feature.string_stats.common_stats.num_non_missing]
            found[name] += [feature.string_stats.unique]
    return found


def test_beams_portable_and_multi_process_runners_give_the_direct_runners_outputs(
    cleaned, portable, tmp_path, monkeypatch
):
    monkeypatch.setenv("UNSUPPORTED_DO_NOT_PACKAGE_USER_MODULES", "1")  # as the stage runs it
    monkeypatch.setenv("PATH", stage_env()["PATH"])
    roots = {
        name: data_components(cleaned, tmp_path / name, beam_args)
        for name, beam_args in (("direct", ()), ("multi", MULTI_PROCESSING), ("portable", portable))
    }
    for split in SPLITS:
        expected = outputs(roots["direct"], split)
        assert expected["examples"] and len(expected["transformed"]) == len(expected["examples"])
        for runner in ("multi", "portable"):
            found = outputs(roots[runner], split)
            assert found["examples"] == expected["examples"], (runner, split)
            np.testing.assert_allclose(
                found["transformed"], expected["transformed"], rtol=0, atol=1e-6
            )
            found_numbers, expected_numbers = (
                numbers(one["statistics"]) for one in (found, expected)
            )
            assert found_numbers.keys() == expected_numbers.keys()
            for name, value in expected_numbers.items():
                assert found_numbers[name] == pytest.approx(value, rel=1e-9), (runner, split, name)


def test_the_tensorflow_stage_runs_through_the_portable_runner(cleaned, portable):
    set_params(cleaned, train_tensorflow={"beam_args": list(portable)})
    result = run(["dvc", "repro", "train@tensorflow"], cleaned)
    assert "train@tensorflow:" in result.stdout and "blessed, saved" in result.stdout
    # The Evaluator ran on the portable runner too: its blessing pushed the model.
    assert (cleaned / "models/tensorflow/model.json").is_file()
    assert os.listdir(cleaned / "tfx/root/Evaluator/evaluation")
