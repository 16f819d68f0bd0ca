"""Where the units of work run: a local process pool, or Ray for more than one machine.

A unit is one region's problem (a district, or a small district joined with a neighbour of its
own city). Each unit carries its own seed and time budget, fixed by the unit and the policy
(:mod:`geoalloc.solver.form`), so an engine decides only *where* and *when* a unit runs, never
what it computes: the plan is the same with either engine and any number of workers.

Both engines submit the largest units first (the longest jobs must not start last), keep a
bounded number of tasks in flight and hand results back as they finish. ``local`` never
imports Ray; ``ray`` needs the optional extra (``pip install geoalloc[cluster]``).

Finished units can be checkpointed (:class:`Checkpoints`) under a hash of everything that
determines their answer, so a driver that died is restarted without redoing them.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np

ENGINES = ("local", "ray")
ENGINE_ENV = "GEOALLOC_ENGINE"
WORKERS_ENV = "GEOALLOC_WORKERS"
IN_FLIGHT_PER_WORKER = 2  # tasks queued per worker: the next one is ready when a worker frees up
RETRIES = 3  # times a unit is re-run after its worker or node died (never after a solver error)
# memory a unit's task declares to Ray: a worker process with the solver imported, plus the
# unit's arrays and the solver's per-point working set (measured by benchmarks/scale.py)
TASK_BASE_BYTES = 300 * 2**20
TASK_BYTES_PER_POINT = 64 * 2**10


class EngineError(RuntimeError):
    """The engine cannot run (an unknown name, Ray not installed, a cluster that is not there)."""


@dataclass
class RunStats:
    """What an engine did, for the report: how many units ran, were retried or came from checkpoints."""

    engine: str
    workers: int
    units: int = 0
    solved: int = 0
    resumed: int = 0
    retried: int = 0
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.engine, "workers": self.workers, "units": self.units, "solved": self.solved,
                "resumed": self.resumed, "retried": self.retried, "seconds": round(self.seconds, 3), **self.extra}


class Engine(Protocol):
    """Runs ``fn(task)`` for every task and yields ``(index, result)`` as each one finishes."""

    name: str
    workers: int
    retried: int

    def run(self, fn: Callable[[Any], Any], tasks: Sequence[Any], sizes: Sequence[int]) -> Iterator[tuple[int, Any]]:
        ...


def largest_first(sizes: Sequence[int]) -> list[int]:
    """Submission order: largest unit first, ties by position (so the order is reproducible)."""
    return sorted(range(len(sizes)), key=lambda i: (-int(sizes[i]), i))


class LocalEngine:
    """A pool of forked worker processes on this machine (or the calling process for one worker).

    A worker process that dies (killed, out of memory) breaks the pool; the pool is then
    restarted and the units that had not come back are run again, up to ``retries`` times.
    """

    name = "local"

    def __init__(self, workers: int | None = None, *, retries: int = RETRIES) -> None:
        self.workers = max(1, int(workers or os.cpu_count() or 1))
        self.retries = retries
        self.retried = 0

    def run(self, fn: Callable[[Any], Any], tasks: Sequence[Any], sizes: Sequence[int]) -> Iterator[tuple[int, Any]]:
        order = largest_first(sizes)
        workers = min(self.workers, len(order))
        if workers <= 1 or "fork" not in mp.get_all_start_methods():
            for i in order:
                yield i, fn(tasks[i])
            return
        todo = list(order)
        breaks = 0
        while todo:
            try:
                yield from self._pool_run(fn, tasks, todo, workers)
            except BrokenProcessPool:
                breaks += 1
                if breaks > self.retries:
                    raise
                self.retried += 1
                continue

    @staticmethod
    def _pool_run(fn: Callable[[Any], Any], tasks: Sequence[Any], todo: list[int],
                  workers: int) -> Iterator[tuple[int, Any]]:
        """Run ``todo`` (removing each index as its result is yielded), at most 2 per worker queued."""
        limit = IN_FLIGHT_PER_WORKER * workers
        queue = list(todo)
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("fork"))
        pending: dict[Future[Any], int] = {}
        try:
            while queue or pending:
                while queue and len(pending) < limit:
                    i = queue.pop(0)
                    pending[pool.submit(fn, tasks[i])] = i
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in sorted(done, key=lambda f: pending[f]):
                    i = pending.pop(fut)
                    result = fut.result()  # a broken pool raises here; the caller restarts it
                    todo.remove(i)
                    yield i, result
        finally:
            # also when the caller stops early (an error, an interrupted driver): do not wait
            # for units nobody will collect
            pool.shutdown(wait=not pending, cancel_futures=True)


class RayEngine:
    """One Ray task per unit, on the cluster at ``address`` or a local instance.

    The address is always explicit: ``address``, else ``RAY_ADDRESS`` (a cluster), else
    ``"local"`` (a new single-machine instance with ``workers`` CPUs). A Ray session that is
    already initialised (a test's, an application's) is used as it is. Each task declares one
    CPU and its memory from the unit's size; a task whose worker or node died is re-run by Ray
    (``max_retries``) and, should that run out, resubmitted here; an exception raised by the
    solver is a result, never retried. ``workers`` bounds the tasks in flight (default: the
    cluster's CPUs).
    """

    name = "ray"

    def __init__(self, workers: int | None = None, *, address: str | None = None, retries: int = RETRIES) -> None:
        try:
            import ray
        except ImportError as exc:
            raise EngineError("the ray engine needs Ray: pip install 'geoalloc[cluster]'") from exc
        self._ray = ray
        self.retries = retries
        self.retried = 0
        if not ray.is_initialized():
            where = address or os.environ.get("RAY_ADDRESS") or "local"
            kwargs: dict[str, Any] = {"address": where, "include_dashboard": False, "log_to_driver": False,
                                      "configure_logging": False}
            if where == "local" and workers:
                kwargs["num_cpus"] = int(workers)
            try:
                ray.init(**kwargs)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise EngineError(f"cannot start or reach Ray at {where!r}: {exc}") from exc
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.workers = max(1, int(workers or cpus))

    def _node_memory(self) -> float:
        """The largest memory resource of any live node (a task asking for more could never run)."""
        mem = [n.get("Resources", {}).get("memory", 0.0) for n in self._ray.nodes() if n.get("Alive")]
        return float(max(mem, default=0.0))

    def run(self, fn: Callable[[Any], Any], tasks: Sequence[Any], sizes: Sequence[int]) -> Iterator[tuple[int, Any]]:
        ray = self._ray
        from ray.exceptions import NodeDiedError, ObjectLostError, OwnerDiedError, RayTaskError, WorkerCrashedError

        system_errors = (WorkerCrashedError, NodeDiedError, ObjectLostError, OwnerDiedError)
        remote = _remote()
        cap = self._node_memory()
        limit = IN_FLIGHT_PER_WORKER * self.workers
        queue = largest_first(sizes)
        attempts = dict.fromkeys(queue, 0)
        pending: dict[Any, int] = {}

        def submit(i: int) -> None:
            mem = task_memory(int(sizes[i]))
            opts: dict[str, Any] = {"num_cpus": 1, "max_retries": self.retries, "retry_exceptions": False}
            if cap > 0:
                opts["memory"] = int(min(mem, cap))
            pending[remote.options(**opts).remote(fn, tasks[i])] = i

        while queue or pending:
            while queue and len(pending) < limit:
                submit(queue.pop(0))
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                i = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except RayTaskError as exc:  # the solver raised: report it, do not retry
                    cause = exc.as_instanceof_cause()
                    raise cause from None
                except system_errors:
                    attempts[i] += 1
                    if attempts[i] > self.retries:
                        raise
                    self.retried += 1
                    submit(i)
                    continue
                yield i, result


def _apply(fn: Callable[[Any], Any], task: Any) -> Any:
    """What a Ray task runs: ``fn`` travels with each task (by reference for a module's function)."""
    return fn(task)


@cache
def _remote() -> Any:
    import ray

    return ray.remote(_apply)


def task_memory(points: int) -> int:
    """Bytes a unit of ``points`` points declares to Ray (see ``TASK_*_BYTES``)."""
    return int(TASK_BASE_BYTES + TASK_BYTES_PER_POINT * points)


def get_engine(name: str | None = None, workers: int | None = None, *, address: str | None = None) -> Engine:
    """The engine called ``name`` (else ``GEOALLOC_ENGINE``, else ``local``) with ``workers``
    (else ``GEOALLOC_WORKERS``, else every CPU)."""
    name = (name or os.environ.get(ENGINE_ENV) or "local").strip().lower()
    if workers is None and os.environ.get(WORKERS_ENV):
        try:
            workers = int(os.environ[WORKERS_ENV])
        except ValueError as exc:
            raise EngineError(f"{WORKERS_ENV} must be a whole number, not {os.environ[WORKERS_ENV]!r}") from exc
    if workers is not None and workers < 1:
        raise EngineError(f"workers must be at least 1 (got {workers})")
    if name == "local":
        return LocalEngine(workers)
    if name == "ray":
        return RayEngine(workers, address=address)
    raise EngineError(f"unknown engine {name!r} (expected one of {', '.join(ENGINES)})")


@cache
def code_version() -> str:
    """A hash of the solver's source: a checkpoint made by other solver code is never served."""
    h = hashlib.blake2b(digest_size=8)
    root = Path(__file__).parent / "solver"
    for path in sorted(root.glob("*.py")):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def digest(*parts: Any) -> str:
    """A stable hash of arrays, numbers and strings (the key of a unit's checkpoint)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(code_version().encode())
    for part in parts:
        if part is None:
            h.update(b"\x00none")
        elif isinstance(part, np.ndarray):
            a = np.ascontiguousarray(part)
            h.update(f"\x00{a.dtype.str}{a.shape}".encode())
            h.update(a.tobytes())
        else:
            h.update(f"\x00{type(part).__name__}:{part!r}".encode())
    return h.hexdigest()


class Checkpoints:
    """Finished units in a folder, one ``<digest>.npz`` each (arrays plus a JSON header).

    Files are written to a temporary name and renamed, so a driver killed while writing leaves
    no half file behind.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.folder / f"{key}.npz"

    def get(self, key: str) -> tuple[dict[str, Any], dict[str, np.ndarray]] | None:
        path = self._path(key)
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files if k != "_header"}
                header = json.loads(bytes(data["_header"]).decode("utf-8"))
        except (OSError, ValueError, KeyError):
            return None  # unreadable: solve the unit again
        return header, arrays

    def put(self, key: str, header: dict[str, Any], arrays: dict[str, np.ndarray]) -> Path:
        path = self._path(key)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        blob = np.frombuffer(json.dumps(header, default=_json_default).encode("utf-8"), dtype=np.uint8)
        with open(tmp, "wb") as fh:
            named: dict[str, Any] = {"_header": blob, **arrays}
            np.savez(fh, **named)
        os.replace(tmp, path)
        return path

    def __len__(self) -> int:
        return sum(1 for _ in self.folder.glob("*.npz"))


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
