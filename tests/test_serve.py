"""`kdnlp serve`, the real server as a subprocess on a free loopback port: answers equal to `kdnlp predict` for the
four task shapes, concurrent clients, bad input (4xx with one JSON message, the server keeps serving), overload
(every request gets an answer or a 503 with Retry-After) and SIGTERM under load (every accepted request answered).

Every request loop is bounded in count, and every request and wait in time. Traffic goes to 127.0.0.1 only."""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest

from conftest import make_texts
from runtime_bundles import same_answers

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("onnxruntime")
ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 20.0  # seconds, any one request


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def server(bundle: Path, *flags: str, log: Path):
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "kdnlp.cli", "serve", "--bundle", str(bundle), "--port", str(port),
                                 "--onnx-threads", "1", *flags], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "server did not start in 60 s"
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def _post(url: str, body) -> httpx.Response:
    kw = {"content": body} if isinstance(body, (str, bytes)) else {"json": body}
    return httpx.post(f"{url}/predict", timeout=TIMEOUT, **kw)


def _metric(url: str, name: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=TIMEOUT).text
    return sum(float(m) for m in re.findall(rf"^{re.escape(name)} (\S+)$", text, re.M))


SERVED = {"bilstm": "classification", "pairs": "pairs", "multilabel": "multilabel", "ner": "ner"}


@pytest.mark.parametrize("shape", list(SERVED))
def test_served_answers_equal_predict(shape, bundles, tmp_path):
    import kdnlp
    _, bundle = bundles(shape)
    texts = [t for t, _ in make_texts(6, 11)]
    pairs = shape == "pairs"
    want = kdnlp.load(bundle.parent / "out" / "student").predict(list(zip(texts, texts[1:] + texts[:1])) if pairs else texts)
    with server(bundle, log=tmp_path / "server.log") as (url, _):
        info = httpx.get(f"{url}/info", timeout=TIMEOUT).json()
        assert info["task"] == SERVED[shape].replace("pairs", "classification") and len(info["checksum"]) == 64
        one = _post(url, {"text": texts[0], **({"text_pair": texts[1]} if pairs else {})})
        many = _post(url, {"texts": texts, **({"text_pairs": texts[1:] + texts[:1]} if pairs else {})})
        assert one.status_code == many.status_code == 200, (one.text, many.text)
        assert same_answers(one.json()["results"], want[:1]) and same_answers(many.json()["results"], want)
        wrong = _post(url, {"text": texts[0]} if pairs else {"text": texts[0], "text_pair": texts[1]})
        assert wrong.status_code == 422 and ("pairs" in wrong.json()["error"] or "single texts" in wrong.json()["error"])


def test_concurrent_clients_get_their_own_answers_in_batches(bundles, tmp_path):
    from kdnlp.runtime.runtime import Runtime
    _, bundle = bundles("bilstm")
    texts = [t for t, _ in make_texts(48, 3)]
    want = Runtime(bundle).predict(texts)
    with server(bundle, "--max-wait-ms", "20", log=tmp_path / "server.log") as (url, _):
        with httpx.Client(timeout=TIMEOUT) as client, ThreadPoolExecutor(16) as pool:
            got = list(pool.map(lambda t: client.post(f"{url}/predict", json={"text": t}), texts))
        assert [r.status_code for r in got] == [200] * len(texts)
        assert same_answers([r.json()["results"][0] for r in got], want)
        assert _metric(url, "kdnlp_rows_total") == len(texts)
        assert _metric(url, "kdnlp_batch_rows_count") < len(texts)  # requests from several clients ran together
        assert _metric(url, 'kdnlp_requests_total{code="200"}') == len(texts)


def test_bad_input_is_a_4xx_with_one_message_and_the_server_keeps_serving(bundles, tmp_path):
    _, bundle = bundles("bilstm")
    cases = [
        ('{"text": "好', 400, "not valid JSON"),
        ("[1, 2]", 422, "JSON object"),
        ({}, 422, "exactly one of"),
        ({"text": "好", "texts": ["好"]}, 422, "exactly one of"),
        ({"text": 3}, 422, "must be a string"),
        ({"texts": "好"}, 422, "non-empty list"),
        ({"texts": []}, 422, "non-empty list"),
        ({"texts": ["好", None]}, 422, "texts[1] must be a string"),
        ({"text": "   "}, 422, "empty"),
        ({"text": "好", "lang": "zh"}, 422, "unknown field"),
        ({"text": "好" * 201}, 413, "--max-text-chars"),
        ({"texts": ["好"] * 9}, 413, "--max-batch-request"),
        ({"text": "好", "text_pair": "棒"}, 422, "single texts"),
        ("好" * 40_000, 413, "bytes"),
    ]
    with server(bundle, "--max-text-chars", "200", "--max-batch-request", "8", "--max-queue", "64",
                log=tmp_path / "server.log") as (url, _):
        for body, status, message in cases:
            r = _post(url, body)
            assert (r.status_code, list(r.json())) == (status, ["error"]), (body, r.text)
            assert message in r.json()["error"], (body, r.text)
        assert _post(url, {"text": "好棒"}).status_code == 200
        assert _metric(url, 'kdnlp_requests_total{code="500"}') == 0


