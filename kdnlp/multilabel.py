"""task: multilabel — every example has a set of labels (tagging, moderation, emotions): one sigmoid per label.

    labels      a JSON list per example, or a CSV/TSV string split on data.label_separator ("0,15"); entries are
                label names, or ids (0-based lines of data.labels) when data.labels gives the names (GoEmotions)
    dev split   carved by iterative stratification (Sechidis et al. 2011): rare labels are placed first, each
                example going to the split that still lacks that label most
    losses      gold: binary cross-entropy per label; teacher term (distill.loss): mse on logits, or bce against
                the teacher's sigmoid(logits / temperature), x temperature^2 like kl
    head        a fresh teacher head's bias starts at the label priors' log-odds (init_prior_bias)
    thresholds  chosen on dev each time dev is scored (distill.threshold: global, or per_label with the global one
                for labels under distill.threshold_min_positives dev positives), saved with the
                model in config.json (`multilabel_thresholds`), used by evaluate/predict/export; dev selection is
                micro-F1 at the dev-chosen thresholds
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import f1_score, precision_recall_fscore_support

from .data import UNLABELLED, EncodedSplit, Example, Splits, infer_labels, load_splits, row_extras
from .errors import UserError
from .losses import DistillLoss
from .runtime.decode import sigmoid  # torch-free: the serving runtime thresholds with it too

if TYPE_CHECKING:
    from .config import DataConfig

THRESHOLDS_KEY = "multilabel_thresholds"  # in the model's config.json
GRID = np.round(np.arange(0.02, 0.99, 0.01), 2)
PAD = -1  # label-id padding in a batch's (rows, most labels) tensor


# ---------------------------------------------------------------- reading

def _tokens(raw, separator: str) -> list:
    if raw is None:  # a blank label cell: no label
        return []
    if isinstance(raw, list):
        return raw
    if isinstance(raw, str):
        return [t.strip() for t in raw.split(separator) if t.strip()]
    return [raw]


def _label_ids(where: str, raw, labels: list[str], labels_from: str, cfg: DataConfig) -> tuple:
    index = {lab: i for i, lab in enumerate(labels)}
    ids = set()
    for tok in _tokens(raw, cfg.label_separator):
        key = str(tok)
        if key in index:
            ids.add(index[key])
        elif labels_from == "file" and (isinstance(tok, int) or key.isdigit()):
            # ids are line numbers of data.labels (GoEmotions: "0,15" with names in emotions.txt)
            if not 0 <= int(key) < len(labels):
                raise UserError(f"{where}: label id {key} is outside data.labels ({len(labels)} labels, ids 0..{len(labels) - 1})")
            ids.add(int(key))
        else:
            raise UserError(f"{where}: label '{key}' is not in {'data.labels' if labels_from == 'file' else 'the training labels'}"
                            f" (known: {', '.join(labels[:20])}); fix the row or list it in data.labels")
    if not ids and not cfg.allow_empty_labels:
        raise UserError(f"{where}: empty label list; give every example a label, or set data.allow_empty_labels: true")
    return tuple(sorted(ids))


def to_examples(rows, labels: list[str], labels_from: str, cfg: DataConfig) -> list[Example]:
    return [Example(text.strip(), _label_ids(where, raw, labels, labels_from, cfg), *row_extras(rest))
            for where, text, raw, *rest in rows]


def iterative_split(label_sets: list[tuple], n_first: int, seed: int) -> tuple[list[int], list[int]]:
    """Iterative stratification into (about n_first indices, the rest), both sorted; deterministic per seed.

    The label with the fewest unassigned examples goes first; each of its examples joins the part that still
    wants most of that label (then most examples). Label-less examples fill the parts' remaining sizes."""
    n = len(label_sets)
    n_labels = max((max(s) for s in label_sets if s), default=-1) + 1
    order = np.random.default_rng(seed).permutation(n)
    ratio = np.array([n_first / n, 1 - n_first / n])
    counts = np.zeros(n_labels)
    by_label: list[list[int]] = [[] for _ in range(n_labels)]
    for i in order:
        for lab in label_sets[i]:
            counts[lab] += 1
            by_label[lab].append(int(i))
    want_size = np.array([n_first, n - n_first])  # exact sizes: a full part takes no more examples
    want_label = ratio[:, None] * counts[None, :]
    part = np.full(n, -1)
    remaining = counts.copy()
    while (remaining > 0).any():
        lab = int(np.where(remaining > 0, remaining, np.inf).argmin())
        for i in by_label[lab]:
            if part[i] >= 0:
                continue
            open_parts = np.flatnonzero(want_size > 0)
            wanted = want_label[open_parts, lab]
            best = open_parts[wanted == wanted.max()]
            j = int(best[np.argmax(want_size[best])])
            part[i] = j
            want_size[j] -= 1
            for m in label_sets[i]:
                want_label[j, m] -= 1
                remaining[m] -= 1
    for i in order:  # examples without labels
        if part[i] < 0:
            j = int(np.argmax(want_size))
            part[i] = j
            want_size[j] -= 1
    return sorted(np.flatnonzero(part == 0).tolist()), sorted(np.flatnonzero(part == 1).tolist())


