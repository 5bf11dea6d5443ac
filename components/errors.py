"""Errors a user can act on: one line naming the file, the place and what was wrong."""

from __future__ import annotations


class BakeoffError(Exception):
    """Base of every error bakeoff reports as one line instead of a traceback."""


class ParamsError(BakeoffError):
    """A value in params.yaml is missing or not one bakeoff accepts."""

    def __init__(self, key: str, message: str, path: str = "params.yaml") -> None:
        self.key = key
        self.path = path
        super().__init__(f"{path}: {key}: {message}")


class DataError(BakeoffError):
    """Input data that a stage cannot use; the stage stops and writes nothing."""

    def __init__(
        self,
        path: str,
        message: str,
        *,
        column: str | None = None,
        row: str | None = None,
    ) -> None:
        self.path = path
        self.column = column
        self.row = row
        where = [str(path)]
        if row is not None:
            where.append(row)
        if column is not None:
            where.append(f"column '{column}'")
        super().__init__(f"{': '.join(where)}: {message}")
