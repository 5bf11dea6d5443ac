"""The files that pass between stages, one typed contract each (STYLE.md 14).

Each file has a frozen dataclass and a ``load_*`` / ``dump`` pair. A missing or
malformed file fails with one line naming the file and the key, before any
expensive work; nobody else indexes the parsed JSON by string.

- ``data/clean/preprocessing.json``: :class:`Constants` (clean -> every later stage)
- ``models/<framework>/model.json``: :class:`ModelCard` (train -> evaluate, export, register)
- ``metrics/<framework>.json``: :class:`TrainingMetrics` (train -> evaluate, export)
- ``reports/comparison.json``: :class:`Comparison` (evaluate -> export, register)
- ``exports/manifest.json``: :class:`ExportManifest` (export -> register, serve)
- ``reports/parity.json``: :class:`ParityReport` (export -> register)
- ``reports/registry.json``: :class:`RegistryRecord` (register -> retrain)
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

from components.errors import BakeoffError

#: The clean stage's splits, ``data/clean/<split>.parquet``, in order.
SPLITS = ("train", "val", "test")
MODEL_CARD = "model.json"
MODEL_CARD_VERSION = 2  # 2: internal_names
CLASSIFICATION = "classification"
REGRESSION = "regression"


#: How the serving matrix holds raw values (export manifests, MLflow model metadata).
SERVING_MATRIX_NOTE = "numeric as is (NaN for a gap); categorical as vocabulary position"
#: How long an internal name may grow before it is cut (and told apart by its hash).
SAFE_NAME_LENGTH = 48


def safe_name(name: str) -> str:
    """A name every framework takes for ``name``: lower-case ASCII letters, digits and ``_``.

    TensorFlow's signature and op names, TFLite's and ONNX's input names allow
    only ``[A-Za-z0-9_.\\-/>]`` and no leading underscore, TensorFlow rewrites
    the rest itself (so ``a b`` and ``a_b`` would collide), and a SavedModel's
    signature arguments are told apart without case (``Flipper`` and
    ``flipper`` collide). A name that already qualifies is kept; any other is
    spelled in ASCII and suffixed with a hash of the original, so the result
    depends on the name alone (the same in every stage) and two names do not meet.
    """
    if re.fullmatch(r"[a-z][a-z0-9_]*", name) and len(name) <= SAFE_NAME_LENGTH:
        return name
    ascii_ = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    stem = re.sub(r"[^A-Za-z0-9]+", "_", ascii_).strip("_")[:SAFE_NAME_LENGTH]
    if not stem[:1].isalpha():
        stem = f"f_{stem}".rstrip("_")
    return f"{stem}_{hashlib.sha256(name.encode('utf-8')).hexdigest()[:8]}"


def internal_names(columns: tuple[str, ...] | list[str]) -> dict[str, str]:
    """Each of ``columns`` to its :func:`safe_name`; names a framework cannot hold apart stop here."""
    names = {column: safe_name(column) for column in columns}
    seen: dict[str, str] = {}
    for column, internal in names.items():
        clash = seen.get(internal.lower())
        if clash is not None:
            raise BakeoffError(
                f"columns '{clash}' and '{column}' both become '{internal}' inside the models; "
                "rename one"
            )
        seen[internal.lower()] = column
    return names


class ContractError(BakeoffError):
    """A file between stages is missing, not JSON, or lacks a key; the message names both."""

    def __init__(self, path: str | Path, key: str, problem: str) -> None:
        where = f"key '{key}': " if key else ""
        super().__init__(f"{path}: {where}{problem}")


def read_json(path: str | Path, produced_by: str) -> dict[str, Any]:
    """A JSON object from ``path``; a missing file says which stage writes it."""
    path = Path(path)
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ContractError(path, "", f"not found; run {produced_by} first") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ContractError(path, "", f"not valid JSON ({err})") from None
    if not isinstance(loaded, dict):
        raise ContractError(path, "", f"expected a JSON object; found {type(loaded).__name__}")
    return loaded


def write_json(path: str | Path, value: Any) -> None:
    """``value`` (a contract or plain data) as indented, sorted JSON."""
    data = value.to_dict() if hasattr(value, "to_dict") else value
    Path(path).write_text(json.dumps(data, indent=2, sort_keys=True, default=list) + "\n")


class _Reader:
    """Typed access to one parsed file's keys, each failure naming the file and key."""

    def __init__(self, data: Mapping[str, Any], path: str | Path, prefix: str = "") -> None:
        self.data, self.path, self.prefix = data, path, prefix

    def _missing(self, key: str, expected: str, found: Any = None) -> ContractError:
        shown = "missing" if found is None else f"found {found!r}"
        return ContractError(self.path, self.prefix + key, f"expected {expected}; {shown}")

    def get(
        self, key: str, kinds: type | tuple[type, ...], expected: str, default: Any = ...
    ) -> Any:
        if key not in self.data or self.data[key] is None:
            if default is not ...:
                return default
            raise self._missing(key, expected)
        value = self.data[key]
        if isinstance(value, bool) and bool not in (
            kinds if isinstance(kinds, tuple) else (kinds,)
        ):
            raise self._missing(key, expected, value)
        if not isinstance(value, kinds):
            raise self._missing(key, expected, value)
        return value

    def text(self, key: str, default: Any = ...) -> str:
        return self.get(key, str, "a string", default)

    def number(self, key: str, default: Any = ...) -> float:
        return float(self.get(key, (int, float), "a number", default))

    def whole(self, key: str, default: Any = ...) -> int:
        return int(self.get(key, int, "a whole number", default))

    def flag(self, key: str, default: Any = ...) -> bool:
        return bool(self.get(key, bool, "true or false", default))

    def names(self, key: str, default: Any = ...) -> tuple[str, ...]:
        value = self.get(key, (list, tuple), "a list of names", default)
        if not all(isinstance(item, str) for item in value):
            raise self._missing(key, "a list of names", value)
        return tuple(value)

    def mapping(self, key: str, default: Any = ...) -> dict[str, Any]:
        return dict(self.get(key, dict, "a mapping", default))

    def nested(self, key: str) -> _Reader:
        return _Reader(self.mapping(key), self.path, f"{self.prefix}{key}.")


