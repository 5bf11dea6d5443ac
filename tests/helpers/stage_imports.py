"""What each DVC stage's code imports, read with ``ast``, against its ``dvc.yaml`` deps.

STYLE.md rule 16, "what DVC tracks is what the code reads": editing any module a
stage imports must rerun the stage, so its ``deps`` must cover that module's
file. The modules are read, never imported (importing TensorFlow alone costs
seconds); the only import is ``pipelines.cli``, for its table of subcommands.

Imports the source does not spell out are resolved in three named places, and
a site none of them resolves is reported rather than skipped:

- ``_module_file_constants``: TFX ``module_file`` paths (files TFX loads by path);
- ``_expand_dynamic_import``: ``importlib.import_module(f"...{name}...")`` registries;
- ``THIRD_PARTY_DYNAMIC_IMPORTS``: calls known to load a third-party module.
"""

from __future__ import annotations

import ast
import functools
import re
import shlex
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

#: The top-level packages whose modules are the repository's code.
CODE_ROOTS = ("components", "pipelines")

#: Dynamic site 3: ``importlib.import_module`` calls known to load no module of
#: the repository, by file and argument, each with the reason. Anything else
#: that cannot be expanded is reported, so a new dynamic site cannot escape.
THIRD_PARTY_DYNAMIC_IMPORTS: Mapping[tuple[str, str], str] = {
    ("components/training/tracking.py", "backend.mlflow_flavour"): (
        "a backend's MLflow flavour module (mlflow.pytorch, mlflow.tensorflow)"
    ),
}

#: Dynamic site 4: a table of modules indexed by what the stage's backend declares,
#: resolved by asking the code (the backend registry and the table itself).
ORCHESTRATOR_SITE = ("pipelines/train.py", "ORCHESTRATORS[backend.orchestrator]")


def _orchestrators(framework: str | None) -> list[str]:
    """The module that runs a framework's training stage (every one without a framework)."""
    from components import backends
    from pipelines.train import ORCHESTRATORS

    if framework is None:
        return sorted(set(ORCHESTRATORS.values()))
    return [ORCHESTRATORS[backends.get(framework).orchestrator]]


_REFERENCE = re.compile(r"\$\{\s*([^}]+?)\s*\}")


@dataclass(frozen=True)
class Stage:
    """One stage of ``dvc.yaml`` (one per ``foreach`` item), references substituted."""

    name: str
    cmd: str
    deps: tuple[str, ...]

    def _words(self) -> list[str]:
        words = shlex.split(self.cmd)
        if not words or words[0] != "bakeoff":
            raise ValueError(f"dvc.yaml stage {self.name}: cmd should start with 'bakeoff'")
        return words

    @property
    def subcommand(self) -> str:
        """The ``bakeoff`` subcommand the stage runs (the first word that is not an option)."""
        chosen = next((word for word in self._words()[1:] if not word.startswith("-")), None)
        if chosen is None:
            raise ValueError(f"dvc.yaml stage {self.name}: cmd names no bakeoff subcommand")
        return chosen

    @property
    def framework(self) -> str | None:
        """The value of ``--framework`` in the cmd, or None when it has none."""
        words = self._words()
        for index, word in enumerate(words):
            if word == "--framework" and index + 1 < len(words):
                return words[index + 1]
            if word.startswith("--framework="):
                return word.partition("=")[2]
        return None

    def code_deps(self) -> tuple[str, ...]:
        """The deps that are code (under ``components/`` or ``pipelines/``), normalised."""
        paths = (PurePosixPath(dep) for dep in self.deps)
        return tuple(path.as_posix() for path in paths if _is_code(path.parts))


@dataclass(frozen=True)
class Closure:
    """The repository files a stage's code imports, and the dynamic sites left unresolved.

    ``importers`` maps each file (repository-relative, POSIX) to the first file
    found importing it, on a shortest chain from the entry; the entry maps to None.
    """

    importers: Mapping[str, str | None]
    unresolved: tuple[str, ...]

    @property
    def files(self) -> frozenset[str]:
        """Every file in the closure, the entry module's included."""
        return frozenset(self.importers)


