"""`charrnn serve`: a real server process, driven by a real HTTP client."""

from __future__ import annotations

import http.client
import json
import re
import socket
import subprocess
import sys
import threading
import time

import pytest

import charrnn

from conftest import TINY, make_text, run_cli


@pytest.fixture(scope="module")
def served_run(tmp_path_factory):
    """One tiny run for the module's server (a server costs a process start)."""
    tmp = tmp_path_factory.mktemp("serve")
    corpus = tmp / "corpus.txt"
    corpus.write_text(make_text(), encoding="utf-8")
    out = tmp / "run"
    assert run_cli("train", corpus, "--out", out, *TINY, "--max-steps", "20", "--eval-every", "10").exit_code == 0
    return out


@pytest.fixture(scope="module")
def server(served_run):
    """(host, port) of `charrnn serve` on the tiny run, with small limits; stopped after the module."""
    cmd = [sys.executable, "-m", "charrnn", "serve", str(served_run), "--port", "0", "--max-length", "100000",
           "--max-body", "2000", "--max-requests", "4", "--timeout", "20"]  # fmt: skip
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()
        match = re.search(r"http://([\d.]+):(\d+)", line)
        assert match, line
        yield match.group(1), int(match.group(2))
        assert proc.poll() is None, "the server died"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def post(server, path: str, body, raw: bytes | None = None) -> tuple[int, dict]:
    conn = http.client.HTTPConnection(*server, timeout=30)
    data = raw if raw is not None else json.dumps(body).encode()
    conn.request("POST", path, data, {"Content-Type": "application/json"})
    response = conn.getresponse()
    payload = json.loads(response.read())
    conn.close()
    return response.status, payload


def events(server, body) -> list[tuple[str, dict]]:
    conn = http.client.HTTPConnection(*server, timeout=30)
    conn.request("POST", "/generate", json.dumps({**body, "stream": True}).encode(), {"Content-Type": "application/json"})
    response = conn.getresponse()
    assert response.status == 200 and response.getheader("Content-Type").startswith("text/event-stream")
    out = []
    for block in response.read().decode().split("\n\n"):
        if block.strip():
            fields = dict(line.split(": ", 1) for line in block.splitlines())
            out.append((fields.get("event", "message"), json.loads(fields["data"])))
    return out


def test_generate_is_what_sample_prints(server, served_run):
    controls = {"prime": "BOB:", "length": 80, "temperature": 0.8, "top_k": 10, "seed": 4}
    status, payload = post(server, "/generate", controls)
    cli = run_cli("sample", served_run, "--prime", "BOB:", "--length", "80", "--temperature", "0.8", "--top-k", "10",
                  "--seed", "4", "--no-echo")  # fmt: skip
    assert status == 200 and payload == {"text": cli.stdout[:-1]}
    streamed = events(server, controls)
    assert streamed[-1] == ("done", {}) and "".join(e[1]["text"] for e in streamed[:-1]) == payload["text"]


def test_score_is_the_apis(server, served_run):
    status, payload = post(server, "/score", {"text": "ALICE: the dog."})
    assert status == 200 and payload == charrnn.load(served_run).score("ALICE: the dog.").to_dict()


