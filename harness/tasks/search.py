"""BM25 search over the multihop task's shipped corpus (``data/multihop/corpus.jsonl``).

Pure Python and small: documents are tokenised once (lowercase alphanumeric words minus a
short stopword list; the title is indexed twice so it weighs more than the text), and each
term's postings hold precomputed BM25 weights (k1=1.2, b=0.75), so a query is a few look-ups
and additions: about 0.2 ms for the ~300 shipped documents. Scores are rounded to 4
decimals and ties broken by document id, so results are the same on every machine.

    >>> from harness.tasks.search import Corpus
    >>> Corpus.load().search("Who founded the company that makes the Tosel 800?", k=3)  # doctest: +SKIP
    [{"id": ..., "title": ..., "text": ..., "score": ...}, ...]
"""

from __future__ import annotations

import heapq
import json
import math
import re
from pathlib import Path
from typing import Any, Iterable

from .base import DATA_DIR

CORPUS_PATH = DATA_DIR / "multihop" / "corpus.jsonl"

STOPWORDS = frozenset(
    "a an and are as at be been by did do does for from had has have he her his how in is it its "
    "of on or she that the their them they this to was were what when where which who whom whose "
    "why will with".split()
)
_WORD = re.compile(r"[a-z0-9]+")


def tokenize(text: str) -> list[str]:
    """Lowercase alphanumeric words, stopwords removed."""
    return [w for w in _WORD.findall(text.lower()) if w not in STOPWORDS]


class Corpus:
    """An in-memory BM25 index over documents ``{"id", "title", "text"}``."""

    _loaded: dict[Path, "Corpus"] = {}

    def __init__(self, docs: Iterable[dict[str, Any]], k1: float = 1.2, b: float = 0.75) -> None:
        self.docs = [{"id": d["id"], "title": d["title"], "text": d["text"]} for d in docs]
        self.by_title = {d["title"]: d for d in self.docs}
        self.ids = [d["id"] for d in self.docs]
        tokens = [tokenize(d["title"]) * 2 + tokenize(d["text"]) for d in self.docs]
        n = len(tokens)
        avgdl = sum(map(len, tokens)) / max(n, 1)
        counts: list[dict[str, int]] = []
        df: dict[str, int] = {}
        for toks in tokens:
            tf: dict[str, int] = {}
            for t in toks:
                tf[t] = tf.get(t, 0) + 1
            counts.append(tf)
            for t in tf:
                df[t] = df.get(t, 0) + 1
        self.postings: dict[str, list[tuple[int, float]]] = {}
        for i, tf in enumerate(counts):
            norm = k1 * (1 - b + b * len(tokens[i]) / avgdl)
            for t, f in tf.items():
                idf = math.log(1 + (n - df[t] + 0.5) / (df[t] + 0.5))
                self.postings.setdefault(t, []).append((i, idf * f * (k1 + 1) / (f + norm)))

    @classmethod
    def load(cls, path: Path | str | None = None) -> "Corpus":
        """The shipped corpus (or the JSONL file at `path`), read and indexed once per process."""
        path = Path(path) if path is not None else CORPUS_PATH
        if path not in cls._loaded:
            with open(path, encoding="utf-8") as fh:
                cls._loaded[path] = cls(json.loads(line) for line in fh if line.strip())
        return cls._loaded[path]

    def search(self, query: str, k: int = 3) -> list[dict[str, Any]]:
        """The `k` best documents for `query`, best first, each with its BM25 `score`."""
        scores: dict[int, float] = {}
        for term in dict.fromkeys(tokenize(query)):  # unique terms, in query order
            for i, w in self.postings.get(term, ()):
                scores[i] = scores.get(i, 0.0) + w
        ids = self.ids
        ranked = heapq.nsmallest(k, ((-round(s, 4), ids[i], i) for i, s in scores.items()))
        return [{**self.docs[i], "score": -neg} for neg, _, i in ranked]

    def __len__(self) -> int:
        return len(self.docs)


def search(query: str, k: int = 3) -> list[dict[str, Any]]:
    """Search the shipped corpus (a convenience for tools: ``Corpus.load().search``)."""
    return Corpus.load().search(query, k)