# --- data/clean/preprocessing.json ---------------------------------------------------------


@dataclass(frozen=True)
class NumericStats:
    """A numeric feature's train-split mean and deviation; ``scale`` is the deviation, or 1."""

    mean: float
    std: float
    scale: float


@dataclass(frozen=True)
class Label:
    """The label column: its classes (classification) or its train mean and deviation."""

    name: str
    kind: str = "number"
    classes: tuple[Any, ...] = ()
    mean: float = 0.0
    std: float = 1.0


@dataclass(frozen=True)
class Constants:
    """The preprocessing constants computed once from the train split (the fairness contract)."""

    dataset: str
    task: str
    features: tuple[str, ...]
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    stats: Mapping[str, NumericStats]
    vocabularies: Mapping[str, tuple[str, ...]]
    impute: Mapping[str, Any]
    label: Label
    image_shape: tuple[int, int] | None = None
    train_rows: int = 0
    version: int = 1

    @property
    def classification(self) -> bool:
        """Whether the task is classification (else regression)."""
        return self.task == CLASSIFICATION

    @property
    def feature_order(self) -> list[str]:
        """The columns of the serving matrix, in order: numeric, then categorical."""
        return [*self.numeric, *self.categorical]

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (also what TFX's custom_config carries)."""
        data = asdict(self)
        label: dict[str, Any] = {"name": self.label.name, "kind": self.label.kind}
        if self.classification:
            label["classes"] = list(self.label.classes)
        else:
            label.update(mean=self.label.mean, std=self.label.std)
        data["label"] = label
        data["image_shape"] = list(self.image_shape) if self.image_shape else None
        return data

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], path: str | Path = "preprocessing.json"
    ) -> Constants:
        """Check and unpack the parsed file."""
        read = _Reader(data, path)
        task = read.text("task")
        if task not in (CLASSIFICATION, REGRESSION):
            raise ContractError(
                path, "task", f"expected {CLASSIFICATION} or {REGRESSION}; found {task!r}"
            )
        numeric = read.names("numeric")
        categorical = read.names("categorical")
        stats_read = read.nested("stats")
        stats = {}
        for name in numeric:
            one = stats_read.nested(name)
            stats[name] = NumericStats(one.number("mean"), one.number("std"), one.number("scale"))
        vocabularies_read = read.nested("vocabularies")
        vocabularies = {name: vocabularies_read.names(name) for name in categorical}
        impute = read.mapping("impute")
        for name in (*numeric, *categorical):
            if name not in impute:
                raise ContractError(
                    path, f"impute.{name}", "expected the feature's fill value; missing"
                )
        label_read = read.nested("label")
        if task == CLASSIFICATION:
            classes = tuple(label_read.get("classes", (list, tuple), "a list of classes"))
            if not classes:
                raise ContractError(
                    path, "label.classes", "expected at least one class; found none"
                )
            label = Label(
                label_read.text("name"), label_read.text("kind", "number"), classes=classes
            )
        else:
            label = Label(
                label_read.text("name"),
                label_read.text("kind", "number"),
                mean=label_read.number("mean"),
                std=label_read.number("std"),
            )
        shape = read.get("image_shape", (list, tuple), "[height, width] or null", None)
        if shape is not None and (len(shape) != 2 or not all(isinstance(v, int) for v in shape)):
            raise ContractError(path, "image_shape", f"expected [height, width]; found {shape!r}")
        return cls(
            dataset=read.text("dataset", "") or "bakeoff",
            task=task,
            features=read.names("features", (*numeric, *categorical)),
            numeric=numeric,
            categorical=categorical,
            stats=stats,
            vocabularies=vocabularies,
            impute=impute,
            label=label,
            image_shape=(shape[0], shape[1]) if shape else None,
            train_rows=read.whole("train_rows", 0),
            version=read.whole("version", 1),
        )


