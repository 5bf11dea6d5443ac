"""MLflow conventions shared by both trainers (DESIGN.md, "Tracking conventions").

One experiment per data set; one parent run per stage execution, tagged with
the git commit, the DVC data hash, the stage and the framework; one nested run
per Optuna trial. Metric names are ``split/metric``.
"""

from __future__ import annotations

import fcntl
import hashlib
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from components.errors import ParamsError
from components.training.stores import experiment_name, store_root

#: ``train.tracking_uri`` when params do not say: the project's SQLite store.
DEFAULT_TRACKING_URI = "sqlite:///mlflow/mlflow.db"
TAG_COMMIT = "bakeoff.git_commit"
TAG_DATA_HASH = "bakeoff.dvc_data_hash"
TAG_STAGE = "bakeoff.stage"
TAG_FRAMEWORK = "bakeoff.framework"
TAG_STUDY = "bakeoff.optuna_study"
TAG_TRIAL = "bakeoff.optuna_trial"
TAG_STATE = "bakeoff.trial_state"
TAG_BEST = "bakeoff.best_trial"
TAG_EXPERIMENT = "bakeoff.dvc_experiment"  # the DVC experiment (dvc exp run) a record came from


def git_commit(root: Path) -> str:
    """The checked-out commit, with ``-dirty`` when tracked files differ from it."""

    def git(*args: str) -> str:
        result = subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, check=False
        )
        return result.stdout.strip() if result.returncode == 0 else ""

    commit = git("rev-parse", "HEAD") or "unknown"
    return commit + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def data_hash(paths: list[Path]) -> str:
    """One hash over the inputs' contents, built from the per-file md5 that DVC records."""
    digest = hashlib.md5(usedforsecurity=False)
    for path in sorted(paths):
        file_md5 = hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()
        digest.update(f"{path.name}:{file_md5}\n".encode())
    return digest.hexdigest()


def tracking_uri(uri: str, root: Path) -> str:
    """A tracking URI with a relative ``sqlite:///`` path made absolute against ``root``.

    Inside a queued DVC experiment's temporary copy, against the main
    repository instead (:func:`components.training.stores.store_root`).
    """
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri[len(prefix) :].startswith("/"):
        database = (store_root(root) / uri[len(prefix) :]).resolve()
        database.parent.mkdir(parents=True, exist_ok=True)
        return prefix + str(database)
    return uri


def artifact_root(root: Path) -> Path:
    """Where new MLflow experiments keep their artifacts: beside the SQLite store of ``root``."""
    return store_root(root) / "mlflow" / "artifacts"


def experiment_tags() -> dict[str, str]:
    """The tag naming the DVC experiment a run or version comes from; none outside one."""
    name = experiment_name()
    return {TAG_EXPERIMENT: name} if name else {}


def configured_uri(train: Mapping[str, Any] | None, path: str = "params.yaml") -> str:
    """``train.tracking_uri`` of a params ``train`` section (``path``), or the default store."""
    uri = (train or {}).get("tracking_uri", DEFAULT_TRACKING_URI)
    if not isinstance(uri, str) or not uri:
        raise ParamsError("train.tracking_uri", f"expected a URL; found {uri!r}", path)
    return uri


def is_server(uri: str) -> bool:
    """Whether ``uri`` names an MLflow tracking server (which has its own artifact root and UI)."""
    return uri.lower().startswith(("http://", "https://"))


def use_experiment(uri: str, dataset: str, artifact_root: Path | None) -> str:
    """Point MLflow at ``uri`` and the data set's experiment, creating it if needed; return its id.

    A new experiment keeps its artifacts under ``artifact_root``, unless ``uri``
    is a tracking server, whose own artifact root then holds them.
    """
    import mlflow

    mlflow.set_tracking_uri(uri)
    name = dataset or "bakeoff"
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is None:
        # A tracking server keeps a new experiment's artifacts in its own artifact
        # root; a local folder would leave them on the creating host only.
        location = (
            (artifact_root / name).resolve().as_uri()
            if artifact_root and not is_server(uri)
            else None
        )
        experiment_id = mlflow.create_experiment(name, artifact_location=location)
    else:
        experiment_id = experiment.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)
    return str(experiment_id)


def create_stage_run(
    client: Any, experiment_id: str, *, framework: str, root: Path, data: str, study: str
) -> Any:
    """The parent run of one training stage execution, tagged as DESIGN.md asks."""
    commit = git_commit(root)
    return client.create_run(
        experiment_id,
        run_name=f"train@{framework} {commit[:8]}",
        tags={
            TAG_STAGE: f"train@{framework}",
            TAG_FRAMEWORK: framework,
            TAG_COMMIT: commit,
            TAG_DATA_HASH: data,
            TAG_STUDY: study,
            **experiment_tags(),
        },
    )


