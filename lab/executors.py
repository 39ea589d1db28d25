"""Executors: where independent pieces of work run (this process, local processes, Ray).

One interface, three kinds (:class:`ExecutorKind`):

* ``serial``: memsim's own in-process executor, the default.  Nothing is pickled and
  nothing is started; it is what every command did before executors existed.
* ``process``: ``workers`` local processes (``spawn``-started, so CUDA works in them).
* ``ray``: Ray actors and tasks, on a local Ray instance or an existing cluster
  (``address``; default ``$RAY_ADDRESS``).  Ray is the ``distributed`` extra.

Two kinds of work go through an executor:

* :meth:`Executor.map`: independent calls ``fn(item)`` (Table 1 rows, sweep cells, seed
  replicates), results in input order.
* :meth:`Executor.pool`: a :class:`WorkerPool` of stateful workers.  The state (e.g. a
  GA fitness with its converted chip) is sent to every worker once and kept there, so it
  is built (unpickled) once per worker, not once per call; calls then name one of its
  methods.  The GA's population evaluation uses this (:mod:`lab.fitness.parallel`).

Every worker sets ``torch.set_num_threads(threads_per_worker)`` (default 1) before it
does anything, so that ``workers`` processes do not oversubscribe the cores.
"""

from __future__ import annotations

import abc
import concurrent.futures as cf
import multiprocessing as mp
import os
import pickle
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

RAY_ADDRESS_ENV = "RAY_ADDRESS"
"""Environment variable Ray itself reads; the default of ``--address``."""

OnResult = Callable[[int, Any], None]

CONNECT_TIMEOUT_S = 3.0
"""How long a ``host:port`` address gets to accept a TCP connection before it is refused."""


class ExecutorError(ValueError):
    """An executor cannot be set up (bad option value, Ray missing, unreachable cluster)."""


class ExecutorKind(str, Enum):
    """Where the work runs."""

    SERIAL = "serial"
    PROCESS = "process"
    RAY = "ray"


@dataclass(frozen=True)
class ExecutorSpec:
    """How to build an executor (the ``--executor/--workers/--address`` options).

    Attributes:
        kind: serial, process or ray.
        workers: Worker processes or Ray actors (>= 1; serial always runs 1).
        address: Ray cluster address (``auto``, ``host:port``, ``ray://host:port``), or
            None to use ``$RAY_ADDRESS`` or else start a local Ray instance.
        gpus_per_worker: GPUs each Ray worker reserves (fractions share a GPU); the
            process executor ignores it, since it runs where it is started.
        threads_per_worker: torch threads each worker sets (default 1).

    """

    kind: ExecutorKind = ExecutorKind.SERIAL
    workers: int = 1
    address: str | None = None
    gpus_per_worker: float = 0.0
    threads_per_worker: int = 1

    def __post_init__(self) -> None:
        """Check the values (the same checks as the command-line options)."""
        object.__setattr__(self, "kind", ExecutorKind(self.kind))
        if not isinstance(self.workers, int) or self.workers < 1:
            raise ExecutorError(f"workers must be an integer >= 1, got {self.workers!r}")
        if not self.gpus_per_worker >= 0.0:
            raise ExecutorError(f"gpus_per_worker must be >= 0, got {self.gpus_per_worker!r}")
        if self.threads_per_worker < 1:
            raise ExecutorError(
                f"threads_per_worker must be an integer >= 1, got {self.threads_per_worker!r}"
            )

    @property
    def parallel(self) -> bool:
        """True unless the work runs in this process."""
        return self.kind is not ExecutorKind.SERIAL

    def describe(self) -> str:
        """One line for logs, e.g. ``ray, 2 workers (local instance)``."""
        if self.kind is ExecutorKind.SERIAL:
            return "serial (in-process)"
        text = f"{self.kind.value}, {self.workers} worker{'s' if self.workers > 1 else ''}"
        if self.kind is ExecutorKind.RAY:
            address = resolve_address(self.address)
            text += f" (cluster {address})" if address else " (local instance)"
        return text


def resolve_address(address: str | None) -> str | None:
    """``address``, else ``$RAY_ADDRESS``, else None (start a local Ray instance)."""
    if address:
        return address.strip()
    env = os.environ.get(RAY_ADDRESS_ENV, "").strip()
    return env or None


# ----------------------------------------------------------------------------- worker side

_STATE: Any = None
"""The state object of this worker process (process executor)."""


def _init_process_worker(threads: int, state: bytes) -> None:
    import torch

    torch.set_num_threads(threads)
    global _STATE
    _STATE = pickle.loads(state)


def _call_state(method: str, args: tuple[Any, ...]) -> Any:
    return getattr(_STATE, method)(*args)


def _call_fn(fn: Callable[[Any], Any], item: Any, threads: int) -> Any:
    import torch

    torch.set_num_threads(threads)
    return fn(item)


# ----------------------------------------------------------------------------- interface


