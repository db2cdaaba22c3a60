"""One LM backend, four kinds: the one place that decides how a run's LM is built, served and counted.

=============  ==============================  ====================================================
kind           ``--lm``                         what answers
=============  ==============================  ====================================================
offline        (none), ``offline``              the embedded offline LM, in the run's process
offline-http   ``offline-http``                 the same brain behind an OpenAI-compatible endpoint on
                                                127.0.0.1 that the harness starts (every DSPy release
                                                reaches it)
local          ``local/<name>``                 a real model on a server the harness installs, starts,
                                                health-checks, measures and stops (harness.lm.local)
hosted         ``provider/model`` [--api-base]  a model the user names: an API, or a server they run
=============  ==============================  ====================================================

The three served kinds are counted the same way in the run (DSPy's usage tracker and callbacks,
harness.lm.usage); the two the harness starts are also measured at its proxy (harness.lm.serving).
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from harness.errors import HarnessError

OFFLINE, OFFLINE_HTTP, LOCAL, HOSTED = "offline", "offline-http", "local", "hosted"
OFFLINE_MODEL = "offline/simulated"
DEFAULT_PRICE_MODEL = "openai/gpt-4o-mini"
LOCAL_MAX_TOKENS = 256  # a small model that rambles on is cut here (SmolLM2 averaged 225 a call, capped at 1000)
LITELLM_WORKAROUND = ("engine='litellm' for the local model: DSPy 3.4.1's default lm15 engine sends "
                      "max_completion_tokens, which llama.cpp's server ignores (it generates to the context "
                      "limit); litellm sends max_tokens")


@dataclass(frozen=True)
class Backend:
    kind: str
    name: str  # what the record's `lm` says
    api_base: str | None = None  # hosted only: the user's server

    @property
    def in_process(self) -> bool:
        return self.kind == OFFLINE

    @property
    def simulated(self) -> bool:
        """The offline brain answers (in-process or over HTTP): scores show that an optimizer worked, not quality."""
        return self.kind in (OFFLINE, OFFLINE_HTTP)

    @property
    def keyless(self) -> bool:
        """No key and no network beyond loopback: secrets are kept from the run and the network guard is on."""
        return self.kind != HOSTED

    @property
    def started_by_harness(self) -> bool:
        return self.kind in (OFFLINE_HTTP, LOCAL)

    @property
    def record_kind(self) -> str:
        return {OFFLINE: "offline", OFFLINE_HTTP: "offline-http", LOCAL: "local", HOSTED: "real"}[self.kind]

    def default_price(self) -> str | None:
        """The model whose prices price the tokens unless --price-as says otherwise (None: left unpriced)."""
        return DEFAULT_PRICE_MODEL if self.simulated else None

    def model_for(self, task: str) -> str:
        """The model name DSPy sends for `task`."""
        if self.kind == OFFLINE_HTTP:
            from harness.lm.serve import model_name

            return f"openai/{model_name(task)}"
        if self.kind == LOCAL:
            return f"openai/{self.name.split('/', 1)[1]}"
        return self.name

    def client_kwargs(self) -> dict[str, Any]:
        """dspy.LM keyword arguments this kind needs beyond the model and API base."""
        if self.kind == LOCAL:
            return {"engine": "litellm", "max_tokens": LOCAL_MAX_TOKENS}
        return {}

    def workaround(self) -> str | None:
        return LITELLM_WORKAROUND if self.kind == LOCAL else None


def kind_of(lm: str | None) -> str:
    """The backend kind an `lm` string names, without checking it (for reading reports and records)."""
    if lm in (None, "", OFFLINE, OFFLINE_MODEL):
        return OFFLINE
    if lm == OFFLINE_HTTP:
        return OFFLINE_HTTP
    return LOCAL if lm.startswith(f"{LOCAL}/") else HOSTED


def backend_of(lm: str | None, api_base: str | None = None) -> Backend:
    """The backend `--lm` names, checked before anything runs (one-line errors)."""
    kind = kind_of(lm)
    if kind == OFFLINE:
        if api_base:
            raise HarnessError("--api-base needs --lm: name the model the server serves (openai/<name>)")
        return Backend(OFFLINE, OFFLINE_MODEL)
    if kind == OFFLINE_HTTP:
        return Backend(OFFLINE_HTTP, OFFLINE_HTTP)
    if kind == LOCAL:
        from harness.lm.local import get_model

        get_model(lm.split("/", 1)[1])
        if api_base:
            raise HarnessError(f"--lm {lm} is a model the harness serves itself: leave out --api-base (or name "
                               "the server's command with --lm-server)")
        return Backend(LOCAL, lm)
    from harness.lm.real import check_model_string

    check_model_string(lm)
    return Backend(HOSTED, lm, api_base)


def prompt_lm_option(model: str | None, api_base: str | None, price_as: str | None, lm: str | None,
                     lm_api_base: str | None) -> dict[str, Any]:
    """--prompt-lm, --prompt-api-base and --prompt-price-as as a run's ``options["prompt_lm"]``, checked before
    anything runs (one-line errors). The prompt LM is a hosted model (or the user's own server at
    --prompt-api-base) beside a *served* run LM: both are then counted by DSPy's usage tracker and callbacks, each
    call once, the prompt LM's share kept apart (harness.lm.usage.PromptRole)."""
    if not model:
        raise HarnessError("--prompt-api-base and --prompt-price-as need --prompt-lm: name the prompt LM "
                           "(provider/model)")
    if kind_of(model) != HOSTED:
        raise HarnessError(f"--prompt-lm {model}: name a hosted model as dspy.LM takes it (provider/model; for a "
                           "server of your own, --prompt-api-base URL)")
    if backend_of(lm, lm_api_base).in_process:
        raise HarnessError("--prompt-lm needs a served --lm (a hosted model, local/<name> or offline-http): the "
                           "offline LM in this process counts its calls in its own engine, apart from the counting "
                           "that a served prompt LM goes through, so the two could not be told apart exactly")
    from harness.lm.pricing import price_of
    from harness.lm.real import check_model_string

    check_model_string(model)
    if price_as:
        price_of(price_as)  # an unknown price: a one-line error now
    return {k: v for k, v in (("model", model), ("api_base", api_base), ("price_as", price_as)) if v}


