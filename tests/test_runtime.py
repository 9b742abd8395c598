"""The torch-free runtime (kdnlp/runtime/): a bundle from `kdnlp export --bundle` gives the answers `kdnlp predict`
gives (identical labels, label sets and entities; probabilities within 1e-5), for every task shape and every
tokenizer kind a bundle can carry, and serving imports neither torch nor transformers."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import make_texts
from runtime_bundles import SHAPES, same_answers

pytest.importorskip("onnxruntime")
ROOT = Path(__file__).resolve().parents[1]


def _inputs(shape: str) -> list:
    texts = [t for t, _ in make_texts(12, 7)] + ["", "x"]  # an empty text and an unknown character too
    if SHAPES[shape][1] == "pairs":
        return list(zip(texts, texts[3:] + texts[:3]))
    if shape == "ner":  # Chinese with spaces: characters, with offsets into the spaced text
        return texts[:6] + [" ".join(t) for t in texts[6:10]] + ["  好 棒  "]
    return texts


@pytest.mark.parametrize("shape", list(SHAPES))
def test_runtime_answers_equal_predict(shape, bundles):
    import kdnlp
    from kdnlp.runtime.runtime import Runtime
    _, bundle = bundles(shape)
    meta = json.loads((bundle / "bundle.json").read_text(encoding="utf-8"))
    assert meta["task"] == SHAPES[shape][0] and set(meta["files"]) >= {"model.onnx"}
    assert meta["parity"]["prediction_agreement"] == 1.0 and (bundle / "README.md").is_file()
    inputs = _inputs(shape)
    want = kdnlp.load(bundle.parent / "out" / "student").predict(inputs)
    got = Runtime(bundle).predict(inputs)
    assert same_answers(got, want), (got[:2], want[:2])
    if shape == "ner":  # character offsets point at the entity's characters in the text as sent
        spans = [(r["text"], e) for r in got for e in r["entities"]]
        assert spans and all(t[e["char_start"]:e["char_end"]].replace(" ", "") == e["text"] for t, e in spans)


def test_bundle_refuses_damage_and_wrong_kind_of_input(tmp_path, bundles):
    from kdnlp.errors import UserError
    from kdnlp.runtime.runtime import BadInput, Runtime
    bundle = tmp_path / "bundle"
    shutil.copytree(bundles("siamese")[1], bundle)
    rt = Runtime(bundle)
    with pytest.raises(BadInput, match="sentence pairs"):
        rt.predict(["a single text"])
    card = (bundle / "README.md").read_text(encoding="utf-8")
    assert card.startswith("---\nlibrary_name: kdnlp") and "distillation" in card and "base_model:" in card
    student = bundles("siamese")[1].parent / "out" / "student"  # the model folder's own card: report.json's metric
    report = json.loads((student / "report.json").read_text(encoding="utf-8"))
    assert f"value: {round(report['accuracy'], 4)}" in (student / "README.md").read_text(encoding="utf-8")
    vocab = bundle / "tokenizer.json"
    vocab.write_text(vocab.read_text(encoding="utf-8").replace("[UNK]", "[UNQ]"), encoding="utf-8")
    with pytest.raises(UserError, match="sha256 differs"):
        Runtime(bundle)
    with pytest.raises(UserError, match="not a serving bundle"):
        Runtime(tmp_path)


def test_runtime_process_imports_neither_torch_nor_transformers(bundles):
    _, bundle = bundles("static")
    code = ("import sys, json; from kdnlp.runtime.runtime import Runtime; from kdnlp.runtime import app, settings; "
            f"app.create_app(settings.ServeSettings(bundle={str(bundle)!r})); "
            f"r = Runtime({str(bundle)!r}).predict(['好棒']); "
            "print(json.dumps([r[0]['label'], sorted(m for m in ('torch', 'transformers') if m in sys.modules)]))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    label, heavy = json.loads(out.stdout.strip().splitlines()[-1])
    assert label in ("pos", "neg") and heavy == []
