"""Is this config runnable? Every check that the config alone can answer, run before anything is loaded or trained.

kdnlp.config builds the typed sections; `validate` then checks the values against each other (task vs student type,
loss vs task, keys that only one student reads, ...) and raises UserError naming the key and the fix. Kept apart from
config.py so that each file reads top to bottom: what a config is, and what makes one wrong.
"""
from __future__ import annotations

import difflib
import re
from typing import TYPE_CHECKING

from .errors import UserError

if TYPE_CHECKING:
    from .config import Config

# The student types kdnlp.students.STUDENTS builds (tests/test_students.py checks the two agree). A plain tuple:
# validating a config must not import the students (and torch), which import data.py, which imports kdnlp.config.
STUDENT_TYPES = ("bilstm", "bert", "fastbert", "theseus", "static", "transformer", "pretrained", "word_bilstm")


def closest(key: str, valid: list[str]) -> str:
    m = difflib.get_close_matches(key, valid, n=1, cutoff=0.4)
    return f" (did you mean '{m[0]}'?)" if m else f" (valid keys: {', '.join(valid)})"


def validate(cfg: Config) -> None:
    s = cfg.source
    def need(cond: bool, msg: str):
        if not cond:
            raise UserError(f"{s}: {msg}")
    need(cfg.task in ("classification", "ner", "multilabel"),
         f"task: '{cfg.task}' is not supported (use classification, multilabel or ner)")
    validate_shapes(cfg, need)
    need(cfg.task != "ner" or cfg.student.embeddings in ("random", "teacher") or cfg.student.type == "word_bilstm",
         "student.embeddings: word vectors for task: ner need student.type: word_bilstm (the others read the teacher's tokens)")
    validate_word_tagger(cfg, need)
    if cfg.task == "ner":  # NER reads the column (CoNLL) format only; conll/column are its names
        need(cfg.data.format in ("auto", "conll", "column"), "data.format: task: ner reads the column format (use auto|conll|column)")
    else:
        need(cfg.data.format in ("auto", "json", "jsonl", "csv", "tsv"), "data.format: use auto|json|jsonl|csv|tsv")
    need(cfg.data.max_length >= 8, "data.max_length: must be >= 8")
    need(0 < cfg.data.dev_ratio < 1, "data.dev_ratio: must be between 0 and 1")
    need(cfg.data.max_train_examples is None or cfg.data.max_train_examples > 0, "data.max_train_examples: must be > 0")
    need(cfg.student.type in STUDENT_TYPES,
         f"student.type: '{cfg.student.type}' is unknown{closest(cfg.student.type, list(STUDENT_TYPES))}")
    need(re.fullmatch(r"[A-Za-z0-9_.-]+", cfg.student.name) is not None
         and cfg.student.name not in ("teacher", "logits", "augment")
         and not cfg.student.name.endswith(".resume"),  # <name>.resume holds a run's resume state
         "student.name: use a folder name like student or bilstm_alone (not teacher, logits or augment, no .resume)")
    need(not cfg.student.freeze_embeddings or cfg.student.embeddings != "random",
         "student.freeze_embeddings: only copied embeddings can be frozen (set student.embeddings: teacher or a vectors file)")
    validate_static(cfg, need)
    validate_pretrained(cfg, need)
    need(cfg.student.num_layers is None or cfg.student.num_layers >= 1, "student.num_layers: must be >= 1")
    sel = cfg.student.layer_selection
    need(sel in ("first", "alternate") or (isinstance(sel, list) and sel and all(isinstance(i, int) and i >= 0 for i in sel)),
         "student.layer_selection: use first|alternate or a list of teacher layer indices, e.g. [0, 5, 11]")
    need(cfg.distill.alpha >= 0, "distill.alpha: must be >= 0")
    need(cfg.distill.T >= 0, "distill.T: must be >= 0 (it is the teacher-term weight; the temperature is distill.temperature)")
    need(cfg.distill.alpha + cfg.distill.T > 0 or cfg.distill.intermediate is not None,
         "distill: alpha and T are both 0, so the student has no loss")
    need(cfg.distill.loss in ("mse", "kl", "bce"), "distill.loss: use mse or kl (bce: task multilabel)")
    need(cfg.distill.temperature > 0, "distill.temperature: must be > 0")
    validate_methods(cfg, need)
    a = cfg.augment
    need(not a.enabled or cfg.task == "classification", "augment: the transfer set is for classification (set augment.enabled: false for ner)")
    need(a.n_samples >= 1, "augment.n_samples: must be >= 1")
    for key in ("p_mask", "p_pos", "p_ngram"):
        need(0 <= getattr(a, key) <= 1, f"augment.{key}: must be a probability in [0, 1]")
    need(a.p_mask + a.p_pos <= 1, "augment: p_mask + p_pos must be <= 1 (they are exclusive per word)")
    need(len(a.ngram_range) == 2 and all(isinstance(n, int) for n in a.ngram_range) and 1 <= a.ngram_range[0] <= a.ngram_range[1],
         "augment.ngram_range: use [min, max] word counts with 1 <= min <= max, e.g. [1, 5]")
    need(a.max_examples is None or a.max_examples >= 1, "augment.max_examples: must be >= 1")
    for sec in ("teacher", "student"):
        c = getattr(cfg, sec)
        need(c.epochs >= 1, f"{sec}.epochs: must be >= 1")
        need(c.batch_size >= 1, f"{sec}.batch_size: must be >= 1")
        need(c.lr is None or c.lr > 0, f"{sec}.lr: must be > 0")
        need(0 <= c.warmup_ratio < 1, f"{sec}.warmup_ratio: must be in [0, 1)")
    u = cfg.data.unlabeled
    need(u is None or (isinstance(u, str) and u) or (isinstance(u, list) and u and all(isinstance(x, str) and x for x in u)),
         "data.unlabeled: a file, a glob, or a list of them (e.g. [data/pile/*.txt, data/more.parquet])")
    need(u is None or cfg.task in ("classification", "multilabel"),
         "data.unlabeled: for task: classification (single texts or pairs) or multilabel, not ner")
    need(cfg.data.unlabeled_shard_rows >= 1, "data.unlabeled_shard_rows: must be >= 1")
    need(cfg.train.patience >= 1, "train.patience: must be >= 1")
    need(cfg.train.eval_every is None or cfg.train.eval_every >= 1, "train.eval_every: must be >= 1")
    need(cfg.train.mixed_precision in ("auto", "no", "fp16", "bf16"), "train.mixed_precision: use auto|no|fp16|bf16")
    need(cfg.train.grad_accum >= 1, "train.grad_accum: must be >= 1")
    need(cfg.train.report_to in ("none", "tensorboard"), "train.report_to: use none or tensorboard")
    need(cfg.train.eval_tokens is None or cfg.train.eval_tokens >= 1, "train.eval_tokens: must be >= 1 (or null: auto)")
    need(0 < cfg.frontier.retain <= 1, f"frontier.retain: {cfg.frontier.retain} must be in (0, 1], e.g. 0.97")
    dev = cfg.train.device
    need(dev in ("auto", "cpu", "cuda") or dev.startswith("cuda:"), "train.device: use auto|cpu|cuda|cuda:N")
    t = cfg.teacher
    if t.pretrained is None and t.fine_tuned is None and t.outputs is None:
        need(t.config is not None and t.vocab is not None,
             "teacher: with pretrained: null, set teacher.config (BertConfig fields) and teacher.vocab (vocab.txt or 'build')")
    need(t.outputs_type in ("auto", "logits", "probs"), "teacher.outputs_type: use auto|logits|probs")
    need(t.pooling in ("auto", "cls", "mean"), "teacher.pooling: use auto|cls|mean")
    if t.outputs is not None:
        need(cfg.task in ("classification", "multilabel"),
             "teacher.outputs: supplied teacher outputs are for task: classification or multilabel")
        need(t.outputs.endswith((".jsonl", ".npy")), f"teacher.outputs: {t.outputs}: use a .jsonl or a .npy file")
        need(not t.outputs.endswith(".npy") or t.outputs_ids is not None,
             "teacher.outputs_ids: a .npy teacher.outputs needs the texts (or data ids) of its rows, one per line")
        need(cfg.distill.teachers is None, "distill.teachers: cannot be combined with teacher.outputs")


