"""Print a Markdown table of every report.json (and its train_log.json epoch times) under an output dir."""
import json
import sys
from pathlib import Path

root = Path(sys.argv[1] if len(sys.argv) > 1 else "saved_dict")
print("| model | test metric | macro-F1 | params | CPU examples/s | best dev | s/epoch |")
print("|---|---:|---:|---:|---:|---:|---:|")
for rep in sorted(root.rglob("report.json")):
    r = json.loads(rep.read_text())
    log = rep.parent / "train_log.json"
    dev, secs = "", ""
    if log.is_file():
        state = json.loads(log.read_text())
        dev = f"{state.get('best_dev', state.get('best_dev_accuracy', 0)):.4f}"
        ep = [h["epoch_seconds"] for h in state["history"] if "epoch_seconds" in h]
        secs = " / ".join(f"{s:.0f}" for s in ep)
    metric = f"acc {r['accuracy']:.4f}" if "accuracy" in r else f"F1 {r['f1']:.4f}"
    print(f"| {rep.parent.relative_to(root)} | {metric} | {r['macro_f1']:.4f} | {r['n_params'] / 1e6:.1f}M "
          f"| {r['cpu_examples_per_second']:.0f} | {dev} | {secs} |")

# Multi-seed arms (<arm>_s<seed>): mean and sample standard deviation of the test metric.
import re
from collections import defaultdict
from statistics import mean, stdev

arms = defaultdict(list)
for rep in sorted(root.rglob("report.json")):
    m = re.fullmatch(r"(.+)_s(\d+)", rep.parent.name)
    if m:
        r = json.loads(rep.read_text())
        arms[m.group(1)].append((int(m.group(2)), r.get("accuracy", r.get("f1"))))
if arms:
    print("\n| arm | seeds | test metric per seed | mean | std |")
    print("|---|---|---|---:|---:|")
    for arm, runs in sorted(arms.items()):
        vals = [v for _, v in sorted(runs)]
        sd = f"{stdev(vals):.4f}" if len(vals) > 1 else ""
        print(f"| {arm} | {', '.join(str(s) for s, _ in sorted(runs))} | {', '.join(f'{v:.4f}' for v in vals)} "
              f"| {mean(vals):.4f} | {sd} |")
