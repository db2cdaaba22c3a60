"""A real LM, named by the user: any model string `dspy.LM` accepts, counted in every thread.

Keys come from the environment as DSPy and litellm read them; the harness never stores them. An API
base may carry credentials (``user:pass@``, ``?api_key=``): this process connects with the URL as given
(it reaches it through the run's spec file on tmpfs), and everything written or printed carries it
redacted (harness.redact). DSPy's cache is off so that every call is a real, billed call; DSPy's own
retries (``num_retries``, default 3, ``--lm-retries``) stay on and are counted (harness.lm.usage).
"""

from __future__ import annotations

import os

from harness.errors import HarnessError
from harness.lm.usage import COUNTER, UsageCounter, as_prompt_lm, install_real_lm_counting


def check_model_string(model: str, price_as: str | None = None) -> str:
    """A one-line error, before anything runs, for a model string dspy.LM could not route."""
    provider, _, name = model.partition("/")
    if not provider or not name:
        raise HarnessError(f"LM {model!r} must be 'provider/model', e.g. openai/gpt-4o-mini, or openai/<name> "
                           "with --api-base for a local OpenAI-compatible server")
    import litellm

    if provider not in litellm.provider_list:
        raise HarnessError(f"unknown LM provider {provider!r} in {model!r}; use one litellm knows (openai, anthropic, "
                           "ollama, hosted_vllm, ...), or openai/<name> with --api-base for a local server")
    if price_as:
        from harness.lm.pricing import price_of

        price_of(price_as)
    return model


def make_real_lm(model: str, api_base: str | None = None, price_as: str | None = None,
                 counter: UsageCounter = COUNTER, role: str = "task", **kwargs):
    """A served LM through DSPy's own client, counted into `counter`. `role` "prompt": the run's prompt LM
    (--prompt-lm), priced at its own price and counted apart (harness.lm.usage.as_prompt_lm)."""
    import dspy

    from harness.lm.pricing import price_of

    check_model_string(model)
    attr = "prompt_price" if role == "prompt" else "price"
    try:
        setattr(counter, attr, price_of(price_as or model))
    except HarnessError:
        if price_as:
            raise  # the user asked for this price table entry: say it is missing
        setattr(counter, attr, None)  # a local or unknown model: tokens are counted, spend is left unpriced
    if api_base:
        kwargs["api_base"] = api_base
        key_var = f"{model.split('/', 1)[0].upper()}_API_KEY"
        if "api_key" not in kwargs and not os.environ.get(key_var):
            kwargs["api_key"] = "no-key"  # a local server needs none, but the client insists on one
    lm = dspy.LM(model, cache=False, **kwargs)
    install_real_lm_counting(counter)
    return as_prompt_lm(lm) if role == "prompt" else lm