def test_overload_answers_503_with_retry_after_and_loses_nothing(bundles, tmp_path):
    _, bundle = bundles("bilstm")
    # a batch waits up to 300 ms to fill 64 rows, but the queue holds 8: the third 4-text request in a window is refused
    with server(bundle, "--max-batch", "64", "--max-wait-ms", "300", "--max-queue", "8", "--max-batch-request", "4",
                log=tmp_path / "server.log") as (url, _):
        body = {"texts": [t for t, _ in make_texts(4, 5)]}
        with httpx.Client(timeout=TIMEOUT, limits=httpx.Limits(max_connections=32)) as client, ThreadPoolExecutor(24) as pool:
            got = list(pool.map(lambda _: client.post(f"{url}/predict", json=body), range(48)))
        codes = [r.status_code for r in got]
        assert set(codes) == {200, 503} and len(codes) == 48, codes
        assert all(r.headers["retry-after"] == "1" and "overloaded" in r.json()["error"] for r in got if r.status_code == 503)
        assert all(len(r.json()["results"]) == 4 for r in got if r.status_code == 200)
        assert _metric(url, "kdnlp_rows_total") == 4 * codes.count(200)
        assert _post(url, {"text": "好棒"}).status_code == 200  # and it serves again


def test_sigterm_under_load_answers_every_accepted_request(bundles, tmp_path):
    _, bundle = bundles("bilstm")
    log = tmp_path / "server.log"
    with server(bundle, "--max-batch", "64", "--max-wait-ms", "1500", log=log) as (url, proc):
        texts = [t for t, _ in make_texts(8, 9)]
        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(_post, url, {"text": t}) for t in texts]
            deadline = time.monotonic() + 10
            while _metric(url, "kdnlp_queue_rows") < len(texts):  # all 8 received, waiting for their batch
                assert time.monotonic() < deadline, "requests never queued"
                time.sleep(0.05)
            proc.send_signal(signal.SIGTERM)
            got = [f.result(timeout=30) for f in futures]
        assert [r.status_code for r in got] == [200] * len(texts)
        assert [r.json()["results"][0]["text"] for r in got] == texts
        assert proc.wait(30) in (0, -signal.SIGTERM)
    assert "drained and stopped" in log.read_text()


def test_serve_from_config_exports_then_serves_without_torch(bundles, tmp_path):
    """kdnlp serve --config X --model M: the bundle is exported in-process (torch), then the server replaces the
    process (exec) and runs without torch: its memory maps no libtorch."""
    cfg, _ = bundles("bilstm")
    port, log = _free_port(), tmp_path / "server.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "kdnlp.cli", "serve", "--config", str(cfg), "--model", "student",
                                 "--quantize", "int8", "--port", str(port)], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            try:
                info = httpx.get(f"http://127.0.0.1:{port}/info", timeout=1).json()
                break
            except httpx.TransportError:
                time.sleep(0.3)
        assert info["quantize"] == "int8" and info["pid"] == proc.pid
        assert (cfg.parent / "out" / "student" / "bundle-int8" / "bundle.json").is_file()
        maps = Path(f"/proc/{proc.pid}/maps")
        if maps.exists():
            assert "libtorch" not in maps.read_text()
    finally:
        proc.terminate()
        proc.wait(15)


