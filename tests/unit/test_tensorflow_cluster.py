"""What a TF_CONFIG says about the cluster, the one line a bad one fails with; the local launcher."""

from __future__ import annotations

import json
import sys
import time

import pytest

from components.backends.tensorflow.distributed import cluster, local_cluster, run_local_workers
from components.errors import BakeoffError

TWO = ["localhost:1111", "localhost:2222"]


def config(jobs: object, task: object = None) -> str:
    raw: dict[str, object] = {"cluster": jobs}
    if task is not None:
        raw["task"] = task
    return json.dumps(raw)


@pytest.mark.parametrize("text", [None, "", "  ", "{}", config({}), config(None)])
def test_no_cluster_is_one_chief_process(text):
    layout = cluster(text)
    assert (layout.workers, layout.index, layout.chief) == (1, 0, True)


@pytest.mark.parametrize(
    ("jobs", "task", "workers", "index", "chief"),
    [
        ({"worker": TWO}, {"type": "worker", "index": 0}, 2, 0, True),
        ({"worker": TWO}, {"type": "worker", "index": 1}, 2, 1, False),
        ({"worker": TWO[:1]}, {"type": "worker"}, 1, 0, True),
        ({"chief": ["h:1"], "worker": TWO}, {"type": "chief", "index": 0}, 3, 0, True),
        ({"chief": ["h:1"], "worker": TWO}, {"type": "worker", "index": 0}, 3, 1, False),
        ({"chief": ["h:1"], "worker": TWO}, {"type": "worker", "index": 1}, 3, 2, False),
    ],
)
def test_workers_index_and_chief(jobs, task, workers, index, chief):
    layout = cluster(config(jobs, task))
    assert (layout.workers, layout.index, layout.chief) == (workers, index, chief)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{not json", "TF_CONFIG: not JSON ("),
        ("[1, 2]", "TF_CONFIG: expected a JSON object; found list"),
        (config(["h:1"]), "TF_CONFIG: cluster: expected an object; found ['h:1']"),
        (config({"ps": TWO}, {"type": "ps", "index": 0}), "TF_CONFIG: cluster.ps: bakeoff trains"),
        (config({"worker": "h:1"}), "TF_CONFIG: cluster.worker: expected a list of 'host:port'"),
        (config({"worker": ["nohost"]}), "TF_CONFIG: cluster.worker: expected a list of"),
        (config({"chief": TWO}, {"type": "chief"}), "TF_CONFIG: cluster.chief: at most one"),
        (config({"worker": TWO}), 'TF_CONFIG: task: expected {"type": "worker", "index": N}'),
        (config({"worker": TWO}, {"type": "chief"}), "TF_CONFIG: task.type: expected one of"),
        (config({"worker": TWO}, {"type": "worker", "index": 2}), "task.index: expected 0 to 1"),
        (config({"worker": TWO}, {"type": "worker", "index": "0"}), "found '0'"),
        (config({"worker": TWO}, {"type": "worker", "index": True}), "found True"),
    ],
)
def test_a_bad_tf_config_fails_with_one_line(text, expected):
    with pytest.raises(BakeoffError) as raised:
        cluster(text)
    message = str(raised.value)
    assert expected in message
    assert message.startswith("TF_CONFIG: ")
    assert "\n" not in message


def test_a_local_cluster_gives_each_worker_its_place():
    configs = [cluster(text) for text in local_cluster(3)]
    assert [layout.index for layout in configs] == [0, 1, 2]
    assert {layout.workers for layout in configs} == {3}
    addresses = configs[0].jobs["worker"]
    assert len(set(addresses)) == 3
    assert all(layout.jobs == configs[0].jobs for layout in configs)


def test_local_workers_each_get_their_tf_config_and_return_their_output():
    code = "import json, os; print(json.loads(os.environ['TF_CONFIG'])['task']['index'])"
    outputs = run_local_workers([sys.executable, "-c", code], local_cluster(2), timeout=30)
    assert outputs == ["0\n", "1\n"]


def test_local_workers_that_do_not_finish_stop_with_one_line():
    started = time.monotonic()
    with pytest.raises(BakeoffError, match=r"^2 workers did not finish within 1 s$"):
        run_local_workers(
            [sys.executable, "-c", "import time; time.sleep(60)"], local_cluster(2), timeout=1
        )
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("value", [0, -2, "two"])
def test_train_tensorflow_devices_below_one_is_one_line(value) -> None:
    from components.backends.tensorflow.stage import devices
    from components.errors import ParamsError

    with pytest.raises(ParamsError, match=r"train_tensorflow\.devices"):
        devices({"devices": value})
    assert devices({}) == 1 and devices({"devices": 3}) == 3
