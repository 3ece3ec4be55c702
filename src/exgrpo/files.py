"""Reading data files with line numbers, and writing every artifact atomically.

One JSONL reader and one writer for the whole project (STYLE.md: one way to do each thing).
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml

from exgrpo.errors import ConfigError, DataError

Record = dict[str, Any]


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, Record]]:
    """Yield (line number, record) for each non-blank line; a malformed line raises DataError naming it."""
    path = Path(path)
    with path.open(encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise DataError(f"malformed JSON: {error.msg} (column {error.colno})", path, line_number) from None
            if not isinstance(record, dict):
                raise DataError(f"expected a JSON object, got {type(record).__name__}", path, line_number)
            yield line_number, record


def read_records(path: str | Path) -> list[tuple[int, Record]]:
    """Read a data file into (line-or-index, record) pairs.

    Understands JSON Lines (whatever the extension), a JSON list of objects, a BIG-bench task file
    ({"examples": [...]}), a JSON object of objects keyed by id (TabMWP; the key is kept as `_key`),
    and CSV with a header. For JSON files the number is the 1-based record index, not a line.
    """
    path = Path(path)
    if not path.exists():
        raise DataError("file not found", path)
    if path.suffix.lower() == ".csv":
        with path.open(encoding="utf-8", newline="") as handle:
            # Line 1 is the header, so record i sits on line i + 1 (for rows without embedded newlines).
            return [(index + 2, dict(row)) for index, row in enumerate(csv.DictReader(handle))]
    if path.suffix.lower() == ".jsonl":
        return list(iter_jsonl(path))
    text = path.read_text(encoding="utf-8")
    try:
        document = json.loads(text)
    except json.JSONDecodeError:
        return list(iter_jsonl(path))  # JSON Lines stored under a .json name (GSM8K-Reversal, AQuA)
    return _records_from_document(document, path)


def _records_from_document(document: Any, path: Path) -> list[tuple[int, Record]]:
    if isinstance(document, dict) and isinstance(document.get("examples"), list):
        items: list[Any] = document["examples"]
    elif isinstance(document, dict) and document and all(isinstance(v, dict) for v in document.values()):
        items = [{"_key": key, **value} for key, value in document.items()]
    elif isinstance(document, list):
        items = document
    elif isinstance(document, dict):
        items = [document]  # a single JSON object is one record
    else:
        raise DataError(f"expected JSON records, got {type(document).__name__}", path)
    records = []
    for index, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            raise DataError(f"record {index} is a {type(item).__name__}, expected an object", path, index)
        records.append((index, item))
    return records


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write a file so that readers see either the old or the new content, never a torn one."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write a file so that readers see either the old or the new content, never a torn one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


def replace_marked_section(path: str | Path, begin: str, end: str, body: str) -> None:
    """Replace what lies between the marker lines `begin` and `end` of a text file (written by code, so that a
    document's numbers are never typed by hand); the rest of the file is kept as it is."""
    path = Path(path)
    text = path.read_text()
    if begin not in text or end not in text:
        raise ValueError(f"{path}: no markers ({begin} ... {end}) to write between")
    head, rest = text.split(begin, 1)
    atomic_write_text(path, head + begin + "\n" + body.strip("\n") + "\n" + end + rest.split(end, 1)[1])


def atomic_write_json(path: str | Path, value: Any) -> None:
    atomic_write_text(path, json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def atomic_write_jsonl(path: str | Path, records: Iterable[Record]) -> None:
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def append_jsonl(path: str | Path, records: Iterable[Record]) -> None:
    """Append records and fsync, so that what was written survives a crash (logs, caches, partial results)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def read_appended_jsonl(path: str | Path) -> list[Record]:
    """Read a file written by `append_jsonl`, dropping a torn last line left by a killed process.

    Only the final line may be torn (no trailing newline); it is cut off the file so that later appends
    start on a fresh line. A malformed line anywhere else is corruption and raises DataError.
    """
    path = Path(path)
    if not path.exists():
        return []
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        with path.open("r+b") as handle:
            handle.truncate(cut)
            handle.flush()
            os.fsync(handle.fileno())
    return [record for _, record in iter_jsonl(path)]


def read_yaml(path: str | Path, what: str) -> Any:
    """The document of a YAML file (None when empty); a missing file or invalid YAML is a ConfigError naming the
    file (and line); `what` says what the file is ("config file", "datasets file")."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: {what} not found")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ConfigError(f"{where}: invalid YAML: {getattr(error, 'problem', error)}") from None