def load_multilabel_splits(cfg: DataConfig, seed: int, allow_unlabelled: bool = False) -> Splits:
    """data.load_splits with label sets: a row without labels is an error unless data.allow_empty_labels (then its
    gold is 'no label', also for allow_unlabelled: multi-label has no unlabelled-text mode); dev carving and
    data.max_train_examples use iterative stratification."""
    def examples(rows, labels, labels_from, _allow_unlabelled=False):
        return to_examples(rows, labels, labels_from, cfg)

    def infer(rows):
        return infer_labels([(None, None, t) for r in rows for t in _tokens(r[2], cfg.label_separator)])

    def split(exs: list[Example], n_keep: int, seed: int):
        keep, rest = iterative_split([e.label for e in exs], n_keep, seed)
        return [exs[i] for i in keep], [exs[i] for i in rest]

    return load_splits(cfg, seed, examples=examples, infer=infer, split=split, split_name=", iterative stratification")


# ---------------------------------------------------------------- batches, losses

class EncodedMultiLabelSplit(EncodedSplit):
    """Labels as id tuples (`gold`); a batch carries them as a (rows, most labels) tensor padded with -1, and the
    loss turns that into the multi-hot target (the number of labels is the logits' width)."""

    @staticmethod
    def encode_labels(examples: list[Example]):
        # a data.unlabeled row (label UNLABELLED: no gold set, not the empty set) is the row [UNLABELLED] in a
        # batch, which the gold term skips (MultiLabelDistillLoss.gold_term)
        return [(UNLABELLED,) if e.label == UNLABELLED else tuple(e.label) for e in examples]

    def collate(self, index: np.ndarray, width: int | None = None,
                pad_to_multiple_of: int | None = None) -> dict[str, torch.Tensor]:
        batch = self.pad_ids(index, width, pad_to_multiple_of)
        most = max(1, *(len(self.labels[i]) for i in index))
        ids = torch.full((len(index), most), PAD, dtype=torch.long)
        for row, i in enumerate(index):
            ids[row, :len(self.labels[i])] = torch.tensor(self.labels[i], dtype=torch.long)
        batch["labels"] = ids
        return batch

    def multi_hot(self, n_labels: int) -> np.ndarray:
        return multi_hot(self.labels, n_labels)


def multi_hot(label_sets, n_labels: int) -> np.ndarray:
    out = np.zeros((len(label_sets), n_labels), dtype=np.int64)
    for row, ids in enumerate(label_sets):
        out[row, list(ids)] = 1
    return out


def target(ids: torch.Tensor, n_labels: int) -> torch.Tensor:
    """(rows, k) label ids padded with -1 -> (rows, n_labels) float multi-hot (a data.unlabeled row's [UNLABELLED]:
    all zeros, which the gold term masks out)."""
    hot = torch.zeros((ids.shape[0], n_labels + 1), device=ids.device)
    spare = (ids == PAD) | (ids == UNLABELLED)
    hot.scatter_(1, torch.where(spare, n_labels, ids), 1.0)  # padding lands in a spare last column
    return hot[:, :n_labels]


def bce_loss(logits: torch.Tensor, labels: torch.Tensor, _teacher_logits=None):
    bce = F.binary_cross_entropy_with_logits(logits.float(), target(labels, logits.shape[1]))
    return bce, {"bce": bce.detach()}


