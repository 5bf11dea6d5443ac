"""What DVC tracks is what the code reads (STYLE.md rule 16).

Each stage's ``dvc.yaml`` deps must cover every repository module its code
imports, read from the source by ``tests/helpers/stage_imports.py``; the helper
itself is tested on tiny packages written to ``tmp_path``.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.helpers.stage_imports import (
    CODE_ROOTS,
    Stage,
    import_closure,
    load_stages,
    stage_closure,
    uncovered,
)

ROOT = Path(__file__).resolve().parents[2]
STAGES = load_stages(ROOT)


@pytest.mark.parametrize("name", list(STAGES))
def test_deps_cover_every_module_the_stage_imports(name: str) -> None:
    stage = STAGES[name]
    closure = stage_closure(ROOT, stage)
    problems = [*closure.unresolved, *uncovered(stage, closure)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", list(STAGES))
def test_no_stage_depends_on_a_whole_code_folder(name: str) -> None:
    whole = [dep for dep in STAGES[name].code_deps() if dep in CODE_ROOTS]
    assert not whole, (
        f"{name} lists {', '.join(whole)} as a dep in dvc.yaml: any code change would rerun "
        "it; list the modules it imports instead"
    )


def test_a_real_stage_imports_more_than_its_entry() -> None:
    closure = stage_closure(ROOT, STAGES["train@pytorch"])
    assert len(closure.files) > 5, sorted(closure.files)


def write(root: Path, files: dict[str, str]) -> Path:
    """Write ``files`` (path: source) under ``root``; return ``root``."""
    for name, source in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
    return root


PACKAGE = {
    "components/__init__.py": "",
    "components/app/__init__.py": "",
    "components/app/cli.py": """\
        import importlib

        import components.tools.deep.leaf

        from .core import run_core


        def run(name):
            from components import shared

            return importlib.import_module(f"components.plugins.{name}.impl")
        """,
    "components/app/core.py": "def run_core(): ...\n",
    "components/app/trainer_module/trainer.py": "from components.tools.fit import fit\n",
    "components/app/trainer_module/extra.py": "",
    "components/tools/__init__.py": "",
    "components/tools/deep/__init__.py": "",
    "components/tools/deep/leaf.py": "",
    "components/tools/fit.py": "def fit(): ...\n",
    "components/shared.py": """\
        def build():
            from pipelines import factory
        """,
    "components/plugins/alpha/impl.py": "",
    "components/plugins/beta/impl.py": "",
    "components/unused.py": "",
    "pipelines/__init__.py": "",
    "pipelines/factory.py": """\
        from pathlib import Path

        import components.app as app

        MODULES = Path(app.__file__).parent
        TRAINER_MODULE = MODULES / "trainer_module" / "trainer.py"
        """,
}

#: PACKAGE's closure from components.app.cli, each file with its first importer.
IMPORTERS = {
    "components/app/cli.py": None,
    "components/__init__.py": "components/app/cli.py",
    "components/tools/__init__.py": "components/app/cli.py",
    "components/tools/deep/__init__.py": "components/app/cli.py",
    "components/tools/deep/leaf.py": "components/app/cli.py",
    "components/app/__init__.py": "components/app/cli.py",
    "components/app/core.py": "components/app/cli.py",
    "components/shared.py": "components/app/cli.py",
    "pipelines/__init__.py": "components/shared.py",
    "pipelines/factory.py": "components/shared.py",
    "components/app/trainer_module/extra.py": "pipelines/factory.py",
    "components/app/trainer_module/trainer.py": "pipelines/factory.py",
    "components/tools/fit.py": "components/app/trainer_module/trainer.py",
}


@pytest.mark.parametrize(
    ("framework", "plugins"), [("alpha", ["alpha"]), ("beta", ["beta"]), (None, ["alpha", "beta"])]
)
def test_closure_follows_static_relative_lazy_and_dynamic_imports(
    tmp_path: Path, framework: str | None, plugins: list[str]
) -> None:
    root = write(tmp_path, PACKAGE)
    closure = import_closure(root, "components.app.cli", framework)
    expected = {
        **IMPORTERS,
        **{f"components/plugins/{name}/impl.py": "components/app/cli.py" for name in plugins},
    }
    assert closure.importers == expected
    assert closure.unresolved == ()


PLUGIN = "components/plugins/{}/impl.py"


@pytest.mark.parametrize(
    ("plugin", "call"),
    [
        (PLUGIN, 'importlib.import_module(f"components.plugins.{name}.impl")'),
        (PLUGIN, 'importlib.import_module(f"{__name__}.{name}.impl")'),
        (PLUGIN, 'importlib.import_module(f".{name}.impl", __package__)'),
        (PLUGIN, 'import_module(f"components.plugins.{name}.impl")'),
        ("components/train_{}/cli.py", 'importlib.import_module(f"components.train_{name}.cli")'),
    ],
    ids=["absolute", "__name__", "relative", "from-importlib", "inside-a-name"],
)
def test_each_form_of_dynamic_import_expands_to_every_existing_module(
    tmp_path: Path, plugin: str, call: str
) -> None:
    write(tmp_path, {plugin.format(name): "" for name in ("alpha", "beta")})
    write(
        tmp_path,
        {
            "components/__init__.py": "",
            "components/plugins/__init__.py": f"""\
                import importlib
                from importlib import import_module


                def load(name):
                    return {call}
                """,
        },
    )
    closure = import_closure(tmp_path, "components.plugins")
    assert {plugin.format(name) for name in ("alpha", "beta")} <= closure.files
    assert closure.unresolved == ()


@pytest.mark.parametrize(
    ("argument", "framework", "problem"),
    [
        ("name", None, "importlib.import_module(name) cannot be expanded"),
        ('f"components.{kind}.{name}"', None, "cannot be expanded"),
        ('f"components.plugins.{name}.impl"', "gamma", "names no module for --framework gamma"),
        ('f"components.missing.{name}"', None, "names no existing module for any value"),
    ],
    ids=["a-variable", "two-placeholders", "unknown-framework", "no-module"],
)
def test_a_dynamic_import_that_cannot_be_expanded_is_reported(
    tmp_path: Path, argument: str, framework: str | None, problem: str
) -> None:
    write(
        tmp_path,
        {
            "components/__init__.py": "",
            "components/plugins/alpha/impl.py": "",
            "components/entry.py": f"""\
                import importlib


                def load(name, kind):
                    return importlib.import_module({argument})
                """,
        },
    )
    closure = import_closure(tmp_path, "components.entry", framework)
    assert len(closure.unresolved) == 1
    assert closure.unresolved[0].startswith("components/entry.py:5: ")
    assert problem in closure.unresolved[0]


def test_stages_expand_foreach_and_params_references(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "params.yaml": "data:\n  schema: schemas/s.yaml\n  name: d\n",
            "dvc.yaml": """\
                stages:
                  prepare:
                    cmd: bakeoff prepare --schema ${data.schema}
                    deps:
                      - ${data.schema}
                      - components/prepare/
                  fit:
                    foreach:
                      alpha:
                        runner: components/alpha.py
                      beta:
                        runner: pipelines/beta.py
                    do:
                      cmd: >-
                        bakeoff fit --framework ${key}
                        --data data/${data.name}.csv
                      deps:
                        - data/${data.name}.csv
                        - components/fit_${key}
                        - ${item.runner}
                """,
        },
    )
    stages = load_stages(tmp_path)
    assert stages == {
        "prepare": Stage(
            "prepare",
            "bakeoff prepare --schema schemas/s.yaml",
            ("schemas/s.yaml", "components/prepare/"),
        ),
        "fit@alpha": Stage(
            "fit@alpha",
            "bakeoff fit --framework alpha --data data/d.csv",
            ("data/d.csv", "components/fit_alpha", "components/alpha.py"),
        ),
        "fit@beta": Stage(
            "fit@beta",
            "bakeoff fit --framework beta --data data/d.csv",
            ("data/d.csv", "components/fit_beta", "pipelines/beta.py"),
        ),
    }
    assert [(stage.subcommand, stage.framework) for stage in stages.values()] == [
        ("prepare", None),
        ("fit", "alpha"),
        ("fit", "beta"),
    ]
    assert stages["prepare"].code_deps() == ("components/prepare",)
    assert stages["fit@beta"].code_deps() == ("components/fit_beta", "pipelines/beta.py")


def test_uncovered_files_are_named_with_their_first_importer(tmp_path: Path) -> None:
    closure = import_closure(write(tmp_path, PACKAGE), "components.app.cli", "alpha")
    covering = ("components/app", "components/__init__.py", "components/tools/", "pipelines")
    stage = Stage("fit@alpha", "bakeoff fit --framework alpha", covering)
    assert uncovered(stage, closure) == [
        "fit@alpha imports components/shared.py (via components/app/cli.py), "
        "which its dvc.yaml deps do not cover",
        "fit@alpha imports components/plugins/alpha/impl.py (via components/app/cli.py), "
        "which its dvc.yaml deps do not cover",
    ]
    entry_only = Stage("fit@alpha", "bakeoff fit", ("components/app/core.py",))
    assert uncovered(entry_only, closure)[0] == (
        "fit@alpha runs components/app/cli.py (its entry module), "
        "which its dvc.yaml deps do not cover"
    )
