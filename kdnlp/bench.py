"""`kdnlp bench`: how much smaller and faster each model is, and what it costs in accuracy, on this machine.

For each model (and each of its exported files, see export.py): parameters, size on disk, latency at batch 1
(p50/p90 over `runs` real test examples after warm-up), throughput at batch 64 (examples/s over `examples` test
rows, length-sorted dynamic padding as in Trainer.predict_logits), peak memory, speedups vs the teacher, and the
test metric from report.json (PyTorch) or export.json (exported files).

Each measurement runs in its own fresh process: peak memory then belongs to one model, and one model's caches
and allocator state do not flatter the next. Results: <output_dir>/bench.json, bench.md, bench.png.
"""
from __future__ import annotations

import json
import multiprocessing
import os
import platform
import resource
import time
from pathlib import Path

import numpy as np
import torch

from .card import write_card
from .data import model_inputs, token_budget_batches
from .pairs import input_kind
from .errors import UserError
from .export import ExportedModel, export_records, exported_files, flat_logits, is_trained, require_onnxruntime
from .fileio import write_json, write_text
from .modeldir import load_model_dir, save_model_dir

WARMUP = 5


def machine_info() -> dict:
    import transformers
    info = {"platform": platform.platform(), "machine": platform.machine(), "processor": platform.processor(),
            "cpu_count": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "load_average": list(os.getloadavg())}
    try:
        import onnxruntime
        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    if torch.cuda.is_available():
        info["cuda_device"] = torch.cuda.get_device_name()
    return info


def text_batches(texts: list, size: int = 64) -> list[list]:
    return [texts[i:i + size] for i in range(0, len(texts), size)]


def text_throughput(predict, texts: list, batch_size: int = 64) -> float:
    """examples/s of predict(batch), text in -> label out, over `texts` in batches of `batch_size` (after one
    warm-up batch). What `kdnlp frontier` and benchmarks/peers.py time any system with, kdnlp's or not."""
    parts = text_batches(texts, batch_size)
    predict(parts[0])
    t0 = time.perf_counter()
    for b in parts:
        predict(b)
    return len(texts) / (time.perf_counter() - t0)


