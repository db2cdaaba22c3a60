"""A memo for the offline LM's repeated prompt pieces (demos, system prompts, passages, prefixes)."""

from __future__ import annotations

import threading


class Memo(dict):
    """A dict that empties itself when full, so a long run's memory stays bounded. Reads are plain
    dict reads; `put` is safe from several threads."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size
        self._lock = threading.Lock()

    def put(self, key, value):
        with self._lock:
            if len(self) >= self.size:
                self.clear()
            self[key] = value
        return value
