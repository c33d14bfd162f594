"""Datasets made of parts: a directory (or S3 prefix) of parquet files, as warehouses export them.

One home for what a part is, how a dataset of parts is named, and how its parts are checked:

- **A part** is a file whose name ends in ``.parquet`` below the directory or prefix, none of
  whose path components starts with ``.`` or ``_`` (so ``_SUCCESS``, ``_common_metadata``,
  ``_temporary/`` and dotfiles are skipped: the rule ``pyarrow.dataset`` and Dask apply).
  Hive-style ``key=value/`` directories are kept and become columns when the dataset is read
  (:func:`revcli.data.read_parquet`).
- **The dataset's sha256** is the sha256 of the UTF-8 text that has one line
  ``<part sha256>  <relative path>\\n`` per part, the parts sorted by their relative path
  (POSIX separators, code-point order): exactly what ``sha256sum`` prints for the parts listed
  in that order, so ``cd DIR && find . -name '*.parquet' -printf '%P\\n' | LC_ALL=C sort |
  xargs sha256sum | sha256sum`` gives it too (when no part is skipped by the rule above).
- **Row order**: the parts are read in that same sorted order, each part's rows as stored.
- **Checks**: every part's footer is readable, every part satisfies the data contract
  (:func:`revcli.data.validate`, except that one part may hold no converting sessions or no rows
  at all), all parts share one schema (the same column names and types), no Hive key repeats a
  column of the files, and the dataset as a whole has rows and converting sessions. A failure
  names the part.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from revcli.errors import DataError, NotFoundError

SUFFIX = ".parquet"


def is_part(relative: str) -> bool:
    """Whether the path ``relative`` (to the dataset's directory or prefix) names a part."""
    path = PurePosixPath(relative)
    if path.is_absolute() or str(path) != relative:
        return False  # "/x", "a//b", "a/./b" from an S3 key: it would not stay where it belongs
    components = path.parts
    return (bool(components) and components[-1].lower().endswith(SUFFIX)
            and not any(c.startswith((".", "_")) for c in components))


def list_local(directory: Path) -> tuple[list[str], list[str]]:
    """(the parts below ``directory``, sorted; the other files, which are skipped), as relative
    POSIX paths."""
    parts: list[str] = []
    skipped: list[str] = []
    for root, dirs, files in os.walk(directory):
        dirs.sort()
        for name in files:
            relative = (Path(root) / name).relative_to(directory).as_posix()
            (parts if is_part(relative) else skipped).append(relative)
    return sorted(parts), sorted(skipped)


@dataclass
class Part:
    """One part of a dataset as its manifest records it."""

    path: str  # relative to the dataset's directory or prefix, POSIX separators
    bytes: int
    rows: int
    sha256: str
    # Its sessions with an order: recorded so an unchanged part need not be read again.
    converters: int | None = None
    # Of the cached copy, when it was hashed (see Workspace.verify).
    mtime_ns: int | None = None
    ctime_ns: int | None = None
    # Where it came from on S3 (absent for a local directory).
    key: str | None = None
    etag: str | None = None
    last_modified: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Part:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


def dataset_sha256(parts: Iterable[tuple[str, str]]) -> str:
    """The sha256 of a dataset of parts from its (relative path, part sha256) pairs: see the
    module docstring."""
    digest = hashlib.sha256()
    for path, sha in sorted(parts):
        digest.update(f"{sha}  {path}\n".encode())
    return digest.hexdigest()


def hash_local(directory: Path, relatives: Sequence[str]) -> list[tuple[str, str]]:
    """(relative path, sha256) of each part of a local directory."""
    from revcli import atomic

    return [(r, atomic.sha256_file(directory / r)) for r in relatives]


def _schema_of(path: Path) -> dict[str, str]:
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    return {name: _type_name(t) for name, t in zip(schema.names, schema.types, strict=True)}


def _type_name(dtype: Any) -> str:
    """A column type as parts must share it: a dictionary (a pandas categorical) by its values'
    type, since its index width follows the number of levels in each part."""
    import pyarrow as pa

    if pa.types.is_dictionary(dtype):
        return f"dictionary<values={dtype.value_type}>"
    return str(dtype)


def _differs(first: dict[str, str], other: dict[str, str]) -> str:
    for name, dtype in first.items():
        if name not in other:
            return f"it lacks column {name!r}"
        if other[name] != dtype:
            return f"column {name!r} is {other[name]} there, {dtype} in the first part"
    extra = [n for n in other if n not in first]
    return f"it has column {extra[0]!r} the first part lacks" if extra else "?"


def hive_keys(relatives: Iterable[str]) -> list[str]:
    """The Hive partition keys (``key=value`` directories) of these parts, in path order."""
    keys: dict[str, None] = {}
    for relative in relatives:
        for component in PurePosixPath(relative).parts[:-1]:
            name, sep, _ = component.partition("=")
            if sep and name:
                keys.setdefault(name)
    return list(keys)


def check(directory: Path, relatives: Sequence[str], label: str, *,
          pending: str = "nothing was cached",
          checked: Mapping[str, int] | None = None) -> tuple[list[int], list[int]]:
    """Check the parts of a dataset in ``directory`` (see the module docstring); return each
    part's row count and converter count. Errors name the part as ``<label><relative path>``
    (``label``: the directory or prefix as the user gave it, with its trailing slash).
    ``checked``: {relative path: converters} of parts whose bytes passed these checks before
    (the same sha256): only their footer and schema are read again."""
    import numpy as np

    from revcli import data

    if not relatives:
        raise NotFoundError(f"{label} holds no parquet parts (*.parquet outside _ and . names)")
    checked = checked or {}
    rows: list[int] = []
    counts: list[int] = []
    first: dict[str, str] | None = None
    for relative in relatives:
        path = directory / relative
        name = f"{label}{relative}"
        with data.parquet_errors(path, f"part {name} ({pending})"):
            import pyarrow.parquet as pq

            meta = pq.read_metadata(path)
            schema = _schema_of(path)
        if first is None:
            first = schema
        elif schema != first:
            raise DataError(f"part {name} has another schema than {label}{relatives[0]}: "
                            f"{_differs(first, schema)}; all parts must share one schema "
                            f"({pending})")
        rows.append(meta.num_rows)
        if relative in checked or meta.num_rows == 0:
            # known bytes, or an empty part (Spark writes them): its schema was checked
            counts.append(checked.get(relative, 0))
            continue
        try:
            table = data.validate(data.read_parquet(path), require_converters=False)
        except DataError as exc:
            raise DataError(f"part {name} breaks the data contract: {exc}; {pending}") from None
        counts.append(int(np.count_nonzero(table.ordered)))
    assert first is not None
    converters = sum(counts)
    clash = [k for k in hive_keys(relatives) if k in first]
    if clash:
        raise DataError(f"{label}: the directory key {clash[0]!r} (from {clash[0]}=... "
                        "directories) is also a column of the parts; rename one ({pending})")
    if sum(rows) == 0:
        raise DataError(f"{label}: the table is empty (its {len(rows)} parts have no rows; "
                        f"{pending})")
    if converters == 0:
        raise DataError(f"{label} breaks the data contract: no converting sessions "
                        f"({data.TARGET} > 0) in any of its {len(rows)} parts: there are no "
                        f"order values to learn from; {pending}")
    return rows, counts
