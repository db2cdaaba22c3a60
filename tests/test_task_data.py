"""The shipped task data: made by the generator, well formed, balanced, and usable by the programs."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from fractions import Fraction
from pathlib import Path

import pytest

from harness.tasks import generate
from harness.tasks.base import DATA_DIR, SPLITS
from harness.tasks.search import Corpus, tokenize

ROOT = Path(__file__).resolve().parents[1]
TEXT_KEY = {"math": "question", "classify": "text", "multihop": "question"}
KEYS = {"math": {"id", "question", "answer", "rationale", "skill", "steps"},
        "classify": {"id", "text", "label", "difficulty"},
        "multihop": {"id", "question", "answer", "hops", "bridge", "template"}}
SIZES = {"train": 200, "dev": 100, "test": 100}
QUICK = 20  # the quick profile reads the first ~20-30 rows of each split


def rows(task: str, split: str) -> list[dict]:
    with open(DATA_DIR / task / f"{split}.jsonl", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def all_rows(task: str) -> list[dict]:
    return [r for split in SPLITS for r in rows(task, split)]


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return Corpus.load()


# ------------------------------------------------------------------------ reproducibility


def test_check_passes_on_the_shipped_files():
    out = subprocess.run([sys.executable, "-m", "harness.tasks.generate", "--check"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip() == "data matches generator"


def test_check_fails_with_one_line_when_a_file_differs(tmp_path, monkeypatch, capsys):
    data = tmp_path / "data"
    shutil.copytree(DATA_DIR, data)
    with open(data / "classify" / "dev.jsonl", "a", encoding="utf-8") as fh:
        fh.write('{"id": "extra"}\n')
    monkeypatch.setattr(generate, "DATA_DIR", data)
    assert generate.main(["--check"]) == 1
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "classify/dev.jsonl" in out


def test_manifest_lists_every_file_with_rows_and_sha256():
    manifest = json.loads((DATA_DIR / "MANIFEST.json").read_text())
    expected = {f"{t}/{s}.jsonl" for t in TEXT_KEY for s in SPLITS} | {"multihop/corpus.jsonl",
                                                                      "classify/labels.json"}
    assert set(manifest["files"]) == expected
    for path, entry in manifest["files"].items():
        data = (DATA_DIR / path).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], path
        n = len(json.loads(data)) if path.endswith(".json") else data.count(b"\n")
        assert n == entry["rows"], path


# ------------------------------------------------------------------------------- splits


@pytest.mark.parametrize("task", sorted(TEXT_KEY))
def test_split_sizes_ids_and_keys(task):
    for split, n in SIZES.items():
        got = rows(task, split)
        assert len(got) == n
        assert [r["id"] for r in got] == [f"{task}-{split}-{i:04d}" for i in range(n)]
        assert all(set(r) == KEYS[task] for r in got)


@pytest.mark.parametrize("task", sorted(TEXT_KEY))
def test_no_text_appears_twice(task):
    texts = [r[TEXT_KEY[task]] for r in all_rows(task)]
    assert len(set(texts)) == len(texts)  # so none is in two splits either


@pytest.mark.parametrize("task,kind", [("math", "skill"), ("classify", "label"), ("multihop", "template")])
def test_quick_profile_rows_hold_every_kind(task, kind):
    for split in SPLITS:
        got = rows(task, split)
        assert {r[kind] for r in got[:QUICK]} == {r[kind] for r in got}, split


# --------------------------------------------------------------------------------- math


def test_math_answers_and_rationales_are_right():
    for r in all_rows("math"):
        assert r["answer"].isdigit() and int(r["answer"]) > 0 and not r["answer"].startswith("0")
        *lines, last = r["rationale"].split("\n")
        assert last == f"The answer is {r['answer']}."
        assert 2 <= r["steps"] <= 8 and len(lines) == r["steps"]
        for line in lines:  # exact (Fraction) arithmetic, independent of the generator's evaluator
            (lhs, rhs), = re.findall(r"(\d+(?: [-+*/] \d+)+) = (\d+)", line)
            value = eval(re.sub(r"\d+", lambda m: f"F({m.group()})", lhs), {"F": Fraction})  # noqa: S307
            assert value == int(rhs), line
        assert rhs == r["answer"]


def test_math_lengths_and_variety():
    got = all_rows("math")
    q = sorted(len(r["question"].split()) for r in got)
    rat = sorted(len(r["rationale"].split()) for r in got)
    assert 30 <= q[0] and q[-1] <= 90 and 40 <= q[len(q) // 2] <= 65
    assert 30 <= rat[0] and rat[-1] <= 160
    skills = Counter(r["skill"] for r in got)
    assert len(skills) == 8 and min(skills.values()) >= 30
    assert len(generate.MATH) >= 20
    assert len({r["steps"] for r in got}) >= 5


# ----------------------------------------------------------------------------- classify


def test_classify_labels_file():
    labels = json.loads((DATA_DIR / "classify" / "labels.json").read_text())
    assert len(labels) == 10
    assert all(set(x) == {"label", "description"} and re.fullmatch(r"[a-z]+(_[a-z]+)*", x["label"])
               and x["description"] for x in labels)
    assert {r["label"] for r in all_rows("classify")} == {x["label"] for x in labels}


def test_classify_balance_and_difficulty():
    for split in SPLITS:
        got = rows("classify", split)
        shares = [n / len(got) for n in Counter(r["label"] for r in got).values()]
        assert len(shares) == 10 and all(0.08 <= s <= 0.12 for s in shares), split
        hard = sum(r["difficulty"] == "hard" for r in got) / len(got)
        assert 0.2 <= hard <= 0.4, split


def test_classify_texts_and_cues():
    for r in all_rows("classify"):
        assert 8 <= len(r["text"].split()) <= 40, r["text"]
        own = generate.CUES[r["label"]].search(r["text"])
        other = any(c.search(r["text"]) for label, c in generate.CUES.items() if label != r["label"])
        if r["difficulty"] == "easy":
            assert own and not other, r
        else:
            assert r["difficulty"] == "hard" and (not own or other), r


# ----------------------------------------------------------------------------- multihop


def test_corpus_documents(corpus):
    docs = corpus.docs
    assert 250 <= len(docs) <= 350
    assert len({d["id"] for d in docs}) == len(docs) == len({d["title"] for d in docs})
    assert all(30 <= len(d["text"].split()) <= 80 for d in docs)


def test_every_answer_is_reachable_through_its_two_gold_documents(corpus):
    def names(text: str, name: str) -> bool:
        return re.search(r"(?<![\w-])" + re.escape(name) + r"(?![\w-])", text) is not None

    for r in all_rows("multihop"):
        first, second = (corpus.by_title[t] for t in r["hops"])
        assert r["bridge"] == r["hops"][1] and r["hops"][0] in r["question"]
        assert names(first["text"], r["bridge"]), r
        assert names(second["text"], r["answer"]), r
        assert not names(first["text"], r["answer"]), r  # the first hop alone does not answer it
    assert len({r["template"] for r in all_rows("multihop")}) >= 6


def test_search_finds_the_gold_documents(corpus):
    for r in all_rows("multihop"):
        assert r["hops"][0] in [d["title"] for d in corpus.search(r["question"], k=3)], r
        assert r["hops"][1] in [d["title"] for d in corpus.search(r["bridge"], k=3)], r


def test_search_results_shape_order_and_speed(corpus):
    questions = [r["question"] for r in all_rows("multihop")]
    start = time.perf_counter()
    results = [corpus.search(q, k=3) for q in questions]
    per_query = (time.perf_counter() - start) / len(questions)
    assert per_query < 1e-3, f"{per_query * 1e6:.0f} us per query"
    for res in results:
        assert len(res) == 3 and all(set(d) == {"id", "title", "text", "score"} for d in res)
        assert [(-d["score"], d["id"]) for d in res] == sorted((-d["score"], d["id"]) for d in res)
    assert corpus.search(questions[0], k=5) == corpus.search(questions[0], k=5)
    assert corpus.search("the of and", k=3) == []
    assert Corpus.load() is corpus
    assert tokenize("Where is The Sarn-River, 2024?") == ["sarn", "river", "2024"]
