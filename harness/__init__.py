"""dspy-resource-bench: measure what each DSPy optimization strategy costs in hardware and money."""

import os as _os

# Offline by default: DSPy and litellm otherwise fetch a price map from the network at first use
# (with a time-out wait when there is no network), and Hugging Face libraries look for model updates.
_os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
_os.environ.setdefault("HF_HUB_OFFLINE", "1")
_os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

__version__ = "0.1.0"
