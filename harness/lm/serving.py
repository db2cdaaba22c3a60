"""An LM server the harness starts, health-checks, measures and stops itself, behind a recording proxy.

``Served`` starts the server's command in its own process group (it dies with the bench process, even on
SIGKILL: PR_SET_PDEATHSIG), waits until it answers ``GET /v1/models``, and puts a small proxy on another
loopback port in front of it. DSPy talks to the proxy; the proxy forwards each request unchanged but for
two named workarounds and keeps a ledger of what the server itself answered:

* the server's own ``usage`` of every answer (so recorded calls and tokens can be checked against it);
* time per request (server time: the proxy is on the same machine);
* ``n > 1`` answered with fewer choices (llama.cpp and ``transformers serve`` return one, silently): the proxy
  asks again, one request per missing choice, so DSPy gets what it asked for, and counts the shortfall;
* ``max_completion_tokens`` without ``max_tokens`` (DSPy 3.4's lm15 engine; llama.cpp ignores it and
  generates to the context limit): copied to ``max_tokens``, and counted.

A run measures a window of it (:meth:`Served.window`): ledger entries, the server tree's RSS sampled every
0.5 s, and the server's own timing log (llama.cpp prints prompt and generation speed per request).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

from harness.errors import HarnessError
from harness.record import ServerFigures

ROLLOUT_HEADER = "X-Harness-Rollout"  # the offline LM's: a call's DSPy rollout_id, which DSPy itself never sends

HEALTH_TIMEOUT_S = 180.0
RSS_EVERY_S = 0.5
# llama.cpp's per-request timing lines (llama_perf_context_print), printed by llama-cpp-python's server
PROMPT_EVAL = re.compile(r"prompt eval time\s*=\s*([\d.]+)\s*ms\s*/\s*(\d+)\s*tokens")
EVAL = re.compile(r"(?<!prompt )eval time\s*=\s*([\d.]+)\s*ms\s*/\s*(\d+)\s*runs")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    """In the server's process, before exec: get SIGTERM when the process that started it dies."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Entry:
    """One request DSPy sent, as the server answered it."""
    t0: float
    seconds: float
    status: int  # the HTTP status DSPy got (0: no answer)
    requests: int  # requests sent to the server for it (more than 1 after an n > 1 shortfall)
    choices: int
    prompt_tokens: int | None
    completion_tokens: int | None
    shortfall: bool = False
    limit_added: bool = False


class Ledger:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.entries: list[Entry] = []

    def add(self, entry: Entry) -> None:
        with self._lock:
            self.entries.append(entry)

    def since(self, start: int) -> list[Entry]:
        with self._lock:
            return list(self.entries[start:])

    def __len__(self) -> int:
        with self._lock:
            return len(self.entries)


def _post(url: str, body: dict, timeout: float, headers: dict[str, str] | None = None) -> tuple[int, dict | None, bytes]:
    data = json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json", **(headers or {})},
                                 method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw), raw
    except urllib.error.HTTPError as exc:
        return exc.code, None, exc.read()