def validate_shapes(cfg: Config, need) -> None:
    """Sentence pairs and multi-label keys."""
    d = cfg.data
    need(d.quoting in ("auto", "none", "csv"), "data.quoting: use auto|none|csv")
    need(d.columns is None or (d.columns and all(isinstance(c, str) and c for c in d.columns)),
         "data.columns: list the column names of a header-less CSV/TSV, e.g. [text, label, id]")
    need(d.label_separator != "", "data.label_separator: must not be empty (e.g. \",\")")
    need(cfg.distill.threshold in ("global", "per_label"), "distill.threshold: use global or per_label")
    need(cfg.distill.threshold_min_positives >= 0, "distill.threshold_min_positives: must be 0 or more")
    multi = cfg.task == "multilabel"
    need(multi or cfg.distill.loss != "bce", "distill.loss: bce is for task: multilabel (use mse or kl)")
    need(not multi or cfg.distill.loss in ("mse", "bce"),
         "distill.loss: task multilabel uses mse (logits) or bce (teacher sigmoid probabilities at distill.temperature)")
    need(not cfg.student.siamese or cfg.student.type in ("bilstm", "static"),
         "student.siamese: only the bilstm and static students are siamese")


def validate_word_tagger(cfg: Config, need) -> None:
    """The word-level NER tagger's keys (kdnlp/students/word_bilstm.py)."""
    st = cfg.student
    need(st.type != "word_bilstm" or cfg.task == "ner",
         "student.type: word_bilstm is a tagger for task: ner (for classification use student.type: bilstm)")
    need(st.type != "word_bilstm" or st.tokenizer is None,
         "student.tokenizer: word_bilstm builds its own word vocabulary (student.min_word_count, student.embeddings); drop it")
    need(st.min_word_count >= 1, "student.min_word_count: must be >= 1")
    need(st.char_dim >= 0, "student.char_dim: must be >= 0 (0 = no character features)")
    need(0 <= st.word_dropout < 1, "student.word_dropout: must be a probability in [0, 1)")


