"""Test-set reports: sklearn classification_report + confusion matrix, report.json, teacher-vs-student table."""
from __future__ import annotations

import numpy as np
from sklearn.metrics import classification_report, confusion_matrix, f1_score, precision_recall_fscore_support


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, labels: list[str]) -> dict:
    ids = list(range(len(labels)))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=ids, zero_division=0)
    return {
        "accuracy": float((y_true == y_pred).mean()),
        "macro_f1": float(f1_score(y_true, y_pred, labels=ids, average="macro", zero_division=0)),
        "per_class": {lab: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
                      for i, lab in enumerate(labels)},
        "labels": labels,
        "confusion": confusion_matrix(y_true, y_pred, labels=ids).tolist(),
    }


def format_report(y_true: np.ndarray, y_pred: np.ndarray, labels: list[str]) -> str:
    text = classification_report(y_true, y_pred, labels=list(range(len(labels))), target_names=labels,
                                 digits=4, zero_division=0)
    cm = confusion_matrix(y_true, y_pred, labels=list(range(len(labels))))
    width = max(8, *(len(lab) + 1 for lab in labels))
    lines = ["Confusion matrix (rows = gold, columns = predicted):",
             " " * width + "".join(f"{lab[:width - 1]:>{width}}" for lab in labels)]
    lines += [f"{lab[:width - 1]:<{width}}" + "".join(f"{v:>{width}}" for v in row) for lab, row in zip(labels, cm)]
    return text + "\n" + "\n".join(lines)


def _mb(nbytes: int) -> str:
    return f"{nbytes / 2**20:.1f} MB"


def comparison_table(teacher: dict, student: dict) -> str:
    """Markdown table of the two report.json dicts; speed is CPU examples/s at the report's batch size.

    A teacher given only as outputs has no size or speed (and no test report when they miss the test texts)."""
    if "n_params" not in teacher:
        key = "accuracy" if "accuracy" in student else "f1"
        rows = [(key, teacher.get(key), student[key]), ("macro-F1", teacher.get("macro_f1"), student["macro_f1"])]
        out = ["| | teacher (supplied outputs) | student |", "|---|---:|---:|"]
        out += [f"| {a} | {'-' if b is None else f'{b:.4f}'} | {c:.4f} |" for a, b, c in rows]
        out += [f"| parameters | - | {student['n_params'] / 1e6:.2f}M |", f"| size on disk | - | {_mb(student['size_bytes'])} |",
                f"| CPU examples/s | - | {student['cpu_examples_per_second']:.1f} |"]
        return "\n".join(out)
    t_speed, s_speed = teacher["cpu_examples_per_second"], student["cpu_examples_per_second"]
    key, title = ("accuracy", "accuracy") if "accuracy" in teacher else \
        ("f1", "micro-F1 (dev-chosen thresholds)" if "micro_f1" in teacher else "entity F1 (micro)")
    rows = [
        (title, f"{teacher[key]:.4f}", f"{student[key]:.4f}",
         f"{student[key] / teacher[key]:.1%} of teacher" if teacher[key] else ""),
        ("macro-F1", f"{teacher['macro_f1']:.4f}", f"{student['macro_f1']:.4f}", ""),
        ("parameters", f"{teacher['n_params'] / 1e6:.2f}M", f"{student['n_params'] / 1e6:.2f}M",
         f"{teacher['n_params'] / student['n_params']:.1f}x smaller"),
        ("size on disk", _mb(teacher["size_bytes"]), _mb(student["size_bytes"]),
         f"{teacher['size_bytes'] / max(student['size_bytes'], 1):.1f}x smaller"),
        ("CPU examples/s", f"{t_speed:.1f}", f"{s_speed:.1f}", f"{s_speed / t_speed:.1f}x faster"),
    ]
    out = ["| | teacher | student | |", "|---|---:|---:|---|"]
    out += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    return "\n".join(out)
