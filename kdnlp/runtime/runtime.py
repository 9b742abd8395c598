"""Runtime: a bundle loaded once (onnxruntime session, tokenizer, labels), then predict(texts) many times.

    rt = Runtime("saved_dict/sst2/student/bundle")
    rt.predict(["a gripping film", "dull"])     # the answers `kdnlp predict --json` prints, one dict per text
    rt.predict([("first", "second")])           # a sentence-pair model

Inputs and answers are kdnlp.predictor.Predictor's: classification {"text", "label", "probability",
"probabilities"}, multilabel {"text", "labels", "probabilities"}, ner {"text", "entities": [{"text", "type",
"start", "end", "char_start", "char_end"}]}; a pair adds "text_b". Rows are run length-sorted, in chunks of at
most `batch_size` rows whose padding stays under PADDING_WASTE, each padded to its longest row.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import UserError
from . import decode
from .bundle import MODEL_FILE, read_bundle
from .encoders import make_encoder

SIDES = "sides"  # kdnlp.pairs.SIDES: each text of a pair read on its own (the siamese BiLSTM)


class BadInput(UserError):
    """A request the model cannot answer as given (a pair for a single-text model, or the reverse)."""


# A forward pass's padded tokens may exceed its real tokens by this factor: rows are length-sorted and cut into
# chunks under it. Measured on the int8 SST-2 BiLSTM, random batches of 32 test sentences, 1 thread: 0.65 ms a row
# padded as one batch, 0.43 under 1.25, 0.37 under 1.1 (an LSTM steps through every padded position).
PADDING_WASTE = 1.15


def length_chunks(lengths: list[int], max_rows: int, waste: float = PADDING_WASTE) -> list[list[int]]:
    """Row indices, shortest first, in chunks of at most max_rows whose padding stays under `waste`."""
    chunks, current, real = [], [], 0
    for i in sorted(range(len(lengths)), key=lengths.__getitem__):
        n = lengths[i]
        if current and (len(current) >= max_rows or (len(current) + 1) * n > waste * (real + n)):
            chunks.append(current)
            current, real = [], 0
        current.append(i)
        real += n
    return chunks + [current] if current else chunks


def _pad(rows: list[list[int]], value: int) -> tuple[np.ndarray, np.ndarray]:
    width = max(len(r) for r in rows)
    ids = np.full((len(rows), width), value, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = r
        mask[i, :len(r)] = 1
    return ids, mask


class Runtime:
    def __init__(self, bundle_dir: str | Path, threads: int = 1, verify: bool = True):
        import onnxruntime as ort
        self.dir = Path(bundle_dir)
        self.meta = read_bundle(self.dir, verify)
        self.task, self.labels = self.meta["task"], self.meta["labels"]
        self.text_pairs = self.meta["text_pairs"]  # None: not recorded, either kind is accepted
        self.encoder = make_encoder(self.dir, self.meta["tokenizer"], self.meta["max_length"])
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(self.dir / MODEL_FILE), options, providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.session.get_inputs()}  # ONNX drops inputs the graph never reads
        self.thresholds = np.asarray(self.meta["thresholds"] or [0.5] * len(self.labels), dtype=float)

    def info(self) -> dict:
        m = self.meta
        return {"model": m["model"], "model_type": m["model_type"], "base_model": m["base_model"], "task": self.task,
                "labels": self.labels, "max_length": m["max_length"], "text_pairs": bool(self.text_pairs),
                "quantize": m["onnx"]["quantize"], "checksum": m["checksum"], "parity": m["parity"]}

    def check(self, texts: list) -> None:
        """BadInput for a pair sent to a single-text model and the reverse (kdnlp.pairs.check_pair_input)."""
        if self.task == "ner" and not all(isinstance(t, str) for t in texts):
            raise BadInput("an NER model tags single texts: send text or texts, without text_pair")
        if self.text_pairs is None:
            return
        if self.text_pairs and any(isinstance(t, str) for t in texts):
            raise BadInput("this model classifies sentence pairs: send text and text_pair (or texts and text_pairs)")
        if not self.text_pairs and any(not isinstance(t, str) for t in texts):
            raise BadInput("this model classifies single texts: send text or texts, without text_pair")

    def _logits(self, feeds: dict) -> np.ndarray:
        return self.session.run(["logits"], {k: v for k, v in feeds.items() if k in self.inputs})[0]

    def _whole_text_logits(self, texts: list, batch_size: int) -> np.ndarray:
        pairs = not isinstance(texts[0], str)
        e = self.encoder
        if not pairs:
            ids, ids_b, types = e.single(texts), None, None
        elif self.meta["pair_input"] == SIDES:
            both = e.single([t[0] for t in texts] + [t[1] for t in texts])
            ids, ids_b, types = both[:len(texts)], both[len(texts):], None
        else:
            (ids, types), ids_b = e.pairs([t[0] for t in texts], [t[1] for t in texts]), None
        lengths = [len(a) + (len(ids_b[i]) if ids_b else 0) for i, a in enumerate(ids)]
        out = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        for index in length_chunks(lengths, batch_size):
            feeds = dict(zip(("input_ids", "attention_mask"), _pad([ids[i] for i in index], e.pad_id)))
            if types is not None:
                feeds["token_type_ids"] = _pad([types[i] for i in index], 0)[0]
            if ids_b is not None:
                feeds["input_ids_b"], feeds["attention_mask_b"] = _pad([ids_b[i] for i in index], e.pad_id)
            out[index] = self._logits(feeds)
        return out

    def _ner(self, texts: list[str], batch_size: int) -> list[dict]:
        words = [decode.ner_words(t) for t in texts]
        rows = self.encoder.ner_rows(words)
        tags: list[list[int]] = [[] for _ in texts]
        for start in range(0, len(rows), batch_size):  # windows stay in order: an example's tags are stitched in order
            chunk = rows[start:start + batch_size]
            ids, mask = _pad([r[0] for r in chunk], self.encoder.pad_id)
            logits = self._logits({"input_ids": ids, "attention_mask": mask})
            for row, (_, firsts, example) in zip(logits, chunk):
                tags[example] += row[firsts].argmax(1).tolist()
        return [{"text": t, "entities": decode.entities_with_offsets(t, w, [self.labels[k] for k in tg])}
                for t, w, tg in zip(texts, words, tags)]

    def predict(self, texts: list | str, batch_size: int = 64) -> list[dict]:
        if isinstance(texts, str):
            texts = [texts]
        texts = [t if isinstance(t, str) else tuple(t) for t in texts]
        if not texts:
            return []
        self.check(texts)
        if self.task == "ner":
            return self._ner(texts, batch_size)
        logits = self._whole_text_logits(texts, batch_size)
        shown = [{"text": t} if isinstance(t, str) else {"text": t[0], "text_b": t[1]} for t in texts]
        if self.task == "multilabel":
            return decode.multilabel(shown, logits, self.labels, self.thresholds)
        return decode.classification(shown, logits, self.labels)
