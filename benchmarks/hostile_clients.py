"""The server tried as an attacker and as a broken client would: one figure per probe.

Starts ``sakura run`` on a tiny random-weight GGUF (llama.cpp engine, ``--n-parallel 4``, 32,768 tokens of context
per sequence) in a subprocess and probes it over loopback. Each probe prints what the server answered (status,
Content-Type) and, for work whose cost the client chooses, the p99 and max latency of ``GET /health`` polled every
10 ms from another thread while the hostile request was handled. The figures are the before/after table of the
hardening work.

    python benchmarks/hostile_clients.py [--only NAME,...] [--sockets 1100] [--header-sockets 1000]
        [--slow-bodies 1100] [--many-key-bodies 8]

Probes that need server options only newer versions have (timeouts, --max-connections) are run with the
server's defaults; the script passes no option an older server lacks.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sakura_core.testing.ports import free_port
from sakura_core.testing.rawhttp import MiB, RawReply, dechunk, exchange, gzip_bomb, post_request

JAPANESE = "吾輩は猫である。名前はまだ無い。どこで生れたかとんと見当がつかぬ。"
#: The end of a chunked body.
LAST_CHUNK = b"0\r\n\r\n"


# -- the server ----------------------------------------------------------------------------------------------


class Server:
    """``sakura run`` in a subprocess, its log in a file."""

    def __init__(self, model: Path, log: Path, *extra: str, nofile: int | None = None) -> None:
        self.port = free_port()
        self.log_path = log
        self.log = log.open("wb")
        args = [
            sys.executable,
            "-m",
            "sakura_core.cli",
            "run",
            "-m",
            str(model),
            "-np",
            "4",
            "--no-self-check",
            "--listen",
            f"127.0.0.1:{self.port}",
            *extra,
        ]

        def limit() -> None:
            if nofile is not None:  # soft and hard: a system where the usual 1,024 cannot be raised
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        self.process = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, preexec_fn=limit)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, http.client.HTTPException):
                if self.get("/health")[0] == 200:
                    return
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        raise RuntimeError("the server did not become ready")

    def connection(self, timeout: float = 30) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def get(self, path: str, method: str = "GET", headers: dict[str, str] | None = None) -> tuple[int, str, bytes]:
        conn = self.connection(5)
        try:
            conn.request(method, path, headers=headers or {})
            response = conn.getresponse()
            return response.status, response.getheader("Content-Type", ""), response.read()
        finally:
            conn.close()

    def post(
        self, path: str, body: bytes, headers: dict[str, str] | None = None, timeout: float = 120
    ) -> tuple[int, str, bytes]:
        """POST on a raw socket: a server that answers before reading the whole body is still heard."""
        data = exchange(self.port, post_request(self.port, path, body, headers), timeout)
        if not data:
            return 0, "", b""
        reply = RawReply.parse(data)
        return reply.status, reply.headers.get("content-type", ""), reply.body

    def log_text(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


class HealthPoller:
    """Polls ``/health`` every 10 ms on a keep-alive connection in a thread; latencies in ms."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.latencies: list[float] = []
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> HealthPoller:
        self._thread.start()
        time.sleep(0.1)
        return self

    def __exit__(self, *exc: object) -> None:
        time.sleep(0.1)
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        while not self._stop.is_set():
            started = time.perf_counter()
            try:
                conn.request("GET", "/health")
                conn.getresponse().read()
            except (OSError, http.client.HTTPException):
                self.failures += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            elapsed = time.perf_counter() - started
            self.latencies.append(elapsed * 1000)
            time.sleep(max(0.0, 0.01 - elapsed))
        conn.close()

    def summary(self) -> str:
        if not self.latencies:
            return "no polls"
        ordered = sorted(self.latencies)
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        failed = f", {self.failures} failed" if self.failures else ""
        return f"/health p99 {p99:.0f} ms, max {ordered[-1]:.0f} ms over {len(ordered)} polls{failed}"


def while_polling(server: Server, action: Callable[[], str]) -> str:
    with HealthPoller(server.port) as poller:
        outcome = action()
    return f"{outcome}; {poller.summary()}"


def answer(status: int, content_type: str, body: bytes) -> str:
    kind = content_type.split(";")[0] or "no content type"
    detail = ""
    with contextlib.suppress(ValueError, AttributeError, KeyError, TypeError):
        detail = " " + str(json.loads(body)["error"]["code"])
    return f"{status} {kind}{detail}"