def validate_static(cfg: Config, need) -> None:
    """The static student's keys (kdnlp/students/static.py)."""
    st = cfg.student
    need(st.embeddings != "model2vec" or st.type == "static", "student.embeddings: model2vec is for student.type: static")
    need(st.mlp_size >= 0, "student.mlp_size: must be >= 0 (static: 0 = a linear head)")
    need(st.embedding_dim >= 1, "student.embedding_dim: must be >= 1")
    need(st.pooling in ("mean", "sif"), f"student.pooling: '{st.pooling}' is unknown (use mean or sif)")
    need(1 <= st.ngrams <= 5, "student.ngrams: use 1 (words only) to 5 (hashed word n-grams up to 5)")
    need(st.hash_buckets >= 1, "student.hash_buckets: must be >= 1")
    need(st.tokenize in ("auto", "words", "teacher"), f"student.tokenize: '{st.tokenize}' is unknown (use auto|words|teacher)")
    if st.type == "static":
        need(cfg.task != "ner", "student.type: static pools a whole text; it has no per-token output for task: ner")
        need(st.tokenize != "teacher" or st.embeddings in ("random", "teacher", "model2vec"),
             "student.tokenize: word2vec vectors need the words tokenizer (student.tokenize: words or auto)")


def validate_methods(cfg: Config, need) -> None:
    """distill schedules / teachers / intermediate, and the theseus / fastbert student keys."""
    d, st = cfg.distill, cfg.student
    for key in ("alpha_end", "T_end"):
        need(getattr(d, key) is None or getattr(d, key) >= 0, f"distill.{key}: must be >= 0")
    need(d.temperature_end is None or d.temperature_end > 0, "distill.temperature_end: must be > 0")
    need(d.teachers is None or (len(d.teachers) >= 1 and all(isinstance(t, str) and t for t in d.teachers)),
         "distill.teachers: use a list of fine-tuned teacher directories, e.g. [teacher, saved_dict/other/teacher]")
    if d.intermediate is not None:
        from .intermediate import check_intermediate  # local import: it imports torch
        problem = check_intermediate(d.intermediate)
        need(problem is None, f"distill.intermediate: {problem}")
        need(st.type in ("bert", "transformer", "pretrained"),
             "distill.intermediate: needs student.type: bert, transformer or pretrained (a student with hidden states to match)")
    need(st.config is None or st.type == "transformer",
         f"student.config: only student.type: transformer reads it (student.type is {st.type})")
    need(0 <= st.replacing_rate <= 1, "student.replacing_rate: must be a probability in [0, 1]")
    need(st.replacing_schedule in ("constant", "linear"), "student.replacing_schedule: use constant or linear")
    need(st.successor_epochs is None or st.successor_epochs >= 0, "student.successor_epochs: must be >= 0")
    need(st.branch_epochs >= 1, "student.branch_epochs: must be >= 1")
    need(st.branch_lr > 0, "student.branch_lr: must be > 0")
    pt = cfg.pretrain
    need(pt.epochs >= 1 and pt.batch_size >= 1 and pt.lr > 0, "pretrain: epochs and batch_size must be >= 1, lr > 0")
    need(0 < pt.mask_prob < 1, "pretrain.mask_prob: must be in (0, 1)")
    need(pt.max_lines is None or pt.max_lines >= 1, "pretrain.max_lines: must be >= 1")
    need(re.fullmatch(r"[A-Za-z0-9_.-]+", pt.output) is not None and pt.output not in ("teacher", "logits", "augment"),
         "pretrain.output: use a folder name like pretrained")
    need(0 <= st.speed <= 1, "student.speed: must be in [0, 1] (normalized entropy; 0 = never exit early)")
    need(st.type not in ("theseus", "fastbert") or cfg.task == "classification",
         f"student.type: {st.type} is for classification (task: ner is not supported)")


def validate_pretrained(cfg: Config, need) -> None:
    """student.type: pretrained (kdnlp/students/pretrained.py): the checkpoint is named, and nothing else builds it."""
    st = cfg.student
    if st.type != "pretrained":
        need(st.pretrained is None, f"student.pretrained: only student.type: pretrained reads it (student.type is {st.type})")
        return
    need(bool(st.pretrained), "student.pretrained: student.type: pretrained needs the checkpoint to start from "
         "(a model directory with its tokenizer, package:<module>/<subdir> or a hub id)")
    need(st.embeddings == "random" and st.tokenizer is None,
         "student.embeddings / student.tokenizer: a pretrained student keeps its own embeddings and tokenizer (drop them)")
