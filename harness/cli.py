"""`python -m harness`: run, list, report, check and compare DSPy optimizer resource costs."""

from __future__ import annotations

import argparse
import os
import sys
import urllib.parse
from pathlib import Path

from harness import estimate, fidelity, matrix, scaling
from harness.helpfmt import HelpFormatter
from harness.errors import HarnessError
from harness.redact import scrub
from harness.strategies.gepa import QUICK_METRIC_CALLS, budget_options
from harness.tasks.user import add_arguments as add_program_arguments

EPILOG = """\
examples:
  python -m harness list
  python -m harness estimate --program myprog.py:make_program --data data.jsonl --metric myprog.py:metric
  python -m harness run --strategy MIPROv2 --task math --profile quick
  python -m harness bench --profile quick --strategy COPRO,SIMBA        (what `make bench` runs)
  python -m harness report results/latest
  python -m harness claims results/latest/report.json
  python -m harness compare results/baseline/report.json results/latest/report.json
  python -m harness check --baseline results/baseline/report.json --current results/latest/report.json

Offline by default: no key, no network. Name a real LM with --lm (e.g. openai/gpt-4o-mini, key from
OPENAI_API_KEY) or a local OpenAI-compatible server with --lm openai/<model> --api-base http://127.0.0.1:8000/v1.
"""


def _add_run_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("LM and limits")
    g.add_argument("--lm", default=None,
                   help="the LM: a hosted one as dspy.LM takes it (provider/model); local/smollm2-135m or "
                        "local/gemma3-270m, a real model the harness installs on first use, serves on 127.0.0.1 and "
                        "stops; offline-http, the offline LM served over loopback HTTP; default: the embedded "
                        "offline LM, in-process")
    g.add_argument("--api-base", default=None,
                   help="base URL of an OpenAI-compatible server for --lm")
    g.add_argument("--lm-server", default=None, metavar="COMMAND",
                   help="--lm local/<name>: start this OpenAI-compatible server command instead of llama.cpp's "
                        "(quoted, with {port} where the port goes), or 'transformers' for transformers serve (no "
                        "compile; also chosen by itself where llama.cpp cannot be built); the harness still "
                        "health-checks, measures and stops it")
    g.add_argument("--offline-calibration", default=None, metavar="FILE",
                   help="the offline LM answers with a real model's format failures and accuracy, from the "
                        "calibration.json that `harness fidelity` wrote (a stand-in for that model)")
    g.add_argument("--price-as", default=None,
                   help="model whose price (DSPy's bundled table) and tokenizer price the tokens (default: "
                        "openai/gpt-4o-mini for the offline LM, the model itself for --lm)")
    g.add_argument("--timeout", type=_positive("--timeout"), default=None, metavar="SECONDS",
                   help="time limit per run, seconds above 0 (default: per profile)")
    g.add_argument("--max-rss", type=_positive("--max-rss"), default=None, metavar="MB",
                   help="memory cap on each run's process tree, MiB above 0; a run over it ends as 'oom'")
    g.add_argument("--student", default=None,
                   help="weight strategies: the student: tiny (a random toy, the default), local/smollm2-135m or "
                        "local/gemma3-270m (a real pretrained model, made from its GGUF on first use), or a local "
                        "Hugging Face folder")
    g.add_argument("--mode", choices=("full", "lora"), default=None, help="weight strategies: fine-tuning mode")
    g.add_argument("--lm-retries", type=_retries, default=None, metavar="N",
                   help="--lm: times DSPy retries a failed LM call (its num_retries; default 3, waiting 1, 2, 4 s)")
    g.add_argument("--prompt-lm", default=None, metavar="MODEL",
                   help="a second LM that writes the optimizer's prompts where it takes one (COPRO, "
                        "SignatureOptimizer, MIPROv2, SIMBA: prompt_model; GEPA: reflection_lm), a hosted "
                        "provider/model beside a served --lm; its calls, tokens and spend are recorded apart "
                        "(extra.prompt_lm) and priced at its own price")
    g.add_argument("--prompt-api-base", default=None, metavar="URL",
                   help="base URL of the OpenAI-compatible server that serves --prompt-lm")
    g.add_argument("--prompt-price-as", default=None, metavar="MODEL",
                   help="the model whose price prices --prompt-lm's tokens (default: --prompt-lm itself)")
    g = p.add_argument_group("a budget that holds")
    g.add_argument("--max-calls", type=_count_of("--max-calls"), default=None, metavar="N",
                   help="stop each run cleanly at N LM calls (status budget, what it spent kept)")
    g.add_argument("--max-spend", type=_usd, default=None, metavar="USD",
                   help="a real LM, per run: first an offline pre-pass projects the run's spend and a run projected "
                        "over USD is refused; then the run stops cleanly once it has spent USD (status budget); a "
                        "bench may spend up to runs x USD")
    g.add_argument("--over-budget", action="store_true",
                   help="run even when the pre-pass projects more than --max-spend (it still stops at the cap)")

    g = p.add_argument_group("your own program (instead of a shipped task; `harness estimate` projects its cost first)")
    add_program_arguments(g)
    g.add_argument("--pass-rate", type=float, default=None,
                   help="the offline LM only: the share of the program's answers it gets right under a bare prompt")
    g = p.add_argument_group("budgets")
    g.add_argument("--set", action="append", default=None, metavar="STRATEGY.key=value",
                   help="a strategy's setting over the profile's budgets, repeatable: --set MIPROv2.auto=medium "
                        "--set COPRO.breadth=4 (the constructor's or compile()'s keyword); a run with settings is its "
                        "own variant (run id MIPROv2@auto=medium__classify__r0), compared only with the same")
    g.add_argument("--n-train", type=_count_of("--n-train"), default=None, metavar="N",
                   help="train examples (default: the profile's); --n-dev and --n-test likewise")
    g.add_argument("--n-dev", type=_count_of("--n-dev"), default=None, metavar="N", help=argparse.SUPPRESS)
    g.add_argument("--n-test", type=_count_of("--n-test"), default=None, metavar="N", help=argparse.SUPPRESS)
    g.add_argument("--auto", default=None, metavar="PRESET",
                   help="GEPA's auto budget: light, medium or heavy (default: light in the standard profile)")
    g.add_argument("--max-metric-calls", default=None, metavar="N",
                   help=f"GEPA's budget in metric calls, a whole number above 0 (default in the quick profile: "
                        f"{QUICK_METRIC_CALLS}); not with --auto")