@dataclass(frozen=True)
class _DynamicImport:
    """An ``importlib.import_module`` call whose module is not a string literal."""

    line: int
    source: str
    #: The f-string's text around its one placeholder; None when it is not such an f-string.
    prefix: str | None
    suffix: str


@dataclass(frozen=True)
class _Summary:
    """What one module file imports, as far as its source says."""

    modules: tuple[str, ...]
    dynamic: tuple[_DynamicImport, ...]
    module_files: tuple[Path, ...]


def _is_code(parts: tuple[str, ...]) -> bool:
    """Whether a repository-relative path's parts lie under one of ``CODE_ROOTS``."""
    return bool(parts) and parts[0] in CODE_ROOTS


def load_stages(root: Path) -> dict[str, Stage]:
    """Every stage of ``root/dvc.yaml``, ``foreach`` expanded, ``${...}`` substituted.

    ``${key}`` and ``${item.field}`` come from a ``foreach`` item, anything else
    (``${ingest.name}``) from ``root/params.yaml``.
    """
    dvc = yaml.safe_load((root / "dvc.yaml").read_text())
    params_file = root / "params.yaml"
    params = yaml.safe_load(params_file.read_text()) if params_file.is_file() else {}
    stages: dict[str, Stage] = {}
    for name, body in (dvc.get("stages") or {}).items():
        if "foreach" not in body:
            stages[name] = _stage(name, body, params)
            continue
        items = body["foreach"]
        pairs = items.items() if isinstance(items, Mapping) else ((item, item) for item in items)
        for key, item in pairs:
            full_name = f"{name}@{key}"
            stages[full_name] = _stage(full_name, body["do"], {**params, "key": key, "item": item})
    return stages


def _stage(name: str, body: Mapping[str, Any], context: Mapping[str, Any]) -> Stage:
    cmd = body["cmd"]
    text = " && ".join(cmd) if isinstance(cmd, list) else str(cmd)
    deps = tuple(_interpolate(str(dep), context, name) for dep in body.get("deps") or ())
    return Stage(name=name, cmd=_interpolate(text, context, name), deps=deps)


def _interpolate(text: str, context: Mapping[str, Any], stage: str) -> str:
    def value(match: re.Match[str]) -> str:
        node: Any = context
        for part in match.group(1).split("."):
            if not isinstance(node, Mapping) or part not in node:
                raise ValueError(
                    f"dvc.yaml stage {stage}: ${{{match.group(1)}}} names nothing in "
                    "params.yaml or the foreach item"
                )
            node = node[part]
        return str(node)

    return _REFERENCE.sub(value, text)


def entry_modules(root: Path) -> dict[str, str]:
    """Each ``bakeoff`` subcommand's module, from ``root/pipelines/cli.py``'s own table."""
    from pipelines import cli

    if Path(cli.__file__).resolve() != (root / "pipelines" / "cli.py").resolve():
        raise ImportError(f"pipelines.cli is imported from {cli.__file__}, not from {root}")
    return {name: module for name, module, _summary in cli.COMMANDS}


def stage_closure(root: Path, stage: Stage) -> Closure:
    """The closure of the module ``stage``'s cmd runs, expanded for its ``--framework``."""
    commands = entry_modules(root)
    if stage.subcommand not in commands:
        raise ValueError(
            f"dvc.yaml stage {stage.name}: 'bakeoff {stage.subcommand}' is not in "
            "pipelines/cli.py's COMMANDS"
        )
    return import_closure(root, commands[stage.subcommand], stage.framework)