def load_constants(path: str | Path) -> Constants:
    """``data/clean/preprocessing.json``, checked."""
    return Constants.from_dict(read_json(path, "the clean stage"), path)


# --- models/<framework>/model.json ---------------------------------------------------------


@dataclass(frozen=True)
class ModelCard:
    """What every ``models/<framework>/`` folder holds beside its native artifact.

    The later stages read this, never the framework's name: ``framework`` picks
    the backend that loads ``artifact`` (a path relative to the folder).
    """

    framework: str
    artifact: str
    format: str
    task: str
    columns: tuple[str, ...]  # serving-matrix columns, in order
    categorical: Mapping[str, tuple[str, ...]]  # vocabularies of the categorical columns
    outputs: tuple[str, ...]  # class names (probabilities), or the label's name (value)
    spec: Mapping[str, Any]
    hyperparameters: Mapping[str, Any]
    study: str = ""
    trial: int = -1
    metric: str = ""
    best_val: float = float("nan")
    test: Mapping[str, float] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)  # the backend's own notes
    # Each column's name inside the native artifact (:func:`internal_names`); users
    # see and send the original names. Empty (cards before version 2): the same names.
    internal_names: Mapping[str, str] = field(default_factory=dict)
    version: int = MODEL_CARD_VERSION

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of ``model.json``."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], path: str | Path = MODEL_CARD) -> ModelCard:
        """Check and unpack a parsed ``model.json``."""
        read = _Reader(data, path)
        version = read.whole("version")
        if version > MODEL_CARD_VERSION:
            raise ContractError(
                path,
                "version",
                f"expected at most {MODEL_CARD_VERSION}; found {version} (newer bakeoff?)",
            )
        categorical = read.nested("categorical")
        return cls(
            framework=read.text("framework"),
            artifact=read.text("artifact"),
            format=read.text("format"),
            task=read.text("task"),
            columns=read.names("columns"),
            categorical={name: categorical.names(name) for name in categorical.data},
            outputs=read.names("outputs"),
            spec=read.mapping("spec"),
            hyperparameters=read.mapping("hyperparameters"),
            study=read.text("study", ""),
            trial=read.whole("trial", -1),
            metric=read.text("metric", ""),
            best_val=read.number("best_val", float("nan")),
            test={key: float(value) for key, value in read.mapping("test", {}).items()},
            extra=read.mapping("extra", {}),
            internal_names=read.mapping("internal_names", {}),
            version=version,
        )

    @classmethod
    def describe(cls, constants: Constants, **fields_: Any) -> ModelCard:
        """A card whose input and output layout are those of ``constants``."""
        return cls(
            task=constants.task,
            columns=tuple(constants.feature_order),
            internal_names=internal_names(constants.feature_order),
            categorical={name: constants.vocabularies[name] for name in constants.categorical},
            outputs=tuple(str(c) for c in constants.label.classes)
            if constants.classification
            else (constants.label.name,),
            **fields_,
        )


