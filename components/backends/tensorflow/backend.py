"""The TensorFlow backend: Keras trials inside the TFX Trainer, a SavedModel as the native artifact."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from components.backends.base import (
    ALONE,
    EAGER,
    FOLLOWER,
    LEADER,
    TFX,
    Bundle,
    FitSettings,
    Loaded,
    RuntimeSettings,
    SplitArrays,
    batched,
    onnx_runtime,
    size_on_disk,
)
from components.backends.tensorflow.export import OPTIONAL
from components.contracts import Constants, ModelCard

RUNTIMES = {
    "savedmodel": "TensorFlow (tf.saved_model.load, serving_default)",
    "tflite": "TFLite interpreter",
    "tflite_dynamic_range": "TFLite interpreter",
    "onnx": "ONNX Runtime (CPU)",
    "tfjs": "TensorFlow.js (@tensorflow/tfjs, pure-JavaScript CPU backend) in Node.js",
    EAGER: "the framework's own model called eagerly",
}


def environment() -> None:
    """What TensorFlow must find in the environment before it is imported."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # TFX 1.16 and TF Transform need Keras 2
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


_TRIAL, _DONE = "trial", "done"  # the chief's announcements to the other workers


class TensorflowBackend:
    """TensorFlow/Keras (see the Protocol in ``components.backends.base``).

    ``transform`` is the TF Transform output the TFX Trainer hands ``run_fn``:
    the saved model carries its graph, so it serves raw features and tf.Examples.
    """

    name = "tensorflow"
    orchestrator = TFX
    mlflow_flavour = "mlflow.tensorflow"
    optional_formats = OPTIONAL  # TF.js: it needs .venv-tfjs and Node.js

    def __init__(self, transform: Any = None) -> None:
        self.transform = transform
        self._chief = False  # leads several workers (``processes``)
        self._workers = 1

    def environment(self, runtime: RuntimeSettings) -> dict[str, str]:
        """oneDNN, the thread pools' sizes and GPU memory growth: TensorFlow reads them at import."""
        variables = {}
        if runtime.onednn != "default":
            # TensorFlow 2.16 turns oneDNN on by itself only on CPUs with AVX-512-class
            # features; on an AVX2 CPU the digits CNN trained ~10x slower without it.
            variables["TF_ENABLE_ONEDNN_OPTS"] = "1" if runtime.onednn else "0"
        if runtime.threads:
            variables["TF_NUM_INTRAOP_THREADS"] = str(runtime.threads)
        if runtime.threads or runtime.inter_op_threads:
            variables["TF_NUM_INTEROP_THREADS"] = str(_inter_op(runtime))
        if runtime.memory_growth:
            variables["TF_FORCE_GPU_ALLOW_GROWTH"] = "true"
        return variables

    def configure(self, runtime: RuntimeSettings) -> dict[str, Any]:
        """Threads, GPU memory, precision and compiling, before any op runs; TensorFlow's own answers."""
        os.environ.update(self.environment(runtime))  # a no-op when the command set them already
        environment()
        import tensorflow as tf

        # The stage's runner configures the process before the pipeline runs; the
        # Trainer's run_fn configures it again, and TensorFlow refuses to change
        # its thread pools or devices once they exist, so only what differs is set.
        threading = tf.config.threading
        if runtime.threads and threading.get_intra_op_parallelism_threads() != runtime.threads:
            threading.set_intra_op_parallelism_threads(runtime.threads)
            threading.set_inter_op_parallelism_threads(_inter_op(runtime))
        gpus = tf.config.list_physical_devices("GPU")
        for gpu in gpus:
            if runtime.memory_growth and not tf.config.experimental.get_memory_growth(gpu):
                tf.config.experimental.set_memory_growth(gpu, True)
        # TensorFlow computes float32 matmuls in TF32 on GPUs that have it unless told
        # otherwise; torch does not: "highest" holds both to full float32.
        tf.config.experimental.enable_tensor_float_32_execution(
            runtime.matmul_precision != "highest"
        )
        if runtime.mixed_precision:
            from components.backends.tensorflow.model import keras

            keras().mixed_precision.set_global_policy("mixed_float16")
        return {
            "framework": f"tensorflow {tf.__version__}",
            "accelerator": "gpu" if gpus else "cpu",
            "precision": "mixed_float16" if runtime.mixed_precision and gpus else "float32",
            "intra_op_threads": threading.get_intra_op_parallelism_threads(),
            "inter_op_threads": threading.get_inter_op_parallelism_threads(),
            "onednn": _onednn_enabled(),
            "compile": "XLA jit_compile" if runtime.compile else "none",
            "processes_per_trial": self._workers,  # MultiWorkerMirroredStrategy's workers
            "matmul_precision": "high (TF32 where the GPU has it)"
            if tf.config.experimental.tensor_float_32_execution_enabled()
            else "highest",
        }

    @contextlib.contextmanager
    def processes(self, own: Mapping[str, Any]) -> Iterator[str]:
        """This process's part in the cluster ``TF_CONFIG`` names (one process: ALONE).

        The workers are started by the stage (``stage.run``, from ``run_fn``)
        or, on several hosts, by whoever sets their ``TF_CONFIG``; the chief
        leads and, at the end, tells the others the study is done.
        """
        from components.backends.tensorflow import distributed

        layout = distributed.cluster(os.environ.get(distributed.TF_CONFIG))
        if layout.workers == 1:
            yield ALONE
            return
        self._chief = layout.chief
        self._workers = layout.workers
        yield LEADER if layout.chief else FOLLOWER
        if layout.chief:
            distributed.broadcast(_DONE)

    def follow(self, data: SplitArrays, settings: FitSettings, spec: Callable[[Any], Any]) -> int:
        """Fit each trial the chief announces, as one worker of the strategy."""
        from components.backends.tensorflow import distributed
        from components.training.study import follow_trials

        def next_trial() -> Any:
            announced = distributed.broadcast(None) == _TRIAL
            return distributed.SharedTrial(None) if announced else None

        return follow_trials(
            next_trial,
            lambda trial, hyper: self.fit_trial(trial, hyper, spec(hyper), data, settings),
        )

    def fit_trial(
        self, trial: Any, hyper: Any, spec: Any, data: SplitArrays, settings: FitSettings
    ) -> Any:
        """One Keras fit with pruning and early stopping; the best epoch's model saved.

        The chief of several workers first announces the trial; every worker
        then fits it with the chief's draw and pruning decisions.
        """
        from components.backends.tensorflow import distributed
        from components.backends.tensorflow.fit import fit_trial

        if self._chief and not isinstance(trial, distributed.SharedTrial):
            distributed.broadcast(_TRIAL)
            trial = distributed.SharedTrial(trial)
        return fit_trial(trial, hyper, spec, data=data, settings=settings)

    def load_best(self, path: Path, spec: Any, hyper: Any, constants: Constants) -> Any:
        """The Keras model a trial saved."""
        from components.backends.tensorflow.model import keras

        return keras().models.load_model(path)

    def serving_model(self, network: Any, constants: Constants) -> Any:
        """A ``tf.Module``: the preprocessing in plain tensor ops, then the Keras model."""
        from components.backends.tensorflow.export import raw_module

        return raw_module(network, constants)

    def predict(self, model: Any, matrix: np.ndarray) -> np.ndarray:
        """Probabilities (rows, classes) or values (rows,), ``CHUNK`` rows per call."""
        import tensorflow as tf

        return batched(
            lambda rows: model(tf.constant(np.ascontiguousarray(rows, np.float32))).numpy(), matrix
        )

    def save(
        self, network: Any, constants: Constants, folder: Path, best_path: Path
    ) -> tuple[str, str]:
        """A SavedModel with the Transform graph in front (TF Serving's layout, once pushed)."""
        from components.backends.tensorflow.serving import save_serving_model

        if self.transform is None:
            raise RuntimeError("the TensorFlow backend saves only inside the TFX Trainer")
        save_serving_model(network, self.transform, constants.label.name, constants.task, folder)
        return ".", (
            "TF SavedModel; signatures serving_default (serialized tf.Example), "
            "serving_raw (one tensor per raw feature), transform_features"
        )

    def requirements(self) -> list[str]:
        """tensorflow and tf-keras at these versions."""
        import tensorflow as tf

        from components.backends.tensorflow.model import keras

        return [f"tensorflow=={tf.__version__}", f"tf-keras=={keras().__version__}"]

    def load(self, card: ModelCard, folder: Path, constants: Constants) -> Loaded:
        """The pushed SavedModel through its ``serving_raw`` signature (the Transform graph inside)."""
        environment()
        import tensorflow as tf

        from components.errors import BakeoffError

        path = folder / card.artifact
        if not (path / "saved_model.pb").is_file():
            raise BakeoffError(f"{path}: no SavedModel; run train@tensorflow first")
        signature = tf.saved_model.load(str(path)).signatures["serving_raw"]
        specs = signature.structured_input_signature[1]
        numeric, categorical = list(constants.numeric), list(constants.categorical)
        output = "probabilities" if constants.classification else "value"
        internal = {name: card.internal_names.get(name, name) for name in card.columns}

        def call(matrix: np.ndarray) -> np.ndarray:
            inputs = {}
            for column, name in enumerate(numeric):
                key = internal[name]
                inputs[key] = tf.constant(matrix[:, column], dtype=specs[key].dtype)
            for column, name in enumerate(categorical, start=len(numeric)):
                values = _category_names(matrix[:, column], name, constants)
                inputs[internal[name]] = tf.constant(values)
            values = signature(**inputs)[output].numpy()
            return values if output == "probabilities" else values.reshape(-1)

        return Loaded(self.name, path, size_on_disk(path), call)

    def loggable(self, card: ModelCard, folder: Path, constants: Constants) -> Any:
        """The Keras model of the SavedModel with the plain-tensor preprocessing in front."""
        environment()
        from components.backends.tensorflow.export import load_keras

        return self.serving_model(load_keras(folder / card.artifact), constants)

    def export(
        self,
        card: ModelCard,
        folder: Path,
        constants: Constants,
        out: Path,
        example: np.ndarray,
        threads: int,
        skip: frozenset[str] = frozenset(),
    ) -> Bundle:
        """SavedModel, TFLite (float and dynamic-range), ONNX, TF.js; held to the pushed SavedModel."""
        self.check_export_tools(skip)  # before the models load
        return formats(
            self.loggable(card, folder, constants),
            out,
            threads,
            self.load(card, folder, constants).call,
            f"TFX SavedModel {card.artifact} (serving_raw)",
            skip=skip,
        )

    def check_export_tools(self, skip: frozenset[str]) -> None:
        """The TensorFlow.js converter's environment and Node.js, unless ``skip`` names tfjs."""
        from components.backends.tensorflow import tfjs

        if tfjs.FORMAT not in skip:
            tfjs.preflight()

    def limit_threads(self, threads: int) -> None:
        """TensorFlow's intra- and inter-op thread pools (before it runs anything)."""
        environment()
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)