@contextlib.contextmanager
def serve(backend: Backend, out: Path, price_as: str | None = None, server_command: str | None = None,
          say: Callable[[str], None] = lambda m: None) -> Iterator[Any]:
    """While inside: the server a started-by-harness backend needs, a harness.lm.serving.Served (None for the
    others); runs reach it at its ``api_base`` and measure their share with its ``window()``. Stopped on leaving,
    on Ctrl-C and on a crash; the server's own log goes to OUT/logs/lm-server.log."""
    if not backend.started_by_harness:
        yield None
        return
    from harness.lm.serving import Served, command_from

    log = Path(out) / "logs" / "lm-server.log"
    threads = os.cpu_count() or 1
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1"}
    if backend.kind == OFFLINE_HTTP:
        cmd = [sys.executable, "-m", "harness.lm.serve", "--port", "{port}",
               "--price-as", price_as or DEFAULT_PRICE_MODEL]
        if server_command:
            cmd = command_from(server_command)
        served = Served(cmd, kind="offline-http", model=OFFLINE_HTTP, log_path=log, env=env, say=say,
                        settings={"tokenizer": price_as or DEFAULT_PRICE_MODEL})
    else:
        from harness.lm import local

        model = local.get_model(backend.name.split("/", 1)[1])
        n_ctx = 8192
        settings = {"n_ctx": n_ctx, "n_threads": threads, "max_tokens": LOCAL_MAX_TOKENS, "engine": "litellm",
                    "eval_threads": 1, "params_m": model.params_m, "instruct": model.instruct}
        asked = server_command.strip() if server_command else None
        engine = local.server_engine(asked) if asked in (None, local.TRANSFORMERS) else "command"
        cwd = None
        if engine == "command":
            cmd, kind, version, gguf_name = command_from(server_command), "command", None, None
            settings = {"max_tokens": LOCAL_MAX_TOKENS, "engine": "litellm", "eval_threads": 1}
        elif engine == local.TRANSFORMERS:  # no compiler for llama.cpp here, or asked for
            if not asked:
                say("llama.cpp is not installed and cannot be built here (no cmake or C/C++ compiler): serving "
                    f"{backend.name} with transformers serve instead (no compile; slower per call)")
            cmd, cwd = local.transformers_server(model, say)
            kind, version, gguf_name = local.TRANSFORMERS, local.transformers_version(), None
            settings = {"max_tokens": LOCAL_MAX_TOKENS, "engine": "litellm", "eval_threads": 1, "dtype": "float32",
                        "params_m": model.params_m, "instruct": model.instruct,
                        "chose": "asked (--lm-server transformers)" if asked else "no compiler for llama.cpp"}
        else:
            gguf = local.ensure_installed(model, say)
            cmd, kind = local.server_command(model, gguf, 0, threads, n_ctx), local.LLAMA_CPP
            cmd[cmd.index("--port") + 1] = "{port}"
            version, gguf_name = local.server_version(), gguf.name
        served = Served(cmd, kind=kind, model=backend.name, model_file=gguf_name, version=version,
                        settings=settings, log_path=log, env=env, say=say, cwd=cwd)
    with served:
        yield served
