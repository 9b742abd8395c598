"""FastBERT (Liu et al., 2020): a BERT with a classifier branch after every layer and per-example early exit.

Training (`fit`), two stages on top of a k-layer copy of the fine-tuned teacher (like students/truncated_bert.py):
  1. backbone   the encoder and the final classifier, with the configured distillation loss, student.epochs
                -> <output_dir>/<name>_backbone
  2. branches   backbone and final classifier frozen; each branch learns KL(final || branch) from the final
                classifier (self-distillation, no labels), student.branch_epochs -> <output_dir>/<name>
Inference: after layer i the branch's normalized entropy H(p) / log(C) is computed per example; examples below
`config.speed` take that branch's prediction and LEAVE THE BATCH, so the remaining layers run on fewer rows (the
seed's static-graph version computed every layer for every example and was slower than the teacher). speed 0
never exits (the full model); larger speed exits earlier. `measure_speeds` gives accuracy, examples/s and the mean
number of layers per example for several speeds (`kdnlp fastbert-speeds`).

Simplification: a branch is a classifier on the masked mean of the layer's token states (dense + tanh + linear),
not the paper's small self-attention branch. Not [CLS]: in early layers of a fine-tuned BERT [CLS] carries almost
nothing about the sentence yet (on SST-2 with MiniLM, [CLS] branches after layers 1-4 stayed at chance).
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass

import torch
from torch import nn
from transformers import AutoConfig, AutoModelForSequenceClassification, BertConfig, BertModel
from transformers.models.bert.modeling_bert import BertPreTrainedModel
from transformers.utils import ModelOutput

from ..data import model_inputs
from ..errors import UserError
from ..modeldir import load_model_dir
from .truncated_bert import student_layers, truncate


class FastBertConfig(BertConfig):
    model_type = "kdnlp-fastbert"

    def __init__(self, speed: float = 0.0, **kwargs):
        self.speed = speed  # exit threshold on the branch's normalized entropy; 0 = never exit
        super().__init__(**kwargs)


@dataclass
class FastBertOutput(ModelOutput):
    logits: torch.Tensor | None = None
    branch_logits: tuple | None = None   # per layer 1..k-1, with output_branch_logits=True (training)
    exit_layers: torch.Tensor | None = None  # per example, the number of layers it went through


class Branch(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.out = nn.Linear(config.hidden_size, config.num_labels)

    def forward(self, hidden, attention_mask):
        m = attention_mask[:, :, None].to(hidden.dtype)
        pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)
        return self.out(self.dropout(torch.tanh(self.dense(pooled))))


def normalized_entropy(logits: torch.Tensor) -> torch.Tensor:
    logp = torch.log_softmax(logits.float(), dim=-1)
    return -(logp.exp() * logp).sum(-1) / math.log(logits.shape[-1])


class FastBertForSequenceClassification(BertPreTrainedModel):
    config_class = FastBertConfig

    def __init__(self, config: FastBertConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.bert = BertModel(config)  # same names as BertForSequenceClassification: its weights load directly
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.branches = nn.ModuleList(Branch(config) for _ in range(config.num_hidden_layers - 1))
        self.post_init()

    def final_logits(self, hidden):
        return self.classifier(self.dropout(self.bert.pooler(hidden)))

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, labels=None,
                output_branch_logits: bool = False, **_):
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        hidden = self.bert.embeddings(input_ids=input_ids, token_type_ids=token_type_ids)
        # additive mask (batch, 1, 1, length); rows of it leave the batch together with their examples
        mask = (1.0 - attention_mask[:, None, None, :].to(hidden.dtype)) * torch.finfo(hidden.dtype).min
        layers = self.bert.encoder.layer
        exiting = not self.training and not output_branch_logits and self.config.speed > 0
        if not exiting:  # every layer for every example (training, or speed 0)
            branch_logits = []
            for i, layer in enumerate(layers):
                hidden = layer(hidden, mask)
                if output_branch_logits and i < len(layers) - 1:
                    branch_logits.append(self.branches[i](hidden, attention_mask))
            exit_layers = torch.full((len(input_ids),), len(layers), device=input_ids.device)
            return FastBertOutput(logits=self.final_logits(hidden), exit_layers=exit_layers,
                                  branch_logits=tuple(branch_logits) if output_branch_logits else None)
        logits = hidden.new_zeros(len(input_ids), self.num_labels)
        exit_layers = torch.full((len(input_ids),), len(layers), device=input_ids.device)
        active = torch.arange(len(input_ids), device=input_ids.device)  # original rows still in the batch
        for i, layer in enumerate(layers):
            hidden = layer(hidden, mask)
            if i == len(layers) - 1:
                logits[active] = self.final_logits(hidden).to(logits.dtype)
                break
            branch = self.branches[i](hidden, attention_mask)
            done = normalized_entropy(branch) < self.config.speed
            if done.any():
                logits[active[done]] = branch[done].to(logits.dtype)
                exit_layers[active[done]] = i + 1
                keep = ~done
                if not keep.any():
                    break
                hidden, mask, active = hidden[keep], mask[keep], active[keep]
                attention_mask = attention_mask[keep]
        return FastBertOutput(logits=logits, exit_layers=exit_layers)


AutoConfig.register(FastBertConfig.model_type, FastBertConfig)
AutoModelForSequenceClassification.register(FastBertConfig, FastBertForSequenceClassification)


def from_bert(bert_classifier) -> FastBertForSequenceClassification:
    """A FastBERT with `bert_classifier`'s encoder and classifier (a BertForSequenceClassification), fresh branches."""
    if not hasattr(bert_classifier, "bert"):
        raise UserError(f"student.type fastbert: the teacher must be a BERT model, got {type(bert_classifier).__name__}")
    if getattr(bert_classifier.bert, "pooler", None) is None:  # kdnlp-bert-mean (teacher.pooling): no [CLS] pooler
        raise UserError("student.type fastbert: its exits read the [CLS] pooler, but this teacher's head reads the mean "
                        "of its tokens (teacher.pooling); train the teacher with teacher.pooling: cls")
    config = FastBertConfig(**{k: v for k, v in bert_classifier.config.to_dict().items() if k != "model_type"})
    model = FastBertForSequenceClassification(config)
    missing, unexpected = model.load_state_dict(bert_classifier.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("branches.") for k in missing), (missing, unexpected)
    return model


