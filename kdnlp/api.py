"""The Python API (for notebooks), exported lazily from `kdnlp`:

    cfg = kdnlp.load_config("configs/demo.yaml", ["student.epochs=1"])
    kdnlp.Trainer(cfg).run()        # or .train_teacher(), .teacher_logits(), .train_student(), .evaluate(name)
    kdnlp.predict("saved_dict/demo/student", ["质量很好"])

`predict` is the code behind `kdnlp predict` (cli.py formats its result as lines or JSON).
"""
from __future__ import annotations

import json
from pathlib import Path

import yaml

from .errors import UserError
from .pairs import check_pair_input, input_kind, recorded_input


def predict_with(trainer, model_dir: str | Path, texts: list, batch_size: int = 64) -> list[dict]:
    """Predict `texts` (or (first, second) sentence pairs) with the model saved in `model_dir`, using `trainer`'s
    task, max_length and device.

    classification: {"text", "label", "probability", "probabilities": {label: p}} per text;
    multilabel: {"text", "labels": [labels at the model's dev-chosen thresholds], "probabilities": {label: p}};
    ner: {"text", "entities": [{"text", "type", "start", "end"}, ...]} per text (start/end index words).
    A pair's result has "text" (first) and "text_b" (second). Pairs for a single-text model (or single texts for
    a pair model) are refused with a UserError."""
    import numpy as np

    from .modeldir import load_model_dir
    model, tokenizer, labels = load_model_dir(Path(model_dir), trainer.cfg.task)
    check_pair_input(model.config, texts, model_dir)
    model.to(trainer.device)
    examples = trainer.task.unlabelled(list(texts))
    data = trainer.task.encode(examples, tokenizer, trainer.cfg.data.max_length, input_kind(model))
    logits = trainer.predict_logits(model, data, batch_size)
    if trainer.cfg.task == "ner":
        from .ner import entities
        return [{"text": text, "entities": entities(ex.tokens, [labels[t] for t in tags])}
                for text, ex, tags in zip(texts, examples, data.word_predictions(logits))]
    shown = [{"text": t} if isinstance(t, str) else {"text": t[0], "text_b": t[1]} for t in texts]
    if trainer.cfg.task == "multilabel":
        from .multilabel import MultiLabel, sigmoid
        chosen = MultiLabel.predict(logits, model.config)  # the thresholds chosen on dev, saved in config.json
        return [{**s, "labels": [lab for lab, on in zip(labels, row) if on],
                 "probabilities": {label: float(x) for label, x in zip(labels, p)}}
                for s, p, row in zip(shown, sigmoid(logits), chosen)]
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    results = []
    for s, p in zip(shown, probs):
        k = int(p.argmax())
        results.append({**s, "label": labels[k], "probability": float(p[k]),
                        "probabilities": {label: float(x) for label, x in zip(labels, p)}})
    return results


def _run_max_length(model_dir: Path) -> int | None:
    """data.max_length of the run that trained `model_dir`, from its config.resolved.yaml if present and readable
    (models trained before config.json recorded it)."""
    path = model_dir.parent / "config.resolved.yaml"
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return int(raw["data"]["max_length"])
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError):
        return None


def model_task(config) -> str:
    """The task a saved model was trained for, from its own config.json: a token classifier is ner, a head with
    problem_type multi_label_classification (or dev-chosen thresholds) is multilabel, anything else classification."""
    from .multilabel import THRESHOLDS_KEY
    if any(a.endswith("ForTokenClassification") for a in config.architectures or []):
        return "ner"
    if config.problem_type == "multi_label_classification" or getattr(config, THRESHOLDS_KEY, None) is not None:
        return "multilabel"
    return "classification"


def predict(model_dir: str | Path, texts: list | str, batch_size: int = 64, *, task: str | None = None,
            max_length: int | None = None, device: str = "auto") -> list[dict]:
    """Labels and probabilities (classification, multilabel) or entities (ner) for `texts` — a string, a list of
    strings, or a list of (first, second) tuples for a sentence-pair model — from a model folder kdnlp saved.

    The model's own config.json decides the task (its head: token classifier, multi-label problem_type and
    thresholds) and max_length (recorded at training); a model trained before max_length was recorded takes it
    from <output_dir>/config.resolved.yaml, and without either `max_length` must be given."""
    from transformers import AutoConfig

    from .config import config_from_dict
    from .trainer import Trainer
    model_dir = Path(model_dir)
    if isinstance(texts, str):
        texts = [texts]
    if not texts:
        raise UserError("predict: give at least one text")
    if not (model_dir / "config.json").is_file():
        raise UserError(f"{model_dir}: no trained model here (a folder such as saved_dict/demo/student)")
    config = AutoConfig.from_pretrained(str(model_dir))
    task = task or model_task(config)
    max_length = max_length or recorded_input(config).get("max_length") or _run_max_length(model_dir)
    if max_length is None:
        raise UserError(f"{model_dir}: its max_length is not recorded (no kdnlp_input in config.json, no readable "
                        f"{model_dir.parent / 'config.resolved.yaml'}); pass max_length=, the data.max_length it was trained with")
    cfg = config_from_dict({"task": task, "data": {"max_length": max_length}, "train": {"device": device},
                            "output_dir": str(model_dir.parent)}, source="<predict>")
    return predict_with(Trainer(cfg), model_dir, texts, batch_size)


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
