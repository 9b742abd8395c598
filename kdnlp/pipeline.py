"""The pipeline steps around the training loop: where the teacher comes from, its cached logits, the transfer set.

    teacher sources   teacher.pretrained / config (fine-tuned by Trainer.train_teacher), teacher.fine_tuned (imported
                      as it is into <out>/teacher), teacher.outputs (no model); the tokenizer students share
    logit cache       the teacher run once over a split -> <out>/logits/<split>.npy + fingerprint manifest;
                      several teachers averaged (distill.teachers); supplied outputs aligned to the train split
    transfer set      augment.enabled: Tang et al.'s augmented texts, labelled through the cache

Trainer (kdnlp/trainer.py) inherits these steps and keeps the training loop, evaluation and the order of the steps.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Iterable

import numpy as np

from .augment import TransferSetStore, load_or_build_transfer_set
from .cache import LogitCache, average_logits
from .card import write_card
from .data import Example
from .errors import UserError
from .fileio import recover_dir, sha256_file, write_json
from .modeldir import LABELS_FILE, WEIGHT_NAMES, load_model_dir, save_model_dir
from .multilabel import supplied_multilabel_report
from .ner import IGNORE
from .pairs import record_input
from .report import classification_metrics, format_report
from .teacher import from_hub, load_fine_tuned, load_tokenizer, locate, source_fingerprint
from .preflight import trainer_needs_logits
from .teacher_outputs import align, check_loss, example_key, read_outputs
from .vocab import build_vocab_file


class PipelineSteps:
    """Mixed into Trainer: uses its cfg, out, splits, accelerator, device, is_main, task, predict_logits."""

    # ------------------------------------------------------------ teacher sources

    @property
    def has_teacher_model(self) -> bool:
        """False when the teacher is only its supplied outputs (teacher.outputs without teacher.fine_tuned)."""
        return self.cfg.teacher.outputs is None or self.cfg.teacher.fine_tuned is not None

    def import_fine_tuned(self) -> None:
        """teacher.fine_tuned -> <out>/teacher (fp32, outputs in the data's label order), once per source version."""
        spec = self.cfg.teacher.fine_tuned
        if spec is None or getattr(self, "_imported", False):
            return
        tdir = self.out / "teacher"
        recover_dir(tdir)
        source = source_fingerprint(spec)
        state_file = tdir / "train_state.json"
        if (tdir / "config.json").is_file() and state_file.is_file() \
                and json.loads(state_file.read_text(encoding="utf-8")).get("fine_tuned") == source:
            self._imported = True
            return
        model, tokenizer, perm = load_fine_tuned(spec, self.splits.labels, self.cfg.task, self.cfg.data.labels is not None)
        order = "" if perm == list(range(len(perm))) else f", its outputs reordered to the data's labels {perm}"
        print(f"teacher: {spec} used as it is, not trained ({model.num_parameters() / 1e6:.1f}M parameters{order})")
        record_input(model, any(getattr(e, "text_b", None) is not None for e in self.splits.test), self.cfg.data.max_length)
        if self.is_main:
            save_model_dir(model, tokenizer, self.splits.labels, tdir, {"fine_tuned": source})
            write_card(tdir, self.cfg)
        self.accelerator.wait_for_everyone()
        self._imported = True

    def teacher_tokenizer(self):
        """The teacher's tokenizer: the fine-tuned teacher's, else teacher.pretrained's, else teacher.vocab."""
        if not self.has_teacher_model:
            raise UserError("teacher: only teacher.outputs is given, so there is no teacher model or tokenizer; "
                            "set teacher.fine_tuned, or student.tokenizer for a BiLSTM student")
        self.import_fine_tuned()
        tdir = self.out / "teacher"
        recover_dir(tdir)
        if (tdir / "config.json").is_file():
            return load_tokenizer(tdir)
        t = self.cfg.teacher
        if t.pretrained is not None:
            resolved, path = locate(t.pretrained, "teacher.pretrained")
            if path is not None:
                return load_tokenizer(path)
            from transformers import AutoTokenizer
            return from_hub("teacher.pretrained", t.pretrained, lambda: AutoTokenizer.from_pretrained(resolved))
        from transformers import BertTokenizer
        return BertTokenizer(str(self._vocab_file()))

    def _vocab_file(self) -> Path:
        v = self.cfg.teacher.vocab
        if v == "build":  # character-level vocabulary made from the training texts
            path = self.out / "vocab.txt"
            with self.accelerator.main_process_first():  # the main process writes it, the others then read it
                if not path.is_file():
                    n = build_vocab_file(self.all_train_texts(), path)
                    print(f"vocab: built {n} tokens from the training data -> {path}")
            return path
        return Path(v)

    def fine_tuned_teacher(self):
        if not self.has_teacher_model:
            raise UserError(f"student.type: {self.cfg.student.type} is built from a teacher model, and only "
                            "teacher.outputs is given; use student.type: bilstm, or set teacher.fine_tuned")
        self.import_fine_tuned()
        model, _, labels = load_model_dir(self.out / "teacher", self.cfg.task)
        self._check_labels(labels, self.out / "teacher")
        return model

    # ------------------------------------------------------------ logit cache

    def _cache_fingerprint(self, tdir: Path, data_sha256: str) -> dict:
        weights = next((tdir / w for w in WEIGHT_NAMES if (tdir / w).is_file()), None)
        vocab = next((tdir / f for f in ("tokenizer.json", "vocab.txt") if (tdir / f).is_file()), None)
        return {
            "teacher_weights_sha256": sha256_file(weights) if weights else None,
            "data_sha256": data_sha256,
            "tokenizer_sha256": sha256_file(vocab) if vocab else None,
            "max_length": self.cfg.data.max_length,
        }

    def cache_teacher_logits(self, split: str = "train", examples: list | None = None,
                             data_sha256: str | None = None, teacher_dir: Path | None = None,
                             fixed_padding: bool = False) -> np.ndarray:
        """Teacher logits for a split (or for `examples`, e.g. the augmented texts, identified by `data_sha256`).

        `teacher_dir`: another fine-tuned teacher (distill.teachers); its cache is <out>/logits/<split>.<hash>."""
        tdir = teacher_dir or self.out / "teacher"
        recover_dir(tdir)
        fingerprint = self._cache_fingerprint(tdir, data_sha256 if examples is not None else self.splits.fingerprint(split))
        cache_name = split if teacher_dir is None else f"{split}.{hashlib.sha256(str(Path(tdir).resolve()).encode()).hexdigest()[:10]}"
        cache = LogitCache(self.out / "logits", cache_name)
        logits = cache.load(fingerprint) if (tdir / LABELS_FILE).is_file() else None
        if logits is not None:  # a hit needs only the fingerprint: the teacher's weights are not loaded
            self._check_labels((tdir / LABELS_FILE).read_text(encoding="utf-8").splitlines(), tdir)
            print(f"logit cache: reusing {cache.array_path} (fingerprint matches)")
            return logits
        model, tokenizer, labels = load_model_dir(tdir, self.cfg.task)
        self._check_labels(labels, tdir)
        print(f"logit cache: computing teacher logits for {split} ({cache.status})")
        model.to(self.device)
        data = self.task.encode(examples if examples is not None else getattr(self.splits, split),
                                tokenizer, self.cfg.data.max_length)
        t0 = time.perf_counter()
        logits = self.predict_logits(model, data, self.cfg.teacher.batch_size * 2, desc=f"teacher logits ({split})",
                                     fixed_padding=fixed_padding)
        seconds = time.perf_counter() - t0
        if self.is_main:  # every process has all rows (gathered); one writes them
            cache.save(logits, fingerprint, {"seconds": round(seconds, 2), "examples_per_second": round(len(data) / seconds, 1),
                                             "processes": self.accelerator.num_processes,
                                             "padding": "fixed" if fixed_padding else "sorted dynamic"})
        self.accelerator.wait_for_everyone()
        print(f"logit cache: {len(data)} rows in {seconds:.1f}s ({len(data) / seconds:.0f} examples/s) -> {cache.array_path}")
        return logits

    def supplied_outputs(self):
        """teacher.outputs, read and validated once (kdnlp/teacher_outputs.py)."""
        if getattr(self, "_outputs", None) is None:
            t = self.cfg.teacher
            self._outputs = read_outputs(t.outputs, self.splits.labels, t.outputs_type, t.outputs_ids,
                                         by_index=self.cfg.data.labels is not None, task=self.cfg.task)
            check_loss(self._outputs, self.cfg.distill.loss)
        return self._outputs

    def outputs_report(self) -> dict | None:
        """The supplied outputs scored on test, when they cover every test text (the teacher's accuracy)."""
        if not trainer_needs_logits(self.cfg):
            print("teacher: distill.T = 0, so teacher.outputs is not read (no teacher report)")
            return None
        outputs = self.supplied_outputs()
        index = outputs.lookup()
        test = self.splits.test
        key = lambda e: example_key(e, outputs.key_kind)
        if not all(key(e) in index for e in test):
            print("teacher: the supplied outputs do not cover the test texts, so there is no teacher report")
            return None
        logits, labels = outputs.logits[[index[key(e)] for e in test]], self.splits.labels
        if self.cfg.task == "multilabel":  # thresholds chosen on dev where the file covers it, as for a model
            dev = [e for e in self.splits.dev if key(e) in index]
            metrics, text = supplied_multilabel_report(logits, [e.label for e in test], labels, self.cfg.distill,
                                                       outputs.logits[[index[key(e)] for e in dev]], [e.label for e in dev])
        else:
            pred, gold = logits.argmax(1), np.array([e.label for e in test])
            metrics, text = classification_metrics(gold, pred, labels), format_report(gold, pred, labels)
        print(f"\nteacher outputs ({outputs.path}) on test ({len(test)} examples):\n{text}\n")
        report = {**metrics, "model": "teacher", "source": outputs.path, "n_examples": len(test)}
        if self.is_main:
            write_json(self.out / "teacher_outputs_report.json", report)
        return report

    def teacher_logits(self, split: str = "train", examples: list | None = None,
                       data_sha256: str | None = None, fixed_padding: bool = False) -> np.ndarray:
        """The cached logits of this run's teacher, or the average over distill.teachers (multi-teacher KD);
        with teacher.outputs, the supplied outputs of the training examples."""
        if self.cfg.teacher.outputs is not None and split == "train" and examples is None:
            s = self.splits
            logits = align(self.supplied_outputs(), s.train, s.dev + s.test + s.unused, strict=not self.cfg.data.unlabeled)
            print(f"teacher outputs: {len(logits)} training rows from {self.cfg.teacher.outputs} "
                  f"({self.supplied_outputs().kind})")
            return logits
        self.import_fine_tuned()
        dirs = self.cfg.distill.teachers
        if not dirs:
            return self.cache_teacher_logits(split, examples, data_sha256, fixed_padding=fixed_padding)
        own = (self.out / "teacher").resolve()
        each = [self.cache_teacher_logits(split, examples, data_sha256,
                                          None if (self.out / "teacher" if d == "teacher" else Path(d)).resolve() == own
                                          else Path(d), fixed_padding=fixed_padding) for d in dirs]
        print(f"teachers: averaging the logits of {len(each)} teachers ({', '.join(dirs)})")
        return average_logits(each, dirs)

    # ------------------------------------------------------------ transfer set (Tang et al. augmentation)

    def transfer_set(self):
        """The augmented texts for this config's train split: stored in <out>/augment/, rebuilt when stale."""
        mask = getattr(self.teacher_tokenizer(), "mask_token", None) or "[MASK]"
        with self.accelerator.main_process_first():  # the main process builds and stores it, the others load it
            return load_or_build_transfer_set(self.augment_originals(), self.cfg.augment, mask, self.out / "augment")

    def all_train_texts(self) -> Iterable[str]:
        """Every training text, both sides of sentence pairs, and with data.unlabeled every pile text after them
        (streamed from its files): what vocabularies are built from."""
        texts = [t for e in self.splits.train for t in (e.text, getattr(e, "text_b", None)) if t]
        if not self.cfg.data.unlabeled:
            return texts
        from .transfer.sources import TrainTexts
        from .transfer.steps import pile_rows
        return TrainTexts(texts, pile_rows(self)[1])  # the rows the pass labels (dev/test repeats dropped)

    def augment_originals(self) -> list:
        """The training texts, or (first, second) for sentence pairs: what augmentation perturbs."""
        return [e.text if e.text_b is None else (e.text, e.text_b) for e in self.splits.train]

    def _augmented(self) -> tuple[list, np.ndarray]:
        """Augmented examples (label IGNORE: no gold) and their cached teacher logits."""
        ts = self.transfer_set()
        examples = [Example(t, IGNORE, text_b=None if ts.texts_b is None else ts.texts_b[k]) for k, t in enumerate(ts.texts)]
        sha = TransferSetStore(self.out / "augment").content_hash()
        return examples, self.teacher_logits("augment", examples, data_sha256=sha)