def _positive(name: str):
    """An argparse type: a finite number above 0 (refuses nan, inf, 0 and negatives in one line)."""
    from harness.runner import LIMIT_UNITS, check_limits

    def parse(text: str) -> float:
        try:
            value = float(text)
            check_limits(**{LIMIT_UNITS[name][0]: value})
        except (ValueError, HarnessError):
            raise argparse.ArgumentTypeError(f"{name} must be a finite number of {LIMIT_UNITS[name][1]} above 0, "
                                             f"got {text!r}") from None
        return value
    return parse


def _usd(text: str) -> float:
    """An argparse type for --max-spend: a finite number of dollars above 0."""
    import math

    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"--max-spend must be a finite number of dollars above 0, got {text!r}")
    return value


def _count_of(name: str):
    """An argparse type: a whole number, 1 or more."""
    def parse(text: str) -> int:
        if not (text.isascii() and text.isdigit()) or int(text) < 1:
            raise argparse.ArgumentTypeError(f"{name} must be a whole number, 1 or more, got {text!r}")
        return int(text)
    return parse


def _count(text: str) -> int:
    """An argparse type for --repeat: a whole number, 1 or more."""
    from harness.registry import parse_repeat

    try:
        return parse_repeat(text, "--repeat")
    except HarnessError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _retries(text: str) -> int:
    """An argparse type for --lm-retries: a whole number, 0 or more."""
    if not (text.isascii() and text.isdigit()):
        raise argparse.ArgumentTypeError(f"--lm-retries must be a whole number, 0 or more, got {text!r}")
    return int(text)