def formats(
    module: Any,
    out: Path,
    threads: int,
    reference: Any,
    reference_name: str,
    skip: frozenset[str] = frozenset(),
) -> Bundle:
    """Every TensorFlow format of a serving module (``export.raw_module``), with its runtimes.

    ``skip`` may name optional formats (``export.OPTIONAL``) not to write.
    """
    from components.backends.tensorflow import export as tf_export
    from components.backends.tensorflow import tfjs

    files = tf_export.export(module, out, skip)
    runtimes = {
        "savedmodel": tf_export.saved_model_runtime(files["savedmodel"]),
        "tflite": tf_export.tflite_runtime(files["tflite"], threads),
        "tflite_dynamic_range": tf_export.tflite_runtime(files["tflite_dynamic_range"], threads),
        "onnx": onnx_runtime(files["onnx"], threads),
        EAGER: tf_export.eager_runtime(module),
    }
    if tfjs.FORMAT in files:
        runtimes[tfjs.FORMAT] = tfjs.runtime(files[tfjs.FORMAT])
    return Bundle(
        TensorflowBackend.name,
        files,
        runtimes,
        reference,
        reference_name,
        runtime_names={name: RUNTIMES[name] for name in runtimes},
        quantised=frozenset({"tflite_dynamic_range"}),
        untimed=frozenset({tfjs.FORMAT}) & set(files),
        skipped=tf_export.OPTIONAL & skip,
    )


def _category_names(positions: np.ndarray, name: str, constants: Constants) -> np.ndarray:
    """Vocabulary positions back to the raw strings the Transform graph looks up."""
    vocabulary = list(constants.vocabularies[name])
    known = ~np.isnan(positions) & (positions >= 0) & (positions < len(vocabulary))
    known &= np.floor(np.nan_to_num(positions)) == np.nan_to_num(positions)
    names = np.full(len(positions), "\0unknown", dtype=object)
    names[np.isnan(positions)] = str(constants.impute[name])
    names[known] = [vocabulary[int(p)] for p in positions[known]]
    return names.astype(str).astype(object)


def _inter_op(runtime: RuntimeSettings) -> int:
    """Inter-op threads: as declared, else half the intra-op threads (at least 1)."""
    return runtime.inter_op_threads or max(1, runtime.threads // 2)


def _onednn_enabled() -> bool | None:
    """TensorFlow's own answer to whether oneDNN kernels are on; None where it cannot say."""
    try:
        from tensorflow.python.util import _pywrap_util_port

        return bool(_pywrap_util_port.IsMklEnabled())
    except (ImportError, AttributeError):
        return None


BACKEND = TensorflowBackend()
