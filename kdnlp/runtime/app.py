"""The ASGI app of `kdnlp serve` (kdnlp/runtime/server.py runs it): routes, request validation, answers.

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
A 500 is a fault of ours or of the model on a batch: "internal error (<type>)", the details in the server's log.
SIGTERM (or Ctrl-C): uvicorn stops accepting connections, answers every request already received (they are in
the batcher's queue, which keeps running), then exits; uvicorn re-raises the signal, so the exit status is 143
(128 + SIGTERM), as a supervisor expects of a process that stopped on SIGTERM.
"""

import gc
import json
import os
import sys
import time
from contextlib import asynccontextmanager

from .batcher import Batcher, Overloaded
from .metrics import Metrics
from .runtime import BadInput, Runtime
from .settings import SETTINGS_ENV, ServeSettings

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


def create_app(settings: ServeSettings, runtime: Runtime | None = None, on_started=None, metrics: Metrics | None = None):
    """The ASGI app: POST /predict answered directly (see `app` below), everything else by FastAPI. From
    kdnlp/runtime/workers.py: on_started() is called once the batcher runs (a worker that dies before it is not
    started again), and `metrics` counts into the worker's row of the block all workers share."""
    from fastapi import FastAPI, Request, Response
    from fastapi.responses import PlainTextResponse
    runtime = runtime or Runtime(settings.bundle, threads=settings.threads_per_worker())
    metrics = metrics or Metrics()
    max_body = 2 * settings.max_batch_request * (settings.max_text_chars * 4 + 16) + 4096  # UTF-8, pairs, JSON
    too_big = Refused(413, f"the body is over {max_body} bytes; send fewer or shorter texts")
    state: dict = {}

    @asynccontextmanager
    async def lifespan(app):
        state["batcher"] = Batcher(runtime.predict, settings.max_batch, settings.max_wait_ms, settings.max_queue, metrics)
        state["batcher"].start()
        gc.freeze()  # the objects of imports and start-up never die: keep them out of every later collection
        if on_started:
            on_started()
        yield
        await state["batcher"].stop()  # uvicorn has drained every connection by now
        sys.stdout.write(f"kdnlp serve: drained and stopped (pid {os.getpid()}, {metrics.own_requests()} "
                         "requests answered)\n")  # one write: workers share the stream
        sys.stdout.flush()

    async def answer_predict(body: bytes | None, started: float) -> tuple[int, bytes, list]:
        """A /predict body (None: over max_body, left unread) -> (status, JSON answer, extra headers): the one place
        a prediction request is handled."""
        headers = []
        try:
            if body is None or len(body) > max_body:
                raise too_big
            items = parse_request(body, settings)
            runtime.check(items)
            status, answer = 200, {"model": runtime.meta["model"], "results": await state["batcher"].submit(items)}
        except Refused as e:
            status, answer = e.status, {"error": str(e)}
        except BadInput as e:
            status, answer = 422, {"error": str(e)}
        except Overloaded:
            status, answer = 503, {"error": f"overloaded: {settings.max_queue} rows are queued (--max-queue); retry "
                                            f"after {settings.retry_after_s}s"}
            headers = [(b"retry-after", str(settings.retry_after_s).encode())]
        except Exception as e:  # a bug of ours, or the model failing on this batch: a 500 that says so, then serve on
            print(f"kdnlp serve: internal error: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
            status, answer = 500, {"error": f"internal error ({type(e).__name__}); the server log has the details"}
        metrics.answered(status)
        metrics.latency(time.perf_counter() - started)
        return status, json.dumps(answer, ensure_ascii=False, separators=(",", ":")).encode("utf-8"), headers

    api = FastAPI(title=f"kdnlp: {runtime.meta['model']}", lifespan=lifespan,
                  description=__doc__.split("\n\n")[1] if __doc__ else None)

    @api.post("/predict")
    async def predict(request: Request):  # what /docs shows; requests are answered by `app` below, the same way
        started, body = time.perf_counter(), await request.body()
        status, body, headers = await answer_predict(body, started)
        return Response(body, status, {k.decode(): v.decode() for k, v in headers}, media_type="application/json")

    @api.get("/health")
    async def health():
        return {"status": "ok"}

    @api.get("/metrics")
    async def prometheus():
        return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4")

    @api.get("/info")
    async def info():
        return {**runtime.info(), "serving": {k: v for k, v in vars(settings).items() if k != "bundle"},
                "pid": os.getpid()}

    async def app(scope, receive, send):
        """POST /predict straight from uvicorn; the rest through FastAPI. Why: under load, FastAPI's middleware,
        routing and dependency layers took 27% of the event loop's time per /predict (py-spy, int8 BiLSTM, 32
        clients), and the event loop is what limits a worker's requests/s (docs/deployment.md)."""
        if scope["type"] != "http" or scope["path"] != "/predict" or scope["method"] != "POST":
            return await api(scope, receive, send)
        started = time.perf_counter()
        declared = next((v for k, v in scope["headers"] if k == b"content-length"), b"0")
        body: bytes | None = None
        if not (declared.isdigit() and int(declared) > max_body):
            chunks, size = [], 0
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return  # the client went away before sending its body: nobody to answer
                chunks.append(message.get("body", b""))
                size += len(chunks[-1])
                if size > max_body or not message.get("more_body"):
                    break
            body = b"".join(chunks) if size <= max_body else None
        status, body, headers = await answer_predict(body, started)
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                *headers]})
        await send({"type": "http.response.body", "body": body})

    app.fastapi = api  # the FastAPI application (its routes, OpenAPI schema), for tests and embedding
    return app


def app_from_env():
    """uvicorn's factory for its own --workers (where SO_REUSEPORT is missing): settings from the environment."""
    return create_app(ServeSettings(**json.loads(os.environ[SETTINGS_ENV])))
