"""benchmarks/gpu.sh's driver: kdnlp vs the Hugging Face Trainer on the same work, one epoch each, in one run.

Rows (issue 16's table): the MiniLM-L6 teacher on SST-2 (configs/sst2.yaml's dev evaluation every 300 steps
included on our side, and without it), the BERT-base-shaped random teacher on TNEWS-5 (L <= 64, with achieved model
FLOP/s = 6 x parameters x real train tokens / epoch seconds vs the card's dense bf16 peak), the teacher's logit-cache
pass vs `kdnlp bench`'s batch-64 throughput of the same model, the BiLSTM student's epoch, and wall time vs epoch
time. Every kdnlp command runs in its own process, as a user runs it; accuracy is on each config's test split.

    python benchmarks/gpu_bench.py --payload gpu_payload --work saved_dict/gpu_bench --results DIR [--tiny]

--tiny: the same commands with tiny random models and a few hundred rows, on the CPU (checks the script works).
Writes DIR/gpu_bench.json (everything) and DIR/gpu_bench.md (the table)."""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Dense bf16 tensor-core peaks (no sparsity), TFLOP/s, from the vendors' data sheets; the first match wins.
BF16_PEAK_TFLOPS = [("H200", 989), ("H100 PCIe", 756), ("H100", 989), ("A100", 312), ("L40S", 362), ("L4", 121),
                    ("A10", 125), ("RTX 4090", 165), ("RTX 3090", 71)]
TINY_BERT = "{hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 2, intermediate_size: 64, max_position_embeddings: 128}"


def run(cmd: list[str], log_name: str, work: Path) -> tuple[float, str]:
    """Run a command (PYTHONPATH = the repo), echo and keep its output; (wall seconds, output)."""
    print(f"\n$ {' '.join(cmd)}", flush=True)
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "PYTHONUNBUFFERED": "1"}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seconds = time.perf_counter() - t0
    print(proc.stdout[-6000:], flush=True)
    (work / f"{log_name}.log").write_text(proc.stdout, encoding="utf-8")
    if proc.returncode != 0:
        raise SystemExit(f"{log_name}: exit {proc.returncode} (see {work / log_name}.log)")
    return seconds, proc.stdout


def epoch(out: Path, name: str) -> dict:
    log = json.loads((out / name / "train_log.json").read_text(encoding="utf-8"))
    e = [h for h in log["history"] if "epoch_seconds" in h][0]
    return {"epoch_seconds": e["epoch_seconds"], "train_loss": round(e["train_loss"], 4)}


def report(out: Path, name: str) -> dict:
    r = json.loads((out / name / "report.json").read_text(encoding="utf-8"))
    return {"test_accuracy": round(r["accuracy"], 4), "n_params": r["n_params"]}


def first_step(output: str) -> float | None:
    m = re.search(r"time to first step ([\d.]+)s", output)
    return float(m.group(1)) if m else None