def test_clients_at_once_each_get_their_own_text(server):
    want = {seed: post(server, "/generate", {"length": 60, "seed": seed})[1]["text"] for seed in range(4)}
    got = {}

    def client(seed):
        got[seed] = post(server, "/generate", {"length": 60, "seed": seed})

    threads = [threading.Thread(target=client, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(got[s] == (200, {"text": want[s]}) for s in range(4))


@pytest.mark.parametrize("path, body, raw, status, message", [
    ("/generate", None, b"{not json", 400, "not JSON"),
    ("/generate", [1, 2], None, 400, "JSON object"),
    ("/generate", {"temprature": 1}, None, 400, "unknown field 'temprature'"),
    ("/generate", {"temperature": -1}, None, 400, "--temperature"),
    ("/generate", {"prime": "€"}, None, 400, "never seen"),
    ("/generate", {"length": 100_001}, None, 400, "up to 100000"),
    ("/generate", {"prime": 5}, None, 400, "prime must be a string"),
    ("/generate", None, b"x" * 2001, 413, "2,000 bytes"),
    ("/score", {}, None, 400, "give the text"),
    ("/nowhere", {}, None, 404, "no such endpoint"),
])  # fmt: skip
def test_bad_requests_get_a_4xx_and_one_line(server, path, body, raw, status, message):
    got, payload = post(server, path, body, raw)
    assert got == status and message in payload["error"] and "\n" not in payload["error"]
    assert post(server, "/generate", {"length": 5, "seed": 1})[0] == 200  # and the server goes on


def health(server) -> dict:
    conn = http.client.HTTPConnection(*server, timeout=10)
    conn.request("GET", "/health")
    return json.loads(conn.getresponse().read())


def test_a_client_that_leaves_mid_stream_frees_its_slot(server):
    for _ in range(6):  # more than --max-requests 4: a slot that leaked would show as a 503
        sock = socket.create_connection(server, timeout=30)
        body = json.dumps({"length": 100_000, "stream": True, "seed": 1}).encode()  # seconds of text: left mid-way
        sock.sendall(b"POST /generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)  # fmt: skip
        assert sock.recv(64).startswith(b"HTTP/1.1 200")
        sock.close()
        # The server learns of it at its next write: wait for that (however slow this machine), not a fixed time.
        deadline = time.monotonic() + 120
        while health(server)["in_flight"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert health(server)["in_flight"] == 0
    assert health(server)["limits"]["max_requests"] == 4
    assert post(server, "/generate", {"length": 5, "seed": 1})[0] == 200


def open_stream(server, body: dict) -> socket.socket:
    sock = socket.create_connection(server, timeout=30)
    data = json.dumps({**body, "stream": True}).encode()
    sock.sendall(b"POST /generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 + f"Content-Length: {len(data)}\r\n\r\n".encode() + data)  # fmt: skip
    head = b""
    while b"data: " not in head:  # the headers and the first characters
        head += sock.recv(4096)
    assert head.startswith(b"HTTP/1.1 200")
    return sock


def wait_for(server, **want) -> dict:
    deadline, now = time.monotonic() + 120, health(server)
    while any(now[k] != v for k, v in want.items()) and time.monotonic() < deadline:
        time.sleep(0.05)
        now = health(server)
    return now


def test_unseeded_generations_share_one_batch_and_leave_it(server, served_run):
    vocab = set(charrnn.load(served_run).chars)
    socks = [open_stream(server, {"length": 100_000, "temperature": t}) for t in (0.9, 0.9, 1.2)]
    now = health(server)
    assert now["batching"] and now["batched"] == 3 and now["in_flight"] == 3  # all three stepped by the batcher
    status, payload = post(server, "/generate", {"length": 300, "top_k": 5, "prime": "BOB:"})  # joins them, and ends
    assert status == 200 and len(payload["text"]) == 300 and set(payload["text"]) <= vocab
    for sock in socks:
        sock.close()
    now = wait_for(server, batched=0, in_flight=0)  # the server learns of each at its next write
    assert now["batched"] == 0 and now["in_flight"] == 0
    streamed = events(server, {"length": 50, "stop": " "})
    assert streamed[-1] == ("done", {}) and "".join(e[1]["text"] for e in streamed[:-1]).count(" ") <= 1


def test_many_clients_connecting_at_once_are_all_answered(server):
    answers, barrier = [], threading.Barrier(24)

    def ask():
        conn = http.client.HTTPConnection(*server, timeout=60)
        barrier.wait()  # all connect together: more than a small listen backlog holds
        conn.request("GET", "/health")
        answers.append(conn.getresponse().status)

    threads = [threading.Thread(target=ask) for _ in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers == [200] * 24


def test_a_port_in_use_is_refused_in_one_line(trained_run):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = run_cli("serve", trained_run, "--port", str(taken.getsockname()[1]))
    assert result.exit_code == 1 and "cannot listen on 127.0.0.1:" in result.output
