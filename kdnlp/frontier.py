"""`kdnlp frontier --config X [--students a,b] [--retain 0.97]`: many students against ONE cached teacher, each
measured the same way, and the one to deploy named.

    1. check everything first: --retain, --students, every variant's merged config (config.py's validation) and
       its preflight (kdnlp/preflight.py) against the teacher, before any training
    2. the teacher: trained or imported once (Trainer.train_teacher), its train logits cached once (the pipeline)
    3. each variant = the config + its `section.key: value` overrides, trained as its own student
       <output_dir>/<variant>/ (Trainer.train_student); one whose fingerprint (its resolved config + the teacher's
       logits) matches <output_dir>/frontier/<variant>.json is reused, not retrained
    4. each model (teacher too) measured: dev metric (selection), test metric (reported), parameters, size on disk,
       ONNX int8 size (export.py; skipped with a note without onnxruntime), and text in -> label out through the
       load-once predictor kdnlp.load(dir).predict: examples/s at batch 64 and p50 latency at batch 1 (bench.py's
       timing code); stored per variant as it finishes, so an interrupted frontier resumes
    5. frontier.json, frontier.md, frontier.png (kdnlp/frontier_report.py): the Pareto set and the recommendation,
       the fastest student whose DEV score keeps at least --retain of the teacher's
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import re
from pathlib import Path

import numpy as np
import torch

from .config import Config, config_from_dict, load_raw, resolved_dict, set_dotted
from .errors import UserError
from .fileio import remove_dir, write_json
from .frontier_report import RESULTS, pareto, recommend, write_report

VARIANT_SECTIONS = ("student", "distill", "augment", "train")  # data and teacher are shared by every variant
STATE_DIR = "frontier"  # <output_dir>/frontier/<variant>.json: fingerprint and measurements of each model
NOT_FINGERPRINTED = ("device", "threads", "report_to")  # train.*: where it runs, not what it learns


def read_state(path: Path) -> dict:
    """A variant's stored state; {} when absent or unreadable (then it is trained and measured again)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def default_preset(raw: dict, teacher_layers: int | None) -> dict[str, dict]:
    """static -> BiLSTM -> BERT-1/2/3/6 (those shallower than the teacher) -> a transformer of its own shape ->
    pretrained, when the config names a student.pretrained. Other student keys come from the config."""
    preset = {"static": {"student.type": "static"},
              "bilstm": {"student.type": "bilstm", "student.embeddings": "teacher"}}
    for k in (1, 2, 3, 6):
        if teacher_layers is None or k < teacher_layers:
            preset[f"bert{k}"] = {"student.type": "bert", "student.num_layers": k}
    preset["transformer"] = {"student.type": "transformer", "student.lr": 3e-4,
                             "student.config": {"num_hidden_layers": 2, "hidden_size": 256, "num_attention_heads": 4,
                                                "intermediate_size": 1024}}
    if isinstance(raw.get("student"), dict) and raw["student"].get("pretrained"):
        preset["pretrained"] = {"student.type": "pretrained"}
    return preset


def variant_config(raw: dict, base: Config, name: str, overrides, source: str) -> Config:
    """The config of one variant: the file's (with --set) plus the variant's overrides, validated like any config."""
    where = f"{source}: frontier.variants.{name}"
    if re.fullmatch(r"[A-Za-z0-9_.-]+", str(name)) is None or name in ("teacher", "logits", "augment", STATE_DIR):
        raise UserError(f"{where}: use a folder name for a variant (letters, digits, _ . -; not teacher, logits, "
                        f"augment, frontier)")
    if not isinstance(overrides, dict):
        raise UserError(f"{where}: expected a mapping of section.key: value, e.g. {{student.type: static}}")
    merged = copy.deepcopy(raw)
    merged.pop("frontier", None)
    for key, value in overrides.items():
        parts = str(key).split(".")
        if len(parts) < 2 or parts[0] not in VARIANT_SECTIONS:
            raise UserError(f"{where}: {key}: a variant may set {', '.join(s + '.*' for s in VARIANT_SECTIONS)} keys "
                            f"only (the data and the teacher are shared by every variant)")
        set_dotted(merged, parts, value, f"{where}.{key}")
    set_dotted(merged, ["student", "name"], name, where)
    merged["output_dir"] = base.output_dir  # one teacher, one logit cache, a folder per variant
    return config_from_dict(merged, source=where)