def build(cfg, ctx):
    teacher = ctx.fine_tuned_teacher()  # num_layers unset: the whole teacher as the backbone (exits do the speed-up)
    layers = student_layers(cfg.student, teacher.config.num_hidden_layers)
    return from_bert(truncate(teacher, layers)), ctx.teacher_tokenizer()


class BranchSelfDistillation:
    """Stage-2 loss: mean over branches of KL(final classifier || branch); needs no labels and no teacher."""

    forward_kwargs = {"output_branch_logits": True}

    def batch_loss(self, outputs, inputs, logits, labels, teacher_logits):
        target = torch.log_softmax(outputs.logits.detach().float(), dim=-1)
        kls = [nn.functional.kl_div(torch.log_softmax(b.float(), dim=-1), target, reduction="batchmean", log_target=True)
               for b in outputs.branch_logits]
        total = torch.stack(kls).mean()
        return total, {"branch_kl": total.detach()}  # no .item(): a host sync every step


def fit(trainer, model, tokenizer, loss_fn, teacher_logits, train_examples):
    cfg = trainer.cfg
    name = cfg.student.name
    backbone_dir = trainer.out / f"{name}_backbone"
    model.config.speed = 0.0
    model.branches.requires_grad_(False)
    print(f"fastbert stage 1/2: backbone ({cfg.student.epochs} epochs) -> {backbone_dir}")
    trainer.fit(model, tokenizer, loss_fn, cfg.student, backbone_dir, f"{name} backbone", teacher_logits, train_examples)
    model = FastBertForSequenceClassification.from_pretrained(str(backbone_dir))  # the best backbone on dev
    model.requires_grad_(False)
    model.branches.requires_grad_(True)
    model.config.speed = cfg.student.speed  # dev accuracy at this speed selects the branches
    hp = dataclasses.replace(cfg.student, epochs=cfg.student.branch_epochs, lr=cfg.student.branch_lr)
    print(f"fastbert stage 2/2: branches, self-distilled from the final classifier ({hp.epochs} epochs, lr {hp.lr}, "
          f"dev at speed {cfg.student.speed})")
    trainer.fit(model, tokenizer, BranchSelfDistillation(), hp, trainer.out / name, name, None, train_examples)


