"""YAML config -> typed, validated dataclasses.

One dataclass per config section, one section per module: `data` -> data.py, `teacher` -> teacher.py,
`student` -> students/, `distill` -> losses.py, `augment` -> augment.py,
`train` -> trainer.py. Every value can be overridden
from the command line with `--set section.key=value`.
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import yaml

from .errors import UserError
from .validation import closest as _closest, validate

DEFAULT_STUDENT_LAYERS = 6  # student.num_layers when unset (fastbert: the teacher's depth, chosen at build)


@dataclass
class DataConfig:
    train: Optional[str] = None       # path, or builtin:<name>
    dev: Optional[str] = None         # optional; without it a stratified dev_ratio is carved from train
    test: Optional[str] = None
    format: str = "auto"              # auto|json|jsonl|csv|tsv; for task: ner auto|column (alias conll)
    text_field: str = "auto"          # auto tries text, sentence, content
    label_field: str = "label"
    labels: Optional[str] = None      # file, one class name per line; line order = label id
    max_length: int = 128
    dev_ratio: float = 0.1
    max_train_examples: Optional[int] = None  # stratified subsample of train (benchmarks on a CPU)
    seed: int = 42                    # dev carving and subsampling; apart from train.seed so that several
                                      # student seeds share one split, one logit cache and one transfer set
    id_field: str = "id"              # optional example ids (JSON/CSV/TSV field) that teacher.outputs may refer to
    text_pair_field: str = "auto"     # sentence pairs: the second text's field; auto pairs sentence1/sentence2,
                                      # question1/question2, premise/hypothesis, text_a/text_b; none = single texts
    quoting: str = "auto"             # CSV/TSV: auto|none|csv (auto: a TSV is read with quoting off unless every
                                      # field holding a `"` is CSV-quoted, e.g. GoEmotions; GLUE TSVs need none)
    columns: Optional[list] = None    # CSV/TSV without a header row: its column names, e.g. [text, label, id]
    label_separator: str = ","        # task: multilabel: splits a CSV/TSV label cell into labels (JSON: a list)
    allow_empty_labels: bool = False  # task: multilabel: may an example have no label at all?
    # unlabelled in-domain text (kdnlp/transfer/, docs/unlabeled.md): labelled once by the teacher, in shards
    unlabeled: Optional[Union[str, list]] = None  # files or globs: .txt, csv/tsv/json/jsonl, .parquet (no labels)
    unlabeled_shard_rows: int = 50000 # rows per shard of the resumable pass (the unit recomputed after a kill)


@dataclass
class TeacherConfig:
    pretrained: Optional[str] = "bert_pretrain"  # local dir, package:<module>/<subdir>, or hub id (fine-tuned by kdnlp)
    fine_tuned: Optional[str] = None  # an already fine-tuned model (dir, package:..., hub id): used as is, not trained;
                                      # its labels (labels.txt or config.id2label) are matched to the data's by name
    outputs: Optional[str] = None     # teacher soft targets made elsewhere: .jsonl ({"text"|"id", "logits"|"probs"})
                                      # or .npy (rows = examples, columns = data labels) with outputs_ids
    outputs_ids: Optional[str] = None # for a .npy outputs file: one text (or data id) per line, row i = line i
    outputs_type: str = "auto"        # auto|logits|probs: what the numbers are (auto: the JSONL key;
                                      # .npy: probs if every row looks like probabilities, else logits)
    config: Optional[dict] = None     # BertConfig fields, used with pretrained: null (random init)
    vocab: Optional[str] = None       # vocab.txt for pretrained: null
    epochs: int = 3
    lr: float = 2e-5
    batch_size: int = 32
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    pooling: str = "auto"             # auto|cls|mean: the vector the head reads (kdnlp/pooling.py); auto = the mean
                                      # of the tokens where the checkpoint declares it (sentence-transformers), else [CLS]


@dataclass
class StudentConfig:
    type: str = "bilstm"              # bilstm|bert|fastbert|theseus|static|transformer|pretrained|word_bilstm (STUDENT_TYPES)
    name: str = "student"             # output sub-folder: <output_dir>/<name> (e.g. student_alone for a baseline)
    # bilstm (and static: embedding_dim, mlp_size, dropout, embeddings, freeze_embeddings)
    embedding_dim: int = 300
    hidden_size: int = 300            # per direction
    mlp_size: int = 192
    dropout: float = 0.1
    embeddings: str = "random"        # random|teacher|<path to word2vec text vectors>; static also model2vec
    freeze_embeddings: bool = False   # keep copied embeddings fixed (teacher / word2vec); much faster on CPU
    tokenizer: Optional[str] = None   # bilstm: a tokenizer directory or vocab.txt (default: the teacher's; with
                                      # teacher.outputs and no teacher model: words of the training texts)
    # static: a bag of (hashed n-gram) embeddings -> mean or SIF pooling -> MLP (mlp_size 0: linear head)
    pooling: str = "mean"             # mean|sif (Arora et al.: frequent tokens weigh less)
    ngrams: int = 1                   # 2 = words + hashed word bigrams (fastText's wordNgrams), up to 5
    hash_buckets: int = 200000        # embedding rows shared by the hashed n-grams (ngrams > 1)
    tokenize: str = "auto"            # words (its own regex + vocabulary; auto) | teacher (WordPiece through the
                                      # tokenizers library; measured 3-4x slower on SST-2, see docs/static.md)
    # word_bilstm (task: ner): a BiLSTM tagger over whole words, its own vocabulary (kdnlp/students/word_bilstm.py)
    min_word_count: int = 1           # training words seen fewer times are [UNK]
    lowercase: bool = False           # lower-case words before the lookup (case is an entity cue: off by default)
    char_dim: int = 0                 # > 0: a character CNN with this many filters per word, beside its embedding
    word_dropout: float = 0.0         # training only: each word -> [UNK] with this probability, so [UNK] (every
                                      # unseen word at test time) is trained too
    # bert
    num_layers: Optional[int] = None  # default 6 (bert, theseus); fastbert: the teacher's depth
    layer_selection: Union[str, list] = "alternate"  # first|alternate|[explicit list]
    # transformer: a BERT of your own shape, trained from scratch on the teacher's tokenizer and word embeddings
    config: Optional[dict] = None     # BertConfig fields, e.g. {num_hidden_layers: 4, hidden_size: 256,
                                      # num_attention_heads: 4, intermediate_size: 1024}; only for type: transformer
    # pretrained: a separately pretrained encoder (e.g. a small MiniLM / DistilBERT) with its own tokenizer
    pretrained: Optional[str] = None  # its directory, package:<module>/<subdir> or hub id; only for type: pretrained
    # theseus: successor layers replace blocks of teacher layers with probability replacing_rate
    replacing_rate: float = 0.5       # constant p, or p0 of the linear schedule (p0 -> 1 over training)
    replacing_schedule: str = "constant"  # constant|linear
    successor_epochs: Optional[int] = None  # then the successor is fine-tuned alone (default: epochs; 0 = skip)
    # fastbert: a classifier branch after every layer, self-distilled from the final classifier
    branch_epochs: int = 2            # epochs of branch training, after the backbone's `epochs`
    branch_lr: float = 1e-3           # fresh heads on a frozen backbone: 5e-5 (the backbone's lr) barely moves them
    speed: float = 0.5                # exit when a branch's normalized entropy is below this (0 = never exit)
    # both
    epochs: int = 10
    lr: Optional[float] = None        # default: 1e-3 for bilstm and word_bilstm, 5e-3 for static, 5e-5 for bert
    batch_size: int = 64
    warmup_ratio: float = 0.0
    weight_decay: float = 0.0
    siamese: bool = False             # bilstm/static on sentence pairs: each text encoded on its own, then
                                      # [h1, h2, h1*h2, |h1-h2|] (Tang et al.); false = one joint sequence


@dataclass
class DistillConfig:
    alpha: float = 1.0                # weight of the gold-label cross-entropy
    T: float = 1.0                    # weight of the teacher term (NOT the temperature)
    loss: str = "mse"                 # mse (on logits, Tang et al.) | kl (Hinton, x temperature^2)
    temperature: float = 1.0          # softmax temperature for loss: kl
    # schedules: None = constant; a value = linear from the key above (first step) to this (last step)
    alpha_end: Optional[float] = None
    T_end: Optional[float] = None
    temperature_end: Optional[float] = None
    # several teachers: their logits are averaged (directories of fine-tuned teachers; `teacher` = this run's own)
    teachers: Optional[list] = None
    # intermediate-layer distillation (BERT students): a preset (uniform|tinybert|distilbert) or a list of
    # {teacher_layer, student_layer, feature: hidden|attention|embedding, loss: mse|cosine, weight}
    intermediate: Union[str, list, None] = None
    threshold: str = "global"         # task: multilabel: sigmoid thresholds chosen on dev: one global (best micro-F1)
                                      # or per_label (best macro-F1; docs/pairs_multilabel.md)
    threshold_min_positives: int = 1  # per_label: a label with fewer dev positives takes the global threshold


@dataclass
class AugmentConfig:
    """Tang et al. (2019) transfer set (kdnlp/augment.py): perturbed training texts labelled by the teacher."""
    enabled: bool = False
    n_samples: int = 20               # synthetic examples drawn per training example (before deduplication)
    p_mask: float = 0.1               # per word: replace with the mask token
    p_pos: float = 0.1                # per word: replace with a word of the same POS tag from the training data
    p_ngram: float = 0.25             # per example: keep only a random n-gram
    ngram_range: list = field(default_factory=lambda: [1, 5])
    seed: int = 42                    # fixed apart from train.seed: student seeds share one transfer set
    max_examples: Optional[int] = None  # cap on originals + augmented (originals are always kept)
    tagger: str = "auto"              # auto|jieba|nltk|none|module:function


@dataclass
class PretrainConfig:
    """`kdnlp pretrain` (kdnlp/pretrain.py): masked-LM pretraining of the teacher on --corpus files."""
    epochs: int = 1
    lr: float = 1e-4
    batch_size: int = 32
    warmup_ratio: float = 0.0         # then linear decay to 0, as the teacher's schedule
    weight_decay: float = 0.01
    mask_prob: float = 0.15
    whole_word_mask: bool = False     # mask whole words (jieba for Chinese, ## pieces otherwise)
    max_lines: Optional[int] = None   # use only the first N corpus lines
    output: str = "pretrained"        # <output_dir>/<output>; point teacher.pretrained at it
    seed: int = 42


@dataclass
class TrainConfig:
    device: str = "auto"              # auto|cpu|cuda|cuda:N
    seed: int = 42
    patience: int = 3                 # evaluations without dev improvement before stopping
    eval_every: Optional[int] = None  # steps; dev is evaluated every epoch regardless
    max_grad_norm: float = 1.0
    threads: Optional[int] = None     # torch CPU threads
    mixed_precision: Union[str, bool] = "auto"  # auto|no|fp16|bf16 (Accelerate); auto = bf16 on CUDA GPUs that
                                      # support it. bool: YAML reads a bare `no` as false, which means "no"
    grad_accum: int = 1               # batches per optimizer step (per process); effective batch = batch_size x this x processes
    report_to: str = "none"           # none|tensorboard: train loss and dev metric through Accelerate's trackers,
                                      # into <output_dir>/tensorboard/<model> (needs `pip install tensorboard`)
    eval_tokens: Optional[int] = None  # inference (dev, test, logit cache, predict) batches: length-sorted rows packed
                                      # up to this many (padded) tokens; None = auto: 65536 on CUDA, on the CPU
                                      # 2 x batch_size rows (bigger batches of short rows measured slower there)


@dataclass
class FrontierConfig:
    """`kdnlp frontier` (kdnlp/frontier.py): several students against one cached teacher, measured and compared."""
    variants: Optional[dict] = None   # {name: {section.key: value, ...}}: each a student trained with these --set
                                      # overrides (student, distill, augment, train keys only); null = the default
                                      # preset (static, bilstm, bert1/2/3/6 below the teacher's depth, transformer,
                                      # pretrained when student.pretrained is set)
    retain: float = 0.97              # the recommendation: the fastest student whose dev score >= retain x teacher's


@dataclass
class Config:
    task: str = "classification"
    data: DataConfig = field(default_factory=DataConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    student: StudentConfig = field(default_factory=StudentConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    frontier: FrontierConfig = field(default_factory=FrontierConfig)
    output_dir: Optional[str] = None  # default saved_dict/<config file stem>
    source: str = "<defaults>"        # the YAML file this came from (not a user key)

    @property
    def out(self) -> Path:
        return Path(self.output_dir)


_SECTION_CLASSES = {"data": DataConfig, "teacher": TeacherConfig, "student": StudentConfig,
                    "distill": DistillConfig, "augment": AugmentConfig, "pretrain": PretrainConfig,
                    "train": TrainConfig, "frontier": FrontierConfig}
_TOP_KEYS = ["task", "output_dir", *_SECTION_CLASSES]


def _check_type(where: str, value: Any, hint: Any) -> Any:
    """Coerce/validate one value against its dataclass type hint; raise UserError naming the key."""
    origin = typing.get_origin(hint)
    if origin is Union:
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _check_type(where, value, a)
            except UserError as e:
                errors.append(str(e))
        raise UserError(errors[0] if errors else f"{where}: invalid value {value!r}")
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str):  # YAML 1.1 reads 5e-4 (no dot) as a string
        try:
            return float(value)
        except ValueError:
            pass
    if hint is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if hint is str and isinstance(value, str):
        return value
    if hint is bool and isinstance(value, bool):
        return value
    if hint in (list, dict) and isinstance(value, hint):
        return value
    name = getattr(hint, "__name__", str(hint))
    raise UserError(f"{where}: expected {name}, got {value!r}")


def _build_section(cls, raw: Any, where: str):
    if raw is None:
        return cls()
    if not isinstance(raw, dict):
        raise UserError(f"{where}: expected a mapping of keys, got {raw!r}")
    hints = typing.get_type_hints(cls)
    valid = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in raw.items():
        if key not in valid:
            raise UserError(f"{where}: unknown key '{key}'{_closest(str(key), valid)}")
        kwargs[key] = _check_type(f"{where}.{key}", value, hints[key])
    return cls(**kwargs)


def config_from_dict(raw: dict, source: str = "<dict>") -> Config:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise UserError(f"{source}: the config must be a YAML mapping")
    for key in raw:
        if key not in _TOP_KEYS:
            raise UserError(f"{source}: unknown key '{key}'{_closest(str(key), _TOP_KEYS)}")
    cfg = Config(
        task=_check_type(f"{source}: task", raw.get("task", "classification"), str),
        output_dir=_check_type(f"{source}: output_dir", raw.get("output_dir"), Optional[str]),
        source=source,
        **{name: _build_section(cls, raw.get(name), f"{source}: {name}") for name, cls in _SECTION_CLASSES.items()},
    )
    if cfg.output_dir is None:
        stem = Path(source).stem if source not in ("<dict>", "<defaults>") else "run"
        cfg.output_dir = str(Path("saved_dict") / stem)
    if cfg.train.mixed_precision is False:
        cfg.train.mixed_precision = "no"
    validate(cfg)
    if cfg.student.num_layers is None and cfg.student.type != "fastbert":  # fastbert: the teacher's depth, at build
        cfg.student.num_layers = DEFAULT_STUDENT_LAYERS
    if cfg.student.lr is None:  # type-dependent default
        cfg.student.lr = {"bilstm": 1e-3, "word_bilstm": 1e-3, "static": 5e-3}.get(cfg.student.type, 5e-5)
    return cfg


def load_config(path: str | Path, overrides: list[str] | None = None) -> Config:
    return config_from_dict(load_raw(path, overrides), source=str(path))


def load_raw(path: str | Path, overrides: list[str] | None = None) -> dict:
    """The YAML mapping of a config file with --set overrides applied, before validation."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{p}: config file not found (pass --config path/to/config.yaml; examples are in configs/)")
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark else ""
        raise UserError(f"{p}{line}: invalid YAML ({getattr(e, 'problem', e)})") from None
    if not isinstance(raw, dict):
        raise UserError(f"{p}: the config must be a YAML mapping of sections")
    for ov in overrides or []:
        apply_override(raw, ov)
    return raw


