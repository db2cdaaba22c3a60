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
import time

from harness.lm.brain import Brain
from harness.lm.serve import OfflineServer, text_of


def closed_port() -> int:
    """A local port that was free a moment ago and has no listener: connecting to it is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fails(messages: list[tuple[str, str]], fail_pct: int) -> bool:
    """Whether a request with these messages gets HTTP 500: its hash falls in the first `fail_pct` of 100."""
    digest = hashlib.sha256(json.dumps(messages).encode()).digest()
    return int.from_bytes(digest[:4], "big") % 100 < fail_pct


class ChatServer(OfflineServer):
    """`with ChatServer(oracle) as srv:` then use `srv.base_url`; `srv.totals` has what it reported. The offline
    LM's HTTP server (harness.lm.serve) with the test's oracle, its own token count and the faults above."""

    def __init__(self, oracle=None, fail_pct: int = 0, usage: bool = True, garbage: bool = False) -> None:
        super().__init__()
        self.brain = Brain(oracle)
        self.fail_pct, self.usage, self.garbage = fail_pct, usage, garbage
        # requests: answered 200; http_500: requests refused with 500 (every attempt, retries included)
        self.totals = {"requests": 0, "prompt_tokens": 0, "completion_tokens": 0, "http_500": 0}
        self.by_model: dict[str, dict[str, int]] = {}  # model asked for -> its requests and tokens
        self.paths: list[str] = []

    def answer(self, path: str, body: dict) -> tuple[int, dict]:
        self.paths.append(path)
        if not path.endswith("chat/completions"):
            return 404, {"error": {"message": f"no route {path}"}}
        messages = [(m["role"], text_of(m.get("content"))) for m in body.get("messages", [])]
        if fails(messages, self.fail_pct):
            with self._lock:
                self.totals["http_500"] += 1
            return 500, {"error": {"message": "injected failure", "type": "server_error"}}
        system = "".join(t for r, t in messages if r == "system")
        rest = [(r, t) for r, t in messages if r != "system"]
        reply = "Sorry, I would rather not say." if self.garbage else self.brain.reply(system, rest, "t0")
        prompt_tokens = sum(len(t.split()) for _, t in messages) + 7  # the server's own count
        completion_tokens = len(reply.split()) + 1
        with self._lock:
            self.totals["requests"] += 1
            self.totals["prompt_tokens"] += prompt_tokens
            self.totals["completion_tokens"] += completion_tokens
            n = self.totals["requests"]
            mine = self.by_model.setdefault(str(body.get("model")), {"requests": 0, "prompt_tokens": 0,
                                                                     "completion_tokens": 0})
            mine["requests"] += 1
            mine["prompt_tokens"] += prompt_tokens
            mine["completion_tokens"] += completion_tokens
        payload = {
            "id": f"chatcmpl-{n}", "object": "chat.completion",
            "created": int(time.time()), "model": body.get("model", "local"),
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": reply}}],
        }
        if self.usage:
            payload["usage"] = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                                "total_tokens": prompt_tokens + completion_tokens}
        return 200, payload