class MultiLabelDistillLoss(DistillLoss):
    """alpha * BCE(student, gold) + T * D(student, teacher), D per distill.loss (mse | bce: losses.teacher_term);
    the rule and the schedules are DistillLoss's, only the gold term is BCE."""
    gold_part = "bce"

    def teacher_part(self) -> str:
        return f"teacher_{self.cfg.loss}"  # "bce" is the gold term's name

    @staticmethod
    def gold_term(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        # BCE summed over the rows with a gold set / (all rows x labels): a data.unlabeled row adds no BCE but still
        # counts in the mean, as a row without a gold label does in the cross-entropy (losses.DistillLoss)
        # (a mask, not boolean indexing: that would read the device every step, tests/test_loop.py)
        gold = (labels[:, :1] != UNLABELLED).float()
        n = logits.shape[1]
        bce = F.binary_cross_entropy_with_logits(logits.float(), target(labels, n), reduction="none")
        return (bce * gold).sum() / max(len(labels) * n, 1)


# ---------------------------------------------------------------- the fresh head

def init_prior_bias(model, label_sets, n_labels: int) -> np.ndarray | None:
    """Set a fresh head's bias to the log-odds of each label's training frequency, so that the first prediction is
    already the label priors (BCE ~0.15 on GoEmotions) instead of 0.5 everywhere (BCE ln 2 = 0.69): the first few
    hundred steps then go to separating the labels rather than to learning their frequencies. Frequencies are
    clipped to [1/(2n), 1 - 1/(2n)] (n = training examples) so a label absent from train gets a finite bias.
    Returns the biases set (None: no single output layer with a bias)."""
    from .heads import output_layer
    try:
        head = output_layer(model, n_labels, "teacher")
    except UserError:  # no single output layer: leave the head as transformers drew it
        return None
    if head.bias is None or not label_sets:
        return None
    n = len(label_sets)
    freq = np.clip(multi_hot(label_sets, n_labels).mean(0), 0.5 / n, 1 - 0.5 / n)
    bias = np.log(freq / (1 - freq))
    with torch.no_grad():
        head.bias.copy_(torch.as_tensor(bias, dtype=head.bias.dtype))
    return bias


# ---------------------------------------------------------------- thresholds and metrics

def choose_thresholds(probs: np.ndarray, gold: np.ndarray, mode: str, min_positives: int = 0) -> np.ndarray:
    """Per-label thresholds (one value repeated for `global`) maximising F1 on (probs, gold) over GRID.

    global: micro-F1 over all labels. per_label: each label's own F1, for labels with at least `min_positives`
    dev positives (at least 1); the others take the global threshold (a label with a handful of dev positives
    would get a threshold fitted to those few rows). Ties go to the threshold nearest 0.5."""
    pred = probs[:, :, None] >= GRID[None, None, :]  # (rows, labels, grid)
    g = gold[:, :, None].astype(bool)
    tp, fp, fn = (pred & g).sum(0), (pred & ~g).sum(0), (~pred & g).sum(0)  # (labels, grid)
    prefer = -np.abs(GRID - 0.5) * 1e-9  # tie-break towards 0.5
    if mode == "global":
        f1 = 2 * tp.sum(0) / np.maximum(2 * tp.sum(0) + fp.sum(0) + fn.sum(0), 1)
        return np.full(probs.shape[1], GRID[np.argmax(f1 + prefer)])
    f1 = 2 * tp / np.maximum(2 * tp + fp + fn, 1)
    best = GRID[np.argmax(f1 + prefer[None, :], axis=1)]
    micro = 2 * tp.sum(0) / np.maximum(2 * tp.sum(0) + fp.sum(0) + fn.sum(0), 1)
    return np.where(gold.sum(0) >= max(1, min_positives), best, GRID[np.argmax(micro + prefer)])


def thresholds_of(config, n_labels: int) -> np.ndarray:
    """The model's dev-chosen thresholds (config.json), or 0.5 for a model that has none."""
    t = getattr(config, THRESHOLDS_KEY, None) if config is not None else None
    return np.asarray(t, dtype=float) if t is not None else np.full(n_labels, 0.5)


def multilabel_metrics(gold: np.ndarray, pred: np.ndarray, labels: list[str]) -> dict:
    p, r, f, s = precision_recall_fscore_support(gold, pred, zero_division=0)
    micro = float(f1_score(gold, pred, average="micro", zero_division=0))
    return {"micro_f1": micro, "f1": micro,  # f1: the key the comparison table and bench read
            "macro_f1": float(f1_score(gold, pred, average="macro", zero_division=0)),
            "samples_f1": float(f1_score(gold, pred, average="samples", zero_division=0)),
            "subset_accuracy": float((gold == pred).all(1).mean()),
            "per_label": {lab: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
                          for i, lab in enumerate(labels)},
            "labels": labels}


def format_multilabel_report(m: dict, thresholds: np.ndarray) -> str:
    width = max(10, *(len(lab) + 1 for lab in m["labels"]))
    lines = [f"{'label':<{width}} precision    recall        f1   support  threshold"]
    for lab, t in zip(m["labels"], thresholds):
        x = m["per_label"][lab]
        lines.append(f"{lab:<{width}}{x['precision']:>10.4f}{x['recall']:>10.4f}{x['f1']:>10.4f}{x['support']:>10d}{t:>11.2f}")
    lines.append("")
    lines += [f"micro F1 {m['micro_f1']:.4f}   macro F1 {m['macro_f1']:.4f}   samples F1 {m['samples_f1']:.4f}   "
              f"subset accuracy {m['subset_accuracy']:.4f}"]
    return "\n".join(lines)


def supplied_multilabel_report(logits: np.ndarray, label_sets: list, labels: list[str], distill,
                               dev_logits: np.ndarray, dev_sets: list) -> tuple[dict, str]:
    """teacher.outputs scored on test: at thresholds chosen on the dev rows the file covers (distill.threshold),
    else 0.5 (no dev rows to choose on: the test set never chooses)."""
    n = len(labels)
    thresholds = (choose_thresholds(sigmoid(dev_logits), multi_hot(dev_sets, n), distill.threshold,
                                    distill.threshold_min_positives) if len(dev_sets) else np.full(n, 0.5))
    pred = (sigmoid(logits) >= thresholds[None, :]).astype(np.int64)
    metrics = multilabel_metrics(multi_hot(label_sets, n), pred, labels)
    metrics["thresholds"] = [float(t) for t in thresholds]
    return metrics, format_multilabel_report(metrics, thresholds)


class MultiLabel:
    """The Task for task: multilabel (see tasks.Task for the interface)."""
    name = "multilabel"
    metric = "micro F1"
    auto_class_name = "AutoModelForSequenceClassification"
    bert_class_name = "BertForSequenceClassification"
    problem_type = "multi_label_classification"
    gold_loss = staticmethod(bce_loss)
    distill_loss = MultiLabelDistillLoss

    load_splits = staticmethod(load_multilabel_splits)

    @staticmethod
    def init_head(model, train: list[Example]) -> None:
        """A fresh teacher head starts at the label priors (init_prior_bias)."""
        init_prior_bias(model, [e.label for e in train], model.config.num_labels)

    @staticmethod
    def encode(examples, tokenizer, max_length: int, pair_input: str = "joint") -> EncodedMultiLabelSplit:
        return EncodedMultiLabelSplit(examples, tokenizer, max_length, pair_input)

    @classmethod
    def dev_score(cls, trainer, model, data, labels: list[str], batch_size: int) -> float:
        """Choose the thresholds on dev, keep them in the model's config (saved with it), score micro-F1 at them."""
        logits = trainer.predict_logits(model, data, batch_size, desc="dev")
        d = trainer.cfg.distill
        thresholds = choose_thresholds(sigmoid(logits), data.multi_hot(len(labels)), d.threshold, d.threshold_min_positives)
        setattr(model.config, THRESHOLDS_KEY, [float(t) for t in thresholds])
        return cls.score(logits, data, labels, model.config)

    @staticmethod
    def predict(logits: np.ndarray, config) -> np.ndarray:
        return (sigmoid(logits) >= thresholds_of(config, logits.shape[1])[None, :]).astype(np.int64)

    @classmethod
    def score(cls, logits: np.ndarray, data, labels: list[str], config=None) -> float:
        pred = cls.predict(logits, config)
        return float(f1_score(data.multi_hot(len(labels)), pred, average="micro", zero_division=0))

    @classmethod
    def report(cls, logits: np.ndarray, data, labels: list[str], config=None) -> tuple[dict, str]:
        metrics = multilabel_metrics(data.multi_hot(len(labels)), cls.predict(logits, config), labels)
        thresholds = thresholds_of(config, len(labels))
        metrics["thresholds"] = [float(t) for t in thresholds]
        return metrics, format_multilabel_report(metrics, thresholds)

    @staticmethod
    def unlabelled(texts: list) -> list:
        return [Example(t, ()) if isinstance(t, str) else Example(t[0], (), text_b=t[1]) for t in texts]