def load_model_card(folder: str | Path) -> ModelCard:
    """``<folder>/model.json``, checked."""
    path = Path(folder) / MODEL_CARD
    return ModelCard.from_dict(read_json(path, f"train@{Path(folder).name}"), path)


# --- metrics/<framework>.json --------------------------------------------------------------


@dataclass(frozen=True)
class TrainingMetrics:
    """What a training stage reports: its study, the best trial, the test scores, its costs.

    ``test`` is written flat (``test/accuracy``), as DVC's metrics commands show it.
    ``learning_curve`` is the best trial's per-epoch values and ``window`` the
    stage's training start and end (ms since the epoch): the later stages read
    them here, not from MLflow.
    """

    framework: str
    metric: str
    best_val: float
    best_trial: int
    best_params: Mapping[str, Any]
    best_epochs: int
    best_fit_seconds: float
    train_examples_per_s: float
    parameters: int
    training_seconds: float  # the study's wall time
    test: Mapping[str, float]
    trials: Mapping[str, int]
    blessed: bool
    pushed: bool
    cached: bool = False
    mlflow_run_id: str = ""
    component_seconds: Mapping[str, float] = field(default_factory=dict)
    peak_memory_mb: float = 0.0
    learning_curve: Mapping[str, list[float]] = field(default_factory=dict)
    window: tuple[int, int] | None = None
    runtime: Mapping[str, Any] = field(default_factory=dict)
    study: str = ""  # the Optuna study's name
    data_hash: str = ""  # tracking.data_hash of the splits and constants it trained on
    trial_epochs: int = 0  # epochs every trial of the study trained, pruned ones included
    stage_seconds: float = 0.0  # the stage process's wall time, start-up and imports included

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, test scores flat."""
        data = asdict(self)
        data.update({f"test/{name}": value for name, value in data.pop("test").items()})
        data["window"] = list(self.window) if self.window else None
        return data

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], path: str | Path = "metrics.json"
    ) -> TrainingMetrics:
        """Check and unpack a parsed metrics file."""
        read = _Reader(data, path)
        test = {key[5:]: float(v) for key, v in data.items() if key.startswith("test/")}
        if not test:
            raise ContractError(path, "test/*", "expected the test scores; found none")
        window = read.get("window", list, "[start_ms, end_ms] or null", None)
        return cls(
            framework=read.text("framework"),
            metric=read.text("metric"),
            best_val=read.number("best_val"),
            best_trial=read.whole("best_trial"),
            best_params=read.mapping("best_params"),
            best_epochs=read.whole("best_epochs", 0),
            best_fit_seconds=read.number("best_fit_seconds", 0.0),
            train_examples_per_s=read.number("train_examples_per_s", 0.0),
            parameters=read.whole("parameters"),
            training_seconds=read.number("training_seconds", 0.0),
            test=test,
            trials={key: int(value) for key, value in read.mapping("trials").items()},
            blessed=read.flag("blessed"),
            pushed=read.flag("pushed"),
            cached=read.flag("cached", False),
            mlflow_run_id=read.text("mlflow_run_id", ""),
            component_seconds=read.mapping("component_seconds", {}),
            peak_memory_mb=read.number("peak_memory_mb", 0.0),
            learning_curve=read.mapping("learning_curve", {}),
            window=(int(window[0]), int(window[1])) if window else None,
            runtime=read.mapping("runtime", {}),
            study=read.text("study", ""),
            data_hash=read.text("data_hash", ""),
            trial_epochs=read.whole("trial_epochs", 0),
            stage_seconds=read.number("stage_seconds", 0.0),
        )


def load_training_metrics(path: str | Path) -> TrainingMetrics:
    """``metrics/<framework>.json``, checked."""
    return TrainingMetrics.from_dict(read_json(path, f"train@{Path(path).stem}"), path)


# --- reports/comparison.json, exports/manifest.json ---------------------------------------


@dataclass(frozen=True)
class Compared:
    """One framework as the comparison scored it."""

    score: float  # its test score on the selection metric
    test: Mapping[str, float]  # every scalar test metric
    latency_ms: float = float("nan")  # batch-1 p50 in its native runtime
    size_bytes: int = 0
    best_trial: int = -1


@dataclass(frozen=True)
class Difference:
    """The paired bootstrap interval of ``a - b`` on the selection metric (McNemar's p for classes)."""

    a: str
    b: str
    value: float
    low: float
    high: float
    level: float
    p_value: float | None = None

    @property
    def significant(self) -> bool:
        """Whether the interval excludes zero."""
        return self.low > 0 or self.high < 0


@dataclass(frozen=True)
class Comparison:
    """What the later stages read of ``reports/comparison.json`` (the report holds more).

    ``difference`` is the winner against the runner-up (``a``, ``b`` in name
    order); ``differences`` each other framework against the ``leader`` (the
    best on the metric).
    """

    winner: str
    metric: str  # test/<metric>
    higher_is_better: bool
    scores: Mapping[str, float]  # framework -> its test score on ``metric``
    mlflow_run_id: str
    dataset: str = ""
    leader: str = ""
    runner_up: str = ""
    decided_by: str = ""
    reason: str = ""
    verdict: str = ""  # the verdict in one line (quality, what ships, the rule), for dvc exp show
    fairness: tuple[str, ...] = ()
    frameworks: Mapping[str, Compared] = field(default_factory=dict)
    difference: Difference | None = None
    differences: Mapping[str, Difference] = field(default_factory=dict)
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def metric_name(self) -> str:
        """The metric without its split (``accuracy``)."""
        return self.metric.split("/", 1)[-1]


def _optional(read: _Reader, key: str) -> _Reader:
    """The mapping under ``key``, or an empty one when it is absent."""
    return _Reader(read.mapping(key, {}), read.path, f"{read.prefix}{key}.")


def _difference(read: _Reader) -> Difference:
    interval = read.get("interval", list, "[low, high]")
    if len(interval) != 2 or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in interval
    ):
        raise read._missing("interval", "[low, high]", interval)
    return Difference(
        a=read.text("a"),
        b=read.text("b"),
        value=read.number("value"),
        low=float(interval[0]),
        high=float(interval[1]),
        level=read.number("level"),
        p_value=_optional(read, "mcnemar").number("p_value") if "mcnemar" in read.data else None,
    )