@contextmanager
def _exclusive(lock_file: Path) -> Iterator[None]:
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with lock_file.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def prepare_stores(uri: str, storage: str, dataset: str, root: Path) -> str:
    """Point MLflow at the data set's experiment and make sure both stores exist; its id.

    ``bakeoff run`` starts both trainers at once: on a fresh project both would
    create the SQLite databases' tables and the experiment, and one would fail.
    A file lock lets the first do it and the second find it done.
    """
    import optuna

    with _exclusive(store_root(root) / "mlflow" / ".init.lock"):
        experiment = use_experiment(uri, dataset, artifact_root(root))
        optuna.storages.RDBStorage(storage)  # creates the study tables if missing
    return experiment


@contextmanager
def trial_run(
    *,
    study: str,
    trial: int,
    framework: str,
    params: Mapping[str, Any],
    finished_on: tuple[type[BaseException], ...] = (),
    parent_run_id: str | None = None,
) -> Iterator[Any]:
    """A nested run for one Optuna trial, with its hyperparameters.

    The run ends FAILED if the block raises, except for ``finished_on``
    exceptions (a pruned trial ran as intended): those end it FINISHED.
    ``parent_run_id`` names the parent when it is not the active run (in an
    Optuna worker process).
    """
    import mlflow

    tags = {TAG_STUDY: study, TAG_TRIAL: str(trial), TAG_FRAMEWORK: framework, **experiment_tags()}
    run = mlflow.start_run(
        run_name=f"trial {trial}", nested=True, tags=tags, parent_run_id=parent_run_id
    )
    try:
        mlflow.log_params(dict(params))
        yield run
    except finished_on:
        mlflow.end_run("FINISHED")
        raise
    except BaseException:
        mlflow.end_run("FAILED")
        raise
    mlflow.end_run("FINISHED")


def _native(backend: Any, model: Any, matrix: Any) -> tuple[Any, Any, dict[str, Any]]:
    """The backend's MLflow flavour, the model's answer on ``matrix``, and what both logs pass."""
    import importlib

    from mlflow.models import infer_signature

    output = backend.predict(model, matrix)
    return (
        importlib.import_module(backend.mlflow_flavour),
        output,
        {
            "signature": infer_signature(matrix, output),
            "input_example": matrix,
            "pip_requirements": backend.requirements(),
        },
    )


def log_model(backend: Any, model: Any, example: Any, columns: list[str]) -> Any:
    """Log a serving model (serving matrix in) to the active run as ``model``; its model info.

    The one place models reach MLflow in their native flavour: each backend
    names its MLflow flavour and requirements, and answers the example for the
    signature. The model takes one float32 matrix (the flavours for a
    ``tf.Module`` take arrays only), so the signature is a tensor's; the
    MLmodel's metadata names its columns, in order, by the users' own names.
    """
    from components.contracts import SERVING_MATRIX_NOTE

    flavour, _, native = _native(backend, model, example)
    return flavour.log_model(
        model,
        name="model",
        metadata={"input_columns": list(columns), "input_note": SERVING_MATRIX_NOTE},
        **native,
    )


def log_named_model(backend: Any, model: Any, rows: Any, layout: Any) -> Any:
    """Log ``model`` wrapped to take ``rows``' columns by name (``named.NamedInputs``); its info.

    ``rows`` (a few raw test rows, the users' column names) are the input
    example and give the column signature; ``layout`` (a ``ServingLayout``)
    turns them into the serving matrix inside the model.
    """
    import json
    import tempfile

    import mlflow
    from mlflow.models import infer_signature

    import components
    from components.training.features import raw_matrix
    from components.training.named import NamedInputs

    flavour, output, native = _native(backend, model, raw_matrix(rows, layout))
    with tempfile.TemporaryDirectory() as folder:
        inner, described = Path(folder) / "native", Path(folder) / "layout.json"
        flavour.save_model(model, str(inner), **native)
        described.write_text(json.dumps(layout.to_dict()))
        return mlflow.pyfunc.log_model(
            name="model",
            python_model=NamedInputs(),
            artifacts={"native": str(inner), "layout": str(described)},
            code_paths=[str(Path(components.__file__).parent)],
            signature=infer_signature(rows, output),
            input_example=rows,
            pip_requirements=backend.requirements(),
        )
