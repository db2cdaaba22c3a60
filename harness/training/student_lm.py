"""A working DSPy student in one call: runtime + engine + provider behind one ``dspy.LM``.

    runtime = StudentRuntime.create("tiny", corpus=tokenizer_corpus(program, examples), ...)
    lm = student_lm(runtime)          # dspy.LM("local/tiny", engine=StudentEngine, provider=Local...)
    program.set_lm(lm)                # BootstrapFinetune / GRPO / BetterTogether can now train it
    info = runtime.training_info()    # harness.record.TrainingInfo

``tokenizer_corpus`` gives the texts the student's tokenizer is trained on: the ChatAdapter prompts
of every predictor for the given examples (system prompt, ``[[ ## field ## ]]`` markers, inputs),
the formatted outputs where the example carries them, and the examples' own values.
"""

from __future__ import annotations

from typing import Any, Iterable

import dspy

from harness.releases import has_engine_api
from harness.training.provider import LocalTrainingProvider
from harness.training.runtime import StudentRuntime


def tokenizer_corpus(program: dspy.Module, examples: Iterable[dspy.Example]) -> list[str]:
    """Texts the student will read and write, in a fixed order (the tokenizer is cached by them)."""
    adapter = dspy.ChatAdapter()
    examples = list(examples)
    texts: list[str] = []
    for _, pred in program.named_predictors():
        sig = pred.signature
        markers = [*sig.input_fields, *sig.output_fields, "completed"]
        texts.append("\n\n".join(f"[[ ## {name} ## ]]" for name in markers))
        for ex in examples:
            inputs = {k: ex.get(k, "") for k in sig.input_fields}
            texts += [m["content"] for m in adapter.format(sig, demos=[], inputs=inputs)]
            outputs = {k: ex.get(k) for k in sig.output_fields}
            if any(v is not None for v in outputs.values()):
                texts.append(adapter.format_assistant_message_content(
                    sig, {k: ("" if v is None else v) for k, v in outputs.items()}))
    texts += [str(v) for ex in examples for v in ex.toDict().values()]
    return texts


def student_lm(runtime: StudentRuntime, *, temperature: float | None = None,
               sft_defaults: dict[str, Any] | None = None, grpo_defaults: dict[str, Any] | None = None) -> dspy.LM:
    """``dspy.LM("local/<student>")`` that generates with, and trains, `runtime`'s weights: a DSPy engine from DSPy
    3.4 (``harness.training.engine``), an LM in the ``forward()`` form before it (``harness.training.forward_lm``;
    each module imports what only its releases have, so only the one the running release needs is imported)."""
    settings = dict(
        provider=LocalTrainingProvider(runtime, sft_defaults, grpo_defaults),
        cache=False,  # the weights change under the same prompt: a cached answer would be stale
        temperature=temperature,
        num_retries=0,  # a local model has no transient failures to retry
    )
    if has_engine_api():
        from harness.training.engine import StudentEngine

        return dspy.LM(runtime.base_name, engine=StudentEngine(runtime), **settings)
    from harness.training.forward_lm import StudentForwardLM

    return StudentForwardLM(runtime.base_name, **settings)


def runtime_of(lm: dspy.LM) -> StudentRuntime:
    """The runtime behind a student LM made by ``student_lm``."""
    provider = getattr(lm, "provider", None)
    if not isinstance(provider, LocalTrainingProvider):
        raise TypeError(f"{getattr(lm, 'model', lm)!r} is not a local training student")
    return provider.runtime