def load_comparison(path: str | Path) -> Comparison:
    """``reports/comparison.json``, checked."""
    data = read_json(path, "the evaluate stage")
    read = _Reader(data, path)
    metric = read.text("metric")
    frameworks = read.nested("frameworks")
    compared = {}
    for name in frameworks.data:
        one = frameworks.nested(name)
        test = one.nested("test")
        compared[name] = Compared(
            score=test.number(metric.split("/", 1)[-1]),
            test={
                key: float(value)
                for key, value in test.data.items()
                if isinstance(value, (int, float)) and not isinstance(value, bool)
            },
            latency_ms=_optional(_optional(one, "latency"), "batch_1").number(
                "p50_ms", float("nan")
            ),
            size_bytes=one.whole("size_bytes", 0),
            best_trial=one.whole("best_trial", -1),
        )
    winner = read.text("winner")
    if winner not in compared:
        raise ContractError(path, "winner", f"expected one of {sorted(compared)}; found {winner!r}")
    differences = _optional(read, "differences")
    return Comparison(
        winner=winner,
        metric=metric,
        higher_is_better=read.flag("higher_is_better"),
        scores={name: one.score for name, one in compared.items()},
        mlflow_run_id=read.text("mlflow_run_id", ""),
        dataset=read.text("dataset", ""),
        leader=read.text("leader", winner),
        runner_up=read.text("runner_up", ""),
        decided_by=read.text("decided_by", ""),
        reason=read.text("reason", ""),
        verdict=read.text("verdict", ""),
        fairness=read.names("fairness", ()),
        frameworks=compared,
        difference=_difference(read.nested("difference")) if "difference" in data else None,
        differences={name: _difference(differences.nested(name)) for name in differences.data},
        raw=data,
    )