def test_serve_and_bundle_flags_refuse_bad_values_with_one_line(bundles, tmp_path, capsys):
    from kdnlp.cli import main
    cfg, bundle = bundles("bilstm")
    assert main(["serve", "--bundle", str(tmp_path)]) == 2
    assert main(["serve", "--bundle", str(bundle), "--max-queue", "8"]) == 2
    assert main(["export", "--config", str(cfg), "--format", "torchscript", "--bundle", str(tmp_path / "b")]) == 2
    with socket.socket() as taken:  # another program listens there: refused before any worker starts
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert main(["serve", "--bundle", str(bundle), "--workers", "2", "--port", str(taken.getsockname()[1])]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert [line.split(":")[0] for line in err] == ["kdnlp"] * 4, err
    assert "not a serving bundle" in err[0] and "--max-queue 8" in err[1] and "--format onnx" in err[2]
    assert "cannot listen on 127.0.0.1" in err[3] and "another --port" in err[3]
    assert not (tmp_path / "b").exists()


def test_workers_share_the_port_a_dead_one_is_replaced_and_sigterm_drains_them_all(bundles, tmp_path):
    """--workers 2: a listening socket each (SO_REUSEPORT), so new connections reach both; a worker killed with
    SIGKILL is started again while the other serves on; SIGTERM to the parent stops both after draining."""
    from kdnlp.runtime.runtime import Runtime
    _, bundle = bundles("bilstm")
    texts = [t for t, _ in make_texts(24, 5)]
    want = Runtime(bundle).predict(texts)
    log = tmp_path / "server.log"

    def pids_answering(url: str, until, seconds: float) -> set:
        seen: set = set()
        deadline = time.monotonic() + seconds
        while not until(seen):  # a new connection each time: the kernel hashes each to one worker's socket
            assert time.monotonic() < deadline, f"in {seconds} s only these workers answered: {seen}; {log.read_text()}"
            seen.add(httpx.get(f"{url}/info", timeout=TIMEOUT).json()["pid"])
        return seen

    with server(bundle, "--workers", "2", log=log) as (url, proc):
        first = pids_answering(url, lambda seen: len(seen) == 2, 30)
        assert proc.pid not in first  # the parent holds no model and answers nothing
        with ThreadPoolExecutor(8) as pool:
            got = list(pool.map(lambda t: _post(url, {"text": t}), texts))
        assert [r.status_code for r in got] == [200] * len(texts)
        assert same_answers([r.json()["results"][0] for r in got], want)
        for _ in range(4):  # whichever worker answers /metrics, it counts the whole server
            assert _metric(url, 'kdnlp_requests_total{code="200"}') == _metric(url, "kdnlp_rows_total") == len(texts)
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        seen = pids_answering(url, lambda seen: bool(seen - first), 60)  # the survivor answers until then
        assert victim not in seen
        assert _post(url, {"texts": texts[:4]}).status_code == 200
        assert _metric(url, "kdnlp_rows_total") == len(texts) + 4  # the replacement carried on the dead one's counts
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) in (-signal.SIGTERM, 128 + signal.SIGTERM)
    text = log.read_text()
    assert f"worker {victim} exited" in text and "starting another" in text
    assert text.count("drained and stopped") == 2, text


def test_metrics_add_up_the_workers_rows_and_a_replacement_keeps_its_counts():
    import multiprocessing
    from kdnlp.runtime.metrics import Metrics, shared_block
    shared = shared_block(multiprocessing.get_context("spawn"), 2)
    a, b = Metrics(shared, 0), Metrics(shared, 1)
    for m, status, rows, seconds in ((a, 200, 3, 0.004), (b, 200, 1, 0.2), (b, 503, 0, 0.0001)):
        m.answered(status)
        m.predicted(rows)
        m.latency(seconds)
    a.batch(3)
    a.queued(5)
    text = a.render()
    assert text == b.render()
    for line in ('kdnlp_requests_total{code="200"} 2', 'kdnlp_requests_total{code="503"} 1', "kdnlp_rows_total 4",
                 "kdnlp_queue_rows 5", 'kdnlp_request_duration_seconds_bucket{le="0.005"} 2',
                 'kdnlp_request_duration_seconds_bucket{le="+Inf"} 3', 'kdnlp_batch_rows_bucket{le="2"} 0',
                 'kdnlp_batch_rows_bucket{le="4"} 1', "kdnlp_request_duration_seconds_count 3"):
        assert line in text.splitlines(), (line, text)
    assert 'code="400"' not in text
    again = Metrics(shared, 0)  # a worker started in place of a dead one
    assert "kdnlp_rows_total 4" in again.render() and "kdnlp_queue_rows 0" in again.render()
    assert again.own_requests() == 1 and b.own_requests() == 2


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"  # exited, not yet reaped
    except OSError:
        return True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_workers_stop_when_the_parent_is_killed(bundles, tmp_path):
    _, bundle = bundles("bilstm")
    log = tmp_path / "server.log"
    with server(bundle, "--workers", "2", log=log) as (url, proc):
        pids: set = set()
        deadline = time.monotonic() + 30
        while len(pids) < 2:
            assert time.monotonic() < deadline, pids
            pids.add(httpx.get(f"{url}/info", timeout=TIMEOUT).json()["pid"])
        proc.kill()
        proc.wait(10)
        deadline = time.monotonic() + 30
        while not all(_gone(p) for p in pids):  # SIGTERM from the kernel: they drain and exit, not serve on orphaned
            assert time.monotonic() < deadline, f"workers {pids} outlived their killed parent: {log.read_text()}"
            time.sleep(0.2)
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{url}/health", timeout=2)
    assert log.read_text().count("drained and stopped") == 2
