"""A serving bundle: one folder that is everything `kdnlp serve` (or any onnxruntime user) needs, and nothing else.

    model.onnx        the exported graph, fp32 or int8 (kdnlp export)
    tokenizer.json    the fast tokenizer (teacher / BERT-style students), or
    word_vocab.txt    the BiLSTM's word vocabulary (+ its segmentation: #chinese = jieba, #whitespace), or
    static_tokenizer.json (+ tokenizer.json)  the static student's words / WordPiece and n-gram hashing settings
    bundle.json       task, labels (NER: the tag names), max_length, sentence pairs (joint / each side), multi-label
                      thresholds, the tokenizer's special ids, the export parity record, base model, and the sha256
                      of every file above
    README.md         the model card (kdnlp/card.py)
    kdnlp_manifest.json  file sizes (fileio.atomic_dir: the folder is written to a temp dir and renamed into place)

The bundle's checksum (GET /info) is the sha256 of bundle.json, which holds every other file's sha256.
write_bundle runs in the exporting process (torch is there anyway); read_bundle is torch-free.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from ..errors import UserError
from ..fileio import atomic_dir, recover_dir, sha256_file
from .encoders import STATIC, TOKENIZER_JSON, WORDS

FORMAT = "kdnlp-bundle/1"
BUNDLE_FILE = "bundle.json"
MODEL_FILE = "model.onnx"
CARD_FILE = "README.md"


def _tokenizer_files(tokenizer, tmp: Path) -> dict:
    """Write the tokenizer into `tmp`; its bundle.json entry."""
    from ..tokenization.static import StaticTokenizer
    from ..tokenization.words import WordTokenizer
    if isinstance(tokenizer, StaticTokenizer):
        tokenizer.save_pretrained(tmp)
        return {"kind": STATIC, "pad_id": tokenizer.pad_token_id}
    if isinstance(tokenizer, WordTokenizer):
        tokenizer.save_pretrained(tmp)
        return {"kind": WORDS, "pad_id": tokenizer.pad_token_id, "chinese": tokenizer.chinese}
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise UserError(f"--bundle: the model's tokenizer ({type(tokenizer).__name__}) is not a fast (tokenizers) "
                        "tokenizer, so it has no tokenizer.json to serve with; save the model with a fast tokenizer")
    from tokenizers import Tokenizer
    plain = Tokenizer.from_str(backend.to_str())  # a copy: padding and truncation are the runtime's to set
    plain.no_padding()
    plain.no_truncation()
    plain.save(str(tmp / "tokenizer.json"))
    ids = {k: getattr(tokenizer, f"{k}_token_id", None) for k in ("pad", "cls", "sep", "unk")}
    return {"kind": TOKENIZER_JSON, **{f"{k}_id": v for k, v in ids.items()}}


def write_bundle(out: Path, *, onnx_path: Path, tokenizer, model_config, labels: list[str], task: str,
                 max_length: int, parity: dict, model_name: str, base_model: str | None,
                 card: str | None = None) -> str:
    """Write the bundle folder `out` atomically; return its checksum."""
    from ..multilabel import thresholds_of
    from ..pairs import JOINT, SIDES, recorded_input
    pairs = recorded_input(model_config).get("text_pairs")
    meta = {
        "format": FORMAT, "model": model_name, "model_type": model_config.model_type, "base_model": base_model,
        "task": task, "labels": list(labels), "max_length": int(max_length),
        "text_pairs": pairs, "pair_input": SIDES if getattr(model_config, "siamese", False) else JOINT,
        "thresholds": thresholds_of(model_config, len(labels)).tolist() if task == "multilabel" else None,
        "onnx": {"file": MODEL_FILE, "source": onnx_path.name, "quantize": parity.get("quantize")},
        "parity": parity,
    }
    with atomic_dir(out) as tmp:
        shutil.copyfile(onnx_path, tmp / MODEL_FILE)
        meta["tokenizer"] = _tokenizer_files(tokenizer, tmp)
        meta["files"] = {p.name: sha256_file(p) for p in sorted(tmp.iterdir()) if p.is_file()}
        text = json.dumps(meta, indent=2, ensure_ascii=False) + "\n"
        (tmp / BUNDLE_FILE).write_text(text, encoding="utf-8")
        if card is not None:
            (tmp / CARD_FILE).write_text(card, encoding="utf-8")
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def read_bundle(path: str | Path, verify: bool = True) -> dict:
    """bundle.json of a bundle folder, each listed file checked against its sha256; "checksum" and "dir" added."""
    path = Path(path)
    recover_dir(path)
    meta_path = path / BUNDLE_FILE
    if not meta_path.is_file():
        raise UserError(f"{path}: not a serving bundle (no {BUNDLE_FILE}); write one with "
                        "kdnlp export --config X --model student --bundle DIR")
    raw = meta_path.read_bytes()
    try:
        meta = json.loads(raw)
    except ValueError as e:
        raise UserError(f"{meta_path}: not valid JSON ({e}); re-export the bundle") from None
    if meta.get("format") != FORMAT:
        raise UserError(f"{meta_path}: format {meta.get('format')!r}, this kdnlp reads {FORMAT!r}; re-export the bundle")
    for name, digest in meta["files"].items():
        if not (path / name).is_file():
            raise UserError(f"{path}: {name} is missing; copy the whole bundle folder, or re-export it")
        if verify and sha256_file(path / name) != digest:
            raise UserError(f"{path / name}: sha256 differs from {BUNDLE_FILE}'s (a damaged or edited file); "
                            "re-export the bundle")
    meta["checksum"] = hashlib.sha256(raw).hexdigest()
    meta["dir"] = str(path)
    return meta
