"""The model card: README.md in the Hugging Face convention, in every saved model folder and every bundle.

YAML front matter (library_name: kdnlp, base_model: the teacher, tags incl. distillation, model-index metrics from
report.json), then a body: how the model was distilled (the run's config), its test metrics beside the teacher's,
its measured speed where `kdnlp bench` ran (<output_dir>/bench.json), and how to load or serve it. A masked LM of
`kdnlp pretrain` and a model saved untrained (`kdnlp bench --init-untrained`) get a card that says what they are.
Written (write_card) after every save of a model folder (Trainer.fit's checkpoints, an imported teacher, an
untrained model), again by Trainer.evaluate right after report.json, and by `kdnlp export --bundle` into the bundle.
"""
from __future__ import annotations

import json
from pathlib import Path

import yaml

from .fileio import write_text

STUDENT_TAGS = {"kdnlp-bilstm": "bilstm", "kdnlp-static": "static-embeddings"}


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _headline(report: dict, metric: str) -> float | None:
    """The task's metric from a report.json: accuracy (classification), micro f1 (ner), micro_f1 (multilabel)."""
    for key in ({"accuracy": "accuracy"}.get(metric), "accuracy", "micro_f1", "f1"):
        if key and isinstance(report.get(key), (int, float)):
            return float(report[key])
    return None


def teacher_source(cfg) -> str | None:
    """What the teacher was (the model card's base_model): the fine-tuned or pretrained checkpoint named in the
    config; None for a teacher known only by its outputs, or initialised at random."""
    t = cfg.teacher
    return t.fine_tuned or (None if t.outputs else t.pretrained)


def model_card(model_dir: Path, cfg, bundle: Path | None = None, parity: dict | None = None,
               bench_json: Path | None = None) -> str:
    """bundle/parity: the card of a bundle (its folder, the export's parity record); bench_json: the results of
    the `kdnlp bench` run to quote (default <output_dir>/bench.json)."""
    model_dir = Path(model_dir)
    name = model_dir.name
    base = teacher_source(cfg)
    config = _read_json(model_dir / "config.json")
    if any(a.endswith("ForMaskedLM") for a in config.get("architectures") or []):
        return _masked_lm_card(model_dir, cfg, config)
    is_teacher = name == "teacher"
    untrained = _read_json(model_dir / "train_state.json").get("untrained") is True
    report = _read_json(model_dir / "report.json")
    teacher_report = {} if is_teacher else _read_json(model_dir.parent / "teacher" / "report.json")
    metric_key = next((k for k in ("accuracy", "micro_f1", "f1") if isinstance(report.get(k), (int, float))), None)
    tags = ["kdnlp", cfg.task, "text-classification" if cfg.task != "ner" else "token-classification"]
    if not is_teacher:
        tags += ["distillation", "knowledge-distillation", STUDENT_TAGS.get(config.get("model_type"), cfg.student.type)]
    if untrained:
        tags.append("untrained")
    front = {"library_name": "kdnlp", "tags": tags}
    if base:
        front["base_model"] = base
    if metric_key:
        front["model-index"] = [{"name": name, "results": [{
            "task": {"type": "token-classification" if cfg.task == "ner" else "text-classification"},
            "dataset": {"name": str(cfg.data.test), "type": "custom", "split": "test"},
            "metrics": [{"type": metric_key, "value": round(float(report[metric_key]), 4)}]}]}]
    lines = ["---", yaml.safe_dump(front, sort_keys=False, allow_unicode=True).rstrip(), "---", "",
             f"# {name} ({config.get('model_type', 'model')}, kdnlp)", ""]
    if untrained:
        lines.append(f"**Untrained**: saved with random weights by `kdnlp bench --init-untrained` to measure speed and "
                     f"size before anything is trained (the {'teacher' if is_teacher else f'`{cfg.student.type}` student'}"
                     f" of this run's config, max_length {cfg.data.max_length}). Its predictions mean nothing.")
    elif is_teacher:
        lines.append(f"The teacher of this kdnlp run: {base or 'a model known only by its outputs'}, "
                     f"fine-tuned for `{cfg.task}` with max_length {cfg.data.max_length}.")
    else:
        d, s = cfg.distill, cfg.student
        how = (f"distilled by kdnlp from the teacher {base or '(teacher.outputs)'}: loss alpha {d.alpha} x gold "
               f"cross-entropy + T {d.T} x the teacher term ({d.loss})" if d.T else
               f"trained by kdnlp on the gold labels alone (distill.T 0: no teacher term; the teacher {base} gave "
               "the tokenizer / embeddings)")
        lines.append(f"A `{s.type}` student {how}, {s.epochs} epochs, max_length {cfg.data.max_length}, train data "
                     f"`{cfg.data.train}`.")
    lines += ["", "## Test metrics", ""]
    if report:
        n = report.get("n_examples", "?")
        lines += ["| model | test metric | value | params | examples |", "|---|---|---:|---:|---:|"]
        for who, r in (([("teacher", teacher_report)] if teacher_report else []) + [(name, report)]):
            v = _headline(r, metric_key or "")
            lines.append(f"| {who} | {metric_key} | {'' if v is None else f'{v:.4f}'} | "
                         f"{r.get('n_params', 0) / 1e6:.1f}M | {r.get('n_examples', n)} |")
    else:
        lines.append("Not evaluated yet (no report.json): run `kdnlp evaluate`.")
    if parity:
        lines += ["", f"Exported file: `{parity['file']}` ({parity['size_bytes'] / 2**20:.1f} MB). Parity with PyTorch on "
                      f"{parity['n_test']} test rows: predictions agree {parity['prediction_agreement']:.2%}, max |logit "
                      f"diff| {parity['max_abs_logit_diff']:.2e}, test {parity['metric']} {parity['test_metric_exported']:.4f} "
                      f"(PyTorch fp32 {parity['test_metric_pytorch']:.4f})."]
    bench = _read_json(bench_json or model_dir.parent / "bench.json")
    rows = [r for r in bench.get("rows", []) if r.get("model") == name]
    if rows:
        load = bench.get("machine", {}).get("load_average_at_start", [float("nan")])[0]
        lines += ["", f"## Speed (kdnlp bench, {bench.get('device')}, {bench.get('threads')} threads, load average "
                      f"{load:.2f})", "",
                  "| runtime | latency p50 (batch 1) | examples/s |", "|---|---:|---:|"]
        lines += [f"| {r['runtime']} | {r['latency_ms_p50']:.2f} ms | {r['throughput_examples_per_second']:,.0f} |"
                  for r in rows]
    lines += ["", "## Use", "", "```bash",
              f"kdnlp predict --config {cfg.source} --model {name} \"a text\" --json",
              f"kdnlp serve --bundle {bundle}" if bundle else
              f"kdnlp export --config {cfg.source} --model {name} --quantize int8 --bundle {model_dir}/bundle",
              "```", "", "```python", "import kdnlp", f"kdnlp.load({str(model_dir)!r}).predict([\"a text\"])", "```"]
    if bundle:
        lines += ["", "Without torch (the serving install of kdnlp's docs/deployment.md):", "", "```python",
                  "from kdnlp.runtime.runtime import Runtime", f"Runtime({str(bundle)!r}).predict([\"a text\"])", "```"]
    return "\n".join(lines) + "\n"


