"""`kdnlp serve`: a bundle behind HTTP (FastAPI + uvicorn), with dynamic batching and no torch in the process.

    POST /predict  {"text": "..."} | {"texts": ["...", ...]} | pairs: {"text": a, "text_pair": b} or
                   {"texts": [...], "text_pairs": [...]}  ->  {"model", "results": [one answer per text]}
                   (answers as kdnlp.runtime.runtime.Runtime.predict / `kdnlp predict --json`)
    GET /health    {"status": "ok"}
    GET /metrics   Prometheus text (kdnlp/runtime/metrics.py)
    GET /info      model, task, labels, max_length, bundle checksum, export parity, serving settings

Bad input never reaches the model and never gets a 500; the answer is {"error": "<one line>"} with:
    400  the body is not valid JSON
    422  not a JSON object; a missing, unknown or wrongly typed field; an empty (or all-whitespace) text; a pair
         sent to a single-text model, or a single text to a pair model
    413  a body over the size limit, a text over --max-text-chars, more texts than --max-batch-request
    503  the queue holds --max-queue rows already (with Retry-After): retry later; nothing is queued unboundedly
SIGTERM (or Ctrl-C): uvicorn stops accepting connections, answers every request already received (they are in
the batcher's queue, which keeps running), then exits; uvicorn re-raises the signal, so the exit status is 143
(128 + SIGTERM), as a supervisor expects of a process that stopped on SIGTERM.
"""

import argparse
import json
import os
import sys
import time
from contextlib import asynccontextmanager

from ..errors import UserError
from .batcher import Batcher, Overloaded
from .metrics import Metrics
from .runtime import BadInput, Runtime
from .settings import ServeSettings, add_serve_arguments, settings_from_args

SETTINGS_ENV = "KDNLP_SERVE_SETTINGS"  # --workers > 1: each uvicorn worker process rebuilds the app from it
FIELDS = {"text", "texts", "text_pair", "text_pairs"}