def gpu_peak() -> tuple[str, float | None]:
    import torch
    if not torch.cuda.is_available():
        return "cpu", None
    name = torch.cuda.get_device_name()
    return name, next((p * 1e12 for key, p in BF16_PEAK_TFLOPS if key in name), None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--payload", default="gpu_payload")
    ap.add_argument("--work", default="saved_dict/gpu_bench")
    ap.add_argument("--results", default="saved_dict/gpu_bench/results")
    ap.add_argument("--tiny", action="store_true")
    args = ap.parse_args()
    P, work, results = Path(args.payload).resolve(), Path(args.work).resolve(), Path(args.results).resolve()
    work.mkdir(parents=True, exist_ok=True)
    results.mkdir(parents=True, exist_ok=True)
    py = [sys.executable]
    kdnlp = py + ["-m", "kdnlp"]
    sets = lambda pairs: [a for p in pairs for a in ("--set", p)]  # noqa: E731

    sst2 = [f"data.train={P}/sst2/train.tsv", f"data.test={P}/sst2/dev.tsv", "data.max_train_examples=null",
            f"teacher.pretrained={P}/minilm"]
    tnews = [f"data.train={P}/tnews5/train.json", f"data.test={P}/tnews5/test.json", f"data.labels={P}/tnews5/classes.txt",
             f"teacher.vocab={P}/bert-base-chinese-vocab.txt", "data.max_length=64", "train.device=auto",
             "train.threads=null", "teacher.epochs=1"]
    student = []
    if args.tiny:  # tiny random models, a few hundred rows, the CPU
        sst2 += ["data.max_train_examples=400", "teacher.pretrained=null", f"teacher.vocab={P}/minilm/vocab.txt",
                 f"teacher.config={TINY_BERT}", "train.eval_every=5", "train.device=cpu"]
        tnews += ["data.max_train_examples=400", f"teacher.config={TINY_BERT}", "train.device=cpu"]
        student = ["student.embedding_dim=16", "student.hidden_size=16", "student.mlp_size=16"]
    S = sets(sst2)
    out_a, out_b, out_t = work / "sst2", work / "sst2_no_eval", work / "tnews5"
    rows: dict = {}
    device, peak = gpu_peak()

    # 1. MiniLM teacher on SST-2, configs/sst2.yaml as shipped (dev every 300 steps), one epoch
    wall, log = run(kdnlp + ["train-teacher", "--config", "configs/sst2.yaml", "--output-dir", str(out_a), "--epochs", "1", *S],
                    "kdnlp_sst2_teacher", work)
    rows["sst2_teacher"] = {**epoch(out_a, "teacher"), **report(out_a, "teacher"), "wall_seconds": round(wall, 1),
                            "time_to_first_step": first_step(log)}
    # 1b. the same without evaluation during the epoch (the HF Trainer's default)
    wall, log = run(kdnlp + ["train-teacher", "--config", "configs/sst2.yaml", "--output-dir", str(out_b), "--epochs", "1",
                             *S, "--set", "train.eval_every=null"], "kdnlp_sst2_teacher_no_eval", work)
    rows["sst2_teacher_no_eval"] = {**epoch(out_b, "teacher"), **report(out_b, "teacher"), "wall_seconds": round(wall, 1),
                                    "time_to_first_step": first_step(log)}
    run(py + ["benchmarks/hf_trainer_baseline.py", "--config", "configs/sst2.yaml", *S, "--json", str(work / "hf_sst2.json")],
        "hf_sst2_teacher", work)
    rows["sst2_teacher_hf"] = json.loads((work / "hf_sst2.json").read_text())
    n = rows["sst2_teacher_hf"]["train_rows"]
    for k in ("sst2_teacher", "sst2_teacher_no_eval"):
        rows[k]["examples_per_second"] = round(n / rows[k]["epoch_seconds"], 1)
        rows[k]["vs_hf"] = round(rows[k]["examples_per_second"] / rows["sst2_teacher_hf"]["examples_per_second"], 2)

    # 2. BERT-base-shaped random teacher on TNEWS-5 titles, L <= 64
    T = ["--config", "configs/tnews5_speed.yaml", *sets(tnews)]
    wall, log = run(kdnlp + ["train-teacher", *T, "--output-dir", str(out_t)], "kdnlp_tnews5_teacher", work)
    rows["tnews5_teacher"] = {**epoch(out_t, "teacher"), **report(out_t, "teacher"), "wall_seconds": round(wall, 1),
                              "time_to_first_step": first_step(log)}
    run(py + ["benchmarks/hf_trainer_baseline.py", *T, "--json", str(work / "hf_tnews5.json")], "hf_tnews5_teacher", work)
    hf = rows["tnews5_teacher_hf"] = json.loads((work / "hf_tnews5.json").read_text())
    ours = rows["tnews5_teacher"]
    ours["examples_per_second"] = round(hf["train_rows"] / ours["epoch_seconds"], 1)
    ours["vs_hf"] = round(ours["examples_per_second"] / hf["examples_per_second"], 2)
    for r, seconds in ((ours, ours["epoch_seconds"]), (hf, hf["train_seconds"])):  # 6 x params x real tokens
        r["model_tflops"] = round(6 * hf["n_params"] * hf["train_tokens"] / seconds / 1e12, 2)
        r["fraction_of_bf16_peak"] = round(r["model_tflops"] * 1e12 / peak, 4) if peak else None

    # 3+4. BiLSTM student on SST-2 (its run computes the teacher's logit cache over all train rows), and
    # `kdnlp bench`'s batch-64 throughput of the same teacher
    B = ["--config", "configs/sst2_bilstm.yaml", "--output-dir", str(out_a), "--epochs", "1", *S, *sets(student)]
    wall, log = run(kdnlp + ["train-student", *B], "kdnlp_sst2_bilstm", work)
    cache = json.loads((out_a / "logits" / "train.json").read_text()) if (out_a / "logits" / "train.json").is_file() else {}
    m = re.search(r"logit cache: (\d+) rows in ([\d.]+)s \((\d+) examples/s\)", log)
    rows["cache_pass"] = {"rows": int(m.group(1)), "seconds": float(m.group(2)), "examples_per_second": float(m.group(3))} if m else cache
    rows["bilstm_student"] = {**epoch(out_a, "bilstm"), **report(out_a, "bilstm"), "wall_seconds": round(wall, 1)}
    rows["bilstm_student"]["examples_per_second"] = round(n / rows["bilstm_student"]["epoch_seconds"], 1)
    run(kdnlp + ["bench", "--config", "configs/sst2.yaml", "--output-dir", str(out_a), *S, "--models", "teacher",
                 "--runs", "20", "--results", "bench_teacher"], "kdnlp_bench_teacher", work)
    bench = json.loads((out_a / "bench_teacher.json").read_text())
    teacher_row = next(r for r in bench["rows"] if r["model"] == "teacher")
    rows["bench_teacher_batch64"] = {"examples_per_second": teacher_row["throughput_examples_per_second"]}
    rows["cache_pass"]["vs_bench"] = round(rows["cache_pass"]["examples_per_second"] / teacher_row["throughput_examples_per_second"], 2)

    import torch
    import transformers
    summary = {"device": device, "bf16_peak_tflops": peak / 1e12 if peak else None, "tiny": args.tiny,
               "torch": torch.__version__, "transformers": transformers.__version__, "rows": rows}
    (results / "gpu_bench.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    (results / "gpu_bench.md").write_text(markdown(summary), encoding="utf-8")
    print("\n" + markdown(summary))


def markdown(s: dict) -> str:
    r = s["rows"]
    a, b, hf, t, thf = r["sst2_teacher"], r["sst2_teacher_no_eval"], r["sst2_teacher_hf"], r["tnews5_teacher"], r["tnews5_teacher_hf"]
    c, bl = r["cache_pass"], r["bilstm_student"]
    lines = [f"Device: {s['device']} (torch {s['torch']}, transformers {s['transformers']}){' — TINY models, CPU check only' if s['tiny'] else ''}",
             "",
             "| work (same data, same model, one epoch) | kdnlp | HF `Trainer` (dynamic padding, bf16 on CUDA, defaults) |",
             "|---|---:|---:|",
             f"| MiniLM-L6 teacher, SST-2 {hf['train_rows']:,} rows, configs/sst2.yaml (dev every 300 steps) | "
             f"{a['epoch_seconds']:.1f} s ({a['examples_per_second']:,.0f} ex/s) = **{a['vs_hf']:.2f}x**, acc {a['test_accuracy']:.4f} | "
             f"{hf['train_seconds']:.1f} s ({hf['examples_per_second']:,.0f} ex/s, no eval), acc {hf['test_accuracy']:.4f} |",
             f"| same, `train.eval_every: null` | {b['epoch_seconds']:.1f} s ({b['examples_per_second']:,.0f} ex/s) = "
             f"**{b['vs_hf']:.2f}x**, acc {b['test_accuracy']:.4f} | |",
             f"| BERT-base-shaped teacher (random), TNEWS-5 {thf['train_rows']:,} titles, L <= 64 | {t['epoch_seconds']:.1f} s "
             f"({t['examples_per_second']:,.0f} ex/s) = **{t['vs_hf']:.2f}x**; {t['model_tflops']} TFLOP/s"
             f"{'' if t['fraction_of_bf16_peak'] is None else ' = %.1f%% of bf16 peak' % (100 * t['fraction_of_bf16_peak'])} | "
             f"{thf['train_seconds']:.1f} s ({thf['examples_per_second']:,.0f} ex/s); {thf['model_tflops']} TFLOP/s"
             f"{'' if thf['fraction_of_bf16_peak'] is None else ' = %.1f%%' % (100 * thf['fraction_of_bf16_peak'])} |",
             f"| teacher logit cache pass, MiniLM, {c.get('rows', 0):,} rows | {c['examples_per_second']:,.0f} ex/s = "
             f"**{c['vs_bench']:.2f}x** `kdnlp bench` (batch 64, fp32): {r['bench_teacher_batch64']['examples_per_second']:,.0f} ex/s | — |",
             f"| BiLSTM student epoch, {hf['train_rows']:,} rows, batch 64 | {bl['epoch_seconds']:.1f} s "
             f"({bl['examples_per_second']:,.0f} ex/s), acc {bl['test_accuracy']:.4f} | — |",
             f"| `kdnlp train-teacher` wall time vs its epoch (no eval run) | {b['wall_seconds']:.1f} s for a "
             f"{b['epoch_seconds']:.1f} s epoch; time to first step {b['time_to_first_step']} s | — |"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
