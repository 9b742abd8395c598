"""`kdnlp serve`'s options: one typed dataclass, and the argparse flags that fill it (shared by the kdnlp CLI and
`python -m kdnlp.runtime.server`). Standard library only: the CLI adds these flags without importing FastAPI."""
from __future__ import annotations

import argparse
import dataclasses
import os
from dataclasses import dataclass

from ..errors import UserError

SETTINGS_ENV = "KDNLP_SERVE_SETTINGS"  # uvicorn's own --workers (no SO_REUSEPORT): each worker rebuilds the app from it
UVICORN_OPTIONS = dict(log_level="warning", access_log=False)


@dataclass
class ServeSettings:
    bundle: str | None = None
    host: str = "127.0.0.1"         # loopback unless asked: exposing a model is the operator's decision
    port: int = 8000
    workers: int = 1                # server processes, each with its own model, queue, batcher and socket: one per core
    onnx_threads: int = 0           # onnxruntime intra-op threads per worker; 0: the cores / workers
    max_batch: int = 32             # rows run together in one forward pass
    max_wait_ms: float = 0.0        # how long a batch waits to fill; 0: it runs at once, and rows arriving
                                    # while it runs form the next batch (batches fill under load anyway)
    max_queue: int = 256            # rows waiting (queued + running) beyond which /predict answers 503
    max_batch_request: int = 64     # texts in one request beyond which /predict answers 413
    max_text_chars: int = 10_000    # characters in one text beyond which /predict answers 413
    retry_after_s: int = 1          # the 503's Retry-After

    def check(self) -> "ServeSettings":
        for key in ("workers", "max_batch", "max_queue", "max_batch_request", "max_text_chars"):
            if getattr(self, key) < 1:
                raise UserError(f"--{key.replace('_', '-')} {getattr(self, key)}: must be >= 1")
        if self.max_wait_ms < 0 or self.onnx_threads < 0 or not 0 < self.port < 65536:
            raise UserError("--max-wait-ms and --onnx-threads must be >= 0, --port in 1..65535")
        if self.max_queue < self.max_batch_request:
            raise UserError(f"--max-queue {self.max_queue} < --max-batch-request {self.max_batch_request}: a "
                            "request that large could never be queued; raise --max-queue")
        return self

    def threads_per_worker(self) -> int:
        return self.onnx_threads or max(1, (os.cpu_count() or 1) // self.workers)


HELP = {  # --help for each flag (the field comments above, for the user)
    "host": "the address to listen on; loopback unless asked (exposing a model is the operator's decision)",
    "port": "the TCP port",
    "workers": "server processes, each with its own model, queue and socket on the port: use one per core",
    "onnx_threads": "onnxruntime intra-op threads per worker; 0: the cores / workers",
    "max_batch": "rows run together in one forward pass",
    "max_wait_ms": "how long a batch waits to fill; 0: it runs at once, rows arriving meanwhile form the next",
    "max_queue": "rows waiting (queued + running) beyond which /predict answers 503 with Retry-After",
    "max_batch_request": "texts in one request beyond which /predict answers 413",
    "max_text_chars": "characters in one text beyond which /predict answers 413",
    "retry_after_s": "the Retry-After of a 503, in seconds",
}


def add_serve_arguments(p: argparse.ArgumentParser) -> None:
    defaults = ServeSettings()
    p.add_argument("--bundle", help="a bundle folder (kdnlp export --bundle); without it, --config/--model are "
                                    "exported to <output_dir>/<model>/bundle first")
    for f in dataclasses.fields(ServeSettings):
        if f.name != "bundle":
            p.add_argument(f"--{f.name.replace('_', '-')}", type=type(getattr(defaults, f.name)),
                           default=getattr(defaults, f.name), help=f"{HELP[f.name]} (default {getattr(defaults, f.name)})")


def settings_from_args(args) -> ServeSettings:
    return ServeSettings(**{f.name: getattr(args, f.name) for f in dataclasses.fields(ServeSettings)}).check()


def to_argv(s: ServeSettings) -> list[str]:
    return [x for f in dataclasses.fields(s) if getattr(s, f.name) is not None
            for x in (f"--{f.name.replace('_', '-')}", str(getattr(s, f.name)))]
