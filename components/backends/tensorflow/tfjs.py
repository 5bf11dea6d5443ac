"""TensorFlow.js: the plain-tensor SavedModel through TensorFlow's own converter, run in Node.js.

TF.js has no ``ParseExample`` and no file-backed vocabulary tables, so the
export converts the same plain-tensor module (``export.raw_module``) the TFLite
and ONNX exports come from. The converter, ``tensorflowjs``, cannot join the
project's lock, so it lives in ``.venv-tfjs`` (``bin/setup``, from
``requirements/lock-tfjs-py310.txt``); the parity runtime runs the converted
model with the pure-JavaScript ``@tensorflow/tfjs`` in Node.js
(``tfjs_node/parity.mjs``, installed by ``npm ci`` from its committed lock).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import weakref
from pathlib import Path
from typing import Any

import numpy as np

from components.backends.base import Call
from components.errors import BakeoffError

FORMAT = "tfjs"
FOLDER = "tfjs"  # model.json and its weight shards, inside the export folder
MODEL = "model.json"
RUNTIME = "TensorFlow.js (@tensorflow/tfjs, pure-JavaScript CPU backend) in Node.js"
NODE_FOLDER = Path(__file__).resolve().with_name("tfjs_node")
SCRIPT = NODE_FOLDER / "parity.mjs"
ROOT = Path(__file__).resolve().parents[3]
CONVERTER = ROOT / ".venv-tfjs" / "bin" / "tensorflowjs_converter"
FIX = "run `make setup`, or set export.skip_formats: [tfjs] in params.yaml"


def missing() -> list[str]:
    """What the TensorFlow.js export needs and this machine lacks (empty when ready)."""
    absent = []
    if not CONVERTER.is_file():
        absent.append(f"the converter {CONVERTER.relative_to(ROOT)} (bin/setup builds .venv-tfjs)")
    if shutil.which("node") is None:
        absent.append("Node.js (`node` is not on PATH)")
    if not (NODE_FOLDER / "node_modules" / "@tensorflow" / "tfjs" / "package.json").is_file():
        absent.append(f"@tensorflow/tfjs in {NODE_FOLDER.relative_to(ROOT)}/node_modules (npm ci)")
    return absent


def preflight() -> None:
    """Stop, in one line, before any export is written when the TensorFlow.js tools are missing."""
    absent = missing()
    if absent:
        raise BakeoffError(f"export: the TensorFlow.js export needs {'; '.join(absent)}: {FIX}")


def convert(saved_model: Path, folder: Path) -> Path:
    """``tensorflowjs_converter`` on the SavedModel's ``serving_default``; the graph model's folder."""
    target = folder / FOLDER
    command = [
        str(CONVERTER),
        "--input_format=tf_saved_model",
        "--output_format=tfjs_graph_model",
        "--signature_name=serving_default",
        "--saved_model_tags=serve",
        str(saved_model),
        str(target),
    ]
    _run(command, "tensorflowjs_converter")
    if not (target / MODEL).is_file():
        raise BakeoffError(f"export: tensorflowjs_converter wrote no {target / MODEL}")
    return target


def runtime(folder: Path) -> Call:
    """The graph model in ``folder`` in one Node.js process, started on the first call.

    Loading TF.js takes about a second, so one process answers every chunk of
    the test split; still, a call crosses a process and two files, so the format
    is held to parity but not timed in the serving benchmark.
    """
    return _NodeModel(Path(folder))


class _NodeModel:
    """``parity.mjs`` serving one converted model: a request line per matrix, files between."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.scratch = tempfile.TemporaryDirectory(prefix="bakeoff-tfjs-")
        self.process: subprocess.Popen[str] | None = None
        # The process ends when this object does (or when Python does: its stdin closes).
        weakref.finalize(self, _stop, self.__dict__)

    def __call__(self, matrix: np.ndarray) -> np.ndarray:
        values = np.ascontiguousarray(matrix, dtype="<f4")
        if values.ndim != 2:
            raise BakeoffError(
                f"TensorFlow.js runtime: expected a 2-D matrix, found {values.shape}"
            )
        process = self._started()
        scratch = Path(self.scratch.name)
        source, target = scratch / "input.f32", scratch / "output.f32"
        values.tofile(source)
        rows, width = values.shape
        assert process.stdin is not None and process.stdout is not None
        try:
            process.stdin.write(f"{source}\t{rows}\t{width}\t{target}\n")
            process.stdin.flush()
            reply = process.stdout.readline().strip()
        except BrokenPipeError:
            reply = ""
        if not reply:  # the process ended: it says why on stderr
            status = process.wait()
            raise BakeoffError(
                f"export: node parity.mjs failed (exit {status}): {self._last_error_line()}"
            )
        if reply != "ok":
            raise BakeoffError(f"export: node parity.mjs: {reply.removeprefix('error ')}")
        described = json.loads(Path(f"{target}.json").read_text())
        if described["dtype"] != "float32":
            raise BakeoffError(
                f"TensorFlow.js runtime: {self.folder / MODEL} answered {described['dtype']}, "
                "expected float32"
            )
        return np.fromfile(target, dtype="<f4").reshape(described["shape"])

    def _started(self) -> subprocess.Popen[str]:
        if self.process is None:
            errors = (Path(self.scratch.name) / "stderr.txt").open("w")
            try:
                self.process = subprocess.Popen(
                    ["node", str(SCRIPT), str(self.folder)],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=errors,
                    text=True,
                )
            except FileNotFoundError as error:
                raise BakeoffError(
                    f"export: node parity.mjs: {error.strerror}: {error.filename}; {FIX}"
                ) from None
            finally:
                errors.close()
        return self.process

    def _last_error_line(self) -> str:
        text = (Path(self.scratch.name) / "stderr.txt").read_text(errors="replace")
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        return lines[-1] if lines else "no output"


def _stop(state: dict[str, Any]) -> None:
    process = state.get("process")
    if process is not None and process.poll() is None:
        process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
    state["scratch"].cleanup()


def _run(command: list[str], name: str) -> None:
    """Run a tool; when it fails, one line with its last line of output."""
    try:
        result = subprocess.run(command, capture_output=True, text=True, check=False)
    except FileNotFoundError as error:
        raise BakeoffError(f"export: {name}: {error.strerror}: {error.filename}; {FIX}") from None
    if result.returncode != 0:
        lines = [line for line in (result.stderr or result.stdout).splitlines() if line.strip()]
        last = lines[-1].strip() if lines else "no output"
        raise BakeoffError(f"export: {name} failed (exit {result.returncode}): {last}")