def _options(args: argparse.Namespace) -> dict:
    """The run's options from the flags; a bad GEPA budget is refused here, before anything runs."""
    student = args.student
    if student and Path(student).is_dir():  # a folder: each run's process starts in a folder of its own
        student = str(Path(student).resolve())
    options = {k: v for k, v in (("student", student), ("mode", args.mode), ("lm_retries", args.lm_retries))
               if v is not None and v != ""}
    if getattr(args, "offline_calibration", None):
        options["offline_calibration"] = _calibration(args.offline_calibration, args.lm)
    program = _program(args)
    if program is not None:
        options["program"] = program
    for key in ("max_calls", "max_spend", "n_train", "n_dev", "n_test"):
        if getattr(args, key, None) is not None:
            options[key] = getattr(args, key)
    if getattr(args, "prompt_lm", None) or getattr(args, "prompt_api_base", None) or \
            getattr(args, "prompt_price_as", None):
        from harness.lm.backend import prompt_lm_option

        options["prompt_lm"] = prompt_lm_option(args.prompt_lm, args.prompt_api_base, args.prompt_price_as, args.lm,
                                                args.api_base)
    if getattr(args, "set", None):
        from harness.registry import parse_settings

        options["set"] = parse_settings(args.set)
    return {**options, **budget_options({"auto": args.auto, "max_metric_calls": args.max_metric_calls})}


def _program(args: argparse.Namespace) -> dict | None:
    """--program, --data and --metric: the user's own program as a task, checked before anything runs."""
    from harness import registry
    from harness.tasks.user import ProgramSpec, build_task

    named = [f for f in ("program", "data", "metric") if getattr(args, f, None)]
    if not named:
        if getattr(args, "pass_rate", None) is not None:
            raise HarnessError("--pass-rate needs --program, --data and --metric")
        return None
    if len(named) < 3:
        missing = [f"--{f}" for f in ("program", "data", "metric") if f not in named]
        raise HarnessError(f"your own program needs --program, --data and --metric: {', '.join(missing)} missing")
    spec = ProgramSpec.from_args(args.program, args.data, args.metric, args.pass_rate, args.name)
    task = registry.use_task(build_task(spec))
    if getattr(args, "task", None) and args.task != task.name:
        raise HarnessError(f"--task {args.task} and --program name two tasks: leave out --task (the program's task "
                           f"is {task.name!r})")
    args.task = task.name
    return spec.as_dict()


def _calibration(path: str, lm: str | None) -> dict:
    """The calibration file `harness fidelity` wrote, checked: only for the offline LM in-process."""
    from harness.lm.backend import OFFLINE, kind_of
    from harness.load import read_calibration

    if kind_of(lm) != OFFLINE:
        raise HarnessError("--offline-calibration calibrates the offline LM: leave out --lm")
    return read_calibration(path)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    from harness import __version__

    try:
        dspy = version("dspy")
    except PackageNotFoundError:
        dspy = "not installed"
    return f"dspy-resource-bench {__version__} (dspy {dspy})"


