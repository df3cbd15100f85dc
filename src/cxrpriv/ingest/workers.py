"""Crash-isolated worker processes: a worker that dies costs only the file it held.

Each worker is a forked process with its own pipe. The parent queues a few files to each (``PER_WORKER``)
and the worker answers file by file, so the parent always knows which file a worker was processing: the
first one it queued and has no answer for. When a worker dies (killed for memory, a segfault in a codec, any
exit), that file becomes a rejection ("worker died (SIGKILL)"), the files queued behind it go to the other
workers, and a new worker takes its place. Results come back in input order; at most ``workers x
PER_WORKER`` files are in flight or waiting for an earlier one, whatever the number of files.

Workers forward their log records to the parent through the same pipe (the parent's handlers and levels
then apply, as if the work were done in the parent); the records are the ones process.py writes, by keyed
or relative path and exception type, never header values.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import signal
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any

from cxrpriv.ingest.allocator import keep_freed_memory
from cxrpriv.ingest.config import PreprocessConfig
from cxrpriv.ingest.deid import Deidentifier
from cxrpriv.ingest.keys import DeidKey
from cxrpriv.ingest.process import REJECTED, FileResult, WorkerContext, process_file
from cxrpriv.ingest.sources import SourceFile

log = logging.getLogger(__name__)

WORKER_DIED = "worker died"
# Files queued to one worker at a time: enough to hide the pipe's latency, few to re-queue after a death.
PER_WORKER = 8
# Seconds a worker gets to finish its current file and exit once the parent has no more work.
STOP_SECONDS = 30.0


def deidentifier(key: DeidKey, config: PreprocessConfig) -> Deidentifier:
    return Deidentifier(key, config.deid_options, config.max_date_shift_days, config.deid_policy)


class _ForwardLogs(logging.Handler):
    """A worker's log records, sent to the parent as (name, level, message)."""

    def __init__(self, conn: Connection) -> None:
        super().__init__()
        self.conn = conn

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.conn.send(("log", record.name, record.levelno, record.getMessage()))
        except Exception:  # a log line must never cost the file its result
            self.handleError(record)


