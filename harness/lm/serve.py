"""The offline LM over loopback HTTP: the same brain behind an OpenAI-compatible chat endpoint.

``python -m harness.lm.serve --port P`` serves ``POST /v1/chat/completions`` and ``GET /v1/models`` on
127.0.0.1. The model name picks the task whose oracle answers (``offline-<task>``, e.g. ``offline-math``;
any other name answers without an oracle). Tokens are counted with the reference model's tokenizer exactly as
the in-process engine counts them (harness.lm.offline), and returned as the server's own ``usage``, so
that a run through HTTP is counted by the same client-side path as a hosted LM. Every DSPy release can
reach it as ``dspy.LM("openai/offline-<task>", api_base="http://127.0.0.1:P/v1")``.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from harness.lm.brain import Brain, prefix_key
from harness.lm.serving import ROLLOUT_HEADER
from harness.lm.tokens import TokenCounter

MODEL_PREFIX = "offline-"
ROLLOUT_KEY = "harness_rollout"  # where the handler puts it in the body it passes on


def model_name(task: str) -> str:
    return f"{MODEL_PREFIX}{task}"


def text_of(content) -> str:
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content or [] if isinstance(part, dict))


class OfflineServer:
    """The brain behind an OpenAI-compatible endpoint; `with OfflineServer() as srv: srv.base_url`."""

    def __init__(self, price_as: str = "openai/gpt-4o-mini", port: int = 0, max_choices: int | None = None) -> None:
        self.tokens = TokenCounter(price_as)
        self.max_choices = max_choices  # answer at most this many choices for n > 1, as llama.cpp (1) does
        self._brains: dict[str, Brain] = {}
        self._seen: dict[str, int] = {}
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _send(self, code: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                path = self.path.split("?")[0].rstrip("/")
                if path.endswith("/models"):
                    self._send(200, {"object": "list", "data": [{"id": "offline", "object": "model"}]})
                elif path.endswith("/health") or path == "":
                    self._send(200, {"status": "ok"})
                else:
                    self._send(404, {"error": {"message": f"no route {self.path}"}})

            def do_POST(self):
                try:
                    body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                except json.JSONDecodeError:
                    self._send(400, {"error": {"message": "the body is not JSON"}})
                    return
                if isinstance(body, dict) and self.headers.get(ROLLOUT_HEADER) is not None:
                    body[ROLLOUT_KEY] = self.headers[ROLLOUT_HEADER]  # (the call's DSPy rollout: sample by it)
                self._send(*server.answer(self.path.split("?")[0].rstrip("/"), body))

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"

    def _brain(self, model: str) -> Brain:
        name = model.split("/", 1)[-1]
        with self._lock:
            if name not in self._brains:
                oracle = None
                if name.startswith(MODEL_PREFIX):
                    from harness import registry

                    task = registry.tasks().get(name[len(MODEL_PREFIX):])
                    oracle = task.oracle() if task is not None and task.oracle else None
                self._brains[name] = Brain(oracle)
            return self._brains[name]

    def answer(self, path: str, body: dict) -> tuple[int, dict]:
        """(HTTP status, JSON payload) for a POST to `path` (a subclass may inject faults here)."""
        if path == "/harness/reset":  # a new run: sampling starts afresh
            self.reset()
            return 200, {"status": "reset"}
        if not path.endswith("chat/completions"):
            return 404, {"error": {"message": f"no route {path}"}}
        return 200, self.complete(body)

    def reset(self) -> None:
        """Forget how often each request was sampled: each run starts as a fresh in-process engine does."""
        with self._lock:
            self._seen.clear()

    def _salt(self, key: str, temperature, rollout: str | None = None) -> str:
        """As the in-process engine salts (harness.lm.offline): fixed at temperature 0, else the call's DSPy
        rollout where the client sent it (harness.lm.offline.tag_rollouts_over_http), else the draw's number."""
        if not temperature:
            return "t0"
        if rollout is not None:
            return f"r{rollout}"
        key = f"{temperature}|{key}"
        with self._lock:  # the same request sampled again gets the next draw (as the in-process engine)
            n = self._seen.get(key, 0)
            self._seen[key] = n + 1
        return f"s{n}"

    def complete(self, body: dict) -> dict:
        messages = [(m.get("role", "user"), text_of(m.get("content"))) for m in body.get("messages", [])]
        system = "".join(t for r, t in messages if r == "system")
        rest = [(r, t) for r, t in messages if r != "system"]
        key = prefix_key(system, rest)
        brain = self._brain(str(body.get("model", "")))
        n = max(1, int(body.get("n") or 1))
        if self.max_choices:
            n = min(n, self.max_choices)
        replies = [brain.reply(system, rest, self._salt(f"{system}|{rest}", body.get("temperature"),
                                                        body.get(ROLLOUT_KEY)), key)
                   for _ in range(n)]
        # The in-process engine's count: every turn but the last (system first), then the last on its own.
        turns = [("system", system), *rest[:-1]] if system else rest[:-1]
        prefix = self.tokens.messages(turns) - self.tokens.REPLY_PRIMING if turns else 0
        one_in = prefix + self.tokens.messages(rest[-1:]) if rest else self.tokens.messages([("system", system)])
        n_out = sum(self.tokens.text(r) for r in replies)
        return {"id": f"chatcmpl-offline-{time.monotonic_ns()}", "object": "chat.completion",
                "created": int(time.time()), "model": body.get("model", "offline"),
                "choices": [{"index": i, "finish_reason": "stop", "message": {"role": "assistant", "content": r}}
                            for i, r in enumerate(replies)],
                "usage": {"prompt_tokens": one_in * n, "completion_tokens": n_out,
                          "total_tokens": one_in * n + n_out}}

    def __enter__(self) -> "OfflineServer":
        threading.Thread(target=self.httpd.serve_forever, daemon=True, name="offline-http").start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m harness.lm.serve",
                                description="Serve the offline LM as an OpenAI-compatible endpoint on 127.0.0.1.")
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    p.add_argument("--port-file", type=Path, default=None, help="write the port chosen here once listening")
    p.add_argument("--price-as", default="openai/gpt-4o-mini", help="tokenizer that counts the tokens")
    p.add_argument("--max-choices", type=int, default=None,
                   help="answer at most this many choices when asked for n > 1, silently (llama.cpp and "
                        "`transformers serve` answer 1): to test what a client does with such a server")
    args = p.parse_args(argv)
    srv = OfflineServer(args.price_as, args.port, args.max_choices)
    if args.port_file:
        args.port_file.write_text(str(srv.port))
    print(f"offline LM serving on {srv.base_url}", file=sys.stderr, flush=True)
    try:
        srv.httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
