"""Tang et al. (2019) augmentation: a transfer set of perturbed training texts for the teacher to label.

For every training text, `n_samples` times: each word is masked with probability p_mask, else replaced with
probability p_pos by a word of the same part of speech (drawn from the training data's unigram distribution of
that tag, which keeps the word distribution close to the original), else kept; then, with probability p_ngram, only
a random n-gram (n uniform in ngram_range) of the result is kept. Duplicates and copies of originals are dropped.

Words come from jieba for Chinese and whitespace for space-separated languages. Part-of-speech tags come from a
`Tagger`: jieba.posseg for Chinese; for other languages NLTK when installed with its tagger data, or your own
`module:function`. Without a tagger, POS replacement is off (one warning) and masking and n-grams still run.

Sentence pairs: each side is perturbed on its own (its own draws of every operation), and a synthetic pair is new
when the pair is.

The transfer set is stored in `<output_dir>/augment/` (transfer.jsonl, then manifest.json last) with a fingerprint of
the settings and the originals, so it is built once and reused; `kdnlp augment` builds it or shows its stats.
"""
from __future__ import annotations

import hashlib
import importlib
import json
import random
import time
from bisect import bisect
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from itertools import accumulate
from pathlib import Path
from typing import Callable, Optional

from .config import AugmentConfig
from .tokenization import is_chinese
from .errors import UserError
from .fileio import write_json, write_text

OPS = ("mask", "pos", "ngram")

# A tagger maps texts to [(word, tag), ...] per text; joining the words with `joiner` gives the text back.
TagFn = Callable[[list[str]], list[list[tuple[str, str]]]]


@dataclass
class Tagger:
    name: str
    tag: TagFn                       # texts -> [(word, pos)] per text; pos None when the tagger has no tags
    has_pos: bool
    joiner: str                      # "" for Chinese, " " for space-separated languages
    warning: Optional[str] = None    # printed once when POS replacement had to be switched off


def _jieba(cache_dir: Path | None):
    try:
        import jieba
        import jieba.posseg
    except ImportError:
        raise UserError("augment: Chinese text needs jieba for word segmentation (pip install 'kdnlp[demo]')") from None
    jieba.setLogLevel(60)
    if cache_dir is not None:  # jieba writes its dictionary cache to /tmp by default
        cache_dir.mkdir(parents=True, exist_ok=True)
        jieba.dt.tmp_dir = str(cache_dir)
    return jieba


def _nltk_tag() -> TagFn | None:
    """NLTK's perceptron tagger if nltk and its tagger data are installed (nothing is downloaded), else None."""
    try:
        import nltk
        nltk.pos_tag(["probe"])
    except Exception:  # ImportError, or LookupError when the tagger data is missing
        return None
    return lambda texts: [nltk.pos_tag(t.split()) for t in texts]


def make_tagger(spec: str, chinese: bool, cache_dir: Path | None = None) -> Tagger:
    """spec: auto | jieba | nltk | none | module:function (texts -> [[(word, tag), ...], ...])."""
    joiner = "" if chinese else " "
    if chinese:
        jieba = _jieba(cache_dir)
        segment = lambda texts: [[(w, None) for w in jieba.lcut(t)] for t in texts]  # noqa: E731
    else:
        segment = lambda texts: [[(w, None) for w in t.split()] for t in texts]  # noqa: E731
    if spec == "none":
        return Tagger("none", segment, False, joiner)
    if ":" in spec:
        mod, _, fn = spec.partition(":")
        try:
            tag = getattr(importlib.import_module(mod), fn)
        except (ImportError, AttributeError) as e:
            raise UserError(f"augment.tagger: cannot import '{spec}' ({e}); give module:function") from None
        return Tagger(spec, tag, True, joiner)
    if spec == "jieba" or (spec == "auto" and chinese):
        if not chinese:
            raise UserError("augment.tagger: jieba tags Chinese; this training data is not Chinese (use auto or nltk)")
        jieba = _jieba(cache_dir)
        return Tagger("jieba", lambda texts: [[(p.word, p.flag) for p in jieba.posseg.lcut(t)] for t in texts], True, joiner)
    if spec in ("nltk", "auto"):
        tag = _nltk_tag()
        if tag is not None:
            return Tagger("nltk", tag, True, joiner)
        if spec == "nltk":
            raise UserError("augment.tagger: nltk with its averaged_perceptron_tagger data is not installed")
        return Tagger("none", segment, False, joiner,
                      warning="augment: no part-of-speech tagger for this language (install nltk + its tagger data, "
                              "or set augment.tagger: module:function); POS-guided replacement is off")
    raise UserError(f"augment.tagger: '{spec}' is unknown (use auto, jieba, nltk, none or module:function)")


class PosTable:
    """Words seen with each tag, sampled by their training-data frequency."""

    def __init__(self, tagged: list[list[tuple[str, str]]]):
        counts: dict[str, Counter] = defaultdict(Counter)
        for sent in tagged:
            for w, t in sent:
                if t is not None and w.strip():
                    counts[t][w] += 1
        self.words = {t: list(c) for t, c in counts.items()}
        self.cum = {t: list(accumulate(c.values())) for t, c in counts.items()}

    def sample(self, tag: str, rng: random.Random) -> str | None:
        cum = self.cum.get(tag)
        if not cum:
            return None
        return self.words[tag][bisect(cum, rng.random() * cum[-1])]


