"""Fail fast: everything the config fixes is checked before any training step, and before anything is written.

An hour of teacher fine-tuning must not end in "student.num_layers: 8 is more than the teacher's 6 layers". So before
`distill`, `train-teacher`, `train-student` or `cache-logits` starts, this reads what is cheap to read — the data and
label files, the teacher's config.json / labels / tokenizer files (never its weights), supplied teacher outputs — and
checks the student, the layer maps and the method against them. It only reads: a failing check leaves no files.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

from .errors import UserError
from .intermediate import layer_matches
from .students.truncated_bert import check_truncatable, student_layers
from .teacher import fine_tuned_source, match_labels, random_teacher_config, resolve_pretrained, source_config

MODEL_STUDENTS = ("bert", "theseus", "fastbert")  # built from the fine-tuned teacher's own layers
TEACHER_INPUT_STUDENTS = ("transformer",)  # read the teacher's tokenizer and start from its word embeddings


def teacher_config(trainer, command: str):
    """The teacher's transformers config as the students will see it (None: no teacher model).

    Reads only config files, so this costs milliseconds even for a BERT-large teacher."""
    from transformers import AutoConfig
    t = trainer.cfg.teacher
    own = trainer.out / "teacher"
    if t.fine_tuned is not None:
        return _fine_tuned_config(trainer, t.fine_tuned)
    if t.outputs is not None:
        return None
    if command in ("train-student", "cache-logits") and (own / "config.json").is_file():
        return AutoConfig.from_pretrained(str(own))
    if t.pretrained is None:  # a random BERT from teacher.config
        config = random_teacher_config(t.config)
        if t.vocab != "build" and not Path(t.vocab).is_file():
            raise UserError(f"teacher.vocab: {t.vocab} not found (a vocab.txt, one token per line, or 'build')")
        return config
    if command in ("train-student", "cache-logits") and not Path(resolve_pretrained(t.pretrained)).is_dir():
        raise UserError(f"{own}: no trained teacher yet (run kdnlp train-teacher or kdnlp distill first)")
    return source_config(t.pretrained, "teacher.pretrained")  # a hub id: its config only, never its weights


def _fine_tuned_config(trainer, spec: str):
    _, _, config, labels = fine_tuned_source(spec)
    match_labels(labels, trainer.splits.labels, f"teacher.fine_tuned {spec}", trainer.cfg.data.labels is not None)
    return config


def _model2vec_distill_importable() -> bool:
    """model2vec's distill module needs its [distill] extra (skeletoken), beyond model2vec itself."""
    try:
        import model2vec.distill  # noqa: F401
    except ImportError:
        return False
    return True


def check_student(trainer, config) -> None:
    cfg, st = trainer.cfg, trainer.cfg.student
    if config is None:  # teacher.outputs only: the student must not need a teacher model
        if st.type in MODEL_STUDENTS:
            raise UserError(f"student.type: {st.type} is built from a teacher model, and only teacher.outputs is "
                            "given; use student.type: bilstm, or set teacher.fine_tuned to the model")
        if st.type in TEACHER_INPUT_STUDENTS:
            raise UserError(f"student.type: {st.type} reads the teacher's tokenizer and word embeddings, and only "
                            "teacher.outputs is given; use student.type: bilstm, or set teacher.fine_tuned to the model")
        if st.embeddings in ("teacher", "model2vec"):
            raise UserError(f"student.embeddings: {st.embeddings} needs a teacher model; with teacher.outputs alone use "
                            "random or a word2vec file (or set teacher.fine_tuned)")
        if cfg.distill.intermediate:
            raise UserError("distill.intermediate: needs a teacher model's hidden states; teacher.outputs has none")
        if st.type == "static" and st.tokenize == "teacher":
            raise UserError("student.tokenize: teacher needs a teacher tokenizer; with teacher.outputs alone use words")
    if st.embeddings == "model2vec" and not _model2vec_distill_importable():
        raise UserError("student.embeddings: model2vec needs the optional model2vec package (pip install 'kdnlp[static]', i.e. model2vec[distill])")
    if st.tokenizer is not None and st.embeddings == "teacher":
        raise UserError("student.tokenizer: the teacher's embeddings belong to the teacher's tokenizer; "
                        "drop student.tokenizer or use student.embeddings: random")
    if st.tokenizer is not None and not Path(st.tokenizer).exists():
        raise UserError(f"student.tokenizer: {st.tokenizer} not found (a tokenizer directory or a vocab.txt)")
    if st.embeddings not in ("random", "teacher", "model2vec") and not Path(st.embeddings).is_file():
        raise UserError(f"student.embeddings: {st.embeddings} not found (use random, teacher, or a word2vec text file)")
    if st.type == "word_bilstm" and st.embeddings not in ("random", "teacher"):
        from .students.word_bilstm import vectors_file_words
        vectors_file_words(st.embeddings)  # every line checked now, not after the teacher has trained
    chinese_words = st.type == "bilstm" and (config is None and st.tokenizer is None or st.embeddings not in ("random", "teacher"))
    if chinese_words and importlib.util.find_spec("jieba") is None:
        from .tokenization import is_chinese
        if any(is_chinese(e.text) for e in trainer.splits.train[:200]):
            raise UserError("student: a word vocabulary for Chinese texts needs jieba (pip install 'kdnlp[demo]')")
    if config is not None and st.type == "transformer":
        check_transformer(st.config, config, cfg.distill.intermediate, cfg.data.max_length)
    if st.type == "pretrained":
        check_pretrained(trainer, config)
    if config is None or st.type not in MODEL_STUDENTS:
        return
    n = config.num_hidden_layers
    layers = student_layers(st, n)  # raises for a depth or a layer index the teacher does not have
    if st.type == "theseus" and len(layers) >= n:
        raise UserError(f"student.num_layers: theseus needs fewer layers than the teacher's {n}, got {len(layers)}")
    if st.type in ("theseus", "fastbert") and config.model_type != "bert":
        raise UserError(f"student.type {st.type}: the teacher must be a BERT model, got model_type '{config.model_type}' "
                        "(use student.type: bert for other encoder families)")
    check_truncatable(config)  # a family whose layers truncation cannot find: one line now, not a traceback later
    if cfg.distill.intermediate:
        layer_matches(cfg.distill.intermediate, n, len(layers))


