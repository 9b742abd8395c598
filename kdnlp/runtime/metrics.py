"""GET /metrics: Prometheus text exposition, written by hand (no client library to install in a serving image).

    kdnlp_requests_total{code}          /predict answers by HTTP status
    kdnlp_rows_total                    texts (or pairs) predicted
    kdnlp_batch_rows                    histogram of rows per forward pass (what dynamic batching achieved)
    kdnlp_queue_rows                    gauge: rows queued or running now
    kdnlp_request_duration_seconds      histogram of /predict latency, arrival to answer

Whole-server figures with --workers N: each worker counts into its own row of one block of float64 in shared
memory (kdnlp/runtime/workers.py allocates it), and /metrics, whichever worker answers it, adds the rows up. A
worker started in place of a dead one takes over its row, so counters never go backwards (Prometheus reads a drop
as a restart). A single process keeps the same block in its own memory.
"""
from __future__ import annotations

from bisect import bisect_left

import numpy as np

CODES = (200, 400, 413, 422, 500, 503)  # every status /predict answers with (kdnlp/runtime/app.py)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
# one worker's row: requests by code | rows | queue rows | batch histogram | latency histogram
# (a histogram: a count per bucket, then the sum and the count of all observations)
ROWS, QUEUE = len(CODES), len(CODES) + 1
BATCH = slice(QUEUE + 1, QUEUE + 1 + len(BATCH_BUCKETS) + 2)
LATENCY = slice(BATCH.stop, BATCH.stop + len(LATENCY_BUCKETS) + 2)
SIZE = LATENCY.stop


def shared_block(context, workers: int):
    """Zeroed shared memory for `workers` rows, to hand to each worker process with its row number."""
    return context.RawArray("d", workers * SIZE)


def _observe(values: np.ndarray, buckets: tuple, value: float) -> None:
    i = bisect_left(buckets, value)  # the first bucket whose upper bound is >= value
    if i < len(buckets):
        values[i] += 1
    values[-2] += value
    values[-1] += 1


def _render_histogram(name: str, values: np.ndarray, buckets: tuple) -> list[str]:
    cumulative = np.cumsum(values[:len(buckets)])
    return [*(f'{name}_bucket{{le="{b}"}} {int(c)}' for b, c in zip(buckets, cumulative)),
            f'{name}_bucket{{le="+Inf"}} {int(values[-1])}', f"{name}_sum {values[-2]:.6f}", f"{name}_count {int(values[-1])}"]


class Metrics:
    def __init__(self, shared=None, row: int = 0):
        block = np.frombuffer(shared, dtype=np.float64) if shared is not None else np.zeros(SIZE)
        self.block = block.reshape(-1, SIZE)
        self.mine = self.block[row]
        self.mine[QUEUE] = 0  # a replacement worker: its predecessor's queue died with it

    def answered(self, status: int) -> None:
        self.mine[CODES.index(status)] += 1

    def predicted(self, rows: int) -> None:
        self.mine[ROWS] += rows

    def queued(self, rows: int) -> None:
        self.mine[QUEUE] = rows

    def batch(self, rows: int) -> None:
        _observe(self.mine[BATCH], BATCH_BUCKETS, rows)

    def latency(self, seconds: float) -> None:
        _observe(self.mine[LATENCY], LATENCY_BUCKETS, seconds)

    def own_requests(self) -> int:
        return int(self.mine[:len(CODES)].sum())

    def render(self) -> str:
        total = self.block.sum(0)
        out = ["# HELP kdnlp_requests_total /predict requests answered, by HTTP status",
               "# TYPE kdnlp_requests_total counter"]
        out += [f'kdnlp_requests_total{{code="{code}"}} {int(n)}' for code, n in zip(CODES, total) if n]
        out += ["# HELP kdnlp_rows_total texts (or pairs) predicted", "# TYPE kdnlp_rows_total counter",
                f"kdnlp_rows_total {int(total[ROWS])}",
                "# HELP kdnlp_batch_rows rows per forward pass", "# TYPE kdnlp_batch_rows histogram",
                *_render_histogram("kdnlp_batch_rows", total[BATCH], BATCH_BUCKETS),
                "# HELP kdnlp_queue_rows rows queued or running", "# TYPE kdnlp_queue_rows gauge",
                f"kdnlp_queue_rows {int(total[QUEUE])}",
                "# HELP kdnlp_request_duration_seconds /predict latency", "# TYPE kdnlp_request_duration_seconds histogram",
                *_render_histogram("kdnlp_request_duration_seconds", total[LATENCY], LATENCY_BUCKETS)]
        return "\n".join(out) + "\n"
