"""Real weight training on the CPU: the objectives, DSPy's provider/job contracts, and the three
weight strategies compiled end to end with a scripted teacher. Offline; about a minute on 2 cores."""

from __future__ import annotations

import os
import re
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import dspy
import pytest
import torch
from dspy.clients.utils_finetune import TrainDataFormat
from dspy.lm15 import Message, Response, TextPart, Usage, response_to_events

from harness.strategies.base import RunContext
from harness.strategies.weights import STRATEGIES
from harness.tasks.base import Task
from harness.training.chat import encode_chat, pad_batch
from harness.training.objectives import group_advantages, sequence_logprobs
from harness.training.provider import ReinforceLimitReached
from harness.training.runtime import StudentRuntime
from harness.training.student_lm import student_lm, tokenizer_corpus
from harness.training.tokenizer import train_tokenizer

# --------------------------------------------------------------------------- a scripted teacher and a toy task


class ScriptedTeacher:
    """Answers ``question -> answer`` ChainOfThought prompts in ChatAdapter format; wrong on a quarter. With
    `unparsable`, the questions about those first numbers get an answer no adapter parses (a weak real model's)."""

    def __init__(self, unparsable: tuple[int, ...] = ()):
        self.calls = 0
        self.unparsable = unparsable

    def complete(self, request):
        self.calls += 1
        user = request.messages[-1].text or ""
        m = re.search(r"What is (\d+) \+ (\d+)\?", user)
        a, b = (int(m.group(1)), int(m.group(2))) if m else (0, 0)
        answer = a + b if (3 * a + b) % 4 else a + b + 1
        text = f"[[ ## reasoning ## ]]\nAdd {a} and {b}.\n\n[[ ## answer ## ]]\n{answer}\n\n[[ ## completed ## ]]"
        if m and a in self.unparsable:
            text = "I think it is a number, probably."
        usage = Usage(input_tokens=len(user.split()), output_tokens=len(text.split()))
        return Response(id=None, model=request.model, message=Message.assistant((TextPart(text),)),
                        finish_reason="stop", usage=usage)

    def stream(self, request):
        return response_to_events(self.complete(request))

    def close(self):
        pass


def metric(example, prediction, trace=None):
    return str(getattr(prediction, "answer", "")).strip() == example.answer


def examples(n: int, offset: int = 0) -> list[dspy.Example]:
    pairs = [((i * 7 + offset) % 10, (i * 3 + offset) % 10) for i in range(n)]
    return [dspy.Example(question=f"What is {a} + {b}?", answer=str(a + b)).with_inputs("question") for a, b in pairs]


def make_program():
    return dspy.ChainOfThought("question -> answer")


TASK = Task(name="toy-add", summary="add two digits", program_doc="ChainOfThought(question -> answer)",
            metric_name="exact", input_keys=("question",), answer_key="answer", make_program=make_program,
            metric=metric, sizes={"quick": {"train": 8, "dev": 4, "test": 4}})


def chat(question: str) -> list[dict[str, str]]:
    sig = make_program().predict.signature
    return dspy.ChatAdapter().format(sig, demos=[], inputs={"question": question})


def completion(reasoning: str, answer: str) -> dict[str, str]:
    sig = make_program().predict.signature
    content = dspy.ChatAdapter().format_assistant_message_content(sig, {"reasoning": reasoning, "answer": answer})
    return {"role": "assistant", "content": content}


