"""Dev and test logits of a trained kdnlp multi-label model, in the .npz shape of benchmarks/mlabel_probe.py, so that
benchmarks/mlabel_thresholds.py compares every threshold rule on a `kdnlp train-teacher` run without retraining.

    python benchmarks/mlabel_logits.py <output_dir>/config.resolved.yaml <output_dir>/teacher out.npz [--set k=v ...]

(e.g. --set data.dev=data/goemotions/dev.tsv: the same model's thresholds chosen on GoEmotions' whole dev split)
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from kdnlp.config import load_config
from kdnlp.modeldir import load_model_dir
from kdnlp.trainer import Trainer


def main(config: str, model_dir: str, out: str, *sets: str) -> None:
    trainer = Trainer(load_config(config, [v for k, v in zip(sets, sets[1:]) if k == "--set"]))
    model, tokenizer, labels = load_model_dir(Path(model_dir), "multilabel")
    model.to(trainer.device)
    arrays = {}
    for name, split in (("dev", trainer.splits.dev), ("test", trainer.splits.test)):
        data = trainer.task.encode(split, tokenizer, trainer.cfg.data.max_length)
        arrays[f"{name}_logits"] = trainer.predict_logits(model, data, 128, desc=name)
        arrays[f"{name}_gold"] = data.multi_hot(len(labels))
    np.savez(out, **arrays)


if __name__ == "__main__":
    main(*sys.argv[1:])
