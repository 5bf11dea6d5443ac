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


def run(args: argparse.Namespace) -> None:
    """Measure, summarise, write ``--out``, print one line per configuration and framework."""
    from components.backends.base import machine

    params = load_params(args.params)
    refit = params_from(params.get(STAGE) or {})
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
        seed=TuningParams.from_section(params.get("train") or {}).seed,
    )
    frameworks = [one.card.framework for one in trained.values()]
    started = time.perf_counter()
    measured = core.measure(configs, frameworks, setup, refit)
    described = {
        name: core.describe_configuration(spec, hyper) for name, (spec, hyper) in configs.items()
    }
    figures = {
        "method": core.METHOD,
        "params": {**refit.__dict__, "threads": setup.threads},
        "machine": machine(),
        "seconds": round(time.perf_counter() - started, 2),
        "summary": core.summarise(measured["fits"], described, refit.level),
        **measured,
    }
    with staged_outputs() as staged:
        staged.write_json(args.out, figures)
    for config, entry in figures["summary"].items():
        shape = entry["configuration"]
        rates = ", ".join(
            f"{name} {rate['examples_per_s']:.0f}" for name, rate in entry["rates"].items()
        )
        print(
            f"refit: {config}'s best ({shape['architecture']}, {shape['parameters']:,} parameters, "
            f"batch {shape['batch_size']}): examples/s {rates}"
        )