def check_transformer(fields: dict | None, teacher, intermediate, max_length: int) -> None:
    """student.config's fields and shape, and its layer matches against the teacher (intermediate.py projects the
    student's width to the teacher's, so only the layer numbers and, for attention maps, the head counts must fit)."""
    student = random_teacher_config(fields, where="student.config")
    positions = (fields or {}).get("max_position_embeddings")  # unset: the teacher's, which already reads max_length
    if positions is not None and positions < max_length:  # else an index error in the first batch of long texts
        raise UserError(f"student.config: max_position_embeddings {positions} is below data.max_length {max_length}")
    if not intermediate:
        return
    matches = layer_matches(intermediate, teacher.num_hidden_layers, student.num_hidden_layers)
    if any(m.feature == "attention" for m in matches) and teacher.num_attention_heads != student.num_attention_heads:
        raise UserError(f"distill.intermediate: attention matches need equal head counts (teacher "
                        f"{teacher.num_attention_heads}, student.config {student.num_attention_heads})")


OFFSET_POSITIONS = ("roberta", "xlm-roberta", "camembert")  # position ids = padding_idx + 1 + index


def check_pretrained(trainer, teacher) -> None:
    """student.pretrained is a complete checkpoint (config, weights, tokenizer files; configs only are read); with
    distill.intermediate, its tokenizer is the teacher's (the teacher reads the student's batches, position by
    position) and its layers and heads fit the matches (intermediate.py projects a different width)."""
    from .students.pretrained import KEY, same_tokenizer
    cfg = trainer.cfg
    student = source_config(cfg.student.pretrained, KEY)  # a missing directory, config, weights or tokenizer: one line
    positions = getattr(student, "max_position_embeddings", None)
    if isinstance(positions, int):  # RoBERTa-style position ids start after the padding index
        usable = positions - (student.pad_token_id + 1 if student.model_type in OFFSET_POSITIONS else 0)
        if usable < cfg.data.max_length:  # else an index error in the first batch of long texts
            raise UserError(f"student.pretrained: {cfg.student.pretrained} reads at most {usable} tokens "
                            f"(max_position_embeddings), below data.max_length {cfg.data.max_length}; lower data.max_length")
    if not cfg.distill.intermediate or teacher is None:
        return
    texts = [e.text for e in trainer.splits.train[:200]]
    teacher_tokenizer = _teacher_tokenizer(trainer)
    if teacher_tokenizer is None or not same_tokenizer(teacher_tokenizer, _model_tokenizer(cfg.student.pretrained, KEY), texts):
        raise UserError("distill.intermediate: the pretrained student's tokenizer is not the teacher's, so their "
                        "hidden states do not line up token by token; drop distill.intermediate (the logit loss works "
                        "across tokenizers) or pick a student that shares the teacher's tokenizer")
    n_student = getattr(student, "num_hidden_layers", None)
    if not isinstance(n_student, int) or not isinstance(getattr(student, "hidden_size", None), int):
        raise UserError(f"distill.intermediate: {cfg.student.pretrained} ({student.model_type}) has no num_hidden_layers"
                        f"/hidden_size to match layers by; drop distill.intermediate")
    matches = layer_matches(cfg.distill.intermediate, teacher.num_hidden_layers, n_student)
    if any(m.feature == "attention" for m in matches) and teacher.num_attention_heads != student.num_attention_heads:
        raise UserError(f"distill.intermediate: attention matches need equal head counts (teacher "
                        f"{teacher.num_attention_heads}, student.pretrained {student.num_attention_heads}); "
                        "match hidden states only (preset uniform or distilbert)")


