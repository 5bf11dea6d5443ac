"""Lines of code in the training packages and the later stages, at git revisions (issue 12).

Issue 12 asks that the lines in the training packages and in the later stages
(evaluate, export, register) go down, and for the counts before and after. This
script counts them at any revisions, straight from git (``git show REV:PATH``),
so the figure does not depend on the working tree or on a checkout:

- **lines**: every line of the group's Python files;
- **code**: the lines that hold a token other than a comment, a docstring or a
  line break (``tokenize``), so a comment or a blank line changes nothing.

A group is a list of path prefixes; what a prefix matched at a revision is what
the group held there, and a file counts in the first group that names it. The
training group's prefixes cover its places before (``components/train_*``) and
after the restructure (``components/backends``).
The typed contracts (``components/contracts.py``) are a group of their own: they
came with the restructure and serve every stage.

Prints a table of group x revision and writes
``benchmarks/results/code_size.json``.

    .venv/bin/python benchmarks/code_size.py [REV ...]   # default: 316e2a7 1d3377f HEAD
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "code_size.json"

#: 316e2a7: the last commit before the restructure; 1d3377f: the restructure.
REVISIONS = ("316e2a7", "1d3377f", "HEAD")

GROUPS: dict[str, tuple[str, ...]] = {
    "training": (
        "components/train_tensorflow/",
        "components/train_pytorch/",
        "components/backends/",
        "components/training/",
        "pipelines/tfx_",
        "pipelines/train.py",
        # Each framework's export module: in the export stage before, in its backend after.
        "components/export/pytorch.py",
        "components/export/tensorflow.py",
    ),
    "later stages": ("components/evaluate/", "components/export/", "components/register/"),
    "contracts": ("components/contracts.py",),
}


def git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout


NOT_CODE = (tokenize.COMMENT, tokenize.NL, tokenize.ENDMARKER)
LAYOUT = (tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT)


def code_lines(source: str) -> int:
    """The lines holding a token other than a comment, a docstring or a line break."""
    lines: set[int] = set()
    statement_start = True  # a string token here is a docstring (or a bare string: none counts)
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        kind = token.type
        if kind in NOT_CODE:
            continue
        if kind in LAYOUT:
            statement_start = True
            continue
        if not (kind == tokenize.STRING and statement_start):
            lines.update(range(token.start[0], token.end[0] + 1))
        statement_start = False
    return len(lines)


def count(revision: str) -> dict[str, dict[str, int]]:
    files = git("ls-tree", "-r", "--name-only", revision).split()
    counts: dict[str, dict[str, int]] = {}
    taken: set[str] = set()  # a file counts in the first group that names it
    for group, prefixes in GROUPS.items():
        paths = [
            f for f in files if f.endswith(".py") and f.startswith(prefixes) and f not in taken
        ]
        taken.update(paths)
        sources = [git("show", f"{revision}:{path}") for path in paths]
        counts[group] = {
            "files": len(paths),
            "lines": sum(source.count("\n") for source in sources),
            "code": sum(code_lines(source) for source in sources),
        }
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("revisions", nargs="*", default=list(REVISIONS))
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    commits = {r: git("rev-parse", "--short", r).strip() for r in args.revisions}
    counts = {r: count(r) for r in args.revisions}
    results = {r: {"commit": commits[r], "groups": counts[r]} for r in args.revisions}

    width = max(len(group) for group in GROUPS)
    print(f"{'lines (code)':<{width}}  " + "  ".join(f"{r:>17}" for r in args.revisions))
    for group in GROUPS:
        cells = [
            f"{counts[r][group]['lines']:,} ({counts[r][group]['code']:,})" for r in args.revisions
        ]
        print(f"{group:<{width}}  " + "  ".join(f"{cell:>17}" for cell in cells))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"groups": GROUPS, "revisions": results}, indent=2) + "\n")
    print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
