"""Chat messages to token ids, and which tokens are training targets.

Training and generation render messages with the same chat template, so the student is trained
on exactly the text it is later prompted with. Each message's text is the difference between the
template rendered up to it and up to the one before (DSPy's own SFT encoding does the same,
dspy/clients/lm_local.py:362-440); an assistant message's target is its content and end token,
never the ``<|assistant|>`` header that the generation prompt already holds.

Too-long sequences keep their last ``max_len`` tokens, so the targets at the end survive.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Sequence

Message = dict[str, str]  # {"role": ..., "content": ...}

ROLES = {"user": "user", "assistant": "assistant", "developer": "system", "system": "system"}  # DSPy's -> the template's


def chat_message(role: str, content: Any) -> Message:
    """One text message as the student's chat template takes it; a one-line error for anything but text chats."""
    if role not in ROLES:
        raise ValueError(f"the student serves text chats; got a {role!r} message")
    if isinstance(content, list):  # OpenAI's content parts: only text ones
        if any(not isinstance(p, dict) or p.get("type") != "text" for p in content):
            raise ValueError("the student serves text chats; got a message with non-text parts")
        content = "".join(p.get("text", "") for p in content)
    return {"role": ROLES[role], "content": content or ""}


@dataclass
class Encoded:
    ids: list[int]
    mask: list[bool]  # True where the token is a training target

    @property
    def n_targets(self) -> int:
        return sum(self.mask)


def render(tok: Any, messages: Sequence[Message], add_generation_prompt: bool = False) -> str:
    msgs = [{"role": m["role"], "content": m["content"]} for m in messages]
    return tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=add_generation_prompt)


def _ids(tok: Any, text: str) -> list[int]:
    return tok(text, add_special_tokens=False)["input_ids"] if text else []


def _suffix(full: str, prefix: str) -> str:
    if not full.startswith(prefix):
        raise ValueError("the tokenizer's chat template is not prefix-stable; cannot locate message targets")
    return full[len(prefix):]


def encode_chat(tok: Any, messages: Sequence[Message], *, max_len: int,
                target: Literal["assistant", "last"] = "assistant") -> Encoded:
    """Token ids of a whole conversation; targets are every assistant message or only the last one."""
    ids: list[int] = []
    mask: list[bool] = []
    done = ""
    last = len(messages) - 1
    for i, m in enumerate(messages):
        trains = m["role"] == "assistant" and (target == "assistant" or i == last)
        full = render(tok, messages[: i + 1])
        if trains:
            if i == 0:
                raise ValueError("a conversation cannot start with the assistant message to be trained on")
            head = render(tok, messages[:i], add_generation_prompt=True)
            pieces = [(_suffix(head, done), False), (_suffix(full, head), True)]
        else:
            pieces = [(_suffix(full, done), False)]
        for text, is_target in pieces:
            t = _ids(tok, text)
            ids += t
            mask += [is_target] * len(t)
        done = full
    return Encoded(ids[-max_len:], mask[-max_len:])


def encode_prompt(tok: Any, messages: Sequence[Message], *, max_len: int) -> list[int]:
    """Token ids of a generation prompt (the messages, then the assistant header), last `max_len` kept."""
    return _ids(tok, render(tok, messages, add_generation_prompt=True))[-max_len:]


def pad_batch(batch: Sequence[Encoded], pad_id: int, device: Any) -> tuple[Any, Any, Any]:
    """Right-padded (ids, attention_mask, target_mask) tensors."""
    import torch

    width = max(len(e.ids) for e in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    attn = torch.zeros((len(batch), width), dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.bool)
    for row, e in enumerate(batch):
        n = len(e.ids)
        ids[row, :n] = torch.tensor(e.ids, dtype=torch.long)
        attn[row, :n] = 1
        mask[row, :n] = torch.tensor(e.mask, dtype=torch.bool)
    return ids.to(device), attn.to(device), mask.to(device)
