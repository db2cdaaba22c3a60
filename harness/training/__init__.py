"""Real weight training inside the run's own process, for DSPy's weight-changing optimizers.

Modules, one idea each:

- ``students``: the registry of student models (random-initialised configs or a local HF folder).
- ``tokenizer``: a byte-level BPE tokenizer trained locally and deterministically, with a chat template.
- ``chat``: chat messages to token ids and loss masks, the same way for training and generation.
- ``objectives``: the losses (masked cross-entropy for SFT, group-relative policy gradient for GRPO).
- ``runtime``: one live student (weights, versions, checkpoints, generation, training figures).
- ``jobconfig``: the hyperparameters of a job, read from the ``train_kwargs`` DSPy passes through.
- ``sft`` / ``rl``: the SFT job and the GRPO updater that change the runtime's weights.
- ``engine`` / ``provider``: DSPy's custom-engine and Provider contracts over a runtime (these import dspy).
- ``student_lm``: build a working ``dspy.LM`` student in one call, and its ``TrainingInfo``.
- ``memory``: the fine-tuning memory bench (``python -m harness.training.memory``; never imports dspy).

This package's ``__init__`` imports nothing, so ``harness.training.memory`` runs without dspy.
"""