def _serve(conn: Connection, ctx: WorkerContext, inherited: list[Connection]) -> None:
    """A worker's life: (seq, file) in, ("result", seq, FileResult) out, until None."""
    for other in inherited:  # the parent's ends of other workers' pipes, copied by fork
        other.close()
    keep_freed_memory()  # reuse each file's large buffers for the next one (see allocator.py)
    deid = deidentifier(ctx.key, ctx.config)
    logging.getLogger().handlers = [_ForwardLogs(conn)]
    # Codec plugins and pydicom log per file at INFO/WARNING, sometimes with header values.
    for noisy in ("pydicom", "openjpeg", "pylibjpeg", "rle", "PIL"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    while (task := conn.recv()) is not None:
        seq, item = task
        conn.send(("result", seq, process_file(ctx, item, deid)))


@dataclass
class _Worker:
    process: BaseProcess
    conn: Connection
    queued: deque[tuple[int, SourceFile]] = field(default_factory=deque)


def died_reason(exitcode: int | None) -> str:
    """'worker died (SIGKILL)' for a signal, '(exit code N)' for an exit."""
    if exitcode is not None and exitcode < 0:
        try:
            return f"{WORKER_DIED} ({signal.Signals(-exitcode).name})"
        except ValueError:
            return f"{WORKER_DIED} (signal {-exitcode})"
    return f"{WORKER_DIED} (exit code {exitcode})"


class WorkerPool:
    """``workers`` forked processes running :func:`process_file`, replaced when they die."""

    def __init__(self, ctx: WorkerContext, workers: int) -> None:
        # fork: workers inherit the loaded modules; the key and config travel in memory only.
        self._mp = multiprocessing.get_context("fork")
        self.ctx = ctx
        self.workers: list[_Worker] = []
        self.deaths = 0
        for _ in range(max(1, workers)):
            self.workers.append(self._start())

    def _start(self) -> _Worker:
        parent_end, child_end = self._mp.Pipe()
        inherited = [w.conn for w in self.workers] + [parent_end]
        process = self._mp.Process(target=_serve, args=(child_end, self.ctx, inherited), daemon=True)
        process.start()
        child_end.close()
        return _Worker(process, parent_end)

    def map(self, items: Iterable[SourceFile]) -> Iterator[FileResult]:
        """A result for every item, in input order."""
        source = enumerate(items)
        retry: deque[tuple[int, SourceFile]] = deque()
        done: dict[int, FileResult] = {}
        next_out = 0
        exhausted = False
        limit = len(self.workers) * PER_WORKER
        while True:
            while self._in_flight() + len(done) < limit:
                task = retry.popleft() if retry else next(source, None)
                if task is None:
                    exhausted = True
                    break
                self._send(min(self.workers, key=lambda w: len(w.queued)), task)
            if exhausted and not retry and not self._in_flight():
                break
            for worker in self._ready():
                self._receive(worker, done, retry)
            while next_out in done:
                yield done.pop(next_out)
                next_out += 1
        while next_out in done:
            yield done.pop(next_out)
            next_out += 1

    def _in_flight(self) -> int:
        return sum(len(w.queued) for w in self.workers)

    def _send(self, worker: _Worker, task: tuple[int, SourceFile]) -> None:
        worker.queued.append(task)
        # If it died already, its sentinel says so and the task is re-queued then.
        with contextlib.suppress(OSError):
            worker.conn.send(task)

    def _ready(self) -> list[_Worker]:
        handles: dict[Any, _Worker] = {}
        for worker in self.workers:
            handles[worker.conn] = worker
            handles[worker.process.sentinel] = worker
        ready = wait(list(handles))
        return list({id(handles[h]): handles[h] for h in ready}.values())

    def _receive(self, worker: _Worker, done: dict[int, FileResult], retry: deque) -> None:
        """Everything the worker has sent; if it has died, its file's rejection and its replacement."""
        try:
            while worker.conn.poll():
                self._handle(worker, worker.conn.recv(), done)
        except (EOFError, OSError):  # it died, possibly in the middle of a message
            pass
        if worker.process.is_alive():
            return
        worker.process.join()
        self.deaths += 1
        reason = died_reason(worker.process.exitcode)
        if worker.queued:
            seq, item = worker.queued.popleft()
            log.warning("%s: %s; rejected, and a new worker started", self.ctx.shown_path(item.path), reason)
            done[seq] = FileResult(item.path, item.size, item.fingerprint, outcome=REJECTED, reason=reason)
        retry.extendleft(reversed(worker.queued))  # never sent back in another order
        worker.conn.close()
        self.workers[self.workers.index(worker)] = self._start()

    def _handle(self, worker: _Worker, message: tuple, done: dict[int, FileResult]) -> None:
        if message[0] == "log":
            _, name, level, text = message
            logging.getLogger(name).log(level, "%s", text)
            return
        _, seq, result = message
        expected, _ = worker.queued.popleft()
        assert expected == seq, "a worker answers its files in the order they were queued"
        done[seq] = result

    def close(self) -> None:
        """Stop every worker: politely when idle, by force when still busy (the run was interrupted)."""
        for worker in self.workers:
            try:
                if worker.queued:
                    worker.process.kill()
                else:
                    worker.conn.send(None)
            except OSError:
                pass
        for worker in self.workers:
            worker.process.join(STOP_SECONDS)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            worker.conn.close()


def ordered_results(items: Iterable[SourceFile], ctx: WorkerContext, workers: int) -> Iterator[FileResult]:
    """Each item's result in input order, from ``workers`` crash-isolated processes."""
    pool = WorkerPool(ctx, workers)
    try:
        yield from pool.map(items)
    finally:
        pool.close()