def resolved_dict(cfg: Config) -> dict:
    """Every user key with the value in effect (defaults filled in, --set applied): load_config of its YAML dump
    gives back the same Config, so a run can be repeated from <output_dir>/config.resolved.yaml alone."""
    values = dataclasses.asdict(cfg)
    return {key: values[key] for key in _TOP_KEYS}


def dump_config(cfg: Config) -> str:
    """The resolved config as YAML: what `kdnlp config` prints and config.resolved.yaml holds."""
    return (f"# kdnlp: {cfg.source} resolved (every default filled in); rerun with --config <this file>\n"
            + yaml.safe_dump(resolved_dict(cfg), sort_keys=False, allow_unicode=True, default_flow_style=False))


def apply_override(raw: dict, ov: str) -> None:
    """Apply `section.key=value` (value parsed as YAML) to the raw config dict."""
    if "=" not in ov:
        raise UserError(f"--set {ov}: expected section.key=value, e.g. --set student.epochs=3")
    key, value = ov.split("=", 1)
    parts = key.strip().split(".")
    try:
        parsed = yaml.safe_load(value) if value != "" else None
    except yaml.YAMLError:
        parsed = value
    set_dotted(raw, parts, parsed, f"--set {ov}")


def set_dotted(raw: dict, parts: list[str], value: Any, where: str) -> None:
    """raw[a][b]... = value for the key path a.b...; `where` names the override in the error."""
    node = raw
    for part in parts[:-1]:
        if node.get(part) is None:
            node[part] = {}
        node = node[part]
        if not isinstance(node, dict):
            raise UserError(f"{where}: '{part}' is not a section")
    node[parts[-1]] = value
