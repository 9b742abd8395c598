"""Markdown table of benchmarks/pairs_multilabel.sh: per dataset, the teacher and the four students on test.

Pairs: accuracy, F1 of the positive class (RTE entailment, MRPC/AFQMC 1) and macro-F1; multi-label: micro-, macro-
and samples-F1 and subset accuracy at the dev-chosen thresholds. Also parameters, best dev score and s/epoch."""
import json
import sys
from pathlib import Path

root = Path(sys.argv[1] if len(sys.argv) > 1 else "saved_dict")
POSITIVE = {"rte": "entailment", "mrpc": "1", "afqmc": "1"}
MODELS = ("teacher", "bert3", "bert3_alone", "bert3_aug", "bert3_bce",  # *_aug: RTE only, *_bce: GoEmotions only
          "bilstm", "bilstm_alone", "bilstm_aug", "bilstm_bce")


def row(name: str, model: str) -> str | None:
    rep = root / name / model / "report.json"
    if not rep.is_file():
        return None
    r = json.loads(rep.read_text())
    state = json.loads((root / name / model / "train_log.json").read_text())
    secs = " / ".join(f"{h['epoch_seconds']:.0f}" for h in state["history"] if "epoch_seconds" in h)
    if name in POSITIVE:
        metrics = f"{r['accuracy']:.4f} | {r['per_class'][POSITIVE[name]]['f1']:.4f} | {r['macro_f1']:.4f}"
    else:
        metrics = f"{r['micro_f1']:.4f} | {r['macro_f1']:.4f} | {r['samples_f1']:.4f} | {r['subset_accuracy']:.4f}"
    return f"| {name} | {model} | {metrics} | {r['n_params'] / 1e6:.1f}M | {state['best_dev']:.4f} | {secs} |"


for names, head in ((("rte", "mrpc", "afqmc"), "| dataset | model | accuracy | F1 | macro-F1 |"),
                    (("goemotions",), "| dataset | model | micro-F1 | macro-F1 | samples-F1 | subset acc. |")):
    rows = [x for n in names for m in MODELS if (x := row(n, m))]
    if rows:
        print(head + " params | best dev | s/epoch |")
        print("|---|---|" + "---:|" * (head.count("|") - 3) + "---:|---:|---|")
        print("\n".join(rows) + "\n")