def fingerprint(cfg: Config, teacher_sha: str) -> str:
    """What a variant's trained model depends on: its resolved config and the teacher's train logits."""
    values = resolved_dict(cfg)
    values.pop("frontier", None)
    values["train"] = {k: v for k, v in values["train"].items() if k not in NOT_FINGERPRINTED}
    text = json.dumps({"config": values, "teacher_logits_sha256": teacher_sha}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def describe(cfg: Config) -> str:
    st = cfg.student
    if st.type == "bert":
        return f"BERT-{st.num_layers} (teacher layers)"
    if st.type == "transformer" and st.config:
        c = st.config
        return f"transformer {c.get('num_hidden_layers', '?')}x{c.get('hidden_size', '?')} from scratch"
    if st.type == "static":
        return f"static ({st.embeddings} embeddings, {'linear' if st.mlp_size == 0 else f'MLP {st.mlp_size}'})"
    if st.type == "bilstm":
        return f"BiLSTM ({st.embeddings} embeddings)"
    return st.type


def speed_texts(examples: list) -> list:
    """What predict() takes for these examples: texts, (first, second) pairs, or NER words joined by spaces."""
    if examples and hasattr(examples[0], "tokens"):
        return [" ".join(e.tokens) for e in examples]
    return [e.text if getattr(e, "text_b", None) is None else (e.text, e.text_b) for e in examples]


def split_score(trainer, model, tokenizer, labels: list[str], examples: list) -> float:
    from .pairs import input_kind
    data = trainer.task.encode(examples, tokenizer, trainer.cfg.data.max_length, input_kind(model))
    return float(trainer.task.score(trainer.predict_logits(model, data, 64), data, labels, model.config))


def measure(trainer, name: str, examples: int, runs: int, batch_size: int) -> dict:
    """One saved model, measured: size, dev/test metric, ONNX int8 size, text-in -> label-out speed."""
    from .predictor import load
    from .bench import text_latency_p50_ms, text_throughput
    from .modeldir import WEIGHT_NAMES, load_model_dir
    mdir = trainer.out / name
    model, tokenizer, labels = load_model_dir(mdir, trainer.cfg.task)
    model.to(trainer.device).eval()
    weights = next(mdir / w for w in WEIGHT_NAMES if (mdir / w).is_file())
    row = {"params": model.num_parameters(), "size_bytes": weights.stat().st_size,
           "dev_metric": split_score(trainer, model, tokenizer, labels, trainer.splits.dev),
           "test_metric": split_score(trainer, model, tokenizer, labels, trainer.splits.test)}
    del model
    row["onnx_int8_bytes"], row["onnx_note"] = onnx_int8_size(trainer, name)
    predictor = load(mdir, device="cpu")
    texts = speed_texts(trainer.splits.test[:examples])
    row["examples_per_second"] = round(text_throughput(predictor.predict, texts, batch_size), 1)
    row["latency_ms_p50"] = round(text_latency_p50_ms(predictor.predict, texts, runs), 3)
    row["load_average"] = list(os.getloadavg())
    print(f"frontier: {name}: dev {row['dev_metric']:.4f}, test {row['test_metric']:.4f}, "
          f"{row['examples_per_second']:,.0f} ex/s, p50 {row['latency_ms_p50']:.2f} ms")
    return row


def onnx_int8_size(trainer, name: str) -> tuple[int | None, str | None]:
    """(bytes of model.int8.onnx, None), or (None, why not): exported once (parity on 64 test rows), then read back."""
    from .export import export, export_path, export_records, require_onnxruntime
    path = export_path(trainer.out / name, "onnx", "int8")
    if path.is_file() and path.name in export_records(trainer.out / name):
        return path.stat().st_size, None
    try:
        require_onnxruntime()
        return export(trainer, name, "onnx", "int8", 64)["size_bytes"], None
    except UserError as e:
        return None, f"{name}: ONNX int8 skipped ({e})"
    except Exception as e:  # noqa: BLE001  an exporter limit must not cost the other measurements
        return None, f"{name}: ONNX int8 export failed ({e.__class__.__name__}: {str(e).splitlines()[0][:120]})"


class Frontier:
    """The checked plan (base config, variant configs, retain) and the steps that carry it out."""

    def __init__(self, config_path: str, overrides: list[str], students: str | None, retain: float | None):
        from .preflight import teacher_config
        from .trainer import Trainer
        raw = load_raw(config_path, overrides)
        self.base = config_from_dict(copy.deepcopy(raw), source=str(config_path))
        self.retain = self.base.frontier.retain if retain is None else retain
        if not 0 < self.retain <= 1:
            raise UserError(f"--retain {self.retain:g}: must be in (0, 1], the share of the teacher's dev score "
                            f"to keep, e.g. 0.97")
        self.trainer = Trainer(self.base, resume=True)  # resume: a finished teacher run is not trained again
        self.trainer.preflight("train-teacher")
        configured = self.base.frontier.variants or {}
        layers = None
        if not configured or students:
            tconfig = teacher_config(self.trainer, "distill")
            layers = getattr(tconfig, "num_hidden_layers", None)
        known = {**default_preset(raw, layers), **configured}
        names = [s.strip() for s in students.split(",") if s.strip()] if students else list(configured or known)
        unknown = [n for n in names if n not in known]
        if unknown or not names:
            raise UserError(f"--students {students}: no variant named {', '.join(unknown) or '(none given)'} "
                            f"(known: {', '.join(known)})")
        self.configs = {n: variant_config(raw, self.base, n, known[n], str(config_path)) for n in names}
        self.overrides = {n: known[n] for n in names}
        for cfg in self.configs.values():  # every variant checked against the teacher before any training
            self._variant_trainer(cfg, resume=False).preflight("distill")

    def _variant_trainer(self, cfg: Config, resume: bool):
        from .trainer import Trainer
        t = Trainer(cfg, resume=resume)
        t._splits = self.trainer.splits  # variants share data and dev carving: loaded once
        return t

    def state_path(self, name: str) -> Path:
        return self.base.out / STATE_DIR / f"{name}.json"

    def run(self, examples: int = 1024, runs: int = 100, batch_size: int = 64, remeasure: bool = False,
            train_only: bool = False) -> dict | None:
        if examples < 1 or runs < 1 or batch_size < 1:
            raise UserError("frontier: --examples, --runs and --batch-size must be >= 1")
        trainer = self.trainer
        trainer.train_teacher()
        logits = trainer.teacher_logits("train")
        flat = getattr(logits, "flat", logits)
        teacher_sha = hashlib.sha256(np.ascontiguousarray(flat).tobytes()).hexdigest()
        prints = {name: fingerprint(cfg, teacher_sha) for name, cfg in self.configs.items()}
        for name, cfg in self.configs.items():
            self.train_variant(name, cfg, prints[name])
        if train_only:  # e.g. train on a GPU, then measure on the deployment machine with the same command
            print(f"frontier: {len(self.configs)} students trained; --train-only, so nothing is measured")
            return None
        print(f"frontier: measuring {len(self.configs) + 1} models, {torch.get_num_threads()} torch thread(s), load "
              f"average {os.getloadavg()[0]:.2f}")
        load_start = list(os.getloadavg())
        teacher = self.measured("teacher", trainer, teacher_sha, examples, runs, batch_size, remeasure)
        teacher.update(name="teacher", what=f"teacher ({self.base.teacher.fine_tuned or self.base.teacher.pretrained})")
        students = []
        for name, cfg in self.configs.items():
            row = self.measured(name, self._variant_trainer(cfg, resume=False), prints[name], examples, runs,
                                batch_size, remeasure)
            students.append({**row, "name": name, "what": describe(cfg), "overrides": self.overrides[name]})
        chosen = recommend(students, teacher["dev_metric"], self.retain)
        result = {"config": self.base.source, "metric": trainer.task.metric, "retain": self.retain,
                  "teacher": teacher, "students": students, "pareto": pareto([teacher] + students),
                  "recommendation": chosen["name"] if chosen else None,
                  "examples": min(examples, len(trainer.splits.test)), "runs": runs, "batch_size": batch_size,
                  "threads": torch.get_num_threads(), "device": "cpu", "load_average": load_start,
                  "test_rows": len(trainer.splits.test), "dev_rows": len(trainer.splits.dev),
                  "notes": [r["onnx_note"] for r in [teacher] + students if r.get("onnx_note")]}
        write_json(self.base.out / RESULTS, result)
        md = write_report(self.base.out)
        print("\n" + md.read_text(encoding="utf-8"))
        print(f"frontier: wrote {md}, {self.base.out / RESULTS} and {self.base.out / 'frontier.png'}")
        return result

    def train_variant(self, name: str, cfg: Config, digest: str) -> None:
        """Train one variant unless a model with this fingerprint is already there; resumes an interrupted one."""
        state = read_state(self.state_path(name))
        mdir = self.base.out / name
        if state.get("fingerprint") == digest and state.get("trained") and (mdir / "report.json").is_file():
            print(f"frontier: {name}: trained with this fingerprint already ({mdir}), reused")
            return
        if state.get("fingerprint") != digest:  # another config's half-run must not be resumed into this one
            remove_dir(mdir.with_name(name + ".resume"))
        write_json(self.state_path(name), {"fingerprint": digest, "trained": False})
        print(f"frontier: training {name} ({describe(cfg)})")
        self._variant_trainer(cfg, resume=True).train_student()
        write_json(self.state_path(name), {"fingerprint": digest, "trained": True})

    def measured(self, name: str, trainer, digest: str, examples: int, runs: int, batch_size: int,
                 remeasure: bool) -> dict:
        """The measurements of one model: stored ones when its fingerprint matches (and not --remeasure)."""
        state = read_state(self.state_path(name))
        if not remeasure and state.get("fingerprint") == digest and state.get("measured"):
            print(f"frontier: {name}: measured already (--remeasure to time it again)")
            return state["measured"]
        row = measure(trainer, name, examples, runs, batch_size)
        write_json(self.state_path(name), {**state, "fingerprint": digest, "trained": True, "measured": row})
        return dict(row)


def frontier(config_path: str, overrides: list[str], students: str | None = None, retain: float | None = None,
             examples: int = 1024, runs: int = 100, batch_size: int = 64, remeasure: bool = False,
             train_only: bool = False) -> dict | None:
    return Frontier(config_path, overrides, students, retain).run(examples, runs, batch_size, remeasure, train_only)
