"""The code-size benchmark's line counting and grouping, on small sources (no git history needed)."""

from __future__ import annotations

from tests.helpers import benchmarks

bench = benchmarks.load("code_size")


def test_comments_docstrings_and_blank_lines_are_not_code():
    source = '''"""A module docstring
over two lines."""
# a comment

def f(x):
    """A function docstring."""
    return (x +  # a trailing comment
            1)


class C:
    "A one-line docstring."
    name = """a string value,
not a docstring"""
'''
    # def, return over two lines, class, and the assignment over two lines.
    assert bench.code_lines(source) == 6
    assert source.count("\n") == 14


def test_each_file_counts_once_in_the_first_group_that_names_it(monkeypatch):
    tree = {
        "components/export/tensorflow.py": "x = 1\ny = 2\n",  # a framework's: training
        "components/export/core.py": "# a comment\nz = 3\n",
        "components/contracts.py": "w = 4\n",
        "README.md": "not Python\n",
    }

    def git(*args: str) -> str:
        if args[0] == "ls-tree":
            return "\n".join(tree)
        return tree[args[1].split(":", 1)[1]]

    monkeypatch.setattr(bench, "git", git)
    counts = bench.count("REV")
    assert counts["training"] == {"files": 1, "lines": 2, "code": 2}
    assert counts["later stages"] == {"files": 1, "lines": 2, "code": 1}
    assert counts["contracts"] == {"files": 1, "lines": 1, "code": 1}
