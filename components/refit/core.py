"""Training throughput measured after the studies, framework against framework on one architecture.

A figure read off a study's trial shared the machine with the other trainer and
came from whatever configuration each study chose. Here every framework trains
every framework's best configuration (its spec and hyperparameters from
``models/<name>/model.json``) for a few epochs with the same seed, batch size
and threads, one framework at a time, in interleaved repeats; so a comparison
is read on one architecture, and slow drifts of a shared machine hit all alike.

The same workers then train each framework's own best configuration again
with ``evaluate.seeds`` training seeds (the same seeds for every framework),
each for the study's epoch budget with its early stopping, and answer the test
split: the evaluate stage's verdict reads these outputs, so that it rests on
the spread over training seeds as well as over test rows.

Method, written once and quoted by the report (:data:`METHOD`).
"""

from __future__ import annotations

import json
import math
import multiprocessing
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from components import progress

METHOD = (
    "steady-state training examples/s: train rows over the median epoch time after the "
    "first epoch (validation included), each framework's fit as its study runs it; every "
    "framework trains every framework's best configuration, one process per framework, "
    "one fit at a time, repeats interleaved with the order rotated; same seed, batch size "
    "and threads; interval: Student's t over the repeats' log rates; warm-up: the first "
    "epoch's surplus over a steady one (tracing, compiling)"
)


@dataclass(frozen=True)
class RefitParams:
    """The ``refit`` section of params."""

    epochs: int = 3  # per fit: the first warms up, the rest are timed
    repeats: int = 3  # fits per framework and configuration, interleaved
    threads: int = 0  # CPU threads of every fit; 0: every core this stage may use
    level: float = 0.95  # confidence level of the intervals


SEED_METHOD = (
    "each framework's own best configuration retrained with seeds train.seed + 0 .. "
    "evaluate.seeds - 1 (the same seeds for every framework), the study's epoch cap and "
    "early stopping, its best epoch scored on the test split"
)
TIMING = "timing"  # a short fit, every epoch timed
SEED = "seed"  # a full-length fit whose best epoch answers the test split


@dataclass(frozen=True)
class Fit:
    """One fit to make: ``framework`` trains ``config``'s best configuration."""

    config: str  # whose study chose the configuration
    framework: str  # who trains it
    repeat: int
    seed: int  # added to train.seed
    kind: str = TIMING


def distinct(
    configs: Mapping[str, tuple[Mapping[str, Any], Mapping[str, Any]]],
) -> dict[str, tuple[Mapping[str, Any], Mapping[str, Any]]]:
    """The configurations once each: two studies that chose the same one share a name (``a+b``)."""
    names: dict[str, list[str]] = {}
    for name, (spec, hyper) in configs.items():
        key = json.dumps([spec, hyper], sort_keys=True)
        names.setdefault(key, []).append(name)
    return {"+".join(chosen): configs[chosen[0]] for chosen in names.values()}


def schedule(configs: Sequence[str], frameworks: Sequence[str], repeats: int) -> list[Fit]:
    """Every fit, interleaved: repeat by repeat, frameworks alternating, their order rotated."""
    fits = []
    for repeat in range(repeats):
        shift = repeat % len(frameworks)
        order = list(frameworks[shift:]) + list(frameworks[:shift])
        for config in configs:
            fits += [Fit(config, framework, repeat, seed=repeat) for framework in order]
    return fits


def seed_schedule(owners: Mapping[str, str], seeds: int) -> list[Fit]:
    """Each framework's own configuration (``owners``: framework -> config) once per seed, interleaved."""
    frameworks = sorted(owners)
    fits = []
    for seed in range(seeds):
        shift = seed % len(frameworks)
        for framework in frameworks[shift:] + frameworks[:shift]:
            fits.append(Fit(owners[framework], framework, seed, seed=seed, kind=SEED))
    return fits


def owners(configs: Mapping[str, Any]) -> dict[str, str]:
    """Framework -> the name of the configuration its study chose (names as :func:`distinct` gives)."""
    return {framework: name for name in configs for framework in name.split("+")}


def steady(epoch_seconds: Sequence[float], rows: int) -> tuple[float, float]:
    """Examples/s over the epochs after the first, and the first epoch's surplus in seconds."""
    median = float(np.median(epoch_seconds[1:] or epoch_seconds))
    return rows / median, max(0.0, epoch_seconds[0] - median)