@dataclass(frozen=True)
class ExportManifest:
    """What register and serve read of ``exports/manifest.json``; the export stage writes it whole."""

    framework: str  # the exported framework (its ``models/<framework>/`` folder)
    formats: Mapping[str, str]  # format -> path inside the exports folder
    source: Mapping[str, Any]
    layout: ServingLayout  # the serving matrix in, the outputs out (``input``, ``output``)
    backend: str = ""  # the model card's framework: the backend that exported it
    runtimes: Mapping[str, str] = field(default_factory=dict)  # format -> what serves it
    quantised: frozenset[str] = frozenset()
    parity_reference: str = ""  # the model every format was held to
    parity: tuple[ParityRow, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of ``manifest.json``."""
        return {
            "framework": self.framework,
            "backend": self.backend,
            "formats": {
                name: {
                    "path": path,
                    "runtime": self.runtimes.get(name, ""),
                    "quantised": name in self.quantised,
                }
                for name, path in self.formats.items()
            },
            **self.layout.to_dict(),
            "parity_reference": self.parity_reference,
            "parity": [row.to_dict() for row in self.parity],
            "source": dict(self.source),
        }


def load_export_manifest(folder: str | Path) -> ExportManifest:
    """``<exports>/manifest.json``, checked."""
    path = Path(folder) / "manifest.json"
    data = read_json(path, "the export stage")
    read = _Reader(data, path)
    formats = read.nested("formats")
    entries = {name: formats.nested(name) for name in formats.data}
    rows = read.get("parity", list, "a list of parity rows", [])
    return ExportManifest(
        framework=read.text("framework"),
        formats={name: entry.text("path") for name, entry in entries.items()},
        source=read.mapping("source"),
        layout=ServingLayout.from_manifest(data, path),
        backend=read.text("backend", ""),
        runtimes={name: entry.text("runtime", "") for name, entry in entries.items()},
        quantised=frozenset(
            name for name, entry in entries.items() if entry.flag("quantised", False)
        ),
        parity_reference=read.text("parity_reference", ""),
        parity=tuple(
            ParityRow.from_dict(_row(row, path, f"parity[{index}]"), path, f"parity[{index}].")
            for index, row in enumerate(rows)
        ),
        raw=data,
    )


def _row(value: Any, path: str | Path, key: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise ContractError(path, key, f"expected a mapping; found {value!r}")
    return value


T = TypeVar("T")


def field_names(kind: Callable[..., T]) -> tuple[str, ...]:
    """The field names of a contract dataclass (for tests and docs)."""
    return tuple(item.name for item in fields(kind))  # type: ignore[arg-type]


# --- the serving layout, reports/parity.json, reports/registry.json ------------------------


@dataclass(frozen=True)
class ServingLayout:
    """The serving matrix a model takes and what it answers: a manifest's ``input`` and ``output``.

    ``numeric``, ``categorical`` and ``vocabularies`` read as :class:`Constants`'s
    do, so a version's matrix is built with that version's own vocabularies.
    """

    columns: tuple[str, ...]  # every input column, in the manifest's order
    vocabularies: Mapping[str, tuple[str, ...]]  # of the categorical columns
    classes: tuple[str, ...] | None = None  # the probabilities' classes; None: one value a row
    value: str = ""  # what a regression model answers (the label's name)
    dtype: str = "float32"
    internal_names: Mapping[str, str] = field(default_factory=dict)  # as the model card's

    @property
    def numeric(self) -> tuple[str, ...]:
        """The numeric columns, in order (the serving matrix's first columns)."""
        return tuple(name for name in self.columns if name not in self.vocabularies)

    @property
    def categorical(self) -> tuple[str, ...]:
        """The categorical columns, in order (after the numeric ones in the matrix)."""
        return tuple(name for name in self.columns if name in self.vocabularies)

    @property
    def classification(self) -> bool:
        """Whether the model answers class probabilities (else one value a row)."""
        return self.classes is not None

    @classmethod
    def of_card(cls, card: ModelCard) -> ServingLayout:
        """The layout a model folder's card declares."""
        names = dict(card.internal_names)
        if card.task == CLASSIFICATION:
            return cls(
                card.columns, dict(card.categorical), classes=card.outputs, internal_names=names
            )
        return cls(
            card.columns, dict(card.categorical), value=card.outputs[0], internal_names=names
        )

    def to_dict(self) -> dict[str, Any]:
        """The manifest's ``input`` and ``output`` keys."""
        output: dict[str, Any] = (
            {"probabilities": list(self.classes)}
            if self.classes is not None
            else {"value": self.value}
        )
        return {
            "input": {
                "name": "inputs",
                "dtype": self.dtype,
                "columns": list(self.columns),
                "categorical": {name: list(v) for name, v in self.vocabularies.items()},
                "internal_names": dict(self.internal_names),
                "note": SERVING_MATRIX_NOTE,
            },
            "output": output,
        }

    @classmethod
    def from_manifest(
        cls, data: Mapping[str, Any], path: str | Path = "manifest.json"
    ) -> ServingLayout:
        """The ``input`` and ``output`` of a parsed manifest (the rest may be absent)."""
        read = _Reader(data, path)
        inputs = read.nested("input")
        columns = inputs.names("columns")
        categorical = _optional(inputs, "categorical")
        vocabularies = {name: categorical.names(name) for name in categorical.data}
        for name in vocabularies:
            if name not in columns:
                raise ContractError(
                    path, f"input.categorical.{name}", "expected one of input.columns; it is not"
                )
        output = read.nested("output")
        common: dict[str, Any] = {
            "dtype": inputs.text("dtype", "float32"),
            "internal_names": inputs.mapping("internal_names", {}),
        }
        if "probabilities" in output.data:
            return cls(columns, vocabularies, classes=output.names("probabilities"), **common)
        if "value" in output.data:
            return cls(columns, vocabularies, value=output.text("value"), **common)
        raise ContractError(
            path, "output", "expected probabilities (class names) or value (a name); found neither"
        )


def manifest_framework(data: Mapping[str, Any], path: str | Path = "manifest.json") -> str:
    """The framework a parsed export manifest names; empty when it names none."""
    return _Reader(data, path).text("framework", "")


@dataclass(frozen=True)
class ParityRow:
    """One export held to its reference on every test row (a row of the parity table)."""

    format: str
    quantised: bool
    rows: int
    max_abs_diff: float
    argmax_agreement: float | None  # classification only
    metric: str
    native: float
    exported: float
    metric_delta: float  # exported - native
    passed: bool
    limit: str

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of the row."""
        return asdict(self)

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], path: str | Path = "parity.json", prefix: str = ""
    ) -> ParityRow:
        """Check and unpack one parsed row."""
        read = _Reader(data, path, prefix)
        agreement = read.get("argmax_agreement", (int, float), "a number or null", None)
        return cls(
            format=read.text("format"),
            quantised=read.flag("quantised"),
            rows=read.whole("rows"),
            max_abs_diff=read.number("max_abs_diff"),
            argmax_agreement=None if agreement is None else float(agreement),
            metric=read.text("metric"),
            native=read.number("native"),
            exported=read.number("exported"),
            metric_delta=read.number("metric_delta"),
            passed=read.flag("passed"),
            limit=read.text("limit"),
        )


@dataclass(frozen=True)
class ParityReport:
    """``reports/parity.json``: every export of one framework against its reference."""

    framework: str
    float_tolerance: float
    max_metric_drop: float
    rows: tuple[ParityRow, ...]
    tolerances: Mapping[str, float] = field(default_factory=dict)  # a format's own float limit
    skipped: tuple[str, ...] = ()  # optional formats left out by export.skip_formats

    @property
    def passed(self) -> bool:
        """Whether every export kept within its limit."""
        return all(row.passed for row in self.rows)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of ``parity.json``."""
        return {
            "framework": self.framework,
            "limits": {
                "float_tolerance": self.float_tolerance,
                "max_metric_drop": self.max_metric_drop,
                "tolerances": dict(self.tolerances),
            },
            "rows": [row.to_dict() for row in self.rows],
            "skipped": {name: "export.skip_formats" for name in self.skipped},
        }


def load_parity(path: str | Path) -> ParityReport:
    """``reports/parity.json``, checked."""
    read = _Reader(read_json(path, "the export stage"), path)
    limits = read.nested("limits")
    rows = read.get("rows", list, "a list of parity rows")
    tolerances = limits.nested("tolerances") if "tolerances" in limits.data else None
    return ParityReport(
        framework=read.text("framework"),
        float_tolerance=limits.number("float_tolerance"),
        max_metric_drop=limits.number("max_metric_drop"),
        rows=tuple(
            ParityRow.from_dict(_row(row, path, f"rows[{index}]"), path, f"rows[{index}].")
            for index, row in enumerate(rows)
        ),
        tolerances={name: tolerances.number(name) for name in tolerances.data}
        if tolerances
        else {},
        skipped=tuple(sorted(read.mapping("skipped", {}))),
    )


@dataclass(frozen=True)
class RegistryRecord:
    """``reports/registry.json``: the version the register stage created, its alias and why."""

    model_name: str
    version: str
    framework: str
    alias: str  # champion, challenger, or none (a DVC experiment's version moves no alias)
    promoted: bool
    reason: str
    metric: str  # test/<metric>
    score: float  # the new version's, on today's test split
    champion_before: Mapping[str, Any]  # the champion's score and version, or why it had none
    pushed_to: str | None
    mlflow_run_id: str
    tags: Mapping[str, str]
    # The interval of the improvement over the champion (better-is-positive); none without one.
    improvement: Mapping[str, Any] | None = None
    # The DVC experiment (dvc exp run) the version was registered from; none outside one.
    experiment: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of ``registry.json``."""
        return asdict(self)


#: ``reports/comparison.md``'s last verdict line as evaluate writes it; the register stage
#: logs the report with its gate's decision in its place.
CHAMPION_PENDING = (
    "- **Champion**: the register stage's gate decides next (reports/registry.json; the "
    "report logged with the registered version carries its decision here)."
)


def load_registry_record(path: str | Path) -> RegistryRecord:
    """``reports/registry.json``, checked."""
    read = _Reader(read_json(path, "the register stage"), path)
    return RegistryRecord(
        model_name=read.text("model_name"),
        version=read.text("version"),
        framework=read.text("framework"),
        alias=read.text("alias"),
        promoted=read.flag("promoted"),
        reason=read.text("reason"),
        metric=read.text("metric"),
        score=read.number("score"),
        champion_before=read.mapping("champion_before"),
        pushed_to=read.text("pushed_to", None),
        mlflow_run_id=read.text("mlflow_run_id"),
        tags={key: str(value) for key, value in read.mapping("tags").items()},
        improvement=read.get("improvement", dict, "a mapping", None),
        experiment=read.text("experiment", None),
    )
