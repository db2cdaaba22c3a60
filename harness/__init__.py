"""dspy-resource-bench: measure what each DSPy optimization strategy costs in hardware and money."""

__version__ = "0.1.0"
