"""Real token counts, offline: tiktoken with the BPE files that litellm ships in its package.

Counting follows OpenAI's published rule for chat models (3 tokens per message plus the
role and content, 3 more to prime the reply). Counts are exact and cached: a text is cut into
segments at line starts where tiktoken's pre-tokenizer always starts a new piece (BPE never merges
across pieces, so the counts add up exactly), and each distinct segment is counted once. System
prompts, demos and retrieved passages repeat across calls, so most of a prompt is counted once.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path

from harness.lm.memo import Memo


def _litellm_bpe_dir() -> str | None:
    import importlib.util

    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "litellm_core_utils" / "tokenizers"
    return str(path) if path.is_dir() else None


@lru_cache(maxsize=8)
def encoding_for(model: str):
    """tiktoken encoding for a model name such as 'openai/gpt-4o-mini', loaded from local files only."""
    bpe = _litellm_bpe_dir()
    if bpe and not os.environ.get("TIKTOKEN_CACHE_DIR"):
        os.environ["TIKTOKEN_CACHE_DIR"] = bpe  # tiktoken then never downloads
    import tiktoken

    name = model.split("/", 1)[-1]
    try:
        return tiktoken.encoding_for_model(name)
    except KeyError:
        return tiktoken.get_encoding("o200k_base" if "4o" in name or name.startswith(("o1", "o3", "o4", "gpt-5"))
                                     else "cl100k_base")


# After a newline, a character that is neither whitespace nor "/" always starts a new pre-tokenizer piece in
# cl100k_base and o200k_base (no piece pattern continues from "\n" into it; "/" can follow "\n" inside one).
SEGMENT = re.compile(r"(?<=\n)(?=[^\s/])")


class TokenCounter:
    """Counts tokens of chat messages and texts with one model's tokenizer; thread-safe."""

    PER_MESSAGE = 3
    REPLY_PRIMING = 3

    def __init__(self, model: str = "openai/gpt-4o-mini", cache_size: int = 50_000) -> None:
        self.model = model
        self.encoding = encoding_for(model)
        self.name = self.encoding.name
        self._cache = Memo(cache_size)

    def text(self, s: str) -> int:
        n = self._cache.get(s)
        if n is None:
            n = sum(self._segment(seg) for seg in SEGMENT.split(s)) if len(s) > 256 else self._segment(s)
            self._cache.put(s, n)
        return n

    def _segment(self, s: str) -> int:
        n = self._cache.get(s)
        if n is None:
            n = self._cache.put(s, len(self.encoding.encode_ordinary(s)))
        return n

    def messages(self, messages: list[tuple[str, str]]) -> int:
        """Prompt tokens of [(role, content), ...] as an OpenAI chat model bills them."""
        text = self.text
        return sum(text(content) for _, content in messages) + self.REPLY_PRIMING + \
            sum(self.PER_MESSAGE + self._ROLE.get(role, 1) for role, _ in messages)

    _ROLE = {"system": 1, "user": 1, "assistant": 1, "developer": 1, "tool": 1}  # each role name is one token
