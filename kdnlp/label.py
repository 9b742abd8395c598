"""`kdnlp label --input texts.txt --teacher <dir|hub id> [--output teacher_outputs.jsonl]`

Runs any fine-tuned local (or hub) sequence classifier over texts and writes its logits as a teacher.outputs file,
so the teacher and the student can run on different machines (the teacher on a GPU box, the student on a laptop).
No config is needed: the labels are the model's own (labels.txt or config.id2label), named in the file's header,
and a config reading the file matches them to its data's labels by name (generic LABEL_i names by index, when
data.labels gives the order).
"""
from __future__ import annotations

import time
from pathlib import Path

from .config import DataConfig
from .data import EncodedSplit, Example, read_file
from .errors import UserError
from .teacher import fine_tuned_source, fp32, from_hub, load_tokenizer
from .teacher_outputs import write_outputs


def read_inputs(path: Path, text_field: str) -> tuple[list[dict], list[Example]]:
    """(the key of each input's output row, the inputs as examples): a .txt is one text per line; a data file
    (.json/.jsonl/.csv/.tsv) gives its text field (and the second text of a pair, so that a pair's row is keyed by
    both texts), and its data ids where it has an `id` field (the outputs then refer to examples by id)."""
    if not path.is_file():
        raise UserError(f"--input {path}: file not found (one text per line, or a data file)")
    if path.suffix.lower() == ".txt":
        texts = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        if not texts:
            raise UserError(f"--input {path}: no texts")
        return [{"text": t} for t in texts], [Example(t, 0) for t in texts]
    rows = read_file(path, DataConfig(text_field=text_field), need_labels=False)
    examples = [Example(row[1].strip(), 0, text_b=row[4].strip() if len(row) > 4 else None) for row in rows]
    keys = [{"id": row[3]} if row[3] is not None else {"text": e.text} if e.text_b is None else
            {"text": e.text, "text_b": e.text_b} for row, e in zip(rows, examples)]
    return keys, examples


def load_classifier(spec: str):
    """(fp32 model, tokenizer, class names in output order) of any fine-tuned sequence classifier."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    resolved, path, _, labels = fine_tuned_source(spec, key="--teacher")
    tokenizer = load_tokenizer(path) if path is not None else from_hub(
        "--teacher", spec, lambda: AutoTokenizer.from_pretrained(resolved))
    return AutoModelForSequenceClassification.from_pretrained(resolved, **fp32()), tokenizer, labels


def label(input_path: str, teacher: str, output: str, max_length: int = 128, batch_size: int = 64,
          device: str = "auto", text_field: str = "auto") -> Path:
    """The teacher's logits for every input, through the same device rule (pick_device: --device cuda without a
    GPU is one line) and the same batched inference (Trainer.predict_logits) as the logit cache."""
    from .config import config_from_dict
    from .trainer import Trainer
    keys, examples = read_inputs(Path(input_path), text_field)
    trainer = Trainer(config_from_dict({"data": {"max_length": max_length}, "train": {"device": device}}))
    model, tokenizer, labels = load_classifier(teacher)
    model.to(trainer.device)
    t0 = time.perf_counter()
    logits = trainer.predict_logits(model, EncodedSplit(examples, tokenizer, max_length), batch_size, desc="label",
                                    device=trainer.device)
    seconds = time.perf_counter() - t0
    write_outputs(Path(output), labels, keys, logits)
    print(f"label: {len(examples)} texts in {seconds:.1f}s ({len(examples) / seconds:.0f}/s) by {teacher} "
          f"({len(labels)} labels: {', '.join(labels[:8])}) -> {output}")
    return Path(output)
