"""What `kdnlp frontier` writes from its measured rows: the Pareto set, the recommendation, frontier.md / .png.

Kept apart from kdnlp/frontier.py (which trains and measures) so that the choice is a pure function of numbers
(tests/test_frontier.py checks it on given rows) and so that benchmarks/peers.py can add its rows (peers.json in the
same folder) and rewrite the report without training or measuring anything: `write_report(out)`.
"""
from __future__ import annotations

import json
from pathlib import Path

from .fileio import atomic_path, write_text

RESULTS = "frontier.json"
PEERS = "peers.json"  # written by benchmarks/peers.py: fastText, model2vec on the same split


def pareto(rows: list[dict]) -> list[str]:
    """Names of the rows no other row beats on both test metric and examples/s (ties kept), fastest first."""
    def dominated(r):
        return any(o["examples_per_second"] >= r["examples_per_second"] and o["test_metric"] >= r["test_metric"]
                   and (o["examples_per_second"] > r["examples_per_second"] or o["test_metric"] > r["test_metric"])
                   for o in rows)
    return [r["name"] for r in sorted(rows, key=lambda r: -r["examples_per_second"]) if not dominated(r)]


def recommend(students: list[dict], teacher_dev: float, retain: float) -> dict | None:
    """The fastest student whose DEV score is at least retain x the teacher's dev score, or None.

    Dev, never test: test is what the choice is reported on."""
    keep = [s for s in students if s["dev_metric"] >= retain * teacher_dev]
    return max(keep, key=lambda s: s["examples_per_second"]) if keep else None


def _mb(n) -> str:
    return "–" if n is None else f"{n / 2**20:.1f} MB"


def markdown(result: dict, peers: dict | None) -> str:
    metric, teacher = result["metric"], result["teacher"]
    rows = [teacher] + result["students"]
    front = set(result["pareto"])
    lines = [f"| model | what | params | size fp32 | ONNX int8 | dev {metric} | test {metric} | test vs teacher "
             f"| ex/s (batch {result['batch_size']}) | p50 ms (batch 1) | Pareto |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|:-:|"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['what']} | {r['params'] / 1e6:.2f}M | {_mb(r['size_bytes'])} "
                     f"| {_mb(r.get('onnx_int8_bytes'))} | {r['dev_metric']:.4f} | {r['test_metric']:.4f} "
                     f"| {100 * r['test_metric'] / teacher['test_metric']:.1f}% | {r['examples_per_second']:,.0f} "
                     f"| {r['latency_ms_p50']:.2f} | {'•' if r['name'] in front else ''} |")
    rec, retain = result["recommendation"], result["retain"]
    need = retain * teacher["dev_metric"]
    if rec:
        lines.append(f"\n**Recommendation: `{rec}`**, the fastest student whose dev {metric} keeps at least "
                     f"{retain:g} of the teacher's ({teacher['dev_metric']:.4f} x {retain:g} = {need:.4f}).")
    else:
        best = max(result["students"], key=lambda s: s["dev_metric"], default=None)
        lines.append(f"\n**No student keeps {retain:g} of the teacher's dev {metric}** ({need:.4f} needed"
                     + (f"; the best is {best['name']} at {best['dev_metric']:.4f})." if best else ")."))
    lines.append(f"\nSpeed: text in -> label out through `kdnlp.load(dir).predict`, {result['examples']} test texts in "
                 f"batches of {result['batch_size']} and p50 over {result['runs']} single texts; {result['threads']} "
                 f"torch thread(s), {result['device']}; load average {result['load_average'][0]:.2f} at the start of "
                 f"the measurements. Test metric on the {result['test_rows']} test rows; dev ({result['dev_rows']} "
                 f"rows) chooses. Pareto: no other kdnlp model is both faster and better on test.")
    for note in result.get("notes", []):
        lines.append(f"\n{note}")
    if peers and peers.get("systems"):
        lines.append(f"\n### Peers on the same split ({PEERS}, benchmarks/peers.py)\n\n"
                     f"| system | test {metric} | ex/s (batch {peers['batch_size']}) | p50 ms (batch 1) |\n|---|---:|---:|---:|")
        for name, s in peers["systems"].items():
            acc = "" if s.get("test_metric") is None else f"{s['test_metric']:.4f}"
            lines.append(f"| {name} | {acc} | {s['examples_per_second']:,.0f} | {s['latency_ms_p50']:.3f} |")
        lines.append(f"\n{peers.get('note', '')}".rstrip())
    return "\n".join(lines)


def plot(result: dict, peers: dict | None, path: Path) -> str | None:
    """frontier.png: test metric against examples/s (log x), the Pareto points joined, the teacher a star, the
    peers grey crosses. Returns a one-line reason when skipped (no matplotlib)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "frontier.png skipped: matplotlib is not installed (pip install 'kdnlp[bench]')"
    rows = [result["teacher"]] + result["students"]
    by_name = {r["name"]: r for r in rows}
    fig, ax = plt.subplots(figsize=(7, 4.5))
    front = [by_name[n] for n in result["pareto"]]
    ax.plot([r["examples_per_second"] for r in front], [r["test_metric"] for r in front], "-", color="tab:blue",
            alpha=0.5, label="Pareto front")
    for r in rows:
        teacher = r is result["teacher"]
        ax.scatter(r["examples_per_second"], r["test_metric"], marker="*" if teacher else "o", s=160 if teacher else 40,
                   color="tab:red" if teacher else ("tab:green" if r["name"] == result["recommendation"] else "tab:blue"),
                   zorder=3)
        ax.annotate(r["name"] + (" (teacher)" if teacher and r["name"] != "teacher" else ""), (r["examples_per_second"], r["test_metric"]),
                    textcoords="offset points", xytext=(4, 4), fontsize=7)
    for name, s in ((peers or {}).get("systems") or {}).items():
        if s.get("test_metric") is not None and s.get("peer"):
            ax.scatter(s["examples_per_second"], s["test_metric"], marker="x", color="grey", zorder=3)
            ax.annotate(name, (s["examples_per_second"], s["test_metric"]), textcoords="offset points",
                        xytext=(4, -10), fontsize=7, color="grey")
    ax.set_xscale("log")
    ax.margins(x=0.12)  # room for the labels of the fastest and slowest points
    ax.set_xlabel(f"examples/s, text in -> label out, batch {result['batch_size']} (log scale)")
    ax.set_ylabel(f"test {result['metric']}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower left", fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return None


def write_report(out: Path) -> Path:
    """(Re)write <out>/frontier.md and frontier.png from frontier.json and, when present, peers.json."""
    out = Path(out)
    result = json.loads((out / RESULTS).read_text(encoding="utf-8"))
    peers_path = out / PEERS
    peers = json.loads(peers_path.read_text(encoding="utf-8")) if peers_path.is_file() else None
    skipped = plot(result, peers, out / "frontier.png")
    if skipped:
        print(f"frontier: {skipped}")
    write_text(out / "frontier.md", markdown(result, peers) + "\n")
    return out / "frontier.md"
