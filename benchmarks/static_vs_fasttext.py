"""The static student vs fastText on SST-2, text in -> label out, measured in one process (issue 22, item 1).

    python benchmarks/static_vs_fasttext.py --config configs/sst2_static.yaml --models static_alone [static_kd] \
        [--set data.train=... --set data.test=...] [--rounds 5] [--out results.json]

The split is kdnlp's own (load_splits of the config: the same train, carved dev and test for both). fastText is
trained on that train split with its defaults (`fasttext.train_supervised(input)`: dim 100, epoch 5, lr 0.1,
unigrams) and is an optional install (`pip install fasttext-wheel`): without it this says so and measures kdnlp
alone. kdnlp models are trained beforehand with `kdnlp train-student` and measured through kdnlp.load(...).predict.

Speed, with one thread for both (torch.set_num_threads(1), RAYON_NUM_THREADS=1; fastText's predict is single
threaded): examples/s over the test texts in batches of 64, and p50 latency at batch 1 over 200 texts. The
systems alternate for `--rounds` rounds and the best round of each is reported (the least disturbed by other
load); the load average is recorded next to the numbers. Also measured: where kdnlp's time goes (its tokenizer
alone, the model on ready ids, and the generic padded predictor path the fast path replaced) and the two tokenizers a static student can use (its own
regex+hash words vs the teacher's WordPiece through `tokenizers` encode_batch).
"""
from __future__ import annotations

import os

os.environ.setdefault("RAYON_NUM_THREADS", "1")  # the tokenizers library's thread pool: one thread, as torch
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from kdnlp.bench import text_latency_p50_ms as latency_p50_ms, text_throughput  # noqa: E402  (the timing code)

BATCH = 64


def throughput(fn, texts: list[str]) -> float:
    return text_throughput(fn, texts, BATCH)



def train_fasttext(train: list, labels: list[str]):
    try:
        import fasttext
    except ImportError:
        print("fastText: not installed (pip install fasttext-wheel); measuring kdnlp alone")
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8") as f:
        for e in train:
            f.write(f"__label__{labels[e.label]} {e.text.strip()}\n")
    t0 = time.perf_counter()
    model = fasttext.train_supervised(input=f.name)  # defaults
    print(f"fastText trained in {time.perf_counter() - t0:.1f}s (defaults)")
    os.unlink(f.name)
    return model


def fasttext_predict(model):
    def run(texts: list[str]):
        return model.predict([t.strip() for t in texts])[0]  # numpy 2: a list of strings, not one string
    return run


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--models", nargs="+", required=True, help="kdnlp model folders under output_dir")
    ap.add_argument("--set", action="append", default=[], dest="sets")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", help="write the results as JSON here")
    args = ap.parse_args()
    torch.set_num_threads(1)

    import kdnlp
    from kdnlp.data import load_splits
    cfg = kdnlp.load_config(args.config, args.sets)
    splits = load_splits(cfg.data, cfg.data.seed)
    test_texts = [e.text for e in splits.test]
    gold = np.array([e.label for e in splits.test])
    labels = splits.labels
    results = {"load_average_start": list(os.getloadavg()), "n_train": len(splits.train), "n_test": len(test_texts),
               "batch_size": BATCH, "threads": 1, "systems": {}}

    systems = {}
    ft = train_fasttext(splits.train, labels)
    if ft is not None:
        pred = [p[0].replace("__label__", "") for p in fasttext_predict(ft)(test_texts)]
        acc = float(np.mean([labels.index(p) == g for p, g in zip(pred, gold)]))
        systems["fasttext"] = (fasttext_predict(ft), acc)
    for name in args.models:
        mdir = cfg.out / name
        predictor = kdnlp.load(mdir, device="cpu")
        out = predictor.predict(test_texts)
        acc = float(np.mean([labels.index(r["label"]) == g for r, g in zip(out, gold)]))
        systems[name] = (predictor.predict, acc)
        # where the time goes (the fast path, Predictor -> model.text_logits): the tokenizer's flat ids + offsets
        # alone, and the model alone on one batch of ready ids (embedding_bag + head); and the generic path
        # (encode, pad, Trainer.predict_logits) that the fast path replaced, for the before/after ratio
        tok, model, m = predictor.tokenizer, predictor.model, predictor.max_length
        systems[f"{name}: tokenizer only (flat ids)"] = (lambda texts, tok=tok, m=m: tok.flat(texts, m), None)
        ids, offsets = (torch.from_numpy(a) for a in tok.flat(test_texts[:BATCH], m))

        def model_only(_texts, model=model, ids=ids, offsets=offsets):
            with torch.inference_mode():
                return model.bag_logits(ids, offsets)

        systems[f"{name}: model only (one batch of ids)"] = (model_only, None)
        generic = kdnlp.load(mdir, device="cpu")
        generic.text_logits = None
        systems[f"{name}: predict, generic path (before the fast path)"] = (generic.predict, None)

    # the two tokenizers a static student can use, on the same texts
    from kdnlp.tokenization.static import StaticTokenizer
    from kdnlp.teacher import load_tokenizer, resolve_pretrained
    words = StaticTokenizer.build_words([e.text for e in splits.train], ngrams=2, buckets=20000)
    systems["tokenizer: own words + bigram hashing"] = (lambda texts: words(texts, max_length=64), None)
    if cfg.teacher.pretrained:
        wp = StaticTokenizer.from_teacher(load_tokenizer(resolve_pretrained(cfg.teacher.pretrained)), 2, 20000)
        systems["tokenizer: teacher WordPiece (tokenizers encode_batch) + bigram hashing"] = (lambda texts: wp(texts, max_length=64), None)
        systems["tokenizer: teacher WordPiece, tokenizers encode_batch alone"] = (
            lambda texts: wp.backend.encode_batch(texts, add_special_tokens=False), None)

    best: dict[str, dict] = {}
    for r in range(args.rounds):  # alternate the systems so that each meets the same background load
        for name, (fn, acc) in systems.items():
            speed = throughput(fn, test_texts)
            lat = latency_p50_ms(fn, test_texts)
            row = best.setdefault(name, {"test_accuracy": acc, "examples_per_second": 0.0, "p50_ms_batch1": 1e9})
            row["examples_per_second"] = max(row["examples_per_second"], round(speed, 1))
            row["p50_ms_batch1"] = min(row["p50_ms_batch1"], round(lat, 4))
    results["systems"] = best
    results["load_average_end"] = list(os.getloadavg())
    print(f"\nSST-2 test ({len(test_texts)} texts), batch {BATCH}, 1 thread, best of {args.rounds} rounds; load average "
          f"{results['load_average_start'][0]:.2f} at start, {results['load_average_end'][0]:.2f} at end")
    print("| system | test accuracy | examples/s (batch 64) | p50 ms (batch 1) |\n|---|---:|---:|---:|")
    for name, row in best.items():
        acc = f"{100 * row['test_accuracy']:.2f}" if row["test_accuracy"] is not None else ""
        print(f"| {name} | {acc} | {row['examples_per_second']:,.0f} | {row['p50_ms_batch1']:.3f} |")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