def import_closure(root: Path, entry: str, framework: str | None = None) -> Closure:
    """Every repository file the module ``entry`` imports, transitively, lazily or not.

    ``framework`` fills the placeholder of ``importlib.import_module(f"...")``
    calls; without one, every name that makes an existing module does.
    """
    entry_file = _module_file(root, entry)
    if entry_file is None:
        raise ValueError(f"the entry module {entry} is not a file under {root}")
    importers: dict[str, str | None] = {}
    unresolved: list[str] = []
    queue: deque[Path] = deque()

    def add(path: Path, importer: str | None) -> None:
        relative = path.relative_to(root).as_posix()
        if relative not in importers:
            importers[relative] = importer
            queue.append(path)

    add(entry_file, None)
    while queue:
        path = queue.popleft()
        relative = path.relative_to(root).as_posix()
        summary = _summary(root, path)
        modules = list(summary.modules)
        for site in summary.dynamic:
            if (relative, site.source) in THIRD_PARTY_DYNAMIC_IMPORTS:
                continue
            if (relative, site.source) == ORCHESTRATOR_SITE:
                modules += _orchestrators(framework)
                continue
            expanded, problem = _expand_dynamic_import(root, site, framework)
            modules += expanded
            if problem:
                unresolved.append(f"{relative}:{site.line}: {problem}")
        for module in modules:
            for file in _package_files(root, module):
                add(file, relative)
        for module_file in summary.module_files:
            # TFX packages the module file's whole folder and loads it by path,
            # so every .py beside it is read: a file added there needs no edit here.
            if not module_file.is_file():
                unresolved.append(
                    f"{relative}: a module_file constant names "
                    f"{module_file.relative_to(root).as_posix()}, which does not exist"
                )
                continue
            for sibling in sorted(module_file.parent.glob("*.py")):
                add(sibling, relative)
    return Closure(importers=importers, unresolved=tuple(unresolved))


def uncovered(stage: Stage, closure: Closure) -> list[str]:
    """One line per closure file no code dep of ``stage`` covers (the file or a folder above)."""
    deps = stage.code_deps()
    problems = []
    for file, importer in closure.importers.items():
        if any(file == dep or file.startswith(f"{dep}/") for dep in deps):
            continue
        if importer is None:
            problems.append(
                f"{stage.name} runs {file} (its entry module), which its dvc.yaml deps do not cover"
            )
        else:
            problems.append(
                f"{stage.name} imports {file} (via {importer}), "
                "which its dvc.yaml deps do not cover"
            )
    return problems


