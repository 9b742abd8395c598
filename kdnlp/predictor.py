"""A saved model loaded once, then predicting many times: `kdnlp.load(model_dir).predict(texts)`.

Everything that does not depend on the texts — the model, its tokenizer, labels, task, multi-label thresholds,
max_length, the device — is loaded in load(); predict() only tokenizes, runs the model under
torch.inference_mode and formats the result. `kdnlp.predict` (one shot) and `kdnlp predict` (the CLI) go through
this same class, so the three cannot disagree.

    p = kdnlp.load("saved_dict/sst2/student")
    p.predict(["a gripping film", "dull"])        # [{"text", "label", "probability", "probabilities"}, ...]
    p.labels, p.task, p.max_length
"""
from __future__ import annotations

from pathlib import Path

import yaml

from .errors import UserError
from .pairs import check_pair_input, input_kind, recorded_input
from .runtime import decode  # the serving runtime formats answers with the same functions


class Predictor:
    """One saved model for one task; built by load(), or from a Trainer (the CLI: its config's task and max_length).

    predict() results: classification {"text", "label", "probability", "probabilities": {label: p}};
    multilabel {"text", "labels": [labels at the model's dev-chosen thresholds], "probabilities"};
    ner {"text", "entities": [{"text", "type", "start", "end", "char_start", "char_end"}, ...]} (start/end index
    words, char_start/char_end the text's characters).
    A pair's result has "text" (first) and "text_b" (second)."""

    def __init__(self, trainer, model_dir: str | Path):
        from .modeldir import load_model_dir
        self.trainer = trainer
        self.model_dir = Path(model_dir)
        self.task_name = trainer.cfg.task
        self.task = trainer.task
        self.max_length = trainer.cfg.data.max_length
        self.model, self.tokenizer, self.labels = load_model_dir(self.model_dir, self.task_name)
        self.pair_input = input_kind(self.model)  # sentence pairs: jointly or each side on its own
        self.device = trainer.device
        self.model.to(self.device).eval()
        # a model that goes from texts to logits on its own (the static student: flat ids into an embedding_bag,
        # no padding), used for single texts of a sequence task
        self.text_logits = getattr(self.model, "text_logits", None) if self.task_name != "ner" else None

    def logits(self, texts: list, batch_size: int = 64):
        """(examples, encoded split, logits) for texts or (first, second) pairs: Trainer.predict_logits with an
        explicit device, i.e. this process alone, in fp32 (no sharding, no autocast), whatever the task; or the
        model's own text_logits (examples and split None: only NER's results read them)."""
        check_pair_input(self.model.config, texts, self.model_dir)
        if self.text_logits is not None and all(isinstance(t, str) for t in texts):
            return None, None, self.text_logits(self.tokenizer, list(texts), self.max_length, batch_size)
        examples = self.task.unlabelled(list(texts))
        data = self.task.encode(examples, self.tokenizer, self.max_length, self.pair_input)
        return examples, data, self.trainer.predict_logits(self.model, data, batch_size, device=self.device)

    def predict(self, texts: list | str, batch_size: int = 64) -> list[dict]:
        if isinstance(texts, str):
            texts = [texts]
        if not texts:
            return []
        examples, data, logits = self.logits(texts, batch_size)
        labels = self.labels
        if self.task_name == "ner":
            return [{"text": text, "entities": decode.entities_with_offsets(text, ex.tokens, [labels[t] for t in tags])}
                    for text, ex, tags in zip(texts, examples, data.word_predictions(logits))]
        shown = [{"text": t} if isinstance(t, str) else {"text": t[0], "text_b": t[1]} for t in texts]
        if self.task_name == "multilabel":  # the thresholds chosen on dev, in config.json
            from .multilabel import thresholds_of
            return decode.multilabel(shown, logits, labels, thresholds_of(self.model.config, len(labels)))
        return decode.classification(shown, logits, labels)


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


def load(model_dir: str | Path, *, task: str | None = None, max_length: int | None = None,
         device: str = "auto") -> Predictor:
    """A Predictor for a model folder kdnlp saved. The model's own config.json decides the task (its head: token
    classifier, multi-label problem_type and thresholds) and max_length (recorded at training); a model trained
    before max_length was recorded takes it from <output_dir>/config.resolved.yaml, and without either
    `max_length` must be given."""
    from transformers import AutoConfig

    from .config import config_from_dict
    from .trainer import Trainer
    model_dir = Path(model_dir)
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
    return Predictor(Trainer(cfg), model_dir)