def _masked_lm_card(model_dir: Path, cfg, config: dict) -> str:
    """`kdnlp pretrain`'s output: a masked LM to start a teacher from, not a classifier."""
    state = _read_json(model_dir / "train_state.json")
    front = {"library_name": "kdnlp", "tags": ["kdnlp", "fill-mask", "masked-lm"], "pipeline_tag": "fill-mask"}
    if cfg.teacher.pretrained:
        front["base_model"] = cfg.teacher.pretrained
    best = state.get("best_dev")
    lines = ["---", yaml.safe_dump(front, sort_keys=False, allow_unicode=True).rstrip(), "---", "",
             f"# {model_dir.name} (masked LM, kdnlp pretrain)", "",
             f"A {config.get('model_type', 'BERT')} masked language model ({config.get('num_hidden_layers', '?')} layers, "
             f"hidden {config.get('hidden_size', '?')}) pretrained by `kdnlp pretrain` "
             + (f"from {cfg.teacher.pretrained}" if cfg.teacher.pretrained else "from random weights")
             + (f"; held-out masked-token accuracy {best:.4f}." if isinstance(best, (int, float)) and best >= 0 else "."),
             "It is a starting point, not a classifier: set `teacher.pretrained` to this folder and train the teacher "
             "(its masked-LM head is dropped, a classifier head is added).", "",
             "```bash", f"kdnlp train-teacher --config {cfg.source} --set teacher.pretrained={model_dir}", "```"]
    return "\n".join(lines) + "\n"


def write_card(model_dir: Path, cfg) -> None:
    write_text(Path(model_dir) / "README.md", model_card(model_dir, cfg))