class WorkerPool(abc.ABC):
    """Workers that each hold a copy of one state object."""

    @abc.abstractmethod
    def map(self, method: str, calls: Sequence[tuple[Any, ...]]) -> list[Any]:
        """Return ``[state.method(*args) for args in calls]``, spread over the workers."""

    def close(self) -> None:  # noqa: B027 - optional hook; the serial pool holds nothing
        """Stop the workers."""

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Executor(abc.ABC):
    """Runs independent work; see the module docstring."""

    def __init__(self, spec: ExecutorSpec) -> None:
        """Bind the spec; workers are started lazily by :meth:`map` / :meth:`pool`."""
        self.spec = spec

    @property
    def workers(self) -> int:
        """How many calls run at once."""
        return self.spec.workers

    @abc.abstractmethod
    def map(
        self, fn: Callable[[Any], Any], items: Iterable[Any], on_result: OnResult | None = None
    ) -> list[Any]:
        """Return ``[fn(item) for item in items]``; ``fn`` must be picklable (top level).

        ``on_result(index, result)`` is called in this process as each call finishes
        (completion order), e.g. to record progress that a resume can use.
        """

    @abc.abstractmethod
    def pool(self, state: Any) -> WorkerPool:
        """Start workers that each hold ``state`` (pickled once per worker)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release what the executor started."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ----------------------------------------------------------------------------- serial


class _SerialPool(WorkerPool):
    def __init__(self, state: Any) -> None:
        self.state = state

    def map(self, method: str, calls: Sequence[tuple[Any, ...]]) -> list[Any]:
        fn = getattr(self.state, method)
        return [fn(*args) for args in calls]


class SerialExecutor(Executor):
    """In this process, one call after the other (the state is used, not copied)."""

    def map(
        self, fn: Callable[[Any], Any], items: Iterable[Any], on_result: OnResult | None = None
    ) -> list[Any]:
        """Call ``fn`` on every item here."""
        results = []
        for i, item in enumerate(items):
            results.append(fn(item))
            if on_result is not None:
                on_result(i, results[-1])
        return results

    def pool(self, state: Any) -> WorkerPool:
        """A pool whose one worker is this process, holding ``state`` itself."""
        return _SerialPool(state)


# ----------------------------------------------------------------------------- process


def _spawn() -> Any:
    # spawn, not fork: a forked child of a process that has run torch's thread pool or
    # initialised CUDA can hang; spawn costs one interpreter start per worker
    return mp.get_context("spawn")


class _ProcessPool(WorkerPool):
    def __init__(self, spec: ExecutorSpec, state: Any) -> None:
        self._pool = cf.ProcessPoolExecutor(
            max_workers=spec.workers,
            mp_context=_spawn(),
            initializer=_init_process_worker,
            # plain pickle copies tensors; multiprocessing's own pickler would hand every
            # worker the same shared-memory storage, and the workers write into theirs
            initargs=(spec.threads_per_worker, pickle.dumps(state)),
        )

    def map(self, method: str, calls: Sequence[tuple[Any, ...]]) -> list[Any]:
        futures = [self._pool.submit(_call_state, method, args) for args in calls]
        return [f.result() for f in futures]

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class ProcessExecutor(Executor):
    """``workers`` local processes (``concurrent.futures`` with the spawn start method)."""

    def __init__(self, spec: ExecutorSpec) -> None:
        """See :class:`Executor`."""
        super().__init__(spec)
        self._tasks: cf.ProcessPoolExecutor | None = None

    def map(
        self, fn: Callable[[Any], Any], items: Iterable[Any], on_result: OnResult | None = None
    ) -> list[Any]:
        """Run the calls in the worker processes, ``workers`` at a time."""
        if self._tasks is None:
            self._tasks = cf.ProcessPoolExecutor(max_workers=self.workers, mp_context=_spawn())
        futures = {
            self._tasks.submit(_call_fn, fn, item, self.spec.threads_per_worker): i
            for i, item in enumerate(items)
        }
        results: list[Any] = [None] * len(futures)
        for f in cf.as_completed(futures):
            results[futures[f]] = f.result()
            if on_result is not None:
                on_result(futures[f], results[futures[f]])
        return results

    def pool(self, state: Any) -> WorkerPool:
        """Start ``workers`` processes, each unpickling ``state`` once."""
        return _ProcessPool(self.spec, state)

    def close(self) -> None:
        """Shut the task processes down."""
        if self._tasks is not None:
            self._tasks.shutdown(wait=True, cancel_futures=True)
            self._tasks = None


# ----------------------------------------------------------------------------- ray


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ExecutorError(
            "--executor ray needs Ray: pip install 'memsim[distributed]' (or pip install ray)"
        ) from None
    return ray


def check_address(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Fail fast unless ``host:port`` (or ``ray://host:port``) accepts a TCP connection.

    ``auto`` and ``local`` are left to Ray, which answers them at once.  Ray itself keeps
    retrying an unreachable ``host:port`` for a minute or more before it gives up.

    Raises:
        ExecutorError: A malformed address, an unknown host, or nothing listening there.

    """
    text = address.strip()
    if text in ("auto", "local"):
        return
    hostport = text.removeprefix("ray://")
    host, sep, port_text = hostport.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise ExecutorError(
            f"--address {address!r}: expected auto, HOST:PORT or ray://HOST:PORT "
            "(e.g. 10.0.0.1:6379, the address `ray start --head` prints)"
        )
    try:
        with socket.create_connection((host.strip("[]"), int(port_text)), timeout=timeout_s):
            pass
    except OSError as exc:
        raise ExecutorError(
            f"--address {address}: no Ray cluster reachable there ({exc.strerror or exc}, "
            f"{timeout_s:g} s timeout); start one with `ray start --head`, check "
            f"${RAY_ADDRESS_ENV}, or leave --address out to start a local Ray instance"
        ) from None


