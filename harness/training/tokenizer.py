"""A byte-level BPE tokenizer trained locally and deterministically, with a chat template.

The random-initialised students need a tokenizer and none may be downloaded, so one is trained
with ``tokenizers`` on the texts the student will see (task texts, the adapter's prompts and its
``[[ ## field ## ]]`` markers). It is cached on disk under a key that hashes the corpus and the
settings, so the same corpus always gives the same files. Training the same corpus twice gives
byte-identical tokenizers (checked in the tests).

Chat messages are rendered by one Jinja template (``CHAT_TEMPLATE``); training and generation both
go through ``tokenizer.apply_chat_template`` (see ``harness.training.chat``).

This module must not import dspy.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable

PAD, END = "<|pad|>", "<|end|>"
ROLE_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>")
SPECIAL_TOKENS = (PAD, END, *ROLE_TOKENS)
FORMAT_VERSION = 1  # bump when the training recipe or the template changes (part of the cache key)

# <|role|>\ncontent<|end|>\n per message; a generation prompt ends with "<|assistant|>\n".
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
# For a local model whose tokenizer has no chat template: plain text, its own end-of-sequence token.
PLAIN_TEMPLATE = (
    "{% for m in messages %}### {{ m['role'] }}:\n{{ m['content'] }}{{ eos_token }}\n{% endfor %}"
    "{% if add_generation_prompt %}### assistant:\n{% endif %}"
)


def corpus_key(corpus: list[str], merges: int) -> str:
    h = hashlib.sha256(json.dumps({"v": FORMAT_VERSION, "merges": merges}).encode())
    for text in corpus:
        h.update(hashlib.sha256(text.encode()).digest())
    return h.hexdigest()[:16]


def train_tokenizer(corpus: Iterable[str], folder: str | Path, merges: int = 4000) -> Any:
    """Train (or load from `folder`) a byte-level BPE tokenizer with at most `merges` merges.

    Returns a ``transformers.PreTrainedTokenizerFast`` with pad/eos set and ``CHAT_TEMPLATE``.
    Fewer merges are learned when the corpus runs out of pairs.
    """
    from transformers import PreTrainedTokenizerFast

    texts = [t for t in corpus if t]
    if not texts:
        raise ValueError("the tokenizer corpus is empty")
    path = Path(folder) / f"bpe-{corpus_key(texts, merges)}"
    if (path / "tokenizer.json").exists():
        return PreTrainedTokenizerFast.from_pretrained(str(path), local_files_only=True)

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=256 + len(SPECIAL_TOKENS) + merges,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(texts, trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token=END, pad_token=PAD,
                                  additional_special_tokens=list(ROLE_TOKENS))
    tok.chat_template = CHAT_TEMPLATE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=path.name + ".", dir=path.parent))
    tok.save_pretrained(str(tmp))
    try:
        tmp.rename(path)
    except OSError:  # another process saved the same key first: theirs is identical
        shutil.rmtree(tmp, ignore_errors=True)
    return tok


def ensure_chat_template(tok: Any) -> Any:
    """Give a local model's tokenizer a template and a pad token if it lacks them."""
    if not getattr(tok, "chat_template", None):
        tok.chat_template = PLAIN_TEMPLATE
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok
