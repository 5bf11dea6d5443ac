"""Inference timing of any model behind one call: serving matrix in, outputs out.

Every runtime is timed the same way, with its thread count fixed by the
caller: single-row requests cycling through real test rows (p50 and p99 of
each call), and full batches (rows per second).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

Predict = Callable[[np.ndarray], Any]
BATCH = 256


def _timings(call: Predict, batches: list[np.ndarray], repeats: int, warmup: int) -> np.ndarray:
    for index in range(warmup):
        call(batches[index % len(batches)])
    seconds = np.empty(repeats)
    for index in range(repeats):
        batch = batches[index % len(batches)]
        start = time.perf_counter()
        call(batch)
        seconds[index] = time.perf_counter() - start
    return seconds


def profile(call: Predict, rows: np.ndarray, *, repeats: int = 200, warmup: int = 20) -> dict:
    """Batch-1 p50/p99 latency and batch-256 p50 latency and throughput of ``call`` on ``rows``."""
    if len(rows) == 0:
        raise ValueError("no rows to time the model on")
    singles = [rows[index : index + 1] for index in range(min(len(rows), repeats))]
    one = _timings(call, singles, repeats, warmup)
    full = np.resize(rows, (BATCH, rows.shape[1])).astype(rows.dtype)
    batch_repeats = max(5, repeats // 10)
    many = _timings(call, [full], batch_repeats, max(2, warmup // 10))
    return {
        "batch_1": {
            "p50_ms": float(np.percentile(one, 50) * 1e3),
            "p99_ms": float(np.percentile(one, 99) * 1e3),
            "repeats": repeats,
        },
        f"batch_{BATCH}": {
            "p50_ms": float(np.percentile(many, 50) * 1e3),
            "examples_per_s": float(BATCH / np.percentile(many, 50)),
            "repeats": batch_repeats,
        },
    }
