"""GET /metrics: Prometheus text exposition, written by hand (no client library to install in a serving image).

    kdnlp_requests_total{code}          /predict answers by HTTP status
    kdnlp_rows_total                    texts (or pairs) predicted
    kdnlp_batch_rows                    histogram of rows per forward pass (what dynamic batching achieved)
    kdnlp_queue_rows                    gauge: rows queued or running now
    kdnlp_request_duration_seconds      histogram of /predict latency, arrival to answer
Per worker process: with --workers N each process counts its own requests.
"""
from __future__ import annotations

from bisect import bisect_left
from collections import Counter

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Histogram:
    def __init__(self, buckets: tuple):
        self.buckets, self.counts, self.sum, self.count = buckets, [0] * len(buckets), 0.0, 0

    def observe(self, value: float) -> None:
        i = bisect_left(self.buckets, value)  # the first bucket whose upper bound is >= value
        if i < len(self.counts):
            self.counts[i] += 1
        self.sum += value
        self.count += 1

    def render(self, name: str) -> list[str]:
        lines, total = [], 0
        for bound, c in zip(self.buckets, self.counts):
            total += c
            lines.append(f'{name}_bucket{{le="{bound}"}} {total}')
        return lines + [f'{name}_bucket{{le="+Inf"}} {self.count}', f"{name}_sum {self.sum:.6f}", f"{name}_count {self.count}"]


class Metrics:
    def __init__(self):
        self.requests: Counter = Counter()
        self.rows = 0
        self.batch_rows = Histogram(BATCH_BUCKETS)
        self.latency = Histogram(LATENCY_BUCKETS)
        self.queue_rows = 0

    def render(self) -> str:
        out = ["# HELP kdnlp_requests_total /predict requests answered, by HTTP status",
               "# TYPE kdnlp_requests_total counter"]
        out += [f'kdnlp_requests_total{{code="{code}"}} {n}' for code, n in sorted(self.requests.items())]
        out += ["# HELP kdnlp_rows_total texts (or pairs) predicted", "# TYPE kdnlp_rows_total counter",
                f"kdnlp_rows_total {self.rows}",
                "# HELP kdnlp_batch_rows rows per forward pass", "# TYPE kdnlp_batch_rows histogram",
                *self.batch_rows.render("kdnlp_batch_rows"),
                "# HELP kdnlp_queue_rows rows queued or running", "# TYPE kdnlp_queue_rows gauge",
                f"kdnlp_queue_rows {self.queue_rows}",
                "# HELP kdnlp_request_duration_seconds /predict latency", "# TYPE kdnlp_request_duration_seconds histogram",
                *self.latency.render("kdnlp_request_duration_seconds")]
        return "\n".join(out) + "\n"
