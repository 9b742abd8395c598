"""Training curves: `kdnlp plot --config X` (and the end of `kdnlp distill`) -> <output_dir>/curves.png.

Reads every <output_dir>/<model>/train_log.json that Trainer.fit wrote (teacher, students, FastBERT/Theseus
stages, pretraining) and draws two panels against epochs: the mean train loss of each epoch, and the dev metric
of each evaluation, placed by its optimizer step (train.eval_every evaluations fall inside epochs). Needs matplotlib
(`pip install 'kdnlp[bench]'`).
"""
from __future__ import annotations

import json
from pathlib import Path

from .errors import UserError
from .fileio import atomic_path

CURVES_FILE = "curves.png"


def find_logs(out: Path) -> dict[str, dict]:
    """{model folder name: its train_log.json}, the teacher first, then the others by name."""
    logs = {}
    for path in sorted(Path(out).glob("*/train_log.json"), key=lambda p: (p.parent.name != "teacher", p.parent.name)):
        try:
            logs[path.parent.name] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise UserError(f"{path}: unreadable training log ({e}); retrain that model or delete the file") from None
    return logs


def curve_points(history: list[dict]) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """(epoch, train loss) per epoch and (epoch position, dev score) per evaluation, from a train_log history.

    An evaluation sits at step / (optimizer steps per epoch), read off the first completed epoch (its train_loss
    entry is followed by the epoch-end evaluation); before any epoch completed, an epoch's evaluations are
    spread evenly across it."""
    train = [(h["epoch"], h["train_loss"]) for h in history if "train_loss" in h]
    evals = [h for h in history if "dev" in h]
    per_epoch = next((nxt["step"] / h["epoch"] for h, nxt in zip(history, history[1:])
                      if "train_loss" in h and "dev" in nxt and nxt["step"] > 0), None)
    if per_epoch:
        return train, [(h["step"] / per_epoch, h["dev"]) for h in evals]
    by_epoch: dict[int, list[float]] = {}
    for h in evals:
        by_epoch.setdefault(h["epoch"], []).append(h["dev"])
    return train, [(epoch - 1 + (i + 1) / len(scores), score)
                   for epoch, scores in sorted(by_epoch.items()) for i, score in enumerate(scores)]


def plot_curves(out: str | Path, path: str | Path | None = None) -> Path:
    """Draw the curves of every model trained in `out` into `path` (default <out>/curves.png); return the path."""
    out = Path(out)
    try:
        import matplotlib
        matplotlib.use("Agg")  # no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        raise UserError("plot: matplotlib is not installed (pip install 'kdnlp[bench]' or pip install matplotlib)") from None
    logs = find_logs(out)
    if not logs:
        raise UserError(f"{out}: no <model>/train_log.json here yet; train first (kdnlp distill --config ...)")
    metrics = {log.get("metric", "dev metric") for log in logs.values()}
    fig, (ax_loss, ax_dev) = plt.subplots(1, 2, figsize=(10, 4))
    for name, log in logs.items():
        train, dev = curve_points(log.get("history", []))
        label = name if len(metrics) == 1 else f"{name} ({log.get('metric', 'dev metric')})"
        if train:
            ax_loss.plot(*zip(*train), marker="o", label=label)
        if dev:
            ax_dev.plot(*zip(*dev), marker="o", label=label)
    ax_loss.set(title="train loss (mean over the epoch)", xlabel="epoch", ylabel="loss")
    ax_dev.set(title="dev " + (metrics.pop() if len(metrics) == 1 else "metric"), xlabel="epoch", ylabel="score")
    for ax in (ax_loss, ax_dev):
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(str(out), fontsize=9)
    fig.tight_layout()
    path = Path(path) if path is not None else out / CURVES_FILE
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path


def plot_after_run(out: str | Path) -> None:
    """The end of `kdnlp distill`: draw the curves when matplotlib is there, else say how to get them."""
    try:
        print(f"curves: {plot_curves(out)}")
    except UserError as e:
        print(f"curves: skipped ({e})")
