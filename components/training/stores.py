"""Where the embedded stores live, inside and outside a DVC experiment (README, "Experiments").

A queued ``dvc exp run`` runs the graph in a temporary copy of the repository,
``<repo>/.dvc/tmp/exps/tmpXXXX``, deleted once its outputs are committed to
the experiment's ref. Relative store paths resolved there would point at
throwaway stores. DVC tells each stage where it runs (DVC 3.x,
``dvc/repo/experiments/queue/base.py``): ``DVC_EXP_NAME`` names the
experiment and ``DVC_ROOT`` is the main repository, not the copy. So in such a
copy the stores that keep records across runs resolve against the main
repository: the MLflow database and artifacts, the Optuna studies, and each
trial's checkpoint and event files (a resumed study's best trial may have been
trained by another run, and is loaded from its checkpoint). TFX's pipeline
root and ML Metadata stay in the copy, and go with it: they are TFX's cache
and the Evaluator's baseline, which an experiment must not change for the
main repository's runs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

#: Set by DVC for every stage of an experiment (workspace or queued): the experiment's name.
DVC_EXP_NAME = "DVC_EXP_NAME"
#: Set by DVC for every stage: the repository's root; in a queued experiment, the main one.
DVC_ROOT = "DVC_ROOT"
#: Where DVC puts a queued experiment's temporary copies, under the main repository.
EXPERIMENT_COPIES = Path(".dvc") / "tmp" / "exps"


def experiment_name(environ: Mapping[str, str] | None = None) -> str | None:
    """The DVC experiment a stage runs in (``dvc exp run``), or ``None`` outside one."""
    name = (os.environ if environ is None else environ).get(DVC_EXP_NAME, "").strip()
    return name or None


def store_root(workspace: Path, environ: Mapping[str, str] | None = None) -> Path:
    """The folder relative store paths resolve against: the one place this is decided.

    ``workspace`` (the stage's repository root) everywhere but in a queued
    experiment's temporary copy, where it is the main repository ``DVC_ROOT``
    names. A workspace ``dvc exp run`` runs in the repository itself.
    """
    env = os.environ if environ is None else environ
    main = env.get(DVC_ROOT, "")
    if experiment_name(env) is None or not main:
        return workspace
    main_root = Path(main).resolve()
    if workspace.resolve().is_relative_to(main_root / EXPERIMENT_COPIES):
        return main_root
    return workspace