@pytest.fixture(scope="session")
def tok_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("tokenizers")


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """A tiny model's kernels are too small to split; on a busy 2-core machine 2 threads are 10-40x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def new_runtime(tmp_path, tok_dir, mode: str = "full") -> StudentRuntime:
    corpus = tokenizer_corpus(make_program(), examples(12))
    return StudentRuntime.create("tiny", corpus=corpus, cache_dir=tok_dir, workdir=tmp_path, mode=mode,
                                 device="cpu", max_new_tokens=24)


def mean_logprob(rt: StudentRuntime, version: str, messages, reply) -> float:
    enc = encode_chat(rt.tokenizer, [*messages, reply], max_len=rt.max_positions, target="last")
    with rt.lock, torch.no_grad():
        rt.activate(version)
        rt.model.eval()
        lp, n = sequence_logprobs(rt.model, *pad_batch([enc], rt.tokenizer.pad_token_id, rt.device))
    return float(lp[0] / n[0])


# --------------------------------------------------------------------------- units


def test_tokenizer_is_deterministic_and_masks_only_the_assistant(tmp_path):
    corpus = tokenizer_corpus(make_program(), examples(6))
    a = train_tokenizer(corpus, tmp_path / "a", merges=300)
    b = train_tokenizer(corpus, tmp_path / "b", merges=300)
    files = [next((tmp_path / d).glob("bpe-*")) / "tokenizer.json" for d in ("a", "b")]
    assert files[0].read_bytes() == files[1].read_bytes()
    assert a.convert_tokens_to_ids("<|end|>") == b.eos_token_id
    enc = encode_chat(a, [*chat("What is 1 + 2?"), completion("Add.", "3")], max_len=4096)
    target = a.decode([i for i, m in zip(enc.ids, enc.mask) if m])
    assert target.startswith("[[ ## reasoning ## ]]") and target.endswith("<|end|>\n")
    assert "<|assistant|>" not in target and "What is" not in target


def test_group_advantages():
    adv = group_advantages([1.0, 0.0, 0.0, 1.0])
    assert adv[0] == pytest.approx(1.0, abs=1e-3) and adv[1] == pytest.approx(-1.0, abs=1e-3)
    assert group_advantages([0.5, 0.5]) == [0.0, 0.0]


# --------------------------------------------------------------------------- GRPO through DSPy's job contract


def test_grpo_step_moves_policy_toward_the_rewarded_completion(tmp_path, tok_dir):
    rt = new_runtime(tmp_path, tok_dir)
    lm = student_lm(rt, temperature=1.0)
    prompt = chat("What is 3 + 4?")
    good, bad = completion("Add 3 and 4.", "7"), completion("Add 3 and 4.", "9")
    job = lm.reinforce(train_kwargs={"max_steps": 5, "learning_rate": 1e-2})  # DSPy calls initialize()
    assert lm.model == job.updater.version  # the LM follows the version being trained (grpo.py:523-536)
    before = mean_logprob(rt, lm.model, prompt, good) - mean_logprob(rt, lm.model, prompt, bad)
    batch_id = job.get_status()["pending_batch_ids"][0]
    group = [{"messages": prompt, "completion": c, "reward": r} for c, r in [(good, 1.0), (bad, 0.0)] * 2]
    job.step(train_data=[{"batch_id": batch_id, "group": group}], train_data_format=TrainDataFormat.GRPO_CHAT)
    after = mean_logprob(rt, lm.model, prompt, good) - mean_logprob(rt, lm.model, prompt, bad)
    assert after > before + 0.05
    assert job.get_status()["pending_batch_ids"] == [batch_id + 1]

    # Serving another version between steps must not lose the training in progress.
    rt.generate(rt.base_name, prompt)
    job.step(train_data=[{"batch_id": batch_id + 1, "group": group}], train_data_format=TrainDataFormat.GRPO_CHAT)
    twice = mean_logprob(rt, lm.model, prompt, good)
    rt.generate(rt.base_name, prompt)
    assert mean_logprob(rt, lm.model, prompt, good) == pytest.approx(twice, abs=1e-6)
    assert mean_logprob(rt, rt.base_name, prompt, good) < twice
    job.terminate()
    assert rt.stats.steps == 2 and rt.stats.param_change_rel > 0 and rt.stats.checkpoint_bytes > 0


def _wait_like_grpo(job, fulfilled: list[int], poll_s: float = 0.05) -> None:
    """dspy/teleprompt/grpo.py:360-370, with a shorter sleep."""

    def any_available_for_step():
        pending = job.get_status()["pending_batch_ids"]
        return bool(set(pending) - set(fulfilled))

    while not any_available_for_step():
        time.sleep(poll_s)


def test_grpo_job_ends_grpos_wait_at_its_limits(tmp_path, tok_dir):
    rt = new_runtime(tmp_path, tok_dir)
    lm = student_lm(rt, temperature=1.0)
    group = [{"messages": chat("What is 1 + 1?"), "completion": completion("Add.", a), "reward": r}
             for a, r in [("2", 1.0), ("5", 0.0)]]

    # Step limit: after its one step the job ends the wait at once.
    job = lm.reinforce(train_kwargs={"max_steps": 1, "time_limit_s": 60})
    job.step([{"batch_id": 0, "group": group}], TrainDataFormat.GRPO_CHAT)
    with pytest.raises(ReinforceLimitReached, match="step limit"):
        _wait_like_grpo(job, fulfilled=[0])

    # Time limit: DSPy never sends the batch it was offered (its id is already "fulfilled").
    job = lm.reinforce(train_kwargs={"max_steps": 10, "time_limit_s": 1.0})
    t0 = time.monotonic()
    with pytest.raises(ReinforceLimitReached, match="time limit"):
        _wait_like_grpo(job, fulfilled=job.get_status()["pending_batch_ids"])
    assert time.monotonic() - t0 < 3.0
    assert job.status()["pending_batch_ids"] == [] and rt.stats.jobs == 2 and rt.stats.checkpoints == 2


# --------------------------------------------------------------------------- SFT through DSPy's finetune contract


def _sft_data(n: int) -> list[dict]:
    return [{"messages": [*chat(ex.question), completion("Add the numbers.", ex.answer)]} for ex in examples(n)]


def test_sft_lowers_the_loss_and_the_same_lm_serves_the_new_weights(tmp_path, tok_dir):
    rt = new_runtime(tmp_path, tok_dir)
    lm = student_lm(rt)
    prompt = chat("What is 2 + 5?")
    before = rt.generate(lm.model, prompt).text
    job = lm.finetune(train_data=_sft_data(8), train_data_format=TrainDataFormat.CHAT,
                      train_kwargs={"epochs": 100, "batch_size": 4, "grad_accum": 1, "max_steps": 25,
                                    "learning_rate": 3e-3})
    tuned = job.result()
    assert isinstance(tuned, dspy.LM) and job.status().value == "succeeded"
    assert tuned.model != lm.model and tuned.engine is lm.engine  # DSPy's lm.copy(model=new_name)
    s = rt.stats
    assert s.steps == 25 and s.loss_last < s.loss_first and s.param_change_rel > 0
    assert s.checkpoint_bytes > 0 and any((tmp_path / "checkpoints").iterdir())
    assert rt.generate(tuned.model, prompt).text != before
    assert rt.generate(lm.model, prompt).text == before  # the untrained version is still served by its name
    program = make_program()
    program.set_lm(tuned)
    with pytest.raises(Exception):  # 25 steps teach little; what matters is that DSPy's call is served
        program(question="What is 2 + 5?")
    assert rt.stats.gen_calls >= 3


def test_lora_trains_only_the_adapters(tmp_path, tok_dir):
    rt = new_runtime(tmp_path, tok_dir, mode="lora")
    names = [n for n, _ in rt.trainable()]
    assert names and all("lora_" in n for n in names)
    assert rt.trainable_params < rt.total_params
    frozen = {n: p.detach().clone() for n, p in rt.model.named_parameters() if not p.requires_grad}
    lm = student_lm(rt)
    lm.finetune(train_data=_sft_data(4), train_data_format=TrainDataFormat.CHAT,
                train_kwargs={"batch_size": 4, "grad_accum": 1, "max_steps": 3}).result()
    assert all(torch.equal(p, frozen[n]) for n, p in rt.model.named_parameters() if not p.requires_grad)
    assert rt.stats.param_change_rel > 0
    assert (tmp_path / "checkpoints" / "local_tiny-ft1" / "adapter_model.safetensors").exists()


def test_a_folder_without_weights_builds_that_architecture_with_random_weights(tmp_path, tok_dir):
    """A model folder of config.json and tokenizer only (what travels to a bare GPU machine: scripts/gpu_pack.sh)
    gives a student of that architecture and size, random-initialised: init "config", not pretrained, and not a
    toy (its time and RAM are that model's size); a folder with weights loads them (init "pretrained")."""
    from harness.record import TrainingInfo, RunRecord  # noqa: F401 - the record reads init

    rt = new_runtime(tmp_path / "toy", tok_dir)
    shape = tmp_path / "shape"
    rt.model.config.save_pretrained(str(shape))
    rt.tokenizer.save_pretrained(str(shape))
    built = StudentRuntime.create(str(shape), corpus=[], cache_dir=tok_dir, workdir=tmp_path / "a", mode="full",
                                  device="cpu")
    assert built.init == "config" and not built.pretrained and built.total_params == rt.total_params
    info = built.training_info()
    assert info.extra["init"] == "config" and info.extra["pretrained"] is False
    rt.model.save_pretrained(str(shape))
    loaded = StudentRuntime.create(str(shape), corpus=[], cache_dir=tok_dir, workdir=tmp_path / "b", mode="full",
                                   device="cpu")
    assert loaded.init == "pretrained" and loaded.pretrained
    same = all(torch.equal(a, b) for a, b in zip(loaded.model.state_dict().values(), rt.model.state_dict().values()))
    assert same and rt.training_info().extra["init"] == "toy"


# --------------------------------------------------------------------------- the three strategies end to end


@pytest.mark.parametrize("strategy", STRATEGIES, ids=[s.name for s in STRATEGIES])
def test_weight_strategy_compiles_end_to_end(strategy, tmp_path, tok_dir):
    teacher = ScriptedTeacher()
    ctx = RunContext(task=TASK, profile="quick", trainset=examples(8), devset=examples(4, offset=5),
                     lm=dspy.LM("offline/scripted", engine=teacher, cache=False), workdir=tmp_path,
                     options={"cache_dir": str(tok_dir), "max_new_tokens": 24, "device": "cpu"})
    program = strategy.prepare(ctx, TASK.make_program())
    assert all(p.lm is ctx.eval_lm for p in program.predictors())
    compiled = strategy.compile(ctx, program)

    info = ctx.training
    assert info is not None and info.jobs >= 1 and info.steps > 0 and info.examples > 0 and info.tokens > 0
    assert info.loss_last < info.loss_first
    assert info.param_change_rel > 0 and info.checkpoint_bytes > 0 and info.train_s > 0
    assert info.total_params == info.trainable_params > 0
    assert teacher.calls > 0
    if strategy.name == "BetterTogether":  # DSPy's teacher= breaks its prompt step: named, not hidden
        assert len(ctx.workarounds) == 1 and "bettertogether.py:316" in ctx.workarounds[0]
        assert not ctx.extra["better_together"]["step_failed"]
    else:
        assert ctx.workarounds == []
    assert compiled.predictors()[0].lm is ctx.eval_lm and ctx.eval_lm.model.startswith("local/tiny")
    assert isinstance(ctx.eval_lm("What is 1 + 1?")[0], str)  # the scored LM is served


def test_bootstrap_finetune_skips_the_examples_its_teacher_could_not_answer(tmp_path, tok_dir):
    """dspy 3.4.1 fails BootstrapFinetune's whole compile when one teacher answer cannot be parsed
    (bootstrap_trace.py:134); the harness's workaround skips those examples, trains on the rest and says so."""
    teacher = ScriptedTeacher(unparsable=(0, 7))  # examples(8) holds questions starting with 0 and 7
    ctx = RunContext(task=TASK, profile="quick", trainset=examples(8), devset=examples(4, offset=5),
                     lm=dspy.LM("offline/scripted", engine=teacher, cache=False), workdir=tmp_path,
                     options={"cache_dir": str(tok_dir), "max_new_tokens": 24, "device": "cpu"}, strategy="BootstrapFinetune")
    strategy = next(s for s in STRATEGIES if s.name == "BootstrapFinetune")
    program = strategy.prepare(ctx, TASK.make_program())
    strategy.compile(ctx, program)
    assert ctx.extra["traces_skipped"] >= 1 and ctx.training.steps > 0
    assert any("bootstrap_trace.py:134" in w and "raise_on_error=False" in w for w in ctx.workarounds)


# --------------------------------------------------------------------------- the memory bench's pieces


def test_memory_bench_imports_neither_dspy_nor_torch_until_a_worker_runs():
    import subprocess
    import sys

    code = ("import sys, harness.training.memory as m; "
            "assert 'dspy' not in sys.modules and 'torch' not in sys.modules, sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=os.path.dirname(os.path.dirname(__file__)))


def test_memory_fit_recovers_bytes_per_parameter():
    from harness.training.memory import MIB, fits, linear_fit

    fit = linear_fit([(1e6, 16e6 + 5e7), (1e7, 16e7 + 5e7), (1e8, 16e8 + 5e7)])
    assert fit["slope"] == pytest.approx(16.0) and fit["r2"] == pytest.approx(1.0)
    entries = [{"device": "cpu", "mode": "full", "status": "ok", "size": f"s{i}", "total_params": n,
                "peak_rss_minus_overhead_mb": 18 * n / MIB} for i, n in enumerate((1e6, 4e7, 3e8))]
    entries.append({"device": "cpu", "mode": "full", "status": "oom", "size": "big"})
    (f,) = fits(entries)
    assert f["bytes_per_param"] == pytest.approx(18.0) and f["points"] == 3 and "big" not in f["sizes"]