def log_interval(values: Sequence[float], level: float) -> tuple[float, float | None, float | None]:
    """Geometric mean of positive ``values`` and a Student's t interval on their logarithms.

    One value has no interval (None: JSON's null, the report's "n/a").
    """
    from scipy import stats

    logs = np.log(np.asarray(values, dtype=float))
    centre = float(np.exp(logs.mean()))
    if len(logs) < 2:
        return centre, None, None
    half = float(
        stats.t.ppf((1 + level) / 2, len(logs) - 1) * logs.std(ddof=1) / math.sqrt(len(logs))
    )
    return centre, float(np.exp(logs.mean() - half)), float(np.exp(logs.mean() + half))


def summarise(
    results: Sequence[Mapping[str, Any]],
    configs: Mapping[str, Mapping[str, Any]],
    level: float,
) -> dict[str, Any]:
    """Per configuration: each framework's rate with its interval, and the paired ratios."""
    summary: dict[str, Any] = {}
    for config, described in configs.items():
        mine = [r for r in results if r["config"] == config]
        frameworks = sorted({r["framework"] for r in mine})
        rates: dict[str, Any] = {}
        for framework in frameworks:
            runs = [r for r in mine if r["framework"] == framework]
            centre, low, high = log_interval([r["examples_per_s"] for r in runs], level)
            rates[framework] = {
                "examples_per_s": centre,
                "interval": [low, high],
                "warm_up_s": float(np.median([r["warm_up_s"] for r in runs])),
                "repeats": len(runs),
            }
        ratios = []
        for index, first in enumerate(frameworks):
            for second in frameworks[index + 1 :]:
                paired = _paired(mine, first, second)
                centre, low, high = log_interval(paired, level)
                ratios.append(
                    {
                        "framework": first,
                        "over": second,
                        "ratio": centre,
                        "interval": [low, high],
                        "pairs": len(paired),
                    }
                )
        summary[config] = {"configuration": dict(described), "rates": rates, "ratios": ratios}
    return summary


def _paired(results: Sequence[Mapping[str, Any]], first: str, second: str) -> list[float]:
    """``first``'s rate over ``second``'s, repeat by repeat (neighbours in time)."""
    by = {(r["framework"], r["repeat"]): r["examples_per_s"] for r in results}
    repeats = sorted({r["repeat"] for r in results})
    return [
        by[(first, repeat)] / by[(second, repeat)]
        for repeat in repeats
        if (first, repeat) in by and (second, repeat) in by
    ]


def describe_configuration(spec: Mapping[str, Any], hyper: Mapping[str, Any]) -> dict[str, Any]:
    """What a configuration is, in the report's words: architecture, size, batch, optimiser."""
    from components.training.spec import ModelSpec, parameter_count

    model = ModelSpec.from_dict(spec)
    return {
        "architecture": model.kind,
        "depth": model.depth,
        "width": model.width,
        "parameters": parameter_count(model),
        "batch_size": hyper["batch_size"],
        "optimizer": hyper["optimizer"],
        "spec": dict(spec),
        "hyperparameters": dict(hyper),
    }


# --- the worker processes -----------------------------------------------------------


@dataclass(frozen=True)
class WorkerSetup:
    """What a framework's worker process needs besides the fits it is sent."""

    framework: str
    params: str
    data_dir: str
    preprocessing: str
    epochs: int
    threads: int
    seed: int  # train.seed: repeat r fits with seed + r in every framework
    full_epochs: int = 30  # train.epochs: the seed fits' cap
    patience: int = 5  # train.patience: the seed fits' early stopping


