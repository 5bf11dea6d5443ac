"""The backend registry: a framework's name to its backend.

A framework is a package ``components/backends/<name>/`` whose ``backend``
module defines ``BACKEND``; adding one needs no edit here or in any later
stage. ``register`` adds a backend from elsewhere (a plug-in, a test).
"""

from __future__ import annotations

import importlib
from pathlib import Path

from components.backends.base import Backend
from components.errors import BakeoffError

_EXTRA: dict[str, Backend] = {}


def names() -> list[str]:
    """Every framework with a backend, in name order."""
    here = Path(__file__).parent
    built_in = {path.parent.name for path in here.glob("*/backend.py")}
    return sorted(built_in | set(_EXTRA))


def get(name: str) -> Backend:
    """The backend of framework ``name``; imported only when asked for."""
    if name in _EXTRA:
        return _EXTRA[name]
    if name not in names():
        raise BakeoffError(
            f"unknown framework {name!r}: expected one of {', '.join(names())} "
            "(a backend is a package components/backends/<name>/ with a backend.py)"
        )
    backend: Backend = importlib.import_module(f"components.backends.{name}.backend").BACKEND
    return backend


def register(backend: Backend) -> None:
    """Make ``backend`` available under its name (plug-ins and tests)."""
    _EXTRA[backend.name] = backend


def unregister(name: str) -> None:
    """Forget a backend added with :func:`register`."""
    _EXTRA.pop(name, None)


def apply_runtime(params_path: str | Path) -> dict[str, str]:
    """Put every framework's import-time settings (``runtime.<name>``) into this process's environment.

    The ``bakeoff`` command calls it before a stage imports any framework, so the
    trainer, its Optuna workers (which inherit the environment), evaluate and
    export all run a framework as params declare; the variables it set are returned.
    """
    import os

    from components.backends.base import runtime_settings
    from components.params import load_params

    params = load_params(params_path)
    variables: dict[str, str] = {}
    for name in names():
        variables.update(get(name).environment(runtime_settings(params, name)))
    os.environ.update(variables)
    return variables
