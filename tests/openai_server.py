"""A small OpenAI-compatible chat server on 127.0.0.1 for tests: answers with the offline LM's brain
and reports its own token usage, which the harness must then record exactly."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from harness.lm.brain import Brain


def _text(content) -> str:
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content or [] if isinstance(part, dict))


class ChatServer:
    """`with ChatServer(oracle) as srv:` then use `srv.base_url`; `srv.totals` has what it reported."""

    def __init__(self, oracle=None) -> None:
        self.brain = Brain(oracle)
        self.lock = threading.Lock()
        self.totals = {"requests": 0, "prompt_tokens": 0, "completion_tokens": 0}
        self.paths: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                server.paths.append(self.path)
                if not self.path.rstrip("/").endswith("chat/completions"):
                    self.send_error(404)
                    return
                messages = [(m["role"], _text(m.get("content"))) for m in body.get("messages", [])]
                system = "".join(t for r, t in messages if r == "system")
                rest = [(r, t) for r, t in messages if r != "system"]
                reply = server.brain.reply(system, rest, "t0")
                prompt_tokens = sum(len(t.split()) for _, t in messages) + 7  # the server's own count
                completion_tokens = len(reply.split()) + 1
                with server.lock:
                    server.totals["requests"] += 1
                    server.totals["prompt_tokens"] += prompt_tokens
                    server.totals["completion_tokens"] += completion_tokens
                payload = {
                    "id": f"chatcmpl-{server.totals['requests']}", "object": "chat.completion",
                    "created": int(time.time()), "model": body.get("model", "local"),
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": reply}}],
                    "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                              "total_tokens": prompt_tokens + completion_tokens},
                }
                data = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> "ChatServer":
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