def _worker(setup: WorkerSetup, connection: Any) -> None:
    """One framework's process: configure it once, then fit what the parent sends, one at a time."""
    import pandas as pd

    from components import backends
    from components.backends.base import FitSettings, batched, runtime_settings
    from components.contracts import load_constants
    from components.params import load_params
    from components.training import features
    from components.training.driver import describe_runtime, encoded_splits, peak_memory_mb
    from components.training.fixed import fit_once
    from components.training.search import Hyperparams, TuningParams
    from components.training.spec import ModelSpec

    params = load_params(setup.params)
    backend = backends.get(setup.framework)
    runtime = replace(runtime_settings(params, setup.framework), threads=setup.threads)
    described = describe_runtime(runtime, backend.configure(runtime))
    constants = load_constants(Path(setup.preprocessing))
    started = time.perf_counter()
    data = encoded_splits(Path(setup.data_dir), constants)
    test_matrix = features.raw_matrix(
        pd.read_parquet(Path(setup.data_dir) / "test.parquet"), constants
    )
    load_seconds = time.perf_counter() - started
    metric = TuningParams.from_section(params.get("train") or {}).objective_metric(constants.task)
    connection.send({"runtime": described, "load_s": load_seconds})
    with tempfile.TemporaryDirectory() as folder:
        while (job := connection.recv()) is not None:
            fit, spec, hyper = job
            timed = fit.kind == TIMING
            settings = FitSettings(
                task=constants.task,
                metric=metric,
                epochs=setup.epochs if timed else setup.full_epochs,
                # A timing fit never stops early: every epoch is timed.
                patience=setup.epochs + 1 if timed else setup.patience,
                seed=setup.seed + fit.seed,
                trial_dir=Path(folder) / f"{fit.kind}-{fit.config}-{fit.repeat}",
                target=features.target_scale(constants),
                runtime=runtime,
                log_to_mlflow=False,
            )
            started = time.perf_counter()
            model_spec, hyperparams = ModelSpec.from_dict(spec), Hyperparams(**hyper)
            result = fit_once(backend, model_spec, hyperparams, data, settings)
            rate, warm_up = steady(result.epoch_seconds, len(data.x_train))
            answer = {
                **asdict(fit),
                "examples_per_s": rate,
                "warm_up_s": warm_up,
                "epoch_seconds": list(result.epoch_seconds),
                "seconds": time.perf_counter() - started,
            }
            if not timed:
                network = backend.load_best(result.model_path, model_spec, hyperparams, constants)
                model = backend.serving_model(network, constants)
                answer["epochs_trained"] = result.epochs
                answer["best_val"] = result.value
                answer["test_output"] = batched(partial(backend.predict, model), test_matrix)
            connection.send(answer)
    connection.send({"peak_memory_mb": peak_memory_mb()})


def measure(
    configs: Mapping[str, tuple[Mapping[str, Any], Mapping[str, Any]]],
    frameworks: Sequence[str],
    setup: WorkerSetup,
    refit: RefitParams,
    seeds: int = 0,
    say: Any = progress.say,
) -> dict[str, Any]:
    """Run the schedules across one worker process per framework; every fit's figures.

    The timing fits first, then ``seeds`` seed fits per framework; each seed
    fit's test outputs are returned apart (``test_outputs``: framework -> one
    array per seed, in seed order), its figures with the others.
    """
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no framework inherited
    workers, pipes = {}, {}
    try:
        for framework in frameworks:
            parent, child = context.Pipe()
            process = context.Process(
                target=_worker, args=(replace(setup, framework=framework), child), daemon=True
            )
            process.start()
            workers[framework], pipes[framework] = process, parent
        ready = {
            framework: _receive(pipes[framework], workers[framework]) for framework in frameworks
        }
        results, seed_fits = [], []
        outputs: dict[str, list[Any]] = {framework: [] for framework in frameworks}
        timing = schedule(list(configs), frameworks, refit.repeats)
        for fit in timing + seed_schedule(owners(configs), seeds):
            spec, hyper = configs[fit.config]
            progress.emit(
                progress.STEP,
                text=f"{fit.framework} on {fit.config}'s configuration, "
                + (f"repeat {fit.repeat + 1}" if fit.kind == TIMING else f"seed {fit.seed + 1}"),
            )
            pipes[fit.framework].send((fit, dict(spec), dict(hyper)))
            result = _receive(pipes[fit.framework], workers[fit.framework])
            if fit.kind == TIMING:
                say(
                    f"refit: {fit.framework} on {fit.config}'s configuration, repeat "
                    f"{fit.repeat + 1}: {result['examples_per_s']:.0f} examples/s"
                )
                results.append(result)
                continue
            outputs[fit.framework].append(result.pop("test_output"))
            say(
                f"refit: {fit.framework} on its own configuration, seed {setup.seed + fit.seed}: "
                f"{result['epochs_trained']} epochs, best validation {result['best_val']:.4f}"
            )
            seed_fits.append(result)
        peaks = {}
        for framework in frameworks:
            pipes[framework].send(None)
            peaks[framework] = _receive(pipes[framework], workers[framework])["peak_memory_mb"]
            workers[framework].join(timeout=60)
    finally:
        for process in workers.values():
            if process.is_alive():
                process.kill()
    return {
        "runtime": {name: ready[name]["runtime"] for name in frameworks},
        "load_s": {name: round(ready[name]["load_s"], 3) for name in frameworks},
        "peak_memory_mb": peaks,
        "fits": results,
        "seed_fits": seed_fits,
        "test_outputs": outputs,
    }


def _receive(pipe: Any, process: Any) -> dict[str, Any]:
    """The worker's next answer; a worker that died says so instead of hanging the stage."""
    from components.errors import BakeoffError

    while not pipe.poll(1.0):
        if not process.is_alive():
            raise BakeoffError(
                f"refit: the worker process exited with status {process.exitcode}; "
                "its traceback is above"
            )
    answer: dict[str, Any] = pipe.recv()
    return answer