@torch.no_grad()
def measure_speeds(model, data, speeds: list[float], batch_size: int = 64, device: str | torch.device = "cpu") -> list[dict]:
    """For each speed: test accuracy, examples/s and the mean number of layers per example."""
    model.to(device).eval()
    saved, rows = model.config.speed, []
    warm = next(iter(data.eval_batches(batch_size)))  # first calls allocate and pick kernels: keep them out of the timing
    model(**model_inputs(model, warm, device))
    for speed in speeds:
        model.config.speed = speed
        correct, layers, t0 = 0, 0, time.perf_counter()
        for batch in data.eval_batches(batch_size):
            out = model(**model_inputs(model, batch, device))  # pairs: with token_type_ids
            correct += int((out.logits.argmax(-1).cpu() == batch["labels"]).sum())
            layers += int(out.exit_layers.sum())
        seconds = time.perf_counter() - t0
        rows.append({"speed": speed, "accuracy": round(correct / len(data), 4),
                     "examples_per_second": round(len(data) / seconds, 1),
                     "mean_layers": round(layers / len(data), 3), "seconds": round(seconds, 3)})
    model.config.speed = saved
    return rows


def speeds_table(rows: list[dict], n_layers: int) -> str:
    lines = ["| speed | accuracy | examples/s | mean layers |", "|---:|---:|---:|---:|"]
    lines += [f"| {r['speed']} | {r['accuracy']:.4f} | {r['examples_per_second']:.0f} | {r['mean_layers']:.2f} / {n_layers} |"
              for r in rows]
    return "\n".join(lines)


def sweep(trainer, name: str, speeds: list[float], split: str = "test", batch_size: int = 64):
    """(measure_speeds rows, number of layers) of the FastBERT model <out>/<name> on `split`; None if it is not one."""
    mdir = trainer.out / name
    model, tokenizer, labels = load_model_dir(mdir, trainer.cfg.task)
    if not isinstance(model, FastBertForSequenceClassification):
        return None
    trainer._check_labels(labels, mdir)
    data = trainer.task.encode(getattr(trainer.splits, split), tokenizer, trainer.cfg.data.max_length)
    return measure_speeds(model, data, speeds, batch_size, trainer.device), model.config.num_hidden_layers


def speeds_report(trainer, name: str, speeds: list[float], split: str = "test") -> list[dict]:
    """FastBERT early exit on `split` at several speeds -> printed table + <out>/<name>/speeds[_dev].json.

    Choose the speed on dev (split="dev"), then report that speed's row on test: a sweep on test is a trade-off
    curve to read, not a place to pick from."""
    from ..fileio import write_json
    mdir = trainer.out / name
    measured = sweep(trainer, name, speeds, split)
    if measured is None:
        raise UserError(f"{mdir}: not a FastBERT model (train one with student.type: fastbert)")
    rows, n_layers = measured
    n = len(getattr(trainer.splits, split))
    print(f"\n{name} on {split} ({n} examples, batch 64, {trainer.device}, {torch.get_num_threads()} threads):\n"
          f"{speeds_table(rows, n_layers)}\n")
    write_json(mdir / ("speeds.json" if split == "test" else f"speeds_{split}.json"),
               {"model": name, "split": split, "device": str(trainer.device), "batch_size": 64,
                "torch_threads": torch.get_num_threads(), "rows": rows})
    return rows