def _model_tokenizer(spec: str, key: str):
    """The tokenizer of the model source `key` names (its files only, never its weights)."""
    from transformers import AutoTokenizer

    from .teacher import from_hub, load_tokenizer, locate
    resolved, path = locate(spec, key)
    return load_tokenizer(path) if path is not None else from_hub(
        key, spec, lambda: AutoTokenizer.from_pretrained(resolved))


def _teacher_tokenizer(trainer):
    """The tokenizer the teacher will read, found without writing anything (Trainer.teacher_tokenizer imports a
    teacher.fine_tuned into <out>/teacher first)."""
    from transformers import BertTokenizer

    from .teacher import load_tokenizer
    t, own = trainer.cfg.teacher, trainer.out / "teacher"
    if t.fine_tuned is None and (own / "config.json").is_file():
        return load_tokenizer(own)
    spec, key = (t.fine_tuned, "teacher.fine_tuned") if t.fine_tuned is not None else (t.pretrained, "teacher.pretrained")
    if spec is not None:
        return _model_tokenizer(spec, key)
    if t.vocab == "build":  # a character vocabulary built from the data: no pretrained student shares it
        return BertTokenizer(str(trainer.out / "vocab.txt")) if (trainer.out / "vocab.txt").is_file() else None
    return BertTokenizer(str(t.vocab))


def trainer_needs_logits(cfg) -> bool:
    return cfg.distill.T > 0 or (cfg.distill.T_end or 0) > 0


def check(trainer, command: str) -> None:
    """Everything the config fixes, for `command`; raises UserError (one line, exit 2) before any training."""
    cfg = trainer.cfg
    splits = trainer.splits  # data files, label files, labels: read and validated here
    if cfg.teacher.outputs is not None and trainer_needs_logits(cfg):  # T = 0: the file is not read at all
        from .teacher_outputs import align, check_loss
        if cfg.augment.enabled and cfg.teacher.fine_tuned is None:
            raise UserError("augment: the transfer set is labelled by a teacher model; teacher.outputs cannot label "
                            "new texts (set augment.enabled: false, or teacher.fine_tuned)")
        if cfg.augment.enabled:  # teacher.fine_tuned would label the augmented rows: two teachers, two scales
            raise UserError("augment: the augmented texts would be labelled by teacher.fine_tuned while the original "
                            "rows get teacher.outputs: two teachers mixed on different scales; set augment.enabled: "
                            "false, or drop teacher.outputs so that teacher.fine_tuned labels both")
        outputs = trainer.supplied_outputs()  # every row validated
        check_loss(outputs, cfg.distill.loss)
        if command in ("distill", "train-student"):
            align(outputs, splits.train, splits.dev + splits.test + splits.unused, strict=not cfg.data.unlabeled)
    own = trainer.out / "teacher"
    given = cfg.teacher.fine_tuned is not None or cfg.teacher.outputs is not None
    st = cfg.student
    needs_trained = command == "cache-logits" or (command == "train-student" and (
        st.type in MODEL_STUDENTS + TEACHER_INPUT_STUDENTS or st.embeddings in ("teacher", "model2vec") or cfg.distill.intermediate or trainer_needs_logits(cfg)))
    if needs_trained and not given and not (own / "config.json").is_file() and not cfg.distill.teachers:
        raise UserError(f"{own}: no trained model here yet (run kdnlp distill, or train-teacher / train-student first)")
    config = teacher_config(trainer, command)
    for d in cfg.distill.teachers or []:
        tdir = trainer.out / "teacher" if d == "teacher" else Path(d)
        if d != "teacher" and not (tdir / "labels.txt").is_file():
            raise UserError(f"distill.teachers: {tdir} is not a fine-tuned teacher directory (no labels.txt)")
    if command in ("distill", "train-student"):
        check_student(trainer, config)
    if cfg.data.unlabeled and (command == "cache-logits" or command in ("distill", "train-student")
                               and trainer_needs_logits(cfg)):  # files, shapes, what labels them (kdnlp/transfer/)
        from .transfer.steps import check as check_unlabeled
        check_unlabeled(trainer)
