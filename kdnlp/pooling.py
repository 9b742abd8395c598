"""teacher.pooling: which sentence vector the teacher's classification head reads.

    cls    the family's own head: BERT's reads the [CLS] pooler (dense + tanh over the first token)
    mean   the masked mean of the last layer's tokens (padding excluded), then dropout + the linear head
    auto   mean where the checkpoint declares mean pooling (a sentence-transformers `modules.json` whose Pooling
           module has pooling_mode_mean_tokens), else cls

Why: sentence-transformers checkpoints (all-MiniLM-L6-v2, bge, e5, ...) were trained to make the mean of their
tokens the sentence vector; their [CLS] pooler was never trained (MiniLM's bias is all zeros). A fresh head on it
learns from a vector the encoder never shaped: on 3,000 GoEmotions comments it stays on the label-prior plateau for
two epochs, where the same head over the mean leaves it (docs/pairs_multilabel.md).

A mean-pooled BERT is saved as model_type `kdnlp-bert-mean` (MeanPooledBertForSequenceClassification, registered
with the Auto* classes when kdnlp is imported, like the BiLSTM and FastBERT students); its weights have BERT's
names minus the unused pooler, so truncated students (student.type: bert, theseus) copy its layers as usual and
inherit the mean head. Only BERT-architecture encoders (model_type bert: MiniLM, bge, e5, ...) have it;
`auto` keeps cls for other families and says so, `mean` refuses them.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn
from transformers import (AutoConfig, AutoModel, AutoModelForSequenceClassification, BertConfig, BertModel,
                          BertPreTrainedModel)
from transformers.modeling_outputs import SequenceClassifierOutput

from .errors import UserError

POOLINGS = ("auto", "cls", "mean")


class MeanPooledBertConfig(BertConfig):
    model_type = "kdnlp-bert-mean"


class MeanPooledBertModel(BertModel):
    """BertModel under the mean-pooled config type (AutoModel.from_config of a kdnlp-bert-mean config)."""
    config_class = MeanPooledBertConfig


def masked_mean(hidden: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    """(rows, tokens, width) -> (rows, width): the mean over the tokens whose mask is 1."""
    if attention_mask is None:
        return hidden.mean(1)
    m = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)


class MeanPooledBertForSequenceClassification(BertPreTrainedModel):
    """BERT encoder (no pooler) -> masked mean of the last layer -> dropout -> linear head."""
    config_class = MeanPooledBertConfig

    def __init__(self, config):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.bert = BertModel(config, add_pooling_layer=False)
        p = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
        self.dropout = nn.Dropout(p)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, labels=None, output_hidden_states=None, output_attentions=None, **kwargs):
        out = self.bert(input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                        position_ids=position_ids, inputs_embeds=inputs_embeds, output_hidden_states=output_hidden_states,
                        output_attentions=output_attentions, return_dict=True)
        logits = self.classifier(self.dropout(masked_mean(out.last_hidden_state, attention_mask)))
        loss = None
        if labels is not None:  # kdnlp computes its own losses; this is for plain transformers users
            if self.config.problem_type == "multi_label_classification":
                loss = nn.functional.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))
            else:
                loss = nn.functional.cross_entropy(logits.view(-1, self.num_labels), labels.view(-1))
        return SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=out.hidden_states,
                                        attentions=out.attentions)


AutoConfig.register(MeanPooledBertConfig.model_type, MeanPooledBertConfig)
AutoModel.register(MeanPooledBertConfig, MeanPooledBertModel)
AutoModelForSequenceClassification.register(MeanPooledBertConfig, MeanPooledBertForSequenceClassification)


def declared_pooling(path: str | Path | None) -> str | None:
    """'mean' / 'cls' / 'max' ... as a sentence-transformers checkpoint declares it (modules.json -> its Pooling
    module's config.json), or None for a directory that declares nothing."""
    if path is None or not (Path(path) / "modules.json").is_file():
        return None
    path = Path(path)
    try:
        modules = json.loads((path / "modules.json").read_text(encoding="utf-8"))
        for m in modules:
            if str(m.get("type", "")).endswith("Pooling"):
                conf = json.loads((path / m.get("path", "") / "config.json").read_text(encoding="utf-8"))
                modes = [k[len("pooling_mode_"):].removesuffix("_token").removesuffix("_tokens")
                         for k, v in conf.items() if k.startswith("pooling_mode_") and v is True]
                return modes[0] if len(modes) == 1 else "+".join(modes) or None
    except (OSError, json.JSONDecodeError, AttributeError):
        return None
    return None


def choose_pooling(setting: str, declared: str | None, model, where: str) -> str:
    """'mean' or 'cls' for teacher.pooling `setting`, given the checkpoint's declared pooling and the loaded model."""
    bert = type(model).__name__ == "BertForSequenceClassification"
    if setting == "cls":
        return "cls"
    if type(model).__name__.endswith("ForTokenClassification"):  # a tagger's head reads every token: no pooling
        if setting == "mean":
            raise UserError("teacher.pooling: mean is for text classification; a tagger (task: ner) reads every token")
        return "cls"
    if setting == "mean":
        if not bert:
            raise UserError(f"teacher.pooling: mean is available for BERT-architecture encoders only; {where} is "
                            f"{type(model).__name__} (set teacher.pooling: cls or auto)")
        return "mean"
    trained_head = any(a.endswith("ForSequenceClassification") for a in getattr(model.config, "architectures", None) or [])
    if declared == "mean" and trained_head:  # a classifier already fine-tuned on its own pooled vector keeps it
        return "cls"
    if declared == "mean":
        if bert:
            return "mean"
        print(f"teacher: {where} declares mean pooling, but kdnlp has a mean-pooled head for BERT-architecture "
              f"encoders only ({type(model).__name__}); its head reads the family's own pooled vector")
    return "cls"


def to_mean_pooled(model):
    """A BertForSequenceClassification's weights (minus the pooler) in a MeanPooledBertForSequenceClassification."""
    config = MeanPooledBertConfig(**{k: v for k, v in model.config.to_dict().items()
                                     if k not in ("model_type", "architectures", "transformers_version")})
    new = MeanPooledBertForSequenceClassification(config)
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("bert.pooler.")}
    new.load_state_dict(state, strict=True)
    return new


def apply_pooling(model, setting: str, source: str | Path | None, where: str):
    """The teacher as teacher.pooling asks (the model itself for cls); prints one line when it switches to mean."""
    declared = declared_pooling(source)
    if choose_pooling(setting, declared, model, where) == "cls":
        return model
    why = "as the checkpoint declares (1_Pooling)" if declared == "mean" else "teacher.pooling: mean"
    print(f"teacher: the head reads the mean of the last layer's tokens ({why}), not the [CLS] pooler")
    return to_mean_pooled(model)