class Proxy:
    """The recording proxy on 127.0.0.1 in front of `upstream` (".../v1")."""

    def __init__(self, upstream: str, ledger: Ledger, timeout_s: float = 900.0) -> None:
        self.upstream, self.ledger = upstream.rstrip("/"), ledger
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _reply(self, code: int, raw: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def _target(self) -> str:
                path = self.path
                return proxy.upstream + (path[3:] if path.startswith("/v1") else path)

            def do_GET(self):
                try:
                    with urllib.request.urlopen(self._target(), timeout=30) as resp:
                        self._reply(resp.status, resp.read())
                except urllib.error.HTTPError as exc:
                    self._reply(exc.code, exc.read())
                except OSError as exc:
                    self._reply(502, json.dumps({"error": {"message": f"server unreachable: {exc}"}}).encode())

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                try:
                    body = json.loads(raw or b"{}")
                except json.JSONDecodeError:
                    body = None
                if not isinstance(body, dict) or not self.path.rstrip("/").endswith("chat/completions"):
                    code, _, out = proxy.forward_raw(self._target(), raw)
                    self._reply(code, out)
                    return
                rollout = self.headers.get(ROLLOUT_HEADER)  # (the offline LM's: passed on, as DSPy's rollout)
                code, out = proxy.chat(self._target(), body, {ROLLOUT_HEADER: rollout} if rollout else None)
                self._reply(code, out)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.timeout_s = timeout_s
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def forward_raw(self, url: str, raw: bytes) -> tuple[int, None, bytes]:
        req = urllib.request.Request(url, data=raw, headers={"Content-Type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                return resp.status, None, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, None, exc.read()
        except OSError as exc:
            return 502, None, json.dumps({"error": {"message": f"server unreachable: {exc}"}}).encode()

    def chat(self, url: str, body: dict, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        limit_added = "max_completion_tokens" in body and "max_tokens" not in body
        if limit_added:  # workaround: llama.cpp ignores max_completion_tokens (DSPy 3.4's lm15 engine sends it)
            body = {**body, "max_tokens": body["max_completion_tokens"]}
        asked = max(1, int(body.get("n") or 1))
        t0, w0 = time.time(), time.perf_counter()
        requests, status, answer = 1, 0, None
        try:
            status, answer, raw = _post(url, body, self.timeout_s, headers)
        except OSError as exc:
            raw = json.dumps({"error": {"message": f"server unreachable: {exc}"}}).encode()
        shortfall = False
        if status == 200 and answer is not None:
            choices = list(answer.get("choices") or [])
            usages = [answer.get("usage")]
            shortfall = len(choices) < asked
            while shortfall and len(choices) < asked:  # workaround: the server returned fewer than n choices
                requests += 1
                more_status, more, _ = _post(url, {**body, "n": 1}, self.timeout_s, headers)
                if more_status != 200 or more is None or not more.get("choices"):
                    break
                choices += more["choices"][:1]
                usages.append(more.get("usage"))
            for i, choice in enumerate(choices):
                choice["index"] = i
            answer["choices"] = choices
            tokens = _sum_usage(usages)
            if tokens is not None and requests > 1:
                answer["usage"] = {"prompt_tokens": tokens[0], "completion_tokens": tokens[1],
                                   "total_tokens": tokens[0] + tokens[1]}
            raw = json.dumps(answer).encode()
        else:
            choices, tokens = [], (0, 0)
        self.ledger.add(Entry(t0=t0, seconds=time.perf_counter() - w0, status=status, requests=requests,
                              choices=len(choices), prompt_tokens=None if tokens is None else tokens[0],
                              completion_tokens=None if tokens is None else tokens[1], shortfall=shortfall,
                              limit_added=limit_added))
        return (status or 502), raw

    def start(self) -> "Proxy":
        threading.Thread(target=self.httpd.serve_forever, daemon=True, name="lm-proxy").start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _sum_usage(usages: list[Any]) -> tuple[int, int] | None:
    total_in = total_out = 0
    for u in usages:
        if not isinstance(u, dict) or u.get("prompt_tokens") is None or u.get("completion_tokens") is None:
            return None
        total_in += int(u["prompt_tokens"])
        total_out += int(u["completion_tokens"])
    return total_in, total_out


def _tree_rss_mb(pid: int) -> tuple[float, float | None]:
    """(RSS of the process and its descendants, VmHWM of the process) in MiB; (0, None) once it is gone."""
    import psutil

    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0.0, None
    rss = 0.0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            rss += p.memory_info().rss / 2**20
    hwm = None
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) / 1024
    return rss, hwm


@dataclass
class Window:
    served: "Served"
    start: int
    log_offset: int
    peak: float = 0.0
    first: float | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    def begin(self) -> "Window":
        if self.served.kind == "offline-http":  # the offline brain's sampling state is per run, as in-process
            self.served.reset_state()
        self.first, _ = _tree_rss_mb(self.served.pid)
        self.peak = self.first
        threading.Thread(target=self._sample, daemon=True, name="server-rss").start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(RSS_EVERY_S):
            rss, _ = _tree_rss_mb(self.served.pid)
            self.peak = max(self.peak, rss)

    def close(self) -> ServerFigures:
        self._stop.set()
        rss, hwm = _tree_rss_mb(self.served.pid)
        self.peak = max(self.peak, rss)
        entries = self.served.ledger.since(self.start)
        times = sorted(e.seconds for e in entries)
        measured = all(e.prompt_tokens is not None for e in entries if e.status == 200)
        ok = [e for e in entries if e.status == 200]
        prompt_speed, gen_speed = self.served.timing_since(self.log_offset)
        s = self.served
        return ServerFigures(
            server=s.kind, model=s.model, model_file=s.model_file, version=s.version, settings=s.settings,
            startup_s=s.startup_s, requests=sum(e.requests for e in entries), calls=len(entries),
            choices=sum(e.choices for e in entries),
            prompt_tokens=sum(e.prompt_tokens or 0 for e in ok) if measured else None,
            completion_tokens=sum(e.completion_tokens or 0 for e in ok) if measured else None,
            errors=sum(1 for e in entries if e.status != 200), n_shortfalls=sum(e.shortfall for e in entries),
            token_limit_added=sum(e.limit_added for e in entries),
            call_s_mean=round(statistics.fmean(times), 4) if times else None,
            call_s_p50=round(statistics.median(times), 4) if times else None,
            call_s_p95=round(times[min(len(times) - 1, int(0.95 * len(times)))], 4) if times else None,
            busy_s=round(sum(times), 3) if times else None,
            prompt_tokens_per_s=prompt_speed, generation_tokens_per_s=gen_speed,
            peak_rss_mb=round(self.peak, 1) if self.first is not None else None,
            rss_start_mb=round(self.first, 1) if self.first is not None else None,
            hwm_mb=round(hwm, 1) if hwm is not None else None,
            method="requests, choices, usage and seconds per request read at the harness's loopback proxy from the "
                   "server's own answers; RSS of the server's process tree sampled every 0.5 s by the bench process"
                   + ("; speeds from the server's timing log (llama.cpp prompt eval / eval time)"
                      if prompt_speed is not None else ""))


class Served:
    """A server started from `command` (with {port} filled in), measured and stopped by the harness."""

    def __init__(self, command: list[str], *, kind: str, model: str, model_file: str | None = None,
                 version: str | None = None, settings: dict[str, Any] | None = None, log_path: Path,
                 env: dict[str, str] | None = None, say: Callable[[str], None] = lambda m: None,
                 cwd: Path | None = None) -> None:
        self.port = free_port()
        self.command = [part.replace("{port}", str(self.port)) for part in command]
        self.kind, self.model, self.model_file, self.version = kind, model, model_file, version
        self.settings = settings or {}
        self.log_path, self.env, self.say, self.cwd = Path(log_path), env, say, cwd
        self.ledger = Ledger()
        self.proc: subprocess.Popen | None = None
        self.proxy: Proxy | None = None
        self.startup_s: float | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc else -1

    @property
    def api_base(self) -> str:
        assert self.proxy is not None
        return self.proxy.base_url

    def __enter__(self) -> "Served":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")
        t0 = time.perf_counter()
        self.say(f"starting the LM server for {self.model} on 127.0.0.1:{self.port} (log {self.log_path})")
        self.proc = subprocess.Popen(self.command, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=_die_with_parent,
                                     env=self.env, cwd=self.cwd)
        try:
            self._wait_healthy(t0)
        except BaseException:
            self.stop()
            raise
        self.startup_s = round(time.perf_counter() - t0, 2)
        self.proxy = Proxy(f"http://127.0.0.1:{self.port}/v1", self.ledger).start()
        self.say(f"LM server ready in {self.startup_s:.1f}s (pid {self.pid}); DSPy calls it through {self.api_base}")
        return self

    def _wait_healthy(self, t0: float) -> None:
        url = f"http://127.0.0.1:{self.port}/v1/models"
        while True:
            if self.proc.poll() is not None:
                raise HarnessError(f"the LM server for {self.model} exited with status {self.proc.returncode} "
                                   f"before answering: {self._last_log_line()} (log {self.log_path})")
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (OSError, ValueError):
                pass
            if time.perf_counter() - t0 > HEALTH_TIMEOUT_S:
                raise HarnessError(f"the LM server for {self.model} did not answer {url} within "
                                   f"{HEALTH_TIMEOUT_S:.0f}s: {self._last_log_line()} (log {self.log_path})")
            time.sleep(0.25)

    def _last_log_line(self) -> str:
        with contextlib.suppress(OSError):
            lines = [ln.strip() for ln in self.log_path.read_text(errors="replace").splitlines() if ln.strip()]
            return lines[-1][:300] if lines else "no output"
        return "no output"

    def reset_state(self) -> None:
        """Ask the offline LM's server to start its sampling afresh (POST /harness/reset)."""
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/harness/reset", data=b"{}", method="POST",
                                     headers={"Content-Type": "application/json"})
        with contextlib.suppress(OSError):
            urllib.request.urlopen(req, timeout=10).close()

    def window(self) -> Window:
        with contextlib.suppress(OSError):
            self._log.flush()
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        return Window(self, len(self.ledger), offset).begin()

    def timing_since(self, offset: int) -> tuple[float | None, float | None]:
        """(prompt tokens/s, generated tokens/s) from the timing lines the server logged since `offset`."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                text = f.read().decode(errors="replace")
        except OSError:
            return None, None
        p_ms = p_n = g_ms = g_n = 0.0
        for m in PROMPT_EVAL.finditer(text):
            p_ms, p_n = p_ms + float(m.group(1)), p_n + int(m.group(2))
        for m in EVAL.finditer(text):
            g_ms, g_n = g_ms + float(m.group(1)), g_n + int(m.group(2))
        return (round(1000 * p_n / p_ms, 1) if p_ms > 0 else None), (round(1000 * g_n / g_ms, 1) if g_ms > 0 else None)

    def stop(self) -> None:
        if self.proxy is not None:
            self.proxy.stop()
            self.proxy = None
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            self.say(f"LM server for {self.model} stopped")
        with contextlib.suppress(Exception):
            self._log.close()

    def __exit__(self, *exc) -> None:
        self.stop()


def command_from(text: str) -> list[str]:
    """A user's server command (LM_SERVER / --lm-server), split like a shell would; {port} is filled in."""
    parts = shlex.split(text)
    if not parts:
        raise HarnessError("--lm-server names no command: give an OpenAI-compatible server command with {port}")
    if not any("{port}" in p for p in parts):
        raise HarnessError("--lm-server must contain {port} where the server's port goes, e.g. "
                           "'python -m llama_cpp.server --model m.gguf --port {port}'")
    return parts