def init_ray(spec: ExecutorSpec) -> Any:
    """Connect to (or start) Ray for ``spec``; reuse an instance already initialised.

    Raises:
        ExecutorError: Ray is not installed, or the address is malformed or unreachable.

    """
    ray = _import_ray()
    address = resolve_address(spec.address)
    if address is not None:
        check_address(address)
    if ray.is_initialized():
        return ray
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
    if address is None:
        # a local instance: as many CPUs as workers, at least; GPUs are detected by Ray
        kwargs["num_cpus"] = max(spec.workers * spec.threads_per_worker, os.cpu_count() or 1)
        kwargs["address"] = "local"
    else:
        kwargs["address"] = address
    # the workers import memsim/ga/models/lab from the installation on their node
    try:
        ray.init(**kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = address or "local"
        raise ExecutorError(f"--address {where}: cannot start or join Ray: {exc}") from None
    return ray


class _RayWorker:
    """The actor class of a Ray pool (wrapped by ``ray.remote`` when Ray is there)."""

    def __init__(self, state: bytes, threads: int) -> None:
        import torch

        torch.set_num_threads(threads)
        self.state = pickle.loads(state)  # a private copy: the worker writes into it

    def call(self, method: str, args: tuple[Any, ...]) -> Any:
        return getattr(self.state, method)(*args)


def _ray_task(fn: Callable[[Any], Any], item: Any, threads: int) -> Any:
    return _call_fn(fn, item, threads)


class _RayPool(WorkerPool):
    def __init__(self, ray: Any, spec: ExecutorSpec, state: Any) -> None:
        self._ray = ray
        actor = ray.remote(num_cpus=spec.threads_per_worker, num_gpus=spec.gpus_per_worker)(
            _RayWorker
        )
        ref = ray.put(pickle.dumps(state))  # one copy in the object store, read once per actor
        self._actors = [actor.remote(ref, spec.threads_per_worker) for _ in range(spec.workers)]

    def map(self, method: str, calls: Sequence[tuple[Any, ...]]) -> list[Any]:
        refs = [
            self._actors[i % len(self._actors)].call.remote(method, args)
            for i, args in enumerate(calls)
        ]
        return list(self._ray.get(refs))

    def close(self) -> None:
        for a in self._actors:
            self._ray.kill(a)
        self._actors = []


class RayExecutor(Executor):
    """Ray tasks and actors (a local instance, or the cluster at ``address``)."""

    def __init__(self, spec: ExecutorSpec) -> None:
        """Connect to Ray now, so that a bad address fails before any work starts."""
        super().__init__(spec)
        self._ray = init_ray(spec)

    def map(
        self, fn: Callable[[Any], Any], items: Iterable[Any], on_result: OnResult | None = None
    ) -> list[Any]:
        """One Ray task per item (Ray runs as many at once as the cluster has CPUs)."""
        ray = self._ray
        task = ray.remote(
            num_cpus=self.spec.threads_per_worker, num_gpus=self.spec.gpus_per_worker
        )(_ray_task)
        fn_ref = ray.put(fn)
        refs = [task.remote(fn_ref, item, self.spec.threads_per_worker) for item in items]
        index = {ref: i for i, ref in enumerate(refs)}
        results: list[Any] = [None] * len(refs)
        waiting = list(refs)
        while waiting:
            done, waiting = ray.wait(waiting, num_returns=1)
            i = index[done[0]]
            results[i] = ray.get(done[0])
            if on_result is not None:
                on_result(i, results[i])
        return results

    def pool(self, state: Any) -> WorkerPool:
        """``workers`` actors, each holding ``state``."""
        return _RayPool(self._ray, self.spec, state)


def make_executor(spec: ExecutorSpec | None = None) -> Executor:
    """Build the executor for ``spec`` (default: serial)."""
    spec = spec or ExecutorSpec()
    if spec.kind is ExecutorKind.PROCESS:
        return ProcessExecutor(spec)
    if spec.kind is ExecutorKind.RAY:
        return RayExecutor(spec)
    return SerialExecutor(spec)


def split(n: int, parts: int) -> list[range]:
    """``range(n)`` cut into at most ``parts`` contiguous, nearly equal, non-empty pieces."""
    parts = max(1, min(parts, n))
    size, extra = divmod(n, parts)
    out, start = [], 0
    for i in range(parts):
        stop = start + size + (1 if i < extra else 0)
        out.append(range(start, stop))
        start = stop
    return out
