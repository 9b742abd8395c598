"""`kdnlp export`: a trained model -> ONNX or TorchScript (fp32 or dynamic-quantized int8), with a parity check.

Files land in `<output_dir>/<model>/export/` (`model.onnx`, `model.int8.onnx`, `model.pt`, `model.int8.pt`), each
written atomically, plus `export.json` with one record per file. Every exported graph takes `input_ids` and
`attention_mask` (int64, dynamic batch and sequence axes) and returns `logits`; sentence-pair models take more:
`token_type_ids` (transformers), or `input_ids_b` and `attention_mask_b` (the siamese BiLSTM's second text).

The parity check runs the PyTorch model and the exported file over the whole test set, batched the same way
(Trainer.predict_logits), and records the max abs logit difference, prediction agreement and both test metrics:
for int8 this is the accuracy cost of quantization.
"""
from __future__ import annotations

import json
import platform
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from torch import nn

from .errors import UserError
from .fileio import atomic_path, write_json
from .data import model_inputs
from .pairs import input_kind
from .modeldir import load_model_dir
from .ner import TokenLogits

FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
EXPORT_DIR = "export"
RECORDS = "export.json"


def export_path(model_dir: Path, fmt: str, quantize: str | None) -> Path:
    return model_dir / EXPORT_DIR / f"model{'.int8' if quantize else ''}{FORMATS[fmt]}"


def exported_files(model_dir: Path) -> list[Path]:
    """Exported files of a model that exist, in a fixed order."""
    return [p for fmt in FORMATS for q in (None, "int8") if (p := export_path(model_dir, fmt, q)).is_file()]


def require_onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        raise UserError("ONNX needs onnx and onnxruntime: pip install 'kdnlp[export]'") from None
    return onnxruntime


class LogitsOnly(nn.Module):
    """(input tensors in `names` order) -> logits: the plain-tensor signature that tracing and ONNX need."""

    def __init__(self, model, names: list[str]):
        super().__init__()
        self.model, self.names = model, list(names)

    def forward(self, *inputs):
        return self.model(**dict(zip(self.names, inputs))).logits


class ExportedModel:
    """An exported file behind the interface Trainer.predict_logits uses: model(input_ids=, attention_mask=).logits.

    `config` is the source model's (predict_logits reads num_labels for token classifiers)."""

    def __init__(self, path: Path, config, threads: int | None = None):
        self.path, self.config = Path(path), config
        threads = threads or torch.get_num_threads()
        if self.path.suffix == ".onnx":
            ort = require_onnxruntime()
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads  # the same thread budget as PyTorch gets
            options.inter_op_num_threads = 1
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
            self.module = None
        else:
            self.module = torch.jit.load(str(self.path), map_location="cpu")

    def eval(self):
        return self

    def __call__(self, **inputs):
        """Keyword tensors as kdnlp.data.model_inputs gives them (the order they were exported in)."""
        if self.module is not None:
            with torch.no_grad():
                return SimpleNamespace(logits=self.module(*(x.cpu() for x in inputs.values())))
        wanted = {i.name for i in self.session.get_inputs()}  # ONNX drops inputs the graph never reads
        logits = self.session.run(["logits"], {k: v.cpu().numpy() for k, v in inputs.items() if k in wanted})[0]
        return SimpleNamespace(logits=torch.from_numpy(logits))


def _quantize_torch(model):
    """Dynamic int8: weights stored int8, activations quantized on the fly (Linear, and the BiLSTM's LSTM)."""
    return torch.ao.quantization.quantize_dynamic(model, {nn.Linear, nn.LSTM}, dtype=torch.qint8)


def _write_onnx(wrapped: nn.Module, example: dict, path: Path, quantize: str | None) -> None:
    require_onnxruntime()
    names = list(example["inputs"])
    axes = {name: {0: "batch", 1: "sequence_b" if name.endswith("_b") else "sequence"} for name in names}
    axes["logits"] = {0: "batch"} if example["logits_ndim"] == 2 else {0: "batch", 1: "sequence"}
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about Python branches on shapes: checked by parity below
        fp32 = tmp.with_name(tmp.name + ".fp32.onnx") if quantize else tmp
        try:
            # the TorchScript-based exporter: it handles the BiLSTM's packed sequences; torch.export does not
            torch.onnx.export(wrapped, tuple(example["inputs"].values()), str(fp32), dynamo=False,
                              input_names=names, output_names=["logits"],
                              dynamic_axes=axes, opset_version=17)
            if quantize:
                import logging

                from onnxruntime.quantization import QuantType, quantize_dynamic
                logging.getLogger().setLevel(logging.ERROR)  # onnxruntime's "consider pre-processing" notice
                quantize_dynamic(str(fp32), str(tmp), weight_type=QuantType.QInt8)
        finally:
            if quantize and fp32.exists():
                fp32.unlink()


def _write_torchscript(wrapped: nn.Module, example: dict, path: Path, quantize: str | None) -> None:
    if quantize and any(isinstance(m, nn.LSTM) for m in wrapped.modules()):
        raise UserError("--format torchscript --quantize int8: a quantized LSTM does not survive TorchScript "
                        "save/load in this torch; use --format onnx --quantize int8 for the BiLSTM")
    with atomic_path(path) as tmp, warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        module = _quantize_torch(wrapped) if quantize else wrapped
        traced = torch.jit.trace(module, tuple(example["inputs"].values()), check_trace=False)
        traced.save(str(tmp))