def augment_one(words: list[tuple[str, str]], cfg: AugmentConfig, mask: str, table: PosTable | None,
                rng: random.Random) -> tuple[list[str], set[str]]:
    """One synthetic example from one tagged text: (words, the operations that changed it)."""
    out, ops = [], set()
    for w, tag in words:
        if not w.strip():  # whitespace between words (jieba keeps it): never an operation's target
            out.append(w)
            continue
        x = rng.random()
        if x < cfg.p_mask:
            out.append(mask)
            ops.add("mask")
        elif x < cfg.p_mask + cfg.p_pos and table is not None and tag is not None:
            new = table.sample(tag, rng)
            out.append(new if new is not None else w)
            if new is not None and new != w:
                ops.add("pos")
        else:
            out.append(w)
    if rng.random() < cfg.p_ngram:
        lo, hi = cfg.ngram_range
        n = rng.randint(lo, hi)
        if n < len(out):
            start = rng.randrange(len(out) - n + 1)
            out = out[start:start + n]
            ops.add("ngram")
    return out, ops


@dataclass
class TransferSet:
    """The augmented examples (originals excluded); the transfer set is originals + these."""
    texts: list[str]
    sources: list[int]               # index of the original each one came from
    ops: list[str]                   # "mask+ngram", ... (pairs: "first|second")
    stats: dict = field(default_factory=dict)
    texts_b: Optional[list[str]] = None  # sentence pairs: the second texts


def _tag_all(tagger: Tagger, texts: list[str]) -> list:
    tagged = []
    for s in range(0, len(texts), 2048):
        tagged.extend(tagger.tag(texts[s:s + 2048]))
    return tagged


def build_transfer_set(originals: list, cfg: AugmentConfig, tagger: Tagger, mask: str) -> TransferSet:
    """originals: texts, or (first, second) pairs whose sides are perturbed independently."""
    rng = random.Random(cfg.seed)
    t0 = time.perf_counter()
    pairs = bool(originals) and isinstance(originals[0], tuple)
    sides = [[o[k] for o in originals] for k in (0, 1)] if pairs else [originals]
    tagged = [_tag_all(tagger, side) for side in sides]
    tag_seconds = time.perf_counter() - t0
    table = PosTable([w for t in tagged for w in t]) if tagger.has_pos and cfg.p_pos > 0 else None
    join = lambda words: tagger.joiner.join(w for w, _ in words).strip()  # noqa: E731
    rejoined = [tuple(join(t[i]) for t in tagged) for i in range(len(originals))]  # originals as the tagger split them
    seen = set(originals) | {r if pairs else r[0] for r in rejoined}
    texts, sources, ops = [], [], []
    generated = 0
    for i in range(len(originals)):
        for _ in range(cfg.n_samples):
            made = [augment_one(t[i], cfg, mask, table, rng) for t in tagged]  # each side its own draws
            generated += 1
            new = tuple(tagger.joiner.join(words).strip() for words, _ in made)
            if not all(new) or (new if pairs else new[0]) in seen:
                continue
            seen.add(new if pairs else new[0])
            texts.append(new if pairs else new[0])
            sources.append(i)
            ops.append("|".join("+".join(o for o in OPS if o in changed) for _, changed in made))
    unique = len(texts)
    if cfg.max_examples is not None and len(originals) + len(texts) > cfg.max_examples:
        keep = sorted(rng.sample(range(len(texts)), max(0, cfg.max_examples - len(originals))))
        texts, sources, ops = [texts[k] for k in keep], [sources[k] for k in keep], [ops[k] for k in keep]
    texts_b = [t[1] for t in texts] if pairs else None
    texts = [t[0] for t in texts] if pairs else texts
    seconds = time.perf_counter() - t0
    per_op = {o: sum(o in x.replace("|", "+").split("+") for x in ops) for o in OPS}
    stats = {"originals": len(originals), "generated": generated, "unique_new": unique, "kept": len(texts),
             "transfer_set": len(originals) + len(texts),
             "dedup_rate": round(1 - unique / generated, 4) if generated else 0.0,
             "examples_with_op": per_op, "tagger": tagger.name, "pos_replacement": table is not None,
             "tag_seconds": round(tag_seconds, 2), "seconds": round(seconds, 2),
             "generated_per_second": round(generated / seconds, 1) if seconds else None}
    return TransferSet(texts, sources, ops, stats, texts_b)


def fingerprint(cfg: AugmentConfig, originals: list[str], tagger_spec: str, mask: str) -> dict:
    h = hashlib.sha256()
    for t in originals:  # a pair hashes as "first<TAB>second"
        h.update((t if isinstance(t, str) else "\t".join(t)).encode("utf-8") + b"\n")
    settings = {k: v for k, v in asdict(cfg).items() if k != "enabled"}
    return {"settings": settings, "tagger": tagger_spec, "mask_token": mask, "originals_sha256": h.hexdigest()}


