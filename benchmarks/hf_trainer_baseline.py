"""The Hugging Face `Trainer` on kdnlp's own work, for benchmarks/gpu.sh: the same train rows (kdnlp's loader:
dev carved the same way), the same tokenizer and max_length, the same model (kdnlp's build_teacher: a pretrained
encoder + fresh head, or the seeded random BERT), the same batch size and learning rate, one epoch. Otherwise the
Trainer's defaults: dynamic padding (DataCollatorWithPadding), bf16 on CUDA, no evaluation during training.

    python benchmarks/hf_trainer_baseline.py --config configs/sst2.yaml [--set k=v ...] --json result.json

Writes: train examples/s and seconds as the Trainer reports them, the real (unpadded) train tokens, the model's
parameters, and test accuracy (Trainer.predict on kdnlp's test split)."""
from __future__ import annotations

import argparse
import json
import tempfile
import time

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", required=True)
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--json", required=True, help="where to write the result")
    args = ap.parse_args()

    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

    from kdnlp.config import load_config
    from kdnlp.trainer import Trainer as KdnlpTrainer

    t_start = time.perf_counter()
    cfg = load_config(args.config, args.set)
    kd = KdnlpTrainer(cfg)
    splits = kd.splits
    model, tokenizer = kd.build_teacher()
    hp, cuda = cfg.teacher, torch.cuda.is_available() and cfg.train.device != "cpu"

    def rows(examples):
        enc = tokenizer([e.text for e in examples], truncation=True, max_length=cfg.data.max_length)
        return [{"input_ids": ids, "attention_mask": m, "labels": e.label}
                for ids, m, e in zip(enc["input_ids"], enc["attention_mask"], examples)]
    train, test = rows(splits.train), rows(splits.test)
    with tempfile.TemporaryDirectory() as tmp:
        targs = TrainingArguments(output_dir=tmp, per_device_train_batch_size=hp.batch_size,
                                  per_device_eval_batch_size=hp.batch_size * 2, learning_rate=hp.lr,
                                  num_train_epochs=1, bf16=cuda and torch.cuda.is_bf16_supported(),
                                  use_cpu=not cuda, seed=cfg.train.seed, report_to="none",
                                  save_strategy="no", eval_strategy="no", disable_tqdm=True)
        trainer = Trainer(model=model, args=targs, train_dataset=train,
                          data_collator=DataCollatorWithPadding(tokenizer))
        t_setup = time.perf_counter() - t_start
        metrics = trainer.train().metrics
        pred = trainer.predict(test)
    accuracy = float((np.asarray(pred.predictions).argmax(-1) == np.array([r["labels"] for r in test])).mean())
    result = {"train_rows": len(train), "train_tokens": int(sum(len(r["input_ids"]) for r in train)),
              "train_seconds": round(metrics["train_runtime"], 2),
              "examples_per_second": round(metrics["train_samples_per_second"], 1),
              "test_accuracy": round(accuracy, 4), "test_rows": len(test), "n_params": model.num_parameters(),
              "bf16": targs.bf16, "device": str(trainer.args.device), "setup_seconds": round(t_setup, 1),
              "batch_size": hp.batch_size, "lr": hp.lr}
    print(json.dumps(result))
    with open(args.json, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
