"""The Python API (for notebooks), exported lazily from `kdnlp`:

    cfg = kdnlp.load_config("configs/demo.yaml", ["student.epochs=1"])
    kdnlp.Trainer(cfg).run()        # or .train_teacher(), .teacher_logits(), .train_student(), .evaluate(name)
    kdnlp.predict("saved_dict/demo/student", ["质量很好"])   # one shot
    p = kdnlp.load("saved_dict/demo/student"); p.predict(["质量很好"])   # load once, predict many times

`predict` is the code behind `kdnlp predict` (cli.py formats its result as lines or JSON).
"""
from __future__ import annotations

import json
from pathlib import Path

from .errors import UserError


def predict_with(trainer, model_dir: str | Path, texts: list, batch_size: int = 64) -> list[dict]:
    """Predict `texts` (or (first, second) sentence pairs) with the model saved in `model_dir`, using `trainer`'s
    task, max_length and device (kdnlp.predictor.Predictor; its docstring lists the result fields). Pairs for a
    single-text model (or single texts for a pair model) are refused with a UserError."""
    from .predictor import Predictor
    return Predictor(trainer, model_dir).predict(list(texts), batch_size)


def predict(model_dir: str | Path, texts: list | str, batch_size: int = 64, *, task: str | None = None,
            max_length: int | None = None, device: str = "auto") -> list[dict]:
    """Labels and probabilities (classification, multilabel) or entities (ner) for `texts` — a string, a list of
    strings, or a list of (first, second) tuples for a sentence-pair model — from a model folder kdnlp saved.

    One shot: loads the model, predicts, forgets it; kdnlp.load(model_dir) loads once for many predict calls
    (kdnlp/predictor.py: the same code, and the same task / max_length resolution from the model's config.json)."""
    from .predictor import load
    if isinstance(texts, str):
        texts = [texts]
    if not texts:
        raise UserError("predict: give at least one text")
    return load(model_dir, task=task, max_length=max_length, device=device).predict(texts, batch_size)


def format_prediction(result: dict, as_json: bool) -> str:
    """One line of `kdnlp predict` output for a predict() result."""
    if "entities" in result:
        found = result["entities"]
        if as_json:
            return json.dumps({"text": result["text"], "entities": found}, ensure_ascii=False)
        spans = "  ".join(f"{e['text']}/{e['type']}[{e['start']}:{e['end']}]" for e in found)
        return f"{result['text']}\t{spans or '(no entities)'}"
    texts = {k: result[k] for k in ("text", "text_b") if k in result}
    shown = "\t".join(texts.values())
    probs = {lab: round(x, 4) for lab, x in result["probabilities"].items()}
    if "labels" in result:  # multilabel
        if as_json:
            return json.dumps({**texts, "labels": result["labels"], "probabilities": probs}, ensure_ascii=False)
        return f"{','.join(result['labels']) or '(none)'}\t{shown}"
    if as_json:
        return json.dumps({**texts, "label": result["label"], "probability": round(result["probability"], 4),
                           "probabilities": probs}, ensure_ascii=False)
    return f"{result['label']}\t{result['probability']:.4f}\t{shown}"
