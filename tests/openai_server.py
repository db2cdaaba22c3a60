"""A small OpenAI-compatible chat server on 127.0.0.1 for tests: answers with the offline LM's brain
and reports its own token usage, which the harness must then record exactly.

Faults, for the tests of what the harness records when an LM fails:

* ``fail_pct=30``: answer HTTP 500 to the requests whose messages hash into the first 30 of 100 buckets.
  The choice depends on the prompt only, so it is deterministic and a retry of a failing request fails
  again (DSPy's retries cannot hide it): a failed call is then an errored example.
* ``usage=False``: answer without the ``usage`` object, as some local servers do.
* ``garbage=True``: answer 200 with text in no format an adapter can parse.
* :func:`closed_port`: a port on 127.0.0.1 with nothing listening (connection refused).
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from harness.lm.brain import Brain


def _text(content) -> str:
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content or [] if isinstance(part, dict))


def closed_port() -> int:
    """A local port that was free a moment ago and has no listener: connecting to it is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fails(messages: list[tuple[str, str]], fail_pct: int) -> bool:
    """Whether a request with these messages gets HTTP 500: its hash falls in the first `fail_pct` of 100."""
    digest = hashlib.sha256(json.dumps(messages).encode()).digest()
    return int.from_bytes(digest[:4], "big") % 100 < fail_pct


class ChatServer:
    """`with ChatServer(oracle) as srv:` then use `srv.base_url`; `srv.totals` has what it reported."""

    def __init__(self, oracle=None, fail_pct: int = 0, usage: bool = True, garbage: bool = False) -> None:
        self.brain = Brain(oracle)
        self.lock = threading.Lock()
        # requests: answered 200; http_500: requests refused with 500 (every attempt, retries included)
        self.totals = {"requests": 0, "prompt_tokens": 0, "completion_tokens": 0, "http_500": 0}
        self.paths: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _send(self, code: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                server.paths.append(self.path)
                if not self.path.split("?")[0].rstrip("/").endswith("chat/completions"):
                    self.send_error(404)
                    return
                messages = [(m["role"], _text(m.get("content"))) for m in body.get("messages", [])]
                if fails(messages, fail_pct):
                    with server.lock:
                        server.totals["http_500"] += 1
                    self._send(500, {"error": {"message": "injected failure", "type": "server_error"}})
                    return
                system = "".join(t for r, t in messages if r == "system")
                rest = [(r, t) for r, t in messages if r != "system"]
                reply = "Sorry, I would rather not say." if garbage else server.brain.reply(system, rest, "t0")
                prompt_tokens = sum(len(t.split()) for _, t in messages) + 7  # the server's own count
                completion_tokens = len(reply.split()) + 1
                with server.lock:
                    server.totals["requests"] += 1
                    server.totals["prompt_tokens"] += prompt_tokens
                    server.totals["completion_tokens"] += completion_tokens
                    n = server.totals["requests"]
                payload = {
                    "id": f"chatcmpl-{n}", "object": "chat.completion",
                    "created": int(time.time()), "model": body.get("model", "local"),
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": reply}}],
                }
                if usage:
                    payload["usage"] = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                                        "total_tokens": prompt_tokens + completion_tokens}
                self._send(200, payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> "ChatServer":
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
