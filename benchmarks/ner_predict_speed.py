"""Text in -> entities out, through the load-once predictor (kdnlp.load(dir).predict), for each model folder given,
in one process, on the same test sentences: what a user of each NER model gets, tokenization included.

    python benchmarks/ner_predict_speed.py <test column file> <model dir>... [--n 1024] [--batch 64] [--repeats 3]

Prints a Markdown table (best of --repeats passes) and the load average beside it."""
import argparse
import os
import time

import torch

import kdnlp
from kdnlp.ner import read_column_file

parser = argparse.ArgumentParser()
parser.add_argument("test")
parser.add_argument("models", nargs="+")
parser.add_argument("--n", type=int, default=1024)
parser.add_argument("--batch", type=int, default=64)
parser.add_argument("--repeats", type=int, default=3)
args = parser.parse_args()
texts = [" ".join(tokens) for _, tokens, _ in read_column_file(args.test)][:args.n]
print(f"{len(texts)} test sentences, batch {args.batch}, {torch.get_num_threads()} torch thread(s), "
      f"load average before: {os.getloadavg()[0]:.2f}")
print("| model | sentences/s (best of %d) |" % args.repeats)
print("|---|---:|")
for model_dir in args.models:
    predictor = kdnlp.load(model_dir, device="cpu")
    predictor.predict(texts[:args.batch], args.batch)  # warm-up
    best = float("inf")
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        predictor.predict(texts, args.batch)
        best = min(best, time.perf_counter() - t0)
    print(f"| {model_dir} | {len(texts) / best:,.0f} |")
print(f"load average after: {os.getloadavg()[0]:.2f}")
