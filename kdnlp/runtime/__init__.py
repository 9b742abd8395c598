"""Serving a distilled model without torch: a bundle (one self-contained folder) read by onnxruntime, the
`tokenizers` library and numpy only.

    bundle.py    write a bundle from a saved model + its ONNX export (the torch side: kdnlp export --bundle);
                 read and verify one (torch-free)
    encoders.py  text -> token ids exactly as training tokenized it: tokenizer.json, the BiLSTM's word vocabulary,
                 the static student's word / n-gram hashing
    decode.py    logits -> answers: softmax labels, multi-label sets at the model's thresholds, NER entities with
                 character offsets
    runtime.py   Runtime: a bundle loaded once, predict(texts) -> the answers `kdnlp predict` gives
    batcher.py   dynamic batching: an asyncio queue of requests, run together up to max_batch rows / max_wait_ms
    metrics.py   Prometheus text for GET /metrics, summed over the workers (a shared block of counters)
    settings.py  ServeSettings (the serving flags), standard library only
    app.py       the ASGI app: FastAPI + uvicorn, request validation, answers, overload
    server.py    `kdnlp serve`: runs the app (one worker) or the workers, SIGTERM drain
    workers.py   --workers N: N processes, a SO_REUSEPORT socket each, supervised by a parent that holds no model

Nothing here imports torch or transformers (tests/test_runtime.py checks it in a fresh process); the serving
extra is `pip install 'kdnlp[serve]'`.
"""
