"""A real LM, named by the user: any model string `dspy.LM` accepts, counted in every thread.

Keys come from the environment as DSPy and litellm read them; the harness never stores them.
DSPy's cache is off so that every call is a real, billed call.
"""

from __future__ import annotations

import os

from harness.errors import HarnessError
from harness.lm.usage import COUNTER, UsageCounter, install_real_lm_counting


def check_model_string(model: str) -> str:
    """A one-line error for a model string dspy.LM could not route."""
    provider, _, name = model.partition("/")
    if not provider or not name:
        raise HarnessError(f"LM {model!r} must be 'provider/model', e.g. openai/gpt-4o-mini, or openai/<name> "
                           "with --api-base for a local OpenAI-compatible server")
    return model


def make_real_lm(model: str, api_base: str | None = None, price_as: str | None = None,
                 counter: UsageCounter = COUNTER, **kwargs):
    import dspy

    from harness.lm.pricing import price_of

    check_model_string(model)
    try:
        counter.price = price_of(price_as or model)
    except HarnessError:
        counter.price = None  # a local or unknown model: tokens are counted, spend is left unpriced
    if api_base:
        kwargs["api_base"] = api_base
        key_var = f"{model.split('/', 1)[0].upper()}_API_KEY"
        if "api_key" not in kwargs and not os.environ.get(key_var):
            kwargs["api_key"] = "no-key"  # a local server needs none, but the client insists on one
    lm = dspy.LM(model, cache=False, **kwargs)
    install_real_lm_counting(counter)
    return lm
