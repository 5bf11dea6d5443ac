"""``bakeoff refit``: the DVC stage that measures training cost after the studies.

Every framework trains every framework's best configuration, so each cost
figure that compares frameworks is read on one architecture
(:mod:`components.refit.core`). Evaluate puts the figures in the report.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from components import progress
from components.errors import ParamsError
from components.evaluate.models import add_trained_inputs, competitors
from components.outputs import staged_outputs
from components.params import fraction, load_params, whole
from components.refit import core
from components.training.search import TuningParams

STAGE = "refit"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The stage's options; the paths match dvc.yaml."""
    parser.add_argument("--params", default="params.yaml", help="the params file")
    add_trained_inputs(parser)
    parser.add_argument("--out", required=True, help="JSON file of the figures to write")
    parser.add_argument(
        "--test-outputs",
        required=True,
        help="NumPy archive of every seed fit's test outputs, one array per framework "
        "(seeds x rows [x classes]), for the evaluate stage's verdict",
    )


def params_from(raw: dict[str, Any]) -> core.RefitParams:
    """The ``refit`` section, checked and unpacked."""
    default = core.RefitParams()
    level = fraction(raw.get("level", default.level), "refit.level")
    if not 0 < level < 1:
        raise ParamsError("refit.level", f"expected a number between 0 and 1; found {level!r}")
    return core.RefitParams(
        epochs=whole(raw.get("epochs", default.epochs), "refit.epochs", 2),
        repeats=whole(raw.get("repeats", default.repeats), "refit.repeats", 1),
        threads=whole(raw.get("threads", default.threads), "refit.threads", 0),
        level=level,
    )


def seeds_from(raw: dict[str, Any]) -> int:
    """``evaluate.seeds``: training seeds per framework the verdict rests on (1 or more)."""
    return whole(raw.get("seeds", 3), "evaluate.seeds", 1)


def run(args: argparse.Namespace) -> None:
    """Measure, summarise, write ``--out``, print one line per configuration and framework."""
    import numpy as np
    import pandas as pd

    from components.backends.base import machine
    from components.contracts import load_constants
    from components.evaluate import metrics as scoring
    from components.training.features import targets

    params = load_params(args.params)
    refit = params_from(params.get(STAGE) or {})
    seeds = seeds_from(params.get("evaluate") or {})
    tuning = TuningParams.from_section(params.get("train") or {})
    constants = load_constants(args.preprocessing)
    truth = targets(pd.read_parquet(Path(args.data_dir) / "test.parquet"), constants)
    trained = competitors(Path(args.models), Path(args.metrics))
    configs = core.distinct(
        {name: (one.card.spec, one.card.hyperparameters) for name, one in trained.items()}
    )
    cores = machine()["cores"]
    setup = core.WorkerSetup(
        framework="",
        params=str(Path(args.params).resolve()),
        data_dir=str(Path(args.data_dir).resolve()),
        preprocessing=str(Path(args.preprocessing).resolve()),
        epochs=refit.epochs,
        threads=refit.threads or cores,
        seed=tuning.seed,
        full_epochs=tuning.epochs,
        patience=tuning.patience,
    )
    frameworks = [one.card.framework for one in trained.values()]
    started = time.perf_counter()
    measured = core.measure(configs, frameworks, setup, refit, seeds=seeds)
    outputs = {name: np.stack(arrays) for name, arrays in measured.pop("test_outputs").items()}
    described = {
        name: core.describe_configuration(spec, hyper) for name, (spec, hyper) in configs.items()
    }
    figures = {
        "method": core.METHOD,
        "params": {**refit.__dict__, "threads": setup.threads},
        "machine": machine(),
        "seconds": round(time.perf_counter() - started, 2),
        "summary": core.summarise(measured["fits"], described, refit.level),
        "seeds": {
            "method": core.SEED_METHOD,
            "seeds": [tuning.seed + seed for seed in range(seeds)],
            "test": {
                name: [_scalars(scoring.score(constants.task, one, truth)) for one in stacked]
                for name, stacked in outputs.items()
            },
        },
        **measured,
    }
    with staged_outputs() as staged:
        staged.write_json(args.out, figures)
        staged.write(args.test_outputs, lambda path: _save_outputs(path, outputs))
    for config, entry in figures["summary"].items():
        shape = entry["configuration"]
        rates = ", ".join(
            f"{name} {rate['examples_per_s']:.0f}" for name, rate in entry["rates"].items()
        )
        progress.say(
            f"refit: {config}'s best ({shape['architecture']}, {shape['parameters']:,} parameters, "
            f"batch {shape['batch_size']}): examples/s {rates}"
        )


def _scalars(scores: dict[str, Any]) -> dict[str, float]:
    """The single-number metrics of a score (not the per-class lists or the confusion matrix)."""
    return {name: value for name, value in scores.items() if isinstance(value, float)}


def _save_outputs(path: Path, outputs: dict[str, Any]) -> None:
    import numpy as np

    with path.open("wb") as file:
        np.savez(file, **outputs)