def flat_logits(logits) -> np.ndarray:
    return logits.flat if isinstance(logits, TokenLogits) else logits


def export(trainer, name: str, fmt: str, quantize: str | None = None, max_examples: int | None = None,
           bundle: str | Path | None = None) -> dict:
    """Export <output_dir>/<name>, check it against PyTorch on test (or its first max_examples rows), record it.
    bundle: also write a serving bundle folder there (kdnlp/runtime/bundle.py)."""
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt}: use onnx or torchscript")
    if bundle is not None and fmt != "onnx":
        raise UserError("--bundle: a serving bundle holds an ONNX model; use --format onnx (the default)")
    if quantize not in (None, "int8"):
        raise UserError(f"--quantize {quantize}: only int8 is supported")
    mdir = trainer.out / name
    model, tokenizer, labels = load_model_dir(mdir, trainer.cfg.task)
    trainer._check_labels(labels, mdir)
    cpu = torch.device("cpu")
    # eval() on the wrapper itself: exporters restore the wrapper's mode afterwards, and a wrapper left in
    # training mode would switch dropout back on in the model it wraps.
    model.to(cpu)
    if max_examples is not None and max_examples < 1:
        raise UserError("export: --examples must be >= 1")
    test = trainer.task.encode(trainer.splits.test[:max_examples], tokenizer, trainer.cfg.data.max_length,
                               input_kind(model))
    # trace on real test rows of different lengths, so padding and masking are part of the traced graph
    inputs = model_inputs(model, test.collate(np.arange(min(8, len(test)))), cpu)
    wrapped = LogitsOnly(model, list(inputs)).eval()
    with torch.no_grad():
        ndim = wrapped(*inputs.values()).dim()
    example = {"inputs": inputs, "logits_ndim": ndim}
    path = export_path(mdir, fmt, quantize)
    (_write_onnx if fmt == "onnx" else _write_torchscript)(wrapped, example, path, quantize)

    reference = trainer.predict_logits(model, test, 64, desc=f"{name} pytorch", device=cpu)
    exported = trainer.predict_logits(ExportedModel(path, model.config), test, 64, desc=f"{name} {path.name}", device=cpu)
    ref, out = flat_logits(reference), flat_logits(exported)
    record = {
        "file": path.name, "format": fmt, "quantize": quantize, "size_bytes": path.stat().st_size,
        "n_test": len(test), "max_abs_logit_diff": float(np.abs(ref - out).max()),
        "prediction_agreement": float((ref.argmax(-1) == out.argmax(-1)).mean()),
        "metric": trainer.task.metric,
        "test_metric_pytorch": trainer.task.score(reference, test, labels, model.config),
        "test_metric_exported": trainer.task.score(exported, test, labels, model.config),
        "trained": is_trained(mdir),
        "torch": torch.__version__, "machine": platform.machine(),
    }
    records_path = mdir / EXPORT_DIR / RECORDS
    records = json.loads(records_path.read_text(encoding="utf-8")) if records_path.is_file() else {}
    records[path.name] = record
    write_json(records_path, records)
    size = f"{record['size_bytes'] / 2**20:.1f} MB"
    print(f"exported {name} -> {path} ({size})")
    print(f"parity on {len(test)} test rows: max |logit diff| {record['max_abs_logit_diff']:.2e}, "
          f"predictions agree {record['prediction_agreement']:.2%}; test {record['metric']}: "
          f"pytorch fp32 {record['test_metric_pytorch']:.4f}, {path.name} {record['test_metric_exported']:.4f}"
          + ("" if record["trained"] else " (untrained model: metrics meaningless)"))
    if bundle is not None:
        write_export_bundle(trainer, name, path, tokenizer, model.config, labels, record, Path(bundle))
    return record


def write_export_bundle(trainer, name: str, onnx_path: Path, tokenizer, config, labels: list[str], record: dict,
                        out: Path) -> None:
    from .card import model_card, teacher_source
    from .runtime.bundle import write_bundle
    mdir = trainer.out / name
    checksum = write_bundle(out, onnx_path=onnx_path, tokenizer=tokenizer, model_config=config, labels=labels,
                            task=trainer.cfg.task, max_length=trainer.cfg.data.max_length, parity=record,
                            model_name=name, base_model=teacher_source(trainer.cfg),
                            card=model_card(mdir, trainer.cfg, bundle=out, parity=record))
    print(f"bundle -> {out} (sha256 {checksum[:12]}); serve it: kdnlp serve --bundle {out}")


def is_trained(model_dir: Path) -> bool:
    """False for models saved by `kdnlp bench --init-untrained` (their test metrics mean nothing)."""
    state = model_dir / "train_state.json"
    return not (state.is_file() and json.loads(state.read_text(encoding="utf-8")).get("untrained"))


def export_records(model_dir: Path) -> dict:
    path = model_dir / EXPORT_DIR / RECORDS
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