class Refused(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _text(value, where: str, limit: int) -> str:
    if not isinstance(value, str):
        raise Refused(422, f"{where} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise Refused(422, f"{where} is empty: send some text")
    if len(value) > limit:
        raise Refused(413, f"{where} has {len(value)} characters, over the limit of {limit} (--max-text-chars)")
    return value


def parse_request(body: bytes, s: ServeSettings) -> list:
    """A /predict body -> the texts (or (first, second) pairs) to predict; Refused for anything else."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise Refused(400, f"the body is not valid JSON ({e}); send e.g. {{\"text\": \"...\"}}") from None
    if not isinstance(data, dict):
        raise Refused(422, "the body must be a JSON object with \"text\" or \"texts\"")
    if unknown := sorted(set(data) - FIELDS):
        raise Refused(422, f"unknown field {unknown[0]!r}: use text, texts, text_pair, text_pairs")
    if ("text" in data) == ("texts" in data):
        raise Refused(422, "send exactly one of \"text\" (a string) or \"texts\" (a list of strings)")
    if "text" in data:
        if "text_pairs" in data:
            raise Refused(422, "\"text_pairs\" goes with \"texts\"; with \"text\" send \"text_pair\"")
        text = _text(data["text"], "text", s.max_text_chars)
        return [text if "text_pair" not in data else (text, _text(data["text_pair"], "text_pair", s.max_text_chars))]
    texts = data["texts"]
    if "text_pair" in data:
        raise Refused(422, "\"text_pair\" goes with \"text\"; with \"texts\" send \"text_pairs\"")
    if not isinstance(texts, list) or not texts:
        raise Refused(422, "\"texts\" must be a non-empty list of strings")
    if len(texts) > s.max_batch_request:
        raise Refused(413, f"{len(texts)} texts in one request, over the limit of {s.max_batch_request} "
                           "(--max-batch-request); split the request")
    texts = [_text(t, f"texts[{i}]", s.max_text_chars) for i, t in enumerate(texts)]
    if "text_pairs" not in data:
        return texts
    second = data["text_pairs"]
    if not isinstance(second, list) or len(second) != len(texts):
        raise Refused(422, f"\"text_pairs\" must be a list of {len(texts)} strings, one per text")
    return [(a, _text(b, f"text_pairs[{i}]", s.max_text_chars)) for i, (a, b) in enumerate(zip(texts, second))]


def create_app(settings: ServeSettings, runtime: Runtime | None = None):
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, PlainTextResponse
    runtime = runtime or Runtime(settings.bundle, threads=settings.threads_per_worker())
    metrics = Metrics()
    max_body = 2 * settings.max_batch_request * (settings.max_text_chars * 4 + 16) + 4096  # UTF-8, pairs, JSON
    state: dict = {}

    @asynccontextmanager
    async def lifespan(app):
        state["batcher"] = Batcher(runtime.predict, settings.max_batch, settings.max_wait_ms, settings.max_queue, metrics)
        state["batcher"].start()
        yield
        await state["batcher"].stop()  # uvicorn has drained every connection by now
        print(f"kdnlp serve: drained and stopped (pid {os.getpid()}, {sum(metrics.requests.values())} requests "
              "answered)", flush=True)

    app = FastAPI(title=f"kdnlp: {runtime.meta['model']}", lifespan=lifespan,
                  description=__doc__.split("\n\n")[1] if __doc__ else None)

    def answer(status: int, body: dict, started: float, headers: dict | None = None):
        metrics.requests[status] += 1
        metrics.latency.observe(time.perf_counter() - started)
        return JSONResponse(body, status_code=status, headers=headers)

    @app.post("/predict")
    async def predict(request: Request):
        started = time.perf_counter()
        try:
            if int(request.headers.get("content-length") or 0) > max_body:
                raise Refused(413, f"the body is over {max_body} bytes; send fewer or shorter texts")
            body = await request.body()
            if len(body) > max_body:
                raise Refused(413, f"the body is over {max_body} bytes; send fewer or shorter texts")
            items = parse_request(body, settings)
            runtime.check(items)
            results = await state["batcher"].submit(items)
        except Refused as e:
            return answer(e.status, {"error": str(e)}, started)
        except BadInput as e:
            return answer(422, {"error": str(e)}, started)
        except Overloaded:
            return answer(503, {"error": f"overloaded: {settings.max_queue} rows are queued (--max-queue); retry "
                                         f"after {settings.retry_after_s}s"}, started,
                          {"Retry-After": str(settings.retry_after_s)})
        return answer(200, {"model": runtime.meta["model"], "results": results}, started)

    @app.get("/health")
    async def health():
        return {"status": "ok"}

    @app.get("/metrics")
    async def prometheus():
        return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/info")
    async def info():
        return {**runtime.info(), "serving": {k: v for k, v in vars(settings).items() if k != "bundle"},
                "pid": os.getpid()}

    return app


def app_from_env():
    """uvicorn's factory for --workers > 1: settings from the environment the parent process set."""
    return create_app(ServeSettings(**json.loads(os.environ[SETTINGS_ENV])))


def serve(settings: ServeSettings) -> None:
    import uvicorn
    runtime = Runtime(settings.bundle, threads=settings.threads_per_worker())  # a bad bundle fails here, before binding
    info = runtime.info()
    print(f"kdnlp serve: {info['model']} ({info['task']}, {len(info['labels'])} labels, bundle "
          f"{info['checksum'][:12]}) on http://{settings.host}:{settings.port} — {settings.workers} worker(s), "
          f"{settings.threads_per_worker()} onnxruntime thread(s) each, batches up to {settings.max_batch} rows / "
          f"{settings.max_wait_ms} ms, queue {settings.max_queue} rows", flush=True)
    common = dict(host=settings.host, port=settings.port, log_level="warning", access_log=False)
    if settings.workers == 1:
        uvicorn.run(create_app(settings, runtime), **common)
    else:
        del runtime
        os.environ[SETTINGS_ENV] = json.dumps(vars(settings))
        uvicorn.run("kdnlp.runtime.server:app_from_env", factory=True, workers=settings.workers, **common)


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
