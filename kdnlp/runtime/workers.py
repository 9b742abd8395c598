"""`kdnlp serve --workers N`: N server processes on one port, each with a listening socket of its own (SO_REUSEPORT),
so the kernel spreads connections across them.

Why: one process runs one forward pass at a time and its HTTP handling under one GIL, so it uses about one core
(int8 BiLSTM, one text per request, 32 clients: 1,878 requests/s from one worker, 2,768-3,070 from two on this
2-core machine; docs/deployment.md). Why not uvicorn's own --workers: its processes share one listening socket,
and the process that wakes first accepts every connection pending: with 32 keep-alive clients one worker
answered 11,286 requests and the other 1,272, and the pair served no more than one process did. With a socket
each, the kernel hashes every new connection to one of them.

The parent process loads no model: it checks that the port is free, starts the workers (spawned: a fresh
interpreter each, as uvicorn does), and supervises them:
    SIGTERM / SIGINT   forwarded to every worker as SIGTERM: each stops accepting, answers what it has
                       received, exits; then the parent exits by the same signal (status 143 for SIGTERM)
    a worker dies      it is started again (its in-flight requests are lost with it; the others serve on),
                       unless it died before it ever served: then the parent stops them all and exits 1
    the parent dies    (even by SIGKILL) each worker gets SIGTERM and drains (Linux: PR_SET_PDEATHSIG)
/metrics counts the whole server: the workers count into one shared block (kdnlp/runtime/metrics.py).
Linux balances SO_REUSEPORT sockets; where the socket option is missing, uvicorn's shared-socket workers are used.
"""
from __future__ import annotations

import ctypes
import dataclasses
import multiprocessing
import os
import signal
import socket
import sys
from multiprocessing.connection import wait

from ..errors import UserError
from .metrics import shared_block
from .settings import UVICORN_OPTIONS, ServeSettings

HAVE_REUSEPORT = hasattr(socket, "SO_REUSEPORT") and sys.platform.startswith("linux")
BACKLOG = 2048
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def listening_socket(host: str, port: int, share: bool = True) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if share:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def check_port(host: str, port: int) -> None:
    """UserError if anything listens on host:port already. The probe does not share the port, so it also fails on
    another server's SO_REUSEPORT sockets (a second `kdnlp serve` on the same port would otherwise get half of the
    connections, answering with its own model)."""
    try:
        listening_socket(host, port, share=False).close()
    except OSError as e:
        raise UserError(f"cannot listen on {host}:{port} ({e.strerror}); pick another --port") from None


def _stop_with_parent() -> None:
    """SIGTERM this worker when the parent dies, even by SIGKILL (Linux prctl PR_SET_PDEATHSIG): it drains and exits
    instead of serving on, orphaned, on the port. Elsewhere a worker outlives a killed parent, as uvicorn's do."""
    parent = os.getppid()
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def _worker(fields: dict, started, shared, row: int) -> None:
    """One worker process: its own runtime (model, tokenizer), socket, event loop, queue and batcher; its metrics
    go to row `row` of the shared block (kdnlp/runtime/metrics.py)."""
    import uvicorn
    from .app import create_app
    from .metrics import Metrics
    _stop_with_parent()
    settings = ServeSettings(**fields)
    app = create_app(settings, on_started=started.set, metrics=Metrics(shared, row))  # loads the model
    # only now join the port: the kernel hands a listening socket its share of new connections at once, and
    # they would wait in its backlog while the model loads
    sock = listening_socket(settings.host, settings.port)
    sock.listen(BACKLOG)
    uvicorn.Server(uvicorn.Config(app, **UVICORN_OPTIONS)).run(sockets=[sock])


def run_workers(settings: ServeSettings) -> int:
    """Start settings.workers processes and supervise them until a signal; returns the exit status."""
    context = multiprocessing.get_context("spawn")
    fields = dataclasses.asdict(settings)
    shared = shared_block(context, settings.workers)

    def start(row: int):
        started = context.Event()
        process = context.Process(target=_worker, args=(fields, started, shared, row), name="kdnlp-serve-worker")
        process.start()
        return process, started

    workers = [start(row) for row in range(settings.workers)]
    stopping: list[int] = []

    def on_signal(signum, frame):
        if not stopping:
            stopping.append(signum)
        for process, _ in workers:
            if process.is_alive():
                process.terminate()  # SIGTERM: the worker drains as a single server does

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        while True:
            # Dead workers are handled before `alive` is taken, never after: a worker's sentinel closes a moment
            # before the kernel lets it be reaped, so one found dead only when `alive` is taken would drop out of
            # the watch list unreplaced (seen: SIGKILL, then the pair served on as one)
            for i, (process, started) in enumerate(workers):
                if stopping or process.exitcode is None:
                    continue
                if not started.is_set():
                    print(f"kdnlp serve: worker {process.pid} exited ({process.exitcode}) before it served; stopping",
                          file=sys.stderr, flush=True)
                    on_signal(signal.SIGTERM, None)
                    stopping[0] = 0
                    break
                print(f"kdnlp serve: worker {process.pid} exited ({process.exitcode}); starting another",
                      file=sys.stderr, flush=True)
                workers[i] = start(i)  # the same metrics row: its counters carry on
            alive = [p for p, _ in workers if p.exitcode is None]
            if not alive:
                break
            wait([p.sentinel for p in alive], timeout=1.0)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if stopping and stopping[0]:
        return 128 + stopping[0]
    return 1
