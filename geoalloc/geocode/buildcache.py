"""A built object kept as a pickle in the user's cache, keyed by everything it was built from.

Why: the offline lexicon (one matcher over every name and their readings) takes half a second to
build, a quarter of what ``geoalloc geocode`` may spend on 100,000 rows; loading it back takes
a third of that. The key hashes the bundled data files, the source of the modules that build
it, and the Python and matcher library versions, so any change to data or code rebuilds it; a
missing, stale or unreadable file is rebuilt, never an error. Where: :func:`geoalloc.paths.cache_dir`.
"""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import os
import pickle
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

from geoalloc.paths import cache_dir

__all__ = ["cache_dir", "cached_build", "input_key"]

T = TypeVar("T")
_KEEP_S = 7 * 24 * 3600.0  # a build of other data or code is dropped when this old


def input_key(paths: Iterable[Path], *, packages: Iterable[str] = ()) -> str:
    """A hash of the files' names and contents, the Python version and the given packages' versions."""
    h = hashlib.blake2b(digest_size=16, person=b"geoalloc-build")
    h.update(sys.version.encode())
    for name in packages:
        try:
            h.update(f"{name}={metadata.version(name)}".encode())
        except metadata.PackageNotFoundError:
            h.update(f"{name}=?".encode())
    for p in sorted(Path(x) for x in paths):
        h.update(p.name.encode() + b"\0")
        h.update(p.read_bytes())
        h.update(b"\0")
    return h.hexdigest()


def cached_build(name: str, key: str, build: Callable[[], T], kind: type[T]) -> T:
    """``build()``, or the ``kind`` object a previous build with the same ``key`` stored."""
    where = cache_dir()
    if where is None:
        return build()
    path = where / f"{name}-{key}.pickle"
    try:
        with path.open("rb") as fh, _no_gc():
            loaded = pickle.load(fh)
        if isinstance(loaded, kind):
            return loaded
    except FileNotFoundError:
        pass
    except Exception:  # noqa: BLE001 - a truncated or foreign file: rebuild and replace it
        pass
    value = build()
    try:
        where.mkdir(parents=True, exist_ok=True)
        stale = time.time() - _KEEP_S
        for old in where.glob(f"{name}-*.pickle"):  # other versions (other checkouts share the cache)
            if old.stat().st_mtime < stale:
                old.unlink(missing_ok=True)
        fd, tmp = tempfile.mkstemp(dir=where, prefix=f".{name}-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                _Pickler(fh, protocol=pickle.HIGHEST_PROTOCOL).dump(value)
            os.replace(tmp, path)  # atomic: a concurrent reader sees the old file or the whole new one
        finally:
            Path(tmp).unlink(missing_ok=True)
    except (OSError, pickle.PicklingError):
        pass  # a read-only home: build every time, as before
    return value


@contextmanager
def _no_gc() -> Iterator[None]:
    """The cyclic collector paused: an unpickled object graph holds no garbage to find, and the
    collections its many new objects set off were half the lexicon's load time."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


class _Pickler(pickle.Pickler):
    """Stores a frozen slots dataclass as its class and field values (a matcher pickles as its words
    and values itself: :class:`geoalloc.geocode.matcher.Matcher`).

    Why: the dataclasses module restores a frozen slots instance through ``fields()`` on every
    object; that was most of the lexicon's load time.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._seen: dict[tuple[type, str], Any] = {}

    def reducer_override(self, obj: Any) -> Any:
        cls = type(obj)
        if "__slots__" in cls.__dict__ and dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen:  # type: ignore[attr-defined]
            values = tuple(getattr(obj, name) for name in _field_names(cls))
            # An immutable value written before (by repr, so 0.0 and -0.0 stay apart) is stored once
            # and shared: the lexicon's form infos hold few distinct values.
            first = self._seen.setdefault((cls, repr(values)), obj)
            if first is not obj:
                return _same, (first,)
            return _rebuild, (cls, values)
        return NotImplemented


@lru_cache(maxsize=None)
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


_set = object.__setattr__


def _same(obj: Any) -> Any:
    return obj


def _rebuild(cls: type, values: tuple[Any, ...]) -> Any:
    """A frozen dataclass instance from its field values, without running ``__init__`` (as pickle does)."""
    obj: Any = object.__new__(cls)
    for name, value in zip(_field_names(cls), values):
        _set(obj, name, value)
    return obj