def text_latency_p50_ms(predict, texts: list, n: int = 200) -> float:
    """p50 milliseconds of predict([one text]) over n texts (cycling through `texts`), after WARMUP calls."""
    cycle = (texts * (n // len(texts) + 1 + WARMUP))[:n + WARMUP]
    times = []
    for k, t in enumerate(cycle):
        t0 = time.perf_counter()
        predict([t])
        if k >= WARMUP:
            times.append(time.perf_counter() - t0)
    return float(np.percentile(times, 50)) * 1000


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _measure(job: dict) -> dict:
    """Runs in a fresh process: load one model (or exported file), time it, report its peak memory."""
    from .trainer import Trainer
    torch.set_num_threads(job["threads"])
    if job["file"] and job["file"].endswith(".onnx"):
        require_onnxruntime()  # imported before the baseline, like torch
    trainer = Trainer(job["cfg"])
    device = trainer.device
    baseline = _rss_mb()
    model, tokenizer, _ = load_model_dir(Path(job["model_dir"]), job["cfg"].task)
    if job["file"]:
        model = ExportedModel(Path(job["file"]), model.config, job["threads"])
    else:
        model.to(device).eval()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
    data = trainer.task.encode(job["examples"], tokenizer, job["cfg"].data.max_length, input_kind(model))

    singles = [data.collate(np.array([i])) for i in range(min(job["runs"], len(data)))]
    times = []
    with torch.inference_mode():
        for k in range(WARMUP + job["runs"]):
            batch = singles[k % len(singles)]
            t0 = time.perf_counter()
            model(**model_inputs(model, batch, device)).logits.cpu()
            if k >= WARMUP:
                times.append(time.perf_counter() - t0)
    bs = job["batch_size"]
    for _ in range(2):  # the first pass is warm-up: every batch shape seen once (TorchScript profiles them)
        t0 = time.perf_counter()
        trainer.predict_logits(model, data, bs, device=device, fixed_padding=job["fixed_padding"])
    seconds = time.perf_counter() - t0
    peak = _rss_mb()
    out = {"latency_ms_p50": round(float(np.percentile(times, 50)) * 1000, 3),
           "latency_ms_p90": round(float(np.percentile(times, 90)) * 1000, 3),
           "throughput_examples_per_second": round(len(data) / seconds, 1),
           "peak_rss_mb": round(peak, 1), "model_rss_mb": round(peak - baseline, 1)}
    if device.type == "cuda" and not job["file"]:
        out["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


def _run_isolated(job: dict) -> dict:
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_measure, (job,))


def _runtime(file: Path | None) -> str:
    if file is None:
        return "pytorch fp32"
    return f"{'onnxruntime' if file.suffix == '.onnx' else 'torchscript'} {'int8' if '.int8.' in file.name else 'fp32'}"


def _test_metric(model_dir: Path, file: Path | None) -> tuple[float | None, int | None]:
    """(metric, test rows it was measured on) from report.json (PyTorch) or export.json (an exported file).

    None for untrained models and for models never evaluated."""
    if not is_trained(model_dir):
        return None, None
    if file is not None:
        record = export_records(model_dir).get(file.name, {})
        return record.get("test_metric_exported"), record.get("n_test")
    report = model_dir / "report.json"
    if not report.is_file():
        return None, None
    r = json.loads(report.read_text(encoding="utf-8"))
    return r.get("accuracy", r.get("f1")), r.get("n_examples")


def cache_pass(trainer, n_examples: int) -> dict:
    """Teacher logits over the first n train examples: length-sorted dynamic padding vs padding to max_length."""
    model, tokenizer, _ = load_model_dir(trainer.out / "teacher", trainer.cfg.task)
    model.to(trainer.device)
    examples = trainer.splits.train[:n_examples]
    data = trainer.task.encode(examples, tokenizer, trainer.cfg.data.max_length)
    bs = trainer.cfg.teacher.batch_size * 2  # the batch size cache_teacher_logits uses
    trainer.predict_logits(model, trainer.task.encode(examples[:bs], tokenizer, trainer.cfg.data.max_length), bs)
    result = {"examples": len(data), "batch_size": bs, "max_length": trainer.cfg.data.max_length,
              "mean_tokens": round(float(data.lengths.mean()), 1)}
    logits = {}
    for mode, fixed in (("sorted_dynamic", False), ("fixed", True)):
        t0 = time.perf_counter()
        logits[mode] = trainer.predict_logits(model, data, bs, desc=f"cache pass ({mode})", fixed_padding=fixed)
        result[f"{mode}_examples_per_second"] = round(len(data) / (time.perf_counter() - t0), 1)
    sorted_lengths = np.sort(data.lengths)[::-1]  # the batches eval_batches makes: longest first, by token budget
    result["eval_tokens"] = trainer.eval_tokens(bs)
    batches = (token_budget_batches(sorted_lengths, result["eval_tokens"]) if result["eval_tokens"]
               else [np.arange(s, min(s + bs, len(sorted_lengths))) for s in range(0, len(sorted_lengths), bs)])
    result["sorted_dynamic_padded_tokens"] = int(sum(sorted_lengths[b[0]] * len(b) for b in batches))
    result["fixed_padded_tokens"] = len(data) * trainer.cfg.data.max_length
    result["speedup"] = round(result["sorted_dynamic_examples_per_second"] / result["fixed_examples_per_second"], 2)
    result["max_abs_logit_diff"] = float(np.abs(flat_logits(logits["sorted_dynamic"]) - flat_logits(logits["fixed"])).max())  # padding must not change the logits
    return result


def bench(trainer, models: list[str], runs: int = 50, examples: int = 1024, batch_size: int = 64,
          fixed_padding: bool = False, cache_examples: int = 0, results: str = "bench",
          speeds: tuple[float, ...] = (0.0, 0.1, 0.3, 0.5)) -> dict:
    cfg = trainer.cfg
    if runs < 1 or examples < 1 or batch_size < 1 or not models:
        raise UserError("bench: --models needs a model, and --runs, --examples, --batch-size must be >= 1")
    threads = torch.get_num_threads()
    test = trainer.splits.test[:examples]
    load_start = list(os.getloadavg())
    rows = []
    for name in models:
        mdir = trainer.out / name
        if not (mdir / "config.json").is_file():
            raise UserError(f"{mdir}: no trained model here (train it, or use --init-untrained for speed only)")
        model, _, _ = load_model_dir(mdir, cfg.task)
        n_params = model.num_parameters()
        weights = next(p for p in (mdir / "model.safetensors", mdir / "pytorch_model.bin") if p.is_file())
        del model
        # exported files run on onnxruntime / TorchScript on the CPU: compare them with CPU PyTorch only
        files = [None] + (exported_files(mdir) if trainer.device.type == "cpu" else [])
        for file in files:
            runtime = _runtime(file)
            print(f"bench: {name} ({runtime}) ...", flush=True)
            job = {"cfg": cfg, "model_dir": str(mdir), "file": str(file) if file else None, "threads": threads,
                   "examples": test, "runs": runs, "batch_size": batch_size, "fixed_padding": fixed_padding}
            row = {"model": name, "runtime": runtime, "file": str(file or weights), "params": n_params,
                   "size_bytes": (file or weights).stat().st_size, **_run_isolated(job)}
            row["trained"] = is_trained(mdir)
            row["test_metric"], row["test_metric_rows"] = _test_metric(mdir, file)
            rows.append(row)
            result = summarize(trainer, rows, runs, len(test), batch_size, fixed_padding, load_start)
            write_json(trainer.out / f"{results}.json", {**result, "complete": False})  # an interrupted run keeps its rows
    sweeps = fastbert_sweeps(trainer, models, speeds, batch_size)
    if sweeps:
        result["fastbert_speeds"] = sweeps
    if cache_examples:
        print(f"bench: teacher cache pass over {cache_examples} train examples ...", flush=True)
        result["cache_pass"] = cache_pass(trainer, cache_examples)
    write_json(trainer.out / f"{results}.json", {**result, "complete": True})
    text = markdown(result)
    write_text(trainer.out / f"{results}.md", text + "\n")
    print("\n" + text + "\n")
    plot(rows, trainer.task.metric, trainer.out / f"{results}.png")
    from .card import model_card
    for name in {r["model"] for r in rows if (trainer.out / r["model"] / "report.json").is_file()}:  # cards quote speed
        write_text(trainer.out / name / "README.md", model_card(trainer.out / name, cfg, bench_json=trainer.out / f"{results}.json"))
    print(f"bench: wrote {trainer.out / f'{results}.json'} and {trainer.out / f'{results}.md'}")
    return result


def fastbert_sweeps(trainer, models: list[str], speeds, batch_size: int) -> dict:
    """For each FastBERT model: accuracy, examples/s and mean layers on the whole test split at each exit speed
    (its bench row above is at the speed it was saved with)."""
    from .students.fastbert import sweep
    sweeps = {}
    for name in models:
        measured = sweep(trainer, name, list(speeds), "test", batch_size)
        if measured is not None:
            sweeps[name] = {"layers": measured[1], "rows": measured[0]}
    return sweeps


def summarize(trainer, rows: list[dict], runs: int, n_examples: int, batch_size: int, fixed_padding: bool,
              load_start: list[float]) -> dict:
    """bench.json's content for the rows measured so far; speedups relative to the teacher's PyTorch row."""
    base = next((r for r in rows if r["model"] == "teacher" and r["runtime"] == "pytorch fp32"), rows[0])
    for r in rows:
        r["speedup_throughput"] = round(r["throughput_examples_per_second"] / base["throughput_examples_per_second"], 2)
        r["speedup_latency_p50"] = round(base["latency_ms_p50"] / r["latency_ms_p50"], 2)
    return {"config": trainer.cfg.source, "device": str(trainer.device), "threads": torch.get_num_threads(),
            "settings": {"test_rows": len(trainer.splits.test), "latency_runs": runs, "warmup_runs": WARMUP,
                         "throughput_examples": n_examples, "batch_size": batch_size,
                         "max_length": trainer.cfg.data.max_length,
                         "padding": "fixed" if fixed_padding else "sorted dynamic", "test_metric": trainer.task.metric,
                         "speedups_relative_to": f"{base['model']} ({base['runtime']})"},
            "machine": {**machine_info(), "load_average_at_start": load_start},
            "rows": rows}


def markdown(result: dict) -> str:
    metric = result["settings"]["test_metric"]
    lines = [f"| model | runtime | params | size | latency p50 / p90 (batch 1) | examples/s (batch {result['settings']['batch_size']}) "
             f"| peak RSS (model) | speedup batch {result['settings']['batch_size']} | speedup batch 1 | test {metric} |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in result["rows"]:
        m = ("–" if r["trained"] else "untrained") if r["test_metric"] is None else f"{r['test_metric']:.4f}"
        if r["test_metric"] is not None and r["test_metric_rows"] != result["settings"]["test_rows"]:
            m += f" (first {r['test_metric_rows']} rows)"  # an export checked with --examples
        lines.append(f"| {r['model']} | {r['runtime']} | {r['params'] / 1e6:.1f}M | {r['size_bytes'] / 2**20:.1f} MB "
                     f"| {r['latency_ms_p50']:.2f} / {r['latency_ms_p90']:.2f} ms | {r['throughput_examples_per_second']:,.0f} "
                     f"| {r['peak_rss_mb']:,.0f} MB ({r['model_rss_mb']:,.0f}) | {r['speedup_throughput']:.1f}x "
                     f"| {r['speedup_latency_p50']:.1f}x | {m} |")
    m = result["machine"]
    lines.append(f"\n{result['device']}, {result['threads']} threads, {m['processor'] or m['machine']}, torch {m['torch']}"
                 + (f", onnxruntime {m['onnxruntime']}" if "onnxruntime" in m else "")
                 + f"; load average {m['load_average_at_start'][0]:.2f} at start, {m['load_average'][0]:.2f} at end. "
                 f"Speedups vs {result['settings']['speedups_relative_to']}.")
    from .students.fastbert import speeds_table
    for name, sweep in result.get("fastbert_speeds", {}).items():
        lines.append(f"\n{name}: early exit per speed on the whole test split, "
                     f"batch {result['settings']['batch_size']}:\n\n{speeds_table(sweep['rows'], sweep['layers'])}\n")
    if "cache_pass" in result:
        c = result["cache_pass"]
        budget = f", sorted batches up to {c['eval_tokens']:,} tokens" if c.get("eval_tokens") else ""
        lines.append(f"Teacher cache pass over {c['examples']} train examples (batch {c['batch_size']}{budget}, max_length "
                     f"{c['max_length']}, mean {c['mean_tokens']} tokens): sorted dynamic padding "
                     f"{c['sorted_dynamic_examples_per_second']:,.0f} examples/s vs fixed padding "
                     f"{c['fixed_examples_per_second']:,.0f} examples/s = {c['speedup']:.2f}x "
                     f"({c['fixed_padded_tokens'] / c['sorted_dynamic_padded_tokens']:.2f}x fewer padded tokens).")
    return "\n".join(lines)


def plot(rows: list[dict], metric: str, path: Path) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("bench: bench.png skipped (pip install 'kdnlp[bench]' for matplotlib)")
        return
    points = [r for r in rows if r["test_metric"] is not None]
    if not points:
        print("bench: bench.png skipped (no model has a test metric: untrained models measure speed only)")
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    for r in points:
        ax.scatter(r["throughput_examples_per_second"], r["test_metric"])
        ax.annotate(f"{r['model']} ({r['runtime']})", (r["throughput_examples_per_second"], r["test_metric"]),
                    textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("examples/s at batch 64 (log scale)")
    ax.set_ylabel(f"test {metric}")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    from .fileio import atomic_path
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    print(f"bench: wrote {path}")


def init_untrained(trainer) -> None:
    """Save an untrained teacher and the configured student where they do not exist yet (speed only)."""
    labels = trainer.splits.labels
    for name, build in (("teacher", trainer.build_teacher), (trainer.cfg.student.name, trainer.build_student)):
        path = trainer.out / name
        if (path / "config.json").is_file():
            print(f"init-untrained: {path} exists, kept")
            continue
        model, tokenizer = build()
        save_model_dir(model, tokenizer, labels, path, {"untrained": True})
        write_card(path, trainer.cfg)  # says it is untrained
        print(f"init-untrained: {name} ({model.num_parameters() / 1e6:.1f}M parameters, untrained) -> {path}")