class Parser(argparse.ArgumentParser):
    """argparse with the harness's error style: one line `error: ...` and exit 2, the usage left to --help."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="python -m harness", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
        description="dspy-resource-bench: measure what each DSPy optimization strategy costs in time, memory, "
                    "GPU, disk, LM calls, tokens and money, and check published claims against the measurements.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument("--version", action="version", version=_version(),
                        help="the harness's version and the DSPy it runs")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    sub.add_parser("list", help="list strategies, tasks and profiles, one line each")

    p = sub.add_parser("run", help="run ONE strategy on ONE task in a fresh, measured process; write its record",
                       formatter_class=HelpFormatter)
    p.add_argument("--strategy", required=True, help="strategy name (see `list`)")
    p.add_argument("--task", default=None, help="task name (see `list`); not with --program")
    p.add_argument("--profile", default="quick", help="quick, standard, local or real-student (see `list`)")
    p.add_argument("--out", default="results/runs", help="folder for runs/<run_id>.json and logs/")
    _add_run_options(p)

    p = sub.add_parser("bench", help="the bench `make bench` runs: every run through pytest-benchmark, then (a whole "
                                     "suite of the quick or standard profile) the memory bench, the scaling runs and "
                                     "the report", formatter_class=HelpFormatter)
    p.add_argument("--profile", default=None, help="quick, standard, local or real-student (see `list`; default: local "
                                                  "with --lm local/<name>, else standard)")
    p.add_argument("--strategy", default=None, help="comma list (default: the profile's)")
    p.add_argument("--task", default=None, help="comma list (default: the profile's)")
    p.add_argument("--out", default="results/latest")
    p.add_argument("--repeat", type=_count, default=1,
                   help="runs per strategy and task, 1 or more (medians and spread in the report)")
    p.add_argument("--resume", action="store_true",
                   help="keep the ok runs OUT already holds; run the missing ones, the ones that did not end ok "
                        "and the unreadable ones")
    p.add_argument("--keep-failed", action="store_true",
                   help="with --resume: keep records that did not end ok instead of running them again "
                        "(the bench still fails on them)")
    p.add_argument("--no-cap", action="store_true",
                   help="a bench on a hosted LM without --max-spend or --max-calls: start without asking")
    p.add_argument("--runs-only", action="store_true",
                   help="a whole suite without its memory bench and scaling runs (a bench of chosen strategies, "
                        "tasks, an LM or a program never runs them)")
    p.add_argument("--jobs", type=_count_of("--jobs"), default=1, metavar="N",
                   help="N runs at once, each still its own measured process tree (CPU time, peak RSS and disk are "
                        "counted per run; each record says how many ran beside it; wall and CPU times, which sharing "
                        "the CPUs raises, are labelled and not gated against a serial bench's); without "
                        "pytest-benchmark's JSON. Not with a server the harness starts (offline-http, local/<name>)")
    p.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="local: runs here; ray: each run a Ray task (1 CPU) that starts the same measured process on "
                        "its node (RAY_ADDRESS: an existing cluster; else a local one). Ray installs on first use")
    _add_run_options(p)

    p = sub.add_parser("report", help="(re)write report.json, report.md, runs.csv and plots from OUT/runs")
    p.add_argument("out", nargs="?", default="results/latest")

    p = sub.add_parser("claims", help="give each claim of the study a verdict from a report")
    p.add_argument("report", help="report.json")
    p.add_argument("--claims", default=None, help="claims file (default: the shipped one)")
    p.add_argument("--format", choices=("md", "json"), default="md")
    p.add_argument("--against-quick", default=None, metavar="QUICK_REPORT",
                   help="for a standard report: list the verdicts this quick report.json judges differently "
                        "(default: the claims file's [assumptions.profiles] quick_reference)")

    p = sub.add_parser("compare", help="compare reports side by side (machines, versions)")
    p.add_argument("reports", nargs="+", help="two or more report.json files or bench folders")
    p.add_argument("--format", choices=("md", "csv", "json"), default="md")

    p = sub.add_parser("check", help="exit 1 if a resource cost regressed beyond its threshold")
    p.add_argument("--baseline", required=True)
    p.add_argument("--current", required=True)
    p.add_argument("--thresholds", default=None,
                   help="TOML thresholds, layered over the shipped harness/thresholds.toml (only the keys it changes)")
    p.add_argument("--confirm", action="store_true",
                   help="re-run each pair whose time, RAM or disk regressed against another machine's baseline or in a "
                        "contended run, and count it only if the re-runs regress too (what `make check` does)")
    p.add_argument("--reruns", type=int, default=2, help="re-runs per pair with --confirm, 1 or more")
    p.add_argument("--only-present", action="store_true",
                   help="check only the baseline's pairs that the current report has (default: a missing pair is an error)")

    p = sub.add_parser("memory", help="fine-tuning memory and speed as a function of model size (make bench-memory)")
    p.add_argument("--out", default="results/latest")
    p.add_argument("--profile", default="standard",
                   help="quick: the 3 smallest CPU sizes (and 0.5B, 1B on a GPU); standard: every size")

    sub.add_parser("schema", help="print the run record's fields, documented")
    scaling.add_parser(sub)
    fidelity.add_parser(sub)
    estimate.add_parser(sub)
    matrix.add_parser(sub)
    return parser


def cmd_list(args: argparse.Namespace) -> int:
    from harness import registry

    print("strategies:")
    for s in registry.strategies().values():
        if not s.name.startswith("_"):
            where = f" [tasks: {', '.join(s.tasks)}]" if s.tasks else ""
            print(f"  {s.name:34s} {s.kind:8s} {s.summary}{where}")
    print("tasks:")
    for t in registry.tasks().values():
        if not t.name.startswith("_"):
            sizes = "/".join(str(t.sizes["standard"][k]) for k in ("train", "dev", "test"))
            print(f"  {t.name:34s} {t.summary} (standard train/dev/test {sizes})")
    print("profiles:")
    for p in registry.PROFILES.values():
        print(f"  {p.name:34s} {p.summary}; default time limit {p.timeout_s:.0f}s per run")
    from harness.lm.local import MODELS

    print("local models (--lm local/<name>, --student local/<name>; installed on first use):")
    for m in MODELS.values():
        print(f"  {'local/' + m.name:34s} {m.summary}, {m.params_m}M parameters"
              + ("" if m.instruct else " (a base model: no chat template)"))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from harness import registry
    from harness.bench import summary_line
    from harness.bench_pytest import check_lm
    from harness.files import OutLock, ensure_writable
    from harness.lm.backend import serve
    from harness.lm.local import prepare_student
    from harness.runner import RunSpec, run_one, spend_guard, stop_on_signals

    profile = registry.get_profile(args.profile)
    strategy = registry.get_strategy(args.strategy)
    options = _options(args)  # (--program names the task)
    if not args.task:
        raise HarnessError("name a task with --task (see `list`), or your own program with --program, --data and "
                           "--metric")
    registry.get_task(args.task)
    if not strategy.runs_on(args.task):
        raise HarnessError(f"{args.strategy} runs only on tasks {', '.join(strategy.tasks or [])}")
    check_lm(args.lm, args.price_as, args.api_base)
    out = ensure_writable(Path(args.out))
    spec = RunSpec(strategy=args.strategy, task=args.task, profile=args.profile, lm=args.lm, api_base=args.api_base,
                   price_as=args.price_as, timeout_s=args.timeout, max_rss_mb=args.max_rss,
                   options=profile.options_for(args.lm, options))

    def say(m: str) -> None:
        print(f"  {m}", file=sys.stderr, flush=True)

    prepare_student(spec.options, say)
    with OutLock(out):
        spend_guard(spec, out, say, over_budget=args.over_budget)  # before the first paid call
    with OutLock(out), stop_on_signals(), serve(spec.backend, out, args.price_as, args.lm_server, say) as served:
        rec = run_one(spec, out, progress=say, served=served)
    print(f"{rec.run_id}: {summary_line(rec)}")
    print(f"record: {out / 'runs' / (rec.run_id + '.json')}")
    return 0 if rec.status == "ok" else 1


def cmd_bench(args: argparse.Namespace) -> int:
    from harness.bench import BenchConfig
    from harness.bench_pytest import run_bench

    _ask_for_a_cap(args)
    if args.profile is None:
        args.profile = "local" if str(args.lm or "").startswith("local/") else "standard"
    options = _options(args)  # (--program names the bench's task)
    cfg = BenchConfig(out=Path(args.out), profile=args.profile, strategies=_names(args.strategy, "strategy"),
                      tasks=_names(args.task, "task"), lm=args.lm, api_base=args.api_base, price_as=args.price_as,
                      lm_server=args.lm_server, repeat=args.repeat, resume=args.resume, keep_failed=args.keep_failed,
                      timeout_s=args.timeout, max_rss_mb=args.max_rss, options=options, over_budget=args.over_budget,
                      jobs=args.jobs, executor=args.executor)
    whole = cfg.whole_suite and not args.runs_only  # the memory bench and scaling runs are of the defaults only
    code = run_bench(cfg)
    if code == 0 and whole:  # the whole suite also measures fine-tuning memory and how cost grows with n_train
        say = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
        say("the memory bench (fine-tuning memory against model size) ...")
        code = cmd_memory(argparse.Namespace(out=args.out, profile=args.profile))
        if code == 0:
            say("the scaling runs (calls and tokens against the train-set size) ...")
            code = scaling.main(argparse.Namespace(out=args.out, profile=args.profile, task=None, strategy=None,
                                                   sizes=None, resume=args.resume))
        if code == 0:
            cmd_report(argparse.Namespace(out=args.out))
    if code == 0:
        print(f"bench done: {Path(args.out) / 'report.md'} (and report.html)", file=sys.stderr, flush=True)
    return code


def _ask_for_a_cap(args: argparse.Namespace) -> None:
    """A bench on a hosted LM (billed: a provider's API, or a server not on this machine) with no --max-spend or
    --max-calls asks before it starts; where nobody can answer (CI, no terminal) it refuses."""
    from harness.lm.backend import HOSTED, kind_of

    if args.max_spend is not None or args.max_calls is not None or args.no_cap:
        return

    def billed(lm: str | None, api_base: str | None) -> bool:
        host = (urllib.parse.urlsplit(api_base).hostname or "") if api_base else ""
        # (your own server on this machine bills nothing)
        return kind_of(lm) == HOSTED and host not in ("127.0.0.1", "localhost", "::1")

    named = [lm for lm, base in ((args.lm, args.api_base), (args.prompt_lm, args.prompt_api_base)) if billed(lm, base)]
    if not named:
        return
    which = " and ".join(named)
    if os.environ.get("CI", "").lower() not in ("", "0", "false", "no") or not sys.stdin.isatty():
        raise HarnessError(f"a bench on {which} is billed and has no cap: give --max-spend USD or --max-calls N "
                           "(each run is then projected offline first and stopped at the cap), or --no-cap")
    answer = input(f"a bench on {which} is billed and has no --max-spend or --max-calls cap. Start it anyway? [y/N] ")
    if answer.strip().lower() not in ("y", "yes"):
        raise HarnessError("not started: give --max-spend USD or --max-calls N")


def _names(value: str | None, what: str) -> list[str] | None:
    from harness.registry import split_names

    return split_names(value, what)


def cmd_report(args: argparse.Namespace) -> int:
    from harness.files import OutLock
    from harness.report import rebuild

    out = Path(args.out)
    if not out.is_dir():
        raise HarnessError(f"{out} does not exist: run `make bench OUT={out}` first")
    with OutLock(out):
        report = rebuild(out)
    print(f"wrote {Path(args.out) / 'report.md'} ({len(report.runs)} runs)")
    return 0


def cmd_claims(args: argparse.Namespace) -> int:
    from harness.claims import main_claims

    return main_claims(args)


def cmd_compare(args: argparse.Namespace) -> int:
    from harness.compare import main_compare

    return main_compare(args)


def cmd_check(args: argparse.Namespace) -> int:
    from harness.check import main_check

    return main_check(args)


def cmd_memory(args: argparse.Namespace) -> int:
    from harness.files import OutLock, ensure_writable
    from harness.registry import get_profile
    from harness.training.memory import main as memory_main
    from harness.training.students import CPU_BENCH_SIZES, GPU_BENCH_SIZES

    get_profile(args.profile)
    out = ensure_writable(Path(args.out))
    sizes = [*CPU_BENCH_SIZES, *GPU_BENCH_SIZES] if args.profile == "standard" else \
        [*CPU_BENCH_SIZES[:3], *GPU_BENCH_SIZES[:2]]
    with OutLock(out):
        return memory_main(["--out", str(out), "--sizes", ",".join(sizes)])


def cmd_schema(args: argparse.Namespace) -> int:
    from harness.record import schema_markdown

    print(schema_markdown())
    return 0


COMMANDS = {"estimate": estimate.main, "matrix": matrix.main, "fidelity": fidelity.main, "list": cmd_list, "run": cmd_run, "bench": cmd_bench, "report": cmd_report, "claims": cmd_claims,
            "compare": cmd_compare, "check": cmd_check, "memory": cmd_memory, "schema": cmd_schema,
            "scaling": scaling.main}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    try:
        return COMMANDS[args.command](args)
    except HarnessError as exc:
        if args.debug:
            raise
        print(f"error: {scrub(str(exc))}", file=sys.stderr)  # no credential is printed either
        return exc.code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - one line, not a traceback, unless --debug
        if args.debug:
            raise
        print(f"error: unexpected {type(exc).__name__}: {scrub(' '.join(str(exc).split()))[:300]} "
              "(run with --debug for the traceback)", file=sys.stderr)
        return 1