class TransferSetStore:
    """<dir>/transfer.jsonl (one augmented example per line) + manifest.json written last (fingerprint, stats)."""

    def __init__(self, directory: Path):
        self.dir = Path(directory)
        self.data_path = self.dir / "transfer.jsonl"
        self.manifest_path = self.dir / "manifest.json"

    def load(self, fp: dict) -> TransferSet | None:
        if not self.manifest_path.is_file() or not self.data_path.is_file():
            self.status = "no transfer set yet"
            return None
        try:
            manifest = json.loads(self.manifest_path.read_text(encoding="utf-8"))
            rows = [json.loads(line) for line in self.data_path.read_text(encoding="utf-8").splitlines()]
        except (OSError, ValueError) as e:
            self.status = f"unreadable ({e.__class__.__name__})"
            return None
        if manifest.get("fingerprint") != fp:
            changed = [k for k in fp if manifest.get("fingerprint", {}).get(k) != fp[k]]
            self.status = f"stale: {', '.join(changed) or 'fingerprint'} changed"
            return None
        if len(rows) != manifest.get("stats", {}).get("kept") or manifest.get("sha256") != self.content_hash():
            self.status = "corrupt: transfer.jsonl does not match the manifest"
            return None
        self.status = "hit"
        return TransferSet([r["text"] for r in rows], [r["source"] for r in rows], [r["ops"] for r in rows],
                           manifest["stats"], [r["text_b"] for r in rows] if rows and "text_b" in rows[0] else None)

    def content_hash(self) -> str:
        return hashlib.sha256(self.data_path.read_bytes()).hexdigest()

    def save(self, ts: TransferSet, fp: dict) -> None:
        if self.manifest_path.exists():
            self.manifest_path.unlink()  # invalidate first: a crash between the writes leaves no manifest
        second = ts.texts_b or [None] * len(ts.texts)
        lines = (json.dumps({"text": t, **({"text_b": b} if b is not None else {}), "source": s, "ops": o}, ensure_ascii=False)
                 for t, b, s, o in zip(ts.texts, second, ts.sources, ts.ops))
        write_text(self.data_path, "".join(line + "\n" for line in lines))
        write_json(self.manifest_path, {"fingerprint": fp, "stats": ts.stats, "sha256": self.content_hash()})


def load_or_build_transfer_set(originals: list, cfg: AugmentConfig, mask: str, directory: Path,
                 log: Callable[[str], None] = print) -> TransferSet:
    """The stored transfer set when its fingerprint matches, else build it (and store it)."""
    store = TransferSetStore(directory)
    firsts = [o if isinstance(o, str) else o[0] for o in originals[:200]]
    chinese = sum(map(is_chinese, firsts)) > len(firsts) / 2
    fp = fingerprint(cfg, originals, cfg.tagger, mask)
    ts = store.load(fp)
    if ts is not None:
        log(f"augment: reusing {store.data_path} ({len(ts.texts)} augmented examples, fingerprint matches)")
        return ts
    tagger = make_tagger(cfg.tagger, chinese, cache_dir=store.dir)
    if tagger.warning:
        log(tagger.warning)
    log(f"augment: building the transfer set ({store.status}; tagger {tagger.name}, {cfg.n_samples} samples "
        f"per example)")
    ts = build_transfer_set(originals, cfg, tagger, mask)
    store.save(ts, fp)
    s = ts.stats
    log(f"augment: {s['generated']} generated in {s['seconds']:.1f}s ({s['generated_per_second']:.0f}/s), "
        f"{s['unique_new']} unique new (dedup rate {s['dedup_rate']:.1%}), kept {s['kept']} -> {store.data_path}")
    return ts


def describe(ts: TransferSet, originals: list, n_show: int = 5, seed: int = 0) -> str:
    """Stats and a few examples, for `kdnlp augment`."""
    s = ts.stats
    lines = [f"originals {s['originals']}, generated {s['generated']}, unique new {s['unique_new']} "
             f"(dedup rate {s['dedup_rate']:.1%}), kept {s['kept']}, transfer set {s['transfer_set']}",
             f"tagger {s['tagger']}, POS replacement {'on' if s['pos_replacement'] else 'off'}; "
             f"built in {s['seconds']:.1f}s ({s['generated_per_second']:.0f} generated/s)",
             "examples with each operation (kept): " + ", ".join(f"{o} {n}" for o, n in s["examples_with_op"].items())]
    combos = Counter(ts.ops)
    lines.append("operation combinations: " + ", ".join(f"{k or 'none'} {v}" for k, v in combos.most_common()))
    rng = random.Random(seed)
    for k in sorted(rng.sample(range(len(ts.texts)), min(n_show, len(ts.texts)))):
        orig = originals[ts.sources[k]]
        new = ts.texts[k] if ts.texts_b is None else f"{ts.texts[k]} ||| {ts.texts_b[k]}"
        lines.append(f"  [{ts.ops[k]}] {orig if isinstance(orig, str) else ' ||| '.join(orig)}  ->  {new}")
    return "\n".join(lines)