def raw_answer(data: bytes) -> str:
    if not data:
        return "connection closed, no answer"
    reply = RawReply.parse(data)
    return answer(reply.status, reply.headers.get("content-type", ""), reply.body)


# -- probes --------------------------------------------------------------------------------------------------


def probe_line_separators(server: Server) -> str:
    """Stream a chat (the model id holds U+2028) and read it as LunaTranslator does."""
    import requests

    body: dict[str, Any] = {"messages": [{"role": "user", "content": "x"}], "stream": True, "max_tokens": 4}
    url = f"http://127.0.0.1:{server.port}/v1/chat/completions"
    with requests.post(url, json=body, timeout=30, stream=True) as response:
        response.encoding = "utf-8"
        lines: list[str] = [str(line) for line in response.iter_lines(decode_unicode=True) if line]
    broken = [line for line in lines if not line.startswith(("data: ", ":"))]
    raw_separator = "\u2028".encode() in server.post("/v1/chat/completions", json.dumps(body).encode())[2]
    return f"{len(broken)} of {len(lines)} lines are half events; raw U+2028 in the stream: {raw_separator}"


def probe_prompt_8mb(server: Server) -> str:
    text = (JAPANESE * (8_000_000 // len(JAPANESE.encode())))[: 8_000_000 // 3]
    body = json.dumps({"prompt": text, "max_tokens": 8}, ensure_ascii=False).encode()
    return while_polling(server, lambda: answer(*server.post("/v1/completions", body)))


def probe_gzip_bomb(size: int) -> Callable[[Server], str]:
    def probe(server: Server) -> str:
        bomb = gzip_bomb(size)
        headers = {"Content-Encoding": "gzip"}
        return while_polling(server, lambda: answer(*server.post("/v1/completions", bomb, headers)))

    return probe


def probe_stop_strings(server: Server) -> str:
    body = json.dumps({"prompt": JAPANESE, "max_tokens": 32, "stop": [f"stop-{i}" for i in range(100_000)]}).encode()
    return while_polling(server, lambda: answer(*server.post("/v1/completions", body)))


def probe_nesting(server: Server) -> str:
    body = b'{"prompt": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    return while_polling(server, lambda: answer(*server.post("/v1/completions", body)))


def probe_surrogates(server: Server) -> str:
    lone = '"\\ud800"'
    chat = '{"messages": [{"role": "user", "content": LONE}], "max_tokens": 2}'
    bodies = {
        "/v1/chat/completions": chat,
        "/chat/completions": chat,
        "/v1/completions": '{"prompt": LONE, "max_tokens": 2}',
        "/completion": '{"prompt": LONE, "n_predict": 2}',
        "/api/v1/generate": '{"prompt": LONE, "max_new_tokens": 2}',
    }
    return ", ".join(
        f"{path} {server.post(path, body.replace('LONE', lone).encode())[0]}" for path, body in bodies.items()
    )


def probe_image_part(server: Server) -> str:
    content = [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]
    body = json.dumps({"messages": [{"role": "user", "content": content}], "max_tokens": 2}).encode()
    return answer(*server.post("/v1/chat/completions", body))


def probe_false_gzip(server: Server) -> str:
    body = json.dumps({"prompt": JAPANESE, "max_tokens": 2}).encode()
    return answer(*server.post("/v1/completions", body, {"Content-Encoding": "gzip"}))


def probe_protocol_errors(server: Server) -> str:
    host = f"Host: 127.0.0.1:{server.port}\r\n"
    cases = {
        "Content-Length: -1": f"POST /v1/completions HTTP/1.1\r\n{host}Content-Length: -1\r\n\r\n{{}}".encode(),
        "CL and TE": (
            f"POST /v1/completions HTTP/1.1\r\n{host}Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n"
            "2\r\n{}\r\n0\r\n\r\n"
        ).encode(),
        "URL of 9 KB": f"GET /health?{'a' * 9000} HTTP/1.1\r\n{host}\r\n".encode(),
        "header of 9 KB": f"GET /health HTTP/1.1\r\n{host}X-Big: {'a' * 9000}\r\n\r\n".encode(),
    }
    return "; ".join(f"{name}: {raw_answer(exchange(server.port, payload))}" for name, payload in cases.items())


def held_for(port: int, payload: bytes, limit: float) -> str:
    """How long the server keeps a socket that sent ``payload`` and then nothing."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=limit) as sock:
        if payload:
            sock.sendall(payload)
        try:
            while sock.recv(65536):
                pass
        except TimeoutError:
            return f"still open after {limit:.0f} s"
        except OSError:
            pass
    return f"closed after {time.monotonic() - started:.1f} s"


def probe_slow_clients(server: Server) -> str:
    host = f"Host: 127.0.0.1:{server.port}\r\n"
    half_header = f"GET /health HTTP/1.1\r\n{host}X-Slow: ".encode()
    stalled_body = f'POST /v1/completions HTTP/1.1\r\n{host}Content-Length: 1000\r\n\r\n{{"prompt": '.encode()
    idle_after = f"GET /health HTTP/1.1\r\n{host}\r\n".encode()
    results: dict[str, str] = {}

    def run(name: str, payload: bytes) -> None:
        results[name] = held_for(server.port, payload, 75)

    threads = [
        threading.Thread(target=run, args=args)
        for args in (("silent", b""), ("half header", half_header), ("stalled body", stalled_body))
    ]
    threads.append(threading.Thread(target=run, args=("idle keep-alive", idle_after)))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    names = ("silent", "half header", "stalled body", "idle keep-alive")
    return "; ".join(f"{name}: {results[name]}" for name in names)


def open_file_limit(server: Server) -> str:
    for line in Path(f"/proc/{server.process.pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return f"soft {soft}, hard {hard}"
    return "unknown"


def probe_many_sockets(model: Path, log: Path, count: int) -> str:
    """With the usual soft limit of 1,024 open files, ``count`` idle sockets; does /health answer, how much log?"""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < count + 64:
        return f"skipped: this process may open {hard} files"
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, count + 64), hard))
    server = Server(model, log, nofile=1024)
    limit = open_file_limit(server)
    before = len(server.log_text())
    sockets: list[socket.socket] = []
    refused = 0
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.settimeout(2)
            try:
                sock.connect(("127.0.0.1", server.port))
            except OSError:
                refused += 1
                sock.close()
                continue
            sockets.append(sock)
        time.sleep(3)
        try:
            health = str(server.get("/health")[0])
        except (OSError, http.client.HTTPException) as exc:
            health = f"no answer ({type(exc).__name__})"
        time.sleep(7)
        logged = len(server.log_text()) - before
        tracebacks = server.log_text()[before:].count("Traceback")
    finally:
        for sock in sockets:
            sock.close()
        server.stop()
    return (
        f"server limit {limit}; {len(sockets)} sockets connected, {refused} refused; /health with them open: "
        f"{health}; log in 10 s: {logged} bytes, {tracebacks} tracebacks"
    )


def probe_log_forgery(server: Server) -> str:
    before = len(server.log_text())
    server.get("/x%0A00:00:00%20INFO%20forged%20line%1B[31mred")
    time.sleep(0.3)
    written = server.log_text()[before:]
    forged = any(line.startswith("00:00:00 INFO forged line") for line in written.splitlines())
    return f"forged log line: {forged}; raw ESC in the log: {chr(27) in written}"


def probe_head(server: Server) -> str:
    return ", ".join(f"HEAD {path} {server.get(path, 'HEAD')[0]}" for path in ("/health", "/v1/models", "/slots"))


def probe_openapi(server: Server) -> str:
    document = json.loads(server.get("/openapi.json")[2])
    schemas = document["components"]["schemas"]
    message = next(v for k, v in schemas.items() if k.startswith("ChatMessage"))
    request = next(v for k, v in schemas.items() if k.startswith("ChatCompletionRequest"))
    stream = document["paths"]["/v1/chat/completions"]["post"]["responses"]["200"]["content"]["text/event-stream"]
    return (
        f"role enum: {'enum' in message['properties']['role']}; messages minItems: "
        f"{request['properties']['messages'].get('minItems')}; event stream schema: {stream['schema']}"
    )


def probe_cors(server: Server) -> str:
    conn = server.connection(5)
    conn.request("GET", "/v1/models", headers={"Origin": "https://any.example"})
    response = conn.getresponse()
    response.read()
    conn.close()
    return (
        f"Access-Control-Allow-Origin: {response.getheader('Access-Control-Allow-Origin')}, "
        f"Access-Control-Allow-Credentials: {response.getheader('Access-Control-Allow-Credentials')}"
    )


def probe_shutdown(model: Path, log: Path) -> str:
    """A stream still running when the grace ends: how does it end, what is logged?"""
    server = Server(model, log, "--shutdown-grace", "1", "-c", "4096")
    body = json.dumps({"prompt": JAPANESE, "max_tokens": 4000, "stream": True, "temperature": 1.0}).encode()
    request = (
        f"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    received = b""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(request)
        while b"data: " not in received:
            received += sock.recv(65536)
        server.process.send_signal(signal.SIGTERM)
        with contextlib.suppress(OSError):
            while chunk := sock.recv(65536):
                received += chunk
    server.stop()
    _head, _, chunked = received.partition(b"\r\n\r\n")
    events = [line for line in dechunk(chunked).split(b"\n") if line.startswith(b"data: ")]
    last = [event.decode(errors="replace")[6:70] for event in events[-2:]]
    logged = [line for line in log.read_text().splitlines() if "POST /v1/completions" in line]
    terminated = chunked.endswith(LAST_CHUNK)
    return (
        f"last events {last}; chunked body terminated: {terminated}; "
        f"access log: {[line.split(': ', 1)[1] for line in logged[-1:]]}"
    )


# -- reliability probes (issue 25): memory before auth, non-reading streams, slow bodies, parsing, counting ------


def rss_mb(pid: int) -> float:
    """The process's resident memory, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def supports(option: str) -> bool:
    """Whether this server version has ``option`` (the probes pass no option an older server lacks)."""
    help_text = subprocess.run(
        [sys.executable, "-m", "sakura_core.cli", "run", "--help"], capture_output=True, text=True, check=False
    ).stdout
    return option in help_text


#: Loopback source addresses the oversized-header sockets are spread over, so that each stays under the server's
#: per-client connection cap (256 by default) and every socket reaches the header limit.
HEADER_SOURCES = 8


def probe_oversized_headers(count: int) -> Callable[[Server], str]:
    def probe(server: Server) -> str:
        """``count`` sockets each sending about 1 MB of header lines that never end; RSS before, at the peak, after.
        The sockets come from ``HEADER_SOURCES`` loopback addresses."""
        start = rss_mb(server.process.pid)
        line = b"X-Fill: " + b"a" * 4000 + b"\r\n"
        socks = []
        refused = 0
        for number in range(count):
            sock = socket.socket()
            sock.bind((f"127.0.0.{10 + number % HEADER_SOURCES}", 0))
            sock.settimeout(5)
            sock.connect(("127.0.0.1", server.port))
            sock.settimeout(0.5)
            socks.append(sock)
            try:
                sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
                for _ in range(250):
                    sock.sendall(line)
            except OSError:
                refused += 1
        time.sleep(1)
        peak = rss_mb(server.process.pid)
        for sock in socks:
            sock.close()
        time.sleep(3)
        after = rss_mb(server.process.pid)
        return (
            f"RSS {start:.0f} MB -> {peak:.0f} MB with {count} sockets from {HEADER_SOURCES} addresses"
            f" -> {after:.0f} MB after they closed ({refused} cut before 1 MB was sent)"
        )

    return probe


def probe_silent_streams(model: Path, log: Path) -> str:
    """4 clients ask for 30,000 tokens and read nothing; is another client served meanwhile, are the slots freed?"""
    extra = ["--send-timeout", "3"] if supports("--send-timeout") else []
    server = Server(model, log, "-c", "32768", *extra)
    try:
        body = json.dumps({"prompt": "x", "max_tokens": 30000, "stream": True}).encode()
        silent = []
        for _ in range(4):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", server.port))
            sock.sendall(post_request(server.port, "/v1/completions", body))
            silent.append(sock)
        opened = time.monotonic()  # the silent clients read nothing from here on
        time.sleep(0.5)
        started = time.monotonic()
        normal = json.dumps({"prompt": "y", "max_tokens": 4}).encode()
        outcome: list[str] = []

        def ask() -> None:
            try:
                status = server.post("/v1/completions", normal, timeout=40)[0]
                outcome.append(f"another client served after {time.monotonic() - started:.1f} s ({status})")
            except OSError:
                outcome.append(f"another client not served in {time.monotonic() - started:.0f} s")

        asker = threading.Thread(target=ask)
        asker.start()
        freed = "slots still busy 40 s after the silent clients stopped reading"
        while time.monotonic() - opened < 40:
            slots = json.loads(server.get("/slots")[2])
            if not any(slot.get("state") for slot in slots):  # the other client's 4 tokens take milliseconds
                freed = f"every slot free {time.monotonic() - opened:.1f} s after the silent clients stopped reading"
                break
            time.sleep(0.1)
        asker.join()
        served = outcome[0]
        for sock in silent:
            sock.close()
        option = " ".join(extra) or "no send timeout"
        # the server's access log: how long each silent stream ran and how many tokens it had generated by then
        ended = re.findall(r"completion=(\d+) send_timeout (\d+\.\d+)s", server.log_text())
        runs = ", ".join(f"{float(seconds):.1f} s/{tokens} tokens" for tokens, seconds in ended)
        return f"{freed}; {served}; streams ended after {runs or 'none'} ({option})"
    finally:
        server.stop()


def probe_slow_bodies(model: Path, log: Path, count: int) -> str:
    """``count`` connections past a cap of ``count - 10`` each trickle a body, one client re-opens idle sockets;
    /health polled from another loopback address (127.0.0.2) for 15 s."""
    cap = count - 10
    extra = ["--max-connections", str(cap)]
    if supports("--max-connections-per-client"):
        extra += ["--max-connections-per-client", str(cap // 4)]
    server = Server(model, log, *extra)
    stop = threading.Event()
    held: list[socket.socket] = []

    def trickle() -> None:
        for _ in range(count):
            with contextlib.suppress(OSError):
                sock = socket.create_connection(("127.0.0.1", server.port), timeout=2)
                sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
                held.append(sock)
        while not stop.wait(5):
            for sock in held:
                with contextlib.suppress(OSError):
                    sock.sendall(b" ")

    def reopen() -> None:
        mine: list[socket.socket] = []
        while not stop.is_set():
            with contextlib.suppress(OSError):
                mine.append(socket.create_connection(("127.0.0.1", server.port), timeout=2))
            if len(mine) > 50:
                mine.pop(0).close()
            time.sleep(0.01)
        for sock in mine:
            sock.close()

    workers = [threading.Thread(target=trickle, daemon=True), threading.Thread(target=reopen, daemon=True)]
    try:
        for worker in workers:
            worker.start()
        time.sleep(2)
        statuses: list[int] = []
        latencies: list[float] = []
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            started = time.perf_counter()
            try:
                sock = socket.socket()
                sock.settimeout(2)
                sock.bind(("127.0.0.2", 0))
                sock.connect(("127.0.0.1", server.port))
                sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                data = sock.recv(65536)
                sock.close()
                statuses.append(RawReply.parse(data).status if data else 0)
            except OSError:
                statuses.append(0)
            latencies.append(time.perf_counter() - started)
            time.sleep(0.2)
        ok = statuses.count(200)
        return (
            f"/health 200 {ok} of {len(statuses)} polls (others: {sorted(set(statuses) - {200})}),"
            f" slowest {max(latencies) * 1000:.0f} ms ({' '.join(extra)})"
        )
    finally:
        stop.set()
        for worker in workers:
            worker.join(10)
        for sock in held:
            sock.close()
        server.stop()


def probe_many_keys(bodies: int) -> Callable[[Server], str]:
    def probe(server: Server) -> str:
        """``bodies`` bodies of 8 MB at once, each 700,000 keys in an ignored field; /health meanwhile."""
        ignored = {f"k{i}": 1 for i in range(700_000)}
        body = json.dumps({"prompt": "x", "max_tokens": 1, "ignored": ignored}, separators=(",", ":")).encode()

        def send() -> str:
            results: list[str] = []
            threads = [
                threading.Thread(target=lambda: results.append(answer(*server.post("/v1/completions", body))))
                for _ in range(bodies)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            return f"{bodies} x {len(body) / 1e6:.1f} MB: {sorted(set(results))}"

        return while_polling(server, send)

    return probe


def probe_never_fitting(server: Server) -> str:
    """4 prompts of 8 MB that cannot fit at once, then a normal 5,000-character prompt: how long does it wait?"""
    text = (JAPANESE * (8_000_000 // len(JAPANESE.encode())))[: 8_000_000 // 3]
    huge = json.dumps({"prompt": text, "max_tokens": 8}, ensure_ascii=False).encode()
    normal = json.dumps({"prompt": (JAPANESE * 200)[:5000], "max_tokens": 1}, ensure_ascii=False).encode()
    alone_started = time.perf_counter()
    server.post("/v1/completions", normal)
    alone = time.perf_counter() - alone_started
    threads = [threading.Thread(target=server.post, args=("/v1/completions", huge)) for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(0.3)
    started = time.perf_counter()
    status = server.post("/v1/completions", normal)[0]
    waited = time.perf_counter() - started
    for thread in threads:
        thread.join()
    return f"a normal prompt answered in {alone:.2f} s alone, {waited:.2f} s behind 4 huge ones ({status})"


PROBES: dict[str, Callable[[Server], str]] = {
    "line separators": probe_line_separators,
    "8 MB prompt": probe_prompt_8mb,
    "8 MB gzip bomb": probe_gzip_bomb(8 * MiB),
    "1 MB gzip bomb": probe_gzip_bomb(MiB),
    "100,000 stop strings": probe_stop_strings,
    "JSON nested 100,000 levels": probe_nesting,
    "lone surrogate": probe_surrogates,
    "image_url content part": probe_image_part,
    "Content-Encoding gzip, body not gzip": probe_false_gzip,
    "protocol errors": probe_protocol_errors,
    "access log forgery": probe_log_forgery,
    "HEAD": probe_head,
    "OpenAPI": probe_openapi,
    "CORS": probe_cors,
    "open-file limit": open_file_limit,
    "slow clients": probe_slow_clients,
    "never-fitting prompts": probe_never_fitting,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="comma-separated probe names (substrings)")
    parser.add_argument("--sockets", type=int, default=1100, help="idle sockets for the open-file probe")
    parser.add_argument("--header-sockets", type=int, default=1000, help="sockets sending 1 MB of header each")
    parser.add_argument("--slow-bodies", type=int, default=1100, help="connections trickling a body")
    parser.add_argument("--many-key-bodies", type=int, default=8, help="8 MB bodies of 700,000 keys sent at once")
    args = parser.parse_args()
    only = [part.strip().lower() for part in (args.only or "").split(",") if part.strip()]

    def wanted(name: str) -> bool:
        return not only or any(part in name.lower() for part in only)

    from sakura_llamacpp.tiny_model import write_tiny_gguf

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted_files = max(args.header_sockets, args.slow_bodies, args.sockets) + 256
    if soft < wanted_files:  # this process holds every attacking socket at once
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted_files, hard), hard))
    print(f"open-file limit: {resource.getrlimit(resource.RLIMIT_NOFILE)[0]}", flush=True)

    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        model = write_tiny_gguf(Path(folder), name="sakura-tiny-qwen2-v1.0")
        # the alias puts U+2028 into every event, so that the line-separator probe needs no special model; at
        # 32,768 tokens of context an 8 MB body is not refused by its size: the prompt is tokenised, the bomb
        # inflated
        server = Server(model, Path(folder) / "server.log", "--alias", "sakura-tiny-v1.0\u2028alias", "-c", "32768")
        try:
            probes = {
                **PROBES,
                "oversized headers": probe_oversized_headers(args.header_sockets),
                "many-key bodies": probe_many_keys(args.many_key_bodies),
            }
            for name, probe in probes.items():
                if wanted(name):
                    print(f"{name}: {probe(server)}", flush=True)
        finally:
            server.stop()
        if wanted("many sockets"):
            print(f"many sockets: {probe_many_sockets(model, Path(folder) / 'sockets.log', args.sockets)}", flush=True)
        if wanted("silent streams"):
            print(f"silent streams: {probe_silent_streams(model, Path(folder) / 'silent.log')}", flush=True)
        if wanted("slow bodies"):
            slow = probe_slow_bodies(model, Path(folder) / "slow.log", args.slow_bodies)
            print(f"slow bodies: {slow}", flush=True)
        if wanted("shutdown"):
            print(f"shutdown: {probe_shutdown(model, Path(folder) / 'shutdown.log')}", flush=True)


if __name__ == "__main__":
    main()