def _module_file(root: Path, dotted: str) -> Path | None:
    """The file of module ``dotted`` under ``root``, when it is the repository's code."""
    parts = dotted.split(".")
    if parts[0] not in CODE_ROOTS or not all(part.isidentifier() for part in parts):
        return None
    base = root.joinpath(*parts)
    for candidate in (base.with_name(f"{parts[-1]}.py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _package_files(root: Path, dotted: str) -> Iterator[Path]:
    """Importing ``a.b.c`` runs ``a/__init__.py`` and ``a/b/__init__.py`` too.

    A last part that is no module (``c`` of ``from a.b import c`` naming a
    function) is skipped; namespace packages have no file to yield.
    """
    parts = dotted.split(".")
    for end in range(1, len(parts) + 1):
        file = _module_file(root, ".".join(parts[:end]))
        if file is not None:
            yield file


def _module_name(root: Path, path: Path) -> tuple[str, str]:
    """The dotted name of the module at ``path`` and of its package (``__name__``, ``__package__``)."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
        return ".".join(parts), ".".join(parts)
    return ".".join(parts), ".".join(parts[:-1])


def _absolute(package: str, module: str | None, level: int) -> str:
    """The absolute name of ``from <level dots><module> import ...`` inside ``package``."""
    if level == 0:
        return module or ""
    parts = package.split(".")
    base = parts[: len(parts) - (level - 1)]
    return ".".join([*base, module] if module else base)


@functools.cache
def _summary(root: Path, path: Path) -> _Summary:
    """Every import in ``path``'s source, at module level or inside functions alike."""
    tree = ast.parse(path.read_text(), filename=str(path))
    name, package = _module_name(root, path)
    modules: list[str] = []
    dynamic: list[_DynamicImport] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(package, node.module, node.level)
            modules.append(base)
            # ``from a.b import c``: a.b.c is a module or a name; _package_files keeps modules.
            modules += [f"{base}.{alias.name}" for alias in node.names if alias.name != "*"]
        elif isinstance(node, ast.Call) and _is_import_module(node.func) and node.args:
            argument = node.args[0]
            if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                modules.append(_absolute(package, *_relative(argument.value)))
            else:
                dynamic.append(_dynamic_site(node, name, package))
    return _Summary(
        modules=tuple(modules),
        dynamic=tuple(dynamic),
        module_files=tuple(_module_file_constants(root, path, tree)),
    )


def _is_import_module(func: ast.expr) -> bool:
    if isinstance(func, ast.Attribute):
        return func.attr == "import_module" and ast.unparse(func.value) == "importlib"
    return isinstance(func, ast.Name) and func.id == "import_module"


def _relative(text: str) -> tuple[str, int]:
    """``..a.b`` as (``a.b``, 2): the module and the level of a relative name."""
    stripped = text.lstrip(".")
    return stripped, len(text) - len(stripped)


def _dynamic_site(call: ast.Call, name: str, package: str) -> _DynamicImport:
    """An ``importlib.import_module`` call whose module is not a literal, as a dynamic site.

    ``{__name__}`` and ``{__package__}`` are known from the file's place, and a
    relative name is anchored at ``package=__package__`` (or ``__name__``).
    """
    argument = call.args[0]
    source = ast.unparse(argument)
    unknown = _DynamicImport(line=call.lineno, source=source, prefix=None, suffix="")
    if not isinstance(argument, ast.JoinedStr):
        return unknown
    known = {"__name__": name, "__package__": package}
    pieces: list[str | None] = []
    for value in argument.values:
        if isinstance(value, ast.Constant):
            pieces.append(str(value.value))
        elif isinstance(value, ast.FormattedValue) and ast.unparse(value.value) in known:
            pieces.append(known[ast.unparse(value.value)])
        else:
            pieces.append(None)
    if pieces.count(None) != 1:
        return unknown
    hole = pieces.index(None)
    prefix = "".join(piece or "" for piece in pieces[:hole])
    suffix = "".join(piece or "" for piece in pieces[hole + 1 :])
    if prefix.startswith("."):
        anchor = call.args[1] if len(call.args) > 1 else None
        anchor = anchor or next((k.value for k in call.keywords if k.arg == "package"), None)
        if anchor is None or ast.unparse(anchor) not in known:
            return unknown
        module, level = _relative(prefix)
        prefix = _absolute(known[ast.unparse(anchor)], module, level) + "."
    return _DynamicImport(line=call.lineno, source=source, prefix=prefix, suffix=suffix)


def _expand_dynamic_import(
    root: Path, site: _DynamicImport, framework: str | None
) -> tuple[list[str], str | None]:
    """Dynamic site 2: the modules an ``importlib.import_module(f"...{x}...")`` call can load.

    A backend registry (``components.backends.{name}.backend``) and the older
    dispatch (``components.train_{args.framework}.cli``) alike: the one
    placeholder is the stage's ``--framework`` when its cmd has one, otherwise
    every name that makes an existing module (a stage without a framework may
    load any backend). Returns the modules and, when there are none, why.
    """
    call = f"importlib.import_module({site.source})"
    if site.prefix is None:
        return [], (
            f"{call} cannot be expanded: use an f-string with one placeholder, or, if it "
            "loads no module of the repository, list it in THIRD_PARTY_DYNAMIC_IMPORTS "
            "(tests/helpers/stage_imports.py)"
        )
    if framework is not None:
        module = f"{site.prefix}{framework}{site.suffix}"
        if _module_file(root, module) is None:
            return [], f"{call} names no module for --framework {framework} ({module})"
        return [module], None
    modules = list(_placeholder_modules(root, site.prefix, site.suffix))
    if not modules:
        return [], f"{call} names no existing module for any value"
    return modules, None


def _placeholder_modules(root: Path, prefix: str, suffix: str) -> Iterator[str]:
    """Every existing module ``prefix + name + suffix``, ``name`` one dotted part or its middle."""
    head, _, start = prefix.rpartition(".")
    end = suffix.partition(".")[0]
    folder = root.joinpath(*head.split(".")) if head else root
    if not folder.is_dir():
        return
    for entry in sorted(folder.iterdir()):
        if entry.is_file() and entry.suffix != ".py":
            continue
        stem = entry.stem if entry.is_file() else entry.name
        if len(stem) <= len(start) + len(end) or not stem.startswith(start):
            continue
        if not stem.endswith(end):
            continue
        module = f"{prefix}{stem[len(start) : len(stem) - len(end)]}{suffix}"
        if _module_file(root, module) is not None:
            yield module


def _module_file_constants(root: Path, path: Path, tree: ast.Module) -> list[Path]:
    """Dynamic site 1: module-level ``Path`` constants naming a ``.py`` file of the repository.

    TFX loads its Transform and Trainer code by path (``module_file``), which no
    import shows: ``pipelines/tfx_pipeline.py`` builds ``TRANSFORM_MODULE`` and
    ``TRAINER_MODULE`` from ``Path(<package>.__file__).parent / "a" / "b.py"``.
    The constants are evaluated from the source (nothing is imported), so a new
    one is found without an edit here; ``import_closure`` adds the file's folder.
    """
    aliases: dict[str, str] = {}
    _, package = _module_name(root, path)
    for node in tree.body:
        if isinstance(node, ast.Import):
            for alias in node.names:
                aliases[alias.asname or alias.name.partition(".")[0]] = (
                    alias.name if alias.asname else alias.name.partition(".")[0]
                )
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(package, node.module, node.level)
            for alias in node.names:
                aliases[alias.asname or alias.name] = f"{base}.{alias.name}"
    constants: dict[str, Path | str] = {"__file__": path}
    found = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        else:
            continue
        if not isinstance(target, ast.Name):
            continue
        result = _evaluate_path(root, value, constants, aliases)
        if result is None:
            continue
        constants[target.id] = result
        if isinstance(result, Path) and result.suffix == ".py":
            resolved = result.resolve()
            if resolved.is_relative_to(root.resolve()):
                inside = resolved.relative_to(root.resolve())
                if _is_code(inside.parts):
                    found.append(root / inside)
    return found


def _evaluate_path(
    root: Path, node: ast.expr, constants: Mapping[str, Path | str], aliases: Mapping[str, str]
) -> Path | str | None:
    """The value of a ``Path`` expression built from literals, constants and ``__file__``s."""

    def evaluate(node: ast.expr) -> Path | str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.Name):
            return constants.get(node.id)
        if isinstance(node, ast.Attribute) and node.attr == "__file__":
            module = aliases.get(ast.unparse(node.value))
            return _module_file(root, module) if module else None
        if isinstance(node, ast.Attribute) and node.attr == "parent":
            inner = evaluate(node.value)
            return inner.parent if isinstance(inner, Path) else None
        if isinstance(node, ast.Call) and not node.keywords:
            function = ast.unparse(node.func)
            if function in ("Path", "pathlib.Path") and len(node.args) == 1:
                inner = evaluate(node.args[0])
                return Path(inner) if inner is not None else None
            if isinstance(node.func, ast.Attribute) and node.func.attr in ("resolve", "absolute"):
                inner = evaluate(node.func.value)
                return inner if isinstance(inner, Path) and not node.args else None
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            left, right = evaluate(node.left), evaluate(node.right)
            return left / right if isinstance(left, Path) and right is not None else None
        return None

    return evaluate(node)
