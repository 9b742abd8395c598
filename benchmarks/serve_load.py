"""Load generator for `kdnlp serve` (benchmarks/serve.sh): an asyncio HTTP/1.1 client on the loopback address.

For each concurrency level, that many client coroutines send one text per POST /predict, back to back, for
--seconds (or until --max-requests, whichever comes first: every loop is bounded), after a short warm-up. Reports
requests/s, latency p50/p95/p99, errors (any non-200 answer or transport error) and the server's RSS (current and
peak, from /proc/<pid>/status). Output: one JSON object per level on stdout, and all of them in --out.

Why not httpx.AsyncClient: on this 2-core machine it spent ~3 ms of CPU per request (measured: 181 requests/s at
concurrency 1, 74 at 32, against 583 and 1,506 for this client on the same server), i.e. it measured itself. This
client writes the request bytes and reads the status line, Content-Length and body over keep-alive connections;
the server is the same uvicorn either way. The tests (tests/test_serve.py) use httpx.

    python benchmarks/serve_load.py --url http://127.0.0.1:8000 --texts data/sst2/dev.tsv --pid 1234 \\
        --concurrency 1,8,32,128 --seconds 10 --out serve_load.json
"""
from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from urllib.parse import urlparse

import numpy as np


def read_texts(path: Path) -> list[str]:
    """The first column of a TSV with a header (SST-2's `sentence`), or one text per line of a .txt."""
    lines = [x for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
    return [x.split("\t")[0] for x in lines[1:]] if path.suffix == ".tsv" else lines


def rss_mb(pid: int | None) -> dict:
    """The server's memory: the process and its descendants (kdnlp serve --workers N: a parent and N workers, and
    multiprocessing's resource tracker), from /proc: RSS now, the sum of each one's peak RSS, and PSS now (which
    counts a page shared by k processes as 1/k in each: what they cost together)."""
    if not pid:
        return {}
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue  # a process that ended meanwhile
    family, grew = {pid}, True
    while grew:
        grew = False
        for child, parent in parents.items():
            if parent in family and child not in family:
                family.add(child)
                grew = True
    fields = {"rss_mb": 0.0, "peak_rss_mb": 0.0, "pss_mb": 0.0, "processes": 0}
    names = {"VmRSS": "rss_mb", "VmHWM": "peak_rss_mb", "Pss": "pss_mb"}
    for p in family:
        try:  # Pss (smaps_rollup): shared pages (libraries, the model file) split between the processes mapping them
            lines = Path(f"/proc/{p}/status").read_text().splitlines() + \
                Path(f"/proc/{p}/smaps_rollup").read_text().splitlines()
        except OSError:
            continue
        fields["processes"] += 1
        for line in lines:
            key, _, value = line.partition(":")
            if key in names:
                fields[names[key]] += int(value.split()[0]) / 1024
    return {k: round(v, 1) for k, v in fields.items()}


async def _connect(host: str, port: int):
    return await asyncio.open_connection(host, port)


async def level(url: str, texts: list[str], concurrency: int, seconds: float, max_requests: int) -> dict:
    """`concurrency` keep-alive connections, each sending its next request when the previous answer is read."""
    u = urlparse(url)
    host, port = u.hostname, u.port or 80
    latencies: list[float] = []
    errors: dict[str, int] = {}
    counter = {"sent": 0}
    bodies = [json.dumps({"text": t}).encode("utf-8") for t in texts]

    def request(body: bytes) -> bytes:
        return (f"POST /predict HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode() + body

    async def client_loop(k: int, stop: float, record: bool) -> None:
        reader = writer = None
        i = k
        while time.perf_counter() < stop and counter["sent"] < max_requests:
            counter["sent"] += record
            t0 = time.perf_counter()
            try:
                if writer is None:
                    reader, writer = await _connect(host, port)
                writer.write(request(bodies[i % len(bodies)]))
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                length = next(int(x.split(":", 1)[1]) for x in lines if x.lower().startswith("content-length:"))
                await reader.readexactly(length)
                status = lines[0].split(" ")[1]
            except (OSError, asyncio.IncompleteReadError, StopIteration, ValueError) as e:
                status = type(e).__name__
                if writer is not None:
                    writer.close()
                reader = writer = None
            if record:
                if status == "200":
                    latencies.append(time.perf_counter() - t0)
                else:
                    errors[status] = errors.get(status, 0) + 1
            i += concurrency
        if writer is not None:
            writer.close()

    await asyncio.gather(*(client_loop(k, time.perf_counter() + 1.0, False) for k in range(concurrency)))  # warm-up
    start = time.perf_counter()
    await asyncio.gather(*(client_loop(k, start + seconds, True) for k in range(concurrency)))
    elapsed = time.perf_counter() - start
    ms = np.array(latencies) * 1000 if latencies else np.zeros(1)
    return {"concurrency": concurrency, "requests": counter["sent"], "ok": len(latencies), "seconds": round(elapsed, 2),
            "requests_per_second": round(len(latencies) / elapsed, 1),
            "p50_ms": round(float(np.percentile(ms, 50)), 2), "p95_ms": round(float(np.percentile(ms, 95)), 2),
            "p99_ms": round(float(np.percentile(ms, 99)), 2), "errors": errors}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", required=True)
    p.add_argument("--texts", required=True, type=Path)
    p.add_argument("--concurrency", default="1,8,32,128")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--max-requests", type=int, default=200_000)
    p.add_argument("--pid", type=int, help="the server's process id, for its RSS")
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    if urlparse(args.url).hostname not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("serve_load: loopback addresses only (127.0.0.1, localhost, ::1)")
    texts = read_texts(args.texts)
    results = []
    for c in (int(x) for x in args.concurrency.split(",")):
        row = {**asyncio.run(level(args.url, texts, c, args.seconds, args.max_requests)), **rss_mb(args.pid)}
        print(json.dumps(row), flush=True)
        results.append(row)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
