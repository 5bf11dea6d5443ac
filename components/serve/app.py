"""The HTTP API: ``POST /predict``, ``GET /health``, ``GET /metadata``.

The body of ``/predict`` is read and checked by :mod:`components.serve.inputs`,
not by a pydantic model declared on the route: the inputs belong to whichever
version is champion, and a new champion may take other columns while the app
runs. Measured on digits (64 features), the two cost about the same at batch 1
(22 us here, 20 us for pydantic's ``model_validate_json`` of a strict model);
at batch 32 these checks take 0.38 ms against pydantic's 0.57 ms; both are
small next to the ONNX call (0.7 ms and 17 ms). Responses are written with
``json.dumps``, without FastAPI's encoder.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from components.serve.champion import Champion
from components.serve.inputs import InputError, parse_body, to_matrix, too_large

log = logging.getLogger("bakeoff.serve")

# Batches up to this many rows run the model on the event loop, larger ones in
# a worker thread. Measured on digits (benchmarks/serve_load.py, 2 cores): at
# batch 1 (0.7 ms in ONNX Runtime) the thread costs 0.3-0.5 ms of p50 and no
# throughput gained; at batch 32 (17 ms) it lets four clients use both cores
# (90 requests/s against 50 for one client), since ONNX Runtime releases the
# GIL, and keeps /health from waiting behind a large batch.
INLINE_ROWS = 8

_PREDICT_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["records"],
                "properties": {
                    "records": {
                        "type": "array",
                        "minItems": 1,
                        "items": {"type": "object", "additionalProperties": True},
                        "description": "one object per row: every feature of GET /metadata's "
                        "input.columns, numbers for numeric ones, strings for categorical ones",
                    }
                },
                "additionalProperties": False,
            }
        }
    },
}


def _json(body: Any, status: int = 200) -> Response:
    """A JSON response; NaN or Infinity never go out as (invalid) JSON."""
    try:
        content = json.dumps(body, allow_nan=False, separators=(",", ":"))
    except ValueError:
        status = 500
        content = json.dumps({"detail": "the model answered a value that is not finite"})
    return Response(content=content, status_code=status, media_type="application/json")


async def _read_body(request: Request, limit: int, max_batch: int) -> bytes:
    """The request body, refused (413) as soon as it grows past ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large(int(declared), limit, max_batch)
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(size, limit, max_batch)
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(champion: Champion) -> FastAPI:
    """The FastAPI application serving ``champion`` (already loaded; polling is the caller's)."""
    app = FastAPI(
        title="bakeoff",
        summary="The bake-off's champion, served through ONNX Runtime.",
        version="1",
    )

    @app.post("/predict", openapi_extra={"requestBody": _PREDICT_BODY})
    async def predict(request: Request) -> Response:
        """Predictions for a batch of raw-feature records, by the champion loaded now."""
        model = champion.model  # one version for the whole request, whatever the poller does
        spec = model.spec
        try:
            body = await _read_body(request, spec.max_body_bytes, spec.max_batch)
            matrix = to_matrix(parse_body(body, spec), spec)
        except InputError as error:
            return _json(error.body(), error.status)
        try:
            if len(matrix) <= INLINE_ROWS:
                answer = model.answer(matrix)
            else:
                answer = await run_in_threadpool(model.answer, matrix)
        except Exception as error:  # ONNX Runtime's errors have no common public base
            log.exception("serve: %s version %s failed on a batch", model.name, model.version)
            return _json({"detail": f"the model failed on this batch: {error}"}, 500)
        return _json(answer)

    @app.get("/health")
    async def health() -> Response:
        """Ready, and which version answers; ``registry`` says why a newer champion is not in."""
        model = champion.model
        return _json(
            {
                "status": "ok",
                "model": model.name,
                "version": model.version,
                "framework": model.framework,
                "loaded_at": model.loaded_at,
                "checked_at": champion.checked_at,
                "registry": champion.problem or "ok",
            }
        )

    @app.get("/metadata")
    async def metadata() -> Response:
        """The served version: name, version, framework, metrics, inputs and outputs."""
        return _json(champion.model.metadata())

    return app
