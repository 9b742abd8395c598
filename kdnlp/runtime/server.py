"""`kdnlp serve`: a bundle behind HTTP (FastAPI + uvicorn), with dynamic batching and no torch in the process.

    serve(settings)   one worker: uvicorn runs the app of kdnlp/runtime/app.py (routes, validation, answers) here;
                      --workers N: kdnlp/runtime/workers.py starts and supervises N processes
    python -m kdnlp.runtime.server --bundle DIR [flags]   the same, the process `kdnlp serve --config` execs into
"""

import argparse
import json
import os
import signal
import sys

from ..errors import UserError
from . import workers
from .app import create_app
from .runtime import Runtime
from .settings import SETTINGS_ENV, UVICORN_OPTIONS, ServeSettings, add_serve_arguments, settings_from_args


def serve(settings: ServeSettings) -> None:
    import uvicorn
    runtime = Runtime(settings.bundle, threads=settings.threads_per_worker())  # a bad bundle fails here, before binding
    workers.check_port(settings.host, settings.port)
    info = runtime.info()
    print(f"kdnlp serve: {info['model']} ({info['task']}, {len(info['labels'])} labels, bundle "
          f"{info['checksum'][:12]}) on http://{settings.host}:{settings.port} — {settings.workers} worker(s), "
          f"{settings.threads_per_worker()} onnxruntime thread(s) each, batches up to {settings.max_batch} rows / "
          f"{settings.max_wait_ms} ms, queue {settings.max_queue} rows", flush=True)
    if settings.workers == 1:
        uvicorn.run(create_app(settings, runtime), host=settings.host, port=settings.port, **UVICORN_OPTIONS)
        return
    del runtime  # each worker loads its own
    if not workers.HAVE_REUSEPORT:  # uvicorn's workers, one shared socket (unbalanced: kdnlp/runtime/workers.py)
        os.environ[SETTINGS_ENV] = json.dumps(vars(settings))
        uvicorn.run("kdnlp.runtime.app:app_from_env", factory=True, workers=settings.workers, host=settings.host,
                    port=settings.port, **UVICORN_OPTIONS)
        return
    status = workers.run_workers(settings)
    if status > 128:  # stopped by a signal: exit by it, as a single uvicorn process does (143 for SIGTERM)
        signal.signal(status - 128, signal.SIG_DFL)
        os.kill(os.getpid(), status - 128)
    sys.exit(status)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kdnlp.runtime.server", description="serve a kdnlp bundle")
    add_serve_arguments(parser)
    args = parser.parse_args(argv)
    try:
        if not args.bundle:
            raise UserError("--bundle DIR is required here (kdnlp serve --config X --model M exports one first)")
        serve(settings_from_args(args))
    except UserError as e:
        print(f"kdnlp: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
