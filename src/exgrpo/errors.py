"""Exceptions with messages a user can act on: each names the file, line and field at fault."""

from __future__ import annotations

from pathlib import Path


class ExgrpoError(Exception):
    """Base class: the CLI prints these without a traceback."""


class DataError(ExgrpoError):
    """A data file, record or field is missing or malformed."""

    def __init__(self, message: str, path: str | Path | None = None, line: int | None = None,
                 field: str | None = None) -> None:
        self.path = str(path) if path is not None else None
        self.line = line
        self.field = field
        where = self.path or ""
        if line is not None:
            where += f":{line}"
        if field is not None:
            where += f" field '{field}'"
        super().__init__(f"{where}: {message}" if where else message)


class ConfigError(ExgrpoError):
    """A config file or option is invalid."""
