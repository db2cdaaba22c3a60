"""Prices per token from DSPy's bundled price table (a litellm snapshot), never downloaded."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

from harness.errors import HarnessError

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # DSPy would otherwise try a download first


@dataclass(frozen=True)
class Price:
    model: str
    input_per_token: float
    output_per_token: float
    source: str

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return input_tokens * self.input_per_token + output_tokens * self.output_per_token


_PRESET: dict[str, Price] = {}  # prices the run's parent looked up (harness.child: every DSPy release alike)


def preset(prices: dict[str, dict]) -> None:
    """Price these models as given (a run's process gets them from the harness's own environment, so that a run
    under another DSPy release, whose bundled table differs or is absent, is priced as every other run)."""
    _PRESET.update({name: Price(**p) for name, p in (prices or {}).items()})


def price_of(model: str) -> Price:
    """Price of 'provider/name' from DSPy's bundled table; HarnessError if it has none."""
    return _PRESET.get(model) or _bundled(model)


@lru_cache(maxsize=32)
def _bundled(model: str) -> Price:
    from dspy.clients.model_metadata import model_info

    provider, _, name = model.partition("/")
    if not name:
        raise HarnessError(f"price model {model!r} must be 'provider/name', e.g. openai/gpt-4o-mini")
    info = model_info(provider, name)
    inp, out = info.get("input_cost_per_token"), info.get("output_cost_per_token")
    if inp is None or out is None:
        raise HarnessError(f"DSPy's bundled price table has no price for {model!r}; "
                           "choose another --price-as, e.g. openai/gpt-4o-mini or anthropic/claude-haiku-4-5")
    return Price(model, float(inp), float(out), source=_source())


def _source() -> str:
    try:
        from dspy.clients.model_metadata import source_info

        info = source_info()
        return f"DSPy bundled price table (litellm {info.get('snapshot_version')} snapshot, {info.get('source')})"
    except Exception:
        return "DSPy bundled price table (litellm snapshot)"
