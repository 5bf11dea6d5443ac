"""The champion being served: loaded from the MLflow registry, swapped when the alias moves.

A :class:`ServedModel` is immutable: its ONNX Runtime session, serving layout
(from its manifest) and registry metadata together. :class:`Champion` holds the current one. A request
reads ``Champion.model`` once and uses that object to the end, so a swap in
the middle of a request never mixes two versions; the poller loads the new
version completely (download, session, a warm-up call) before it replaces the
reference, so no request waits for a load or is dropped by one.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from components.backends.base import onnx_runtime
from components.contracts import ServingLayout, manifest_framework, read_json
from components.errors import BakeoffError
from components.register.core import ONNX_PATH
from components.register.gate import CHAMPION
from components.serve.inputs import InputSpec

log = logging.getLogger("bakeoff.serve")

# A version that failed to load is tried again after this long, not on every poll:
# a broken artifact stays broken, a registry hiccup passes.
RETRY_FAILED_S = 60.0


class ChampionError(BakeoffError):
    """No champion to serve, or one that cannot be served."""


@dataclass(frozen=True)
class ServedModel:
    """One registered version, ready to answer: its session, inputs, outputs and metadata."""

    name: str
    version: str
    framework: str
    run_id: str
    spec: InputSpec
    classes: tuple[str, ...] | None  # None: a regression model answering one value per row
    predict: Callable[[np.ndarray], np.ndarray]
    layout: ServingLayout
    metrics: Mapping[str, float]
    aliases: tuple[str, ...]
    tags: Mapping[str, str]
    description: str
    loaded_at: str

    def answer(self, matrix: np.ndarray) -> dict[str, Any]:
        """The JSON body of ``POST /predict`` for a checked serving matrix."""
        output = self.predict(matrix)
        rows = len(matrix)
        if self.classes is None:
            values = output.reshape(rows, -1)[:, 0].tolist()
            predictions: list[dict[str, Any]] = [{"value": value} for value in values]
        else:
            classes = self.classes
            best = output.argmax(axis=1).tolist()
            predictions = [
                {"class": classes[top], "probabilities": dict(zip(classes, row, strict=True))}
                for top, row in zip(best, output.tolist(), strict=True)
            ]
        return {"model": self.name, "version": self.version, "predictions": predictions}

    def metadata(self) -> dict[str, Any]:
        """The JSON body of ``GET /metadata``."""
        layout = self.layout
        output: dict[str, Any] = (
            {"classes": list(self.classes)} if self.classes is not None else {"value": layout.value}
        )
        return {
            "model": self.name,
            "version": self.version,
            "framework": self.framework,
            "task": "regression" if self.classes is None else "classification",
            "aliases": list(self.aliases),
            "metrics": dict(self.metrics),
            "tags": dict(self.tags),
            "description": self.description,
            "run_id": self.run_id,
            "input": {
                "columns": list(layout.columns),
                "categorical": {name: list(v) for name, v in layout.vocabularies.items()},
                "dtype": layout.dtype,
            },
            "output": output,
            "max_batch": self.spec.max_batch,
            "loaded_at": self.loaded_at,
        }


def champion_version(client: Any, name: str) -> Any | None:
    """The registry's champion version of ``name``; None when there is no such model or alias."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException as error:
        # Any other error (an unreachable server, a broken store) is not "no champion".
        if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise


def load_version(
    client: Any, name: str, version: Any, *, threads: int, max_batch: int
) -> ServedModel:
    """Download a registered version's ONNX artifact, open it and check it answers its manifest."""
    from mlflow.exceptions import MlflowException

    number = str(version.version)
    where = f"{name} version {number}"
    with tempfile.TemporaryDirectory(prefix="bakeoff-serve-") as scratch:
        try:
            folder = Path(client.download_artifacts(version.run_id, ONNX_PATH, scratch))
            manifest = read_json(folder / "manifest.json", "the register stage")
        except Exception as error:  # MLflow, an artifact store's client, the disk, JSON
            raise ChampionError(
                f"{where}: no readable ONNX artifact in run {version.run_id} "
                f"('{ONNX_PATH}/model.onnx' and '{ONNX_PATH}/manifest.json'): {error}"
            ) from None
        try:
            # ONNX Runtime reads the whole file here; the scratch folder can go afterwards.
            predict = onnx_runtime(folder / "model.onnx", threads)
        except Exception as error:  # ONNX Runtime's errors have no common public base
            raise ChampionError(
                f"{where}: ONNX Runtime cannot load {ONNX_PATH}/model.onnx: {error}"
            ) from None
    try:
        layout = ServingLayout.from_manifest(manifest, f"{ONNX_PATH}/manifest.json")
        framework = manifest_framework(manifest, f"{ONNX_PATH}/manifest.json")
    except BakeoffError as error:
        raise ChampionError(f"{where}: {error}") from None
    spec = InputSpec.from_layout(layout, max_batch)
    classes = layout.classes
    _warm_up(where, predict, spec, classes)
    try:
        metrics = dict(client.get_run(version.run_id).data.metrics)
    except MlflowException as error:
        log.warning("%s: run %s has no readable metrics: %s", where, version.run_id, error)
        metrics = {}
    tags = dict(version.tags or {})
    return ServedModel(
        name=name,
        version=number,
        framework=framework or tags.get("bakeoff.framework", "unknown"),
        run_id=str(version.run_id),
        spec=spec,
        classes=classes,
        predict=predict,
        layout=layout,
        metrics=metrics,
        aliases=tuple(getattr(version, "aliases", None) or ()),
        tags=tags,
        description=str(version.description or ""),
        loaded_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )


def _warm_up(
    where: str,
    predict: Callable[[np.ndarray], np.ndarray],
    spec: InputSpec,
    classes: tuple[str, ...] | None,
) -> None:
    """One call on two rows before serving: the first run is slow, and shapes are checked here."""
    width = len(spec.numeric) + len(spec.categorical)
    try:
        output = predict(np.zeros((2, width), np.float32))
    except Exception as error:  # ONNX Runtime's errors have no common public base
        raise ChampionError(
            f"{where}: the ONNX model does not take the manifest's {width} input columns: {error}"
        ) from None
    expected = len(classes) if classes is not None else 1
    if output.shape[0] != 2 or output.reshape(2, -1).shape[1] != expected:
        raise ChampionError(
            f"{where}: the ONNX model answers shape {list(output.shape)} for 2 rows; "
            f"the manifest says {expected} value(s) per row"
        )


class Champion:
    """The current champion of a registered model, reloaded when the champion alias moves."""

    def __init__(self, client: Any, name: str, *, threads: int, max_batch: int) -> None:
        self.client = client
        self.name = name
        self.threads = threads
        self.max_batch = max_batch
        self._model: ServedModel | None = None
        self._refreshing = threading.Lock()
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self.checked_at: str | None = None
        self.problem: str | None = None  # why the last check did not give the champion
        self._failed: tuple[str, float] | None = None  # (version, when) of the last failed load

    @property
    def model(self) -> ServedModel:
        """The model answering now; read it once per request."""
        if self._model is None:
            raise ChampionError(f"{self.name}: no champion loaded yet")
        return self._model

    def load(self) -> ServedModel:
        """Load the champion at start; ChampionError when there is none or it cannot be served."""
        version = champion_version(self.client, self.name)
        if version is None:
            raise ChampionError(
                f"registered model '{self.name}' has no version with the alias '{CHAMPION}' "
                "(run the pipeline's register stage first, or pass --model-name)"
            )
        with self._refreshing:
            self._model = self._load(version)
        return self._model

    def refresh(self) -> bool:
        """Check the alias once and swap in its version if it moved; True when it did.

        A failed check or load keeps the current model serving and is remembered
        in ``problem`` (shown by ``GET /health``) instead of being raised.
        """
        with self._refreshing:
            self.checked_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
            try:
                version = champion_version(self.client, self.name)
            except Exception as error:  # the registry is down: keep serving what we have
                return self._keep(f"cannot read the registry: {error}")
            if version is None:
                return self._keep(f"'{self.name}' has no '{CHAMPION}' alias any more")
            current = self._model
            if current is not None and str(version.version) == current.version:
                self.problem = None
                return False
            number = str(version.version)
            if (
                self._failed is not None
                and self._failed[0] == number
                and time.monotonic() - self._failed[1] < RETRY_FAILED_S
            ):
                return False
            try:
                loaded = self._load(version)
            except ChampionError as error:
                self._failed = (number, time.monotonic())
                return self._keep(str(error))
            # One reference assignment: requests already running keep the model they read.
            self._model = loaded
            self.problem = None
            log.info(
                "serve: champion of %s moved from version %s to %s (%s)",
                self.name,
                current.version if current else "none",
                loaded.version,
                loaded.framework,
            )
            return True

    def start_polling(self, interval_s: float) -> None:
        """Check the alias every ``interval_s`` seconds on a daemon thread until :meth:`stop`."""

        def poll() -> None:
            while not self._stop.wait(interval_s):
                self.refresh()

        self._poller = threading.Thread(target=poll, name="bakeoff-serve-poller", daemon=True)
        self._poller.start()

    def stop(self) -> None:
        """Stop the poller (waiting for a load in progress to finish)."""
        self._stop.set()
        if self._poller is not None:
            self._poller.join()

    def _load(self, version: Any) -> ServedModel:
        started = time.perf_counter()
        model = load_version(
            self.client, self.name, version, threads=self.threads, max_batch=self.max_batch
        )
        log.info(
            "serve: loaded %s version %s in %.2f s",
            self.name,
            model.version,
            time.perf_counter() - started,
        )
        return model

    def _keep(self, problem: str) -> bool:
        if problem != self.problem:  # once per new problem, not once per poll
            log.warning("serve: keeping version %s: %s", self._version(), problem)
        self.problem = problem
        return False

    def _version(self) -> str:
        return self._model.version if self._model is not None else "none"
