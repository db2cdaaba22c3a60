"""`harness estimate`: what each optimizer will cost on the user's own program, before a paid call.

Each named strategy (default: every prompt strategy that runs on the program) compiles the user's program on
the user's data with the user's metric, each in its own measured process, against the offline LM: it costs
nothing, counts every call and token exactly where served, and answers the program's output fields right at
a stated rate (``--pass-rate``; harness.tasks.user.DataOracle), so the optimizer's search takes the turns it
would with a model of that accuracy. Printed per strategy: the optimization's LM calls and tokens (the
compile phase), its spend at each ``--price-as`` price, its time at a stated seconds per call and
concurrency, what its calls scale with, and what each later call of the optimized program costs. Every
figure is a projection from that offline run, and says so.

``--against RUN_OUT`` puts the figures of a real run of the same program (``harness bench --program ...
--lm X --out RUN_OUT``) beside the estimate, with their ratio.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from harness import registry
from harness.errors import HarnessError
from harness.files import OutLock, atomic_write_json, atomic_write_text, ensure_writable
from harness.helpfmt import HelpFormatter
from harness.lm.pricing import price_of
from harness.load import load_record, load_report, read_calibration
from harness.record import RunRecord
from harness.runner import RunSpec, run_one, stop_on_signals
from harness.tasks.user import DEFAULT_PASS_RATE, ProgramSpec, add_arguments, build_task

DEFAULT_PRICES = ("openai/gpt-4o-mini", "openai/gpt-4o")
DEFAULT_SECONDS_PER_CALL = 2.0


@dataclass
class Line:
    """One strategy's projected cost."""

    strategy: str
    status: str
    compile_calls: int | None
    input_tokens: int | None
    output_tokens: int | None
    optimizer_calls: int | None  # of compile_calls: the optimizer's own prompts (a prompt/reflection LM's share)
    optimizer_tokens: tuple[int, int] | None  # their (input, output) tokens
    spend: dict[str, float]  # price model -> USD for the compile phase (the optimizer's prompts at --prompt-price-as)
    hosted_s: float | None  # compile calls x seconds per call / concurrency
    per_question_before: tuple[float, float] | None  # (LM calls, tokens) per question before optimizing
    per_question_after: tuple[float, float] | None  # and after: demos lengthen prompts, an ensemble calls k times
    score_before: float | None
    score_after: float | None
    scales_with: str
    run_id: str
    error: str | None = None


def _per_question(rec: RunRecord, phase: str) -> tuple[float, float] | None:
    """(LM calls, tokens) per question the program answered in an evaluation phase."""
    p = rec.phase(phase)
    if p is None or not p.n_examples or p.usage.input_tokens is None or p.usage.output_tokens is None:
        return None
    return p.usage.lm_calls / p.n_examples, (p.usage.input_tokens + p.usage.output_tokens) / p.n_examples


def line_of(rec: RunRecord, prices: list[str], seconds_per_call: float, concurrency: int,
            prompt_price: str | None = None) -> Line:
    strategy = registry.strategies().get(rec.strategy)
    comp = rec.phase("compile")
    calls = comp.usage.lm_calls if comp is not None else None
    tin = comp.usage.input_tokens if comp is not None else None
    tout = comp.usage.output_tokens if comp is not None else None
    opt = (rec.extra.get("optimizer_prompts") or {}).get("compile") or {}
    o_calls, o_in, o_out = opt.get("lm_calls"), opt.get("input_tokens") or 0, opt.get("output_tokens") or 0
    spend = {}
    if tin is not None and tout is not None:
        for model in prices:
            prompts = price_of(prompt_price or model)
            spend[model] = price_of(model).cost(tin - o_in, tout - o_out) + prompts.cost(o_in, o_out)
    return Line(strategy=rec.strategy, status=rec.status, compile_calls=calls, input_tokens=tin, output_tokens=tout,
                optimizer_calls=o_calls, optimizer_tokens=(o_in, o_out) if o_calls is not None else None,
                spend=spend, hosted_s=None if calls is None else calls * seconds_per_call / concurrency,
                per_question_before=_per_question(rec, "eval_before"),
                per_question_after=_per_question(rec, "eval_after"),
                score_before=rec.score_before, score_after=rec.score_after,
                scales_with=(strategy.scales_with if strategy is not None else "") or "-", run_id=rec.run_id,
                error=rec.error)


def _money(x: float | None) -> str:
    if x is None:
        return "-"
    return f"${x:,.4f}" if x < 1 else f"${x:,.2f}"


def _duration(s: float | None) -> str:
    if s is None:
        return "-"
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def _n(x: float | None) -> str:
    return "-" if x is None else f"{x:,.0f}"


def render(lines: list[Line], *, task, prices: list[str], seconds_per_call: float, concurrency: int,
           against: dict[str, RunRecord] | None = None, against_label: str = "", prompt_price: str | None = None,
           calibrated: str | None = None, sizes: dict[str, int] | None = None, profile: str = "standard",
           measured: str | None = None) -> str:
    used = ", ".join(f"{n} {k[2:]}" for k, n in (sizes or {}).items() if n is not None)
    head = [f"# What each optimizer will cost on {task.name}", "",
            f"Program `{task.program_doc}`, metric `{task.metric_name}`, data: {task.split_note}"
            + (f"; the first {used} rows used (`--n-*`)" if used else "") + f". Budgets: the {profile} profile's.", "",
            f"**Projections**, from one run of each optimizer against the offline LM (it costs nothing and counts "
            f"every call and token where served), answering the program's output fields right at "
            + (f"a measured rate of {task.pass_rate:.0%} under a bare prompt and with the same shares of answers in no "
               f"format the adapter parses (`--calibrate-with`: {measured}; good demos raise the rate as they would "
               f"a model's)" if measured else
               f"a stated rate of {task.pass_rate:.0%} under a bare prompt (`--pass-rate`; good demos raise it as they "
               f"would a model's)" + (f", and with {calibrated}'s measured share of answers in no format the adapter "
                                      "parses (`--offline-calibration`)" if calibrated else "")) + ". "
            f"A real model's calls differ where it fails the adapter's format (each such answer is asked again) or "
            f"is more or less accurate than the stated rate. Tokens are counted with {prices[0]}'s tokenizer; spend "
            f"is those tokens at each model's price in DSPy's bundled table"
            + (f", the optimizer's own prompts at {prompt_price}'s (`--prompt-price-as`)" if prompt_price else "")
            + f". Calls in brackets: the program's signatures (the task LM, or a teacher) + the optimizer's own "
            f"prompts (instruction proposals, reflections, rules: what a prompt or reflection LM would answer). "
            f"Time: calls x {seconds_per_call:g} s per call (an assumption: `--seconds-per-call`) / {concurrency} "
            f"at a time (`--concurrency`).", ""]
    cols = ["strategy", "status", "LM calls (optimizing: program + prompts)", "input tokens", "output tokens",
            *[f"spend at {m}" for m in prices], "hosted time", "each later question: calls, tokens (before -> after)",
            "calls scale with"]
    rows = []
    for ln in lines:
        b, a = ln.per_question_before, ln.per_question_after
        per = f"{b[0]:.3g}, {b[1]:,.0f} -> {a[0]:.3g}, {a[1]:,.0f}" if b and a else "-"
        why = (ln.error or "").strip().split("\n")[0][:200].replace("|", "/")  # (its whole line: it says what to do)
        status = ln.status if ln.status == "ok" else f"{ln.status}: {why}"
        split = (f" ({ln.compile_calls - ln.optimizer_calls:,} + {ln.optimizer_calls:,})"
                 if ln.compile_calls and ln.optimizer_calls is not None else "")
        rows.append([ln.strategy, status, _n(ln.compile_calls) + split, _n(ln.input_tokens), _n(ln.output_tokens),
                     *[_money(ln.spend.get(m)) for m in prices], _duration(ln.hosted_s), per, ln.scales_with])
    out = head + _table(cols, rows) + [""]
    if against:
        out += [f"## Against a real run ({against_label})", "",
                "The same program, data and strategies run against a real LM; its compile-phase calls and tokens as "
                "counted where they were served. Ratio: real / estimate.", ""]
        rows = []
        for ln in lines:
            rec = against.get(ln.strategy)
            comp = rec.phase("compile") if rec is not None else None
            if comp is None:
                rows.append([ln.strategy, _n(ln.compile_calls), "-", "-", _n(_tok(ln)), "-", "-",
                             "no ok run" if rec is None else rec.status])
                continue
            real_tok = (None if comp.usage.input_tokens is None or comp.usage.output_tokens is None
                        else comp.usage.input_tokens + comp.usage.output_tokens)
            rows.append([ln.strategy, _n(ln.compile_calls), _n(comp.usage.lm_calls),
                         _ratio(comp.usage.lm_calls, ln.compile_calls), _n(_tok(ln)), _n(real_tok),
                         _ratio(real_tok, _tok(ln)), rec.status])
        out += _table(["strategy", "calls, estimate", "calls, real", "ratio", "tokens, estimate", "tokens, real",
                       "ratio", "real run"], rows) + [""]
    return "\n".join(out)


def _tok(ln: Line) -> int | None:
    return None if ln.input_tokens is None or ln.output_tokens is None else ln.input_tokens + ln.output_tokens


def _ratio(real: float | None, est: float | None) -> str:
    if real is None or not est:
        return "-"
    return f"{real / est:.2f}x"


def _table(cols: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols), *("| " + " | ".join(r) + " |" for r in rows)]


def real_runs(folder: Path, task: str) -> dict[str, RunRecord]:
    """strategy -> the record of a real run of this task in folder/runs, or in folder/report.json where runs/ is
    not there (a committed results folder keeps only its report): an ok one first, then the latest repeat; runs
    with --set settings or a --prompt-lm left out."""
    runs, report = Path(folder) / "runs", Path(folder) / "report.json"
    if runs.is_dir():
        records = [load_record(path) for path in sorted(runs.glob("*.json"))]
    elif report.is_file():
        records = list(load_report(report).runs)
    else:
        raise HarnessError(f"--against {folder}: no runs/ folder or report.json (make them with `harness bench "
                           f"--program ... --lm X --out {folder}`)")
    out: dict[str, RunRecord] = {}
    for rec in records:
        if rec.task != task or rec.key[0] != rec.strategy:  # (a variant is not the strategy the estimate ran)
            continue
        if rec.strategy not in out or (rec.status == "ok" and out[rec.strategy].status != "ok") or \
                (rec.status == out[rec.strategy].status and rec.repeat > out[rec.strategy].repeat):
            out[rec.strategy] = rec
    if not out:
        raise HarnessError(f"--against {folder}: no run of {task} there")
    return out


SIZES = ("n_train", "n_dev", "n_test")


def matched_workload(against: dict[str, RunRecord], folder: str, profile: str | None,
                     sizes: dict[str, int | None]) -> tuple[str, dict[str, int]]:
    """The profile and split sizes the real runs used, which the estimate must use too: taken from the runs where
    not given, and a one-line error where given otherwise (an estimate of another workload is no check)."""
    seen = {(r.profile, *(getattr(r, k) for k in SIZES)) for r in against.values()}
    if len(seen) > 1:
        raise HarnessError(f"--against {folder}: its runs used different profiles or split sizes "
                           f"({sorted(seen, key=str)}); name a folder of one workload")
    real_profile, *real_sizes = seen.pop()
    if profile is not None and profile != real_profile:
        raise HarnessError(f"--against {folder}: its runs used --profile {real_profile}, not {profile} "
                           f"(leave --profile out to use theirs)")
    out = {}
    for key, real in zip(SIZES, real_sizes):
        if sizes.get(key) is not None and real is not None and sizes[key] != real:
            raise HarnessError(f"--against {folder}: its runs had {real} {key[2:]} examples, not "
                               f"--{key.replace('_', '-')} {sizes[key]} (leave it out to use theirs)")
        if real is not None:
            out[key] = real
    return real_profile, out


def measure_model(lm: str, api_base: str | None, task, spec: ProgramSpec, profile: str, n: int, out: Path,
                  say) -> tuple[float, dict[str, Any], str]:
    """(pass rate, calibration, how it was measured): the bare program on `n` of the user's rows (test rows first,
    then dev, then train: with no demos any row will do, and a small test split alone measures rates too coarsely)
    against the real LM `lm` (its eval_before phase only, in its own measured run): the share of its parsed answers
    the metric passes, the share of ChatAdapter answers not in its format, and of JSONAdapter answers not JSON."""
    from harness.lm.backend import backend_of, serve

    backend = backend_of(lm, api_base)
    if backend.simulated:
        raise HarnessError(f"--calibrate-with {lm}: name a real model (local/<name> or provider/model); the offline "
                           "LM is what is being calibrated")
    run = RunSpec(strategy="LabeledFewShot", task=task.name, profile=profile, lm=lm, api_base=api_base,
                  options={"program": replace(spec, every_row_tests=True).as_dict(), "n_train": 1, "n_dev": 1,
                           "n_test": n}, score="before")
    n = min(n, len(task.rows("test")) + len(task.rows("dev")) + len(task.rows("train")))
    say(f"measuring {lm} on the bare program: {n} rows (about {n}-{3 * n} calls) ...")
    with serve(backend, out, None, None, say) as served:
        rec = run_one(run, out / "calibration", served=served)
    ph = rec.phase("eval_before")
    if ph is None or not ph.n_examples or ph.lm_failures is None:
        raise HarnessError(f"measuring {lm} on the bare program ended {rec.status} before it answered: "
                           f"{rec.error or 'no evaluation'} (see {out / 'calibration' / 'logs'})")
    f = ph.lm_failures
    calls, fallbacks, parse = ph.usage.lm_calls, f.adapter_fallbacks, f.by_kind.get("parse", 0)
    errored = f.errored_examples.get("eval_before", 0)
    right = round((rec.score_before or 0) / 100 * ph.n_examples)
    parsed = ph.n_examples - errored
    rate = right / parsed if parsed else 0.0
    chat = calls - fallbacks  # each fallback is one more (JSONAdapter) call
    cal = {"model": lm, "chat_format_fail": round(fallbacks / chat, 4) if chat else 0.0,
           "json_fail": round(parse / fallbacks, 4) if fallbacks else 0.0}
    how = (f"measured with {lm} on the bare program, {ph.n_examples} rows (test rows first): {right} of {parsed} "
           f"parsed answers right ({rate:.0%}), {fallbacks} of {chat} ChatAdapter answers not in its format, "
           f"{parse} of {fallbacks} JSONAdapter answers not JSON ({calls} calls, run {rec.run_id} in {out / 'calibration'})")
    say(how)
    return rate, cal, how


def add_parser(sub) -> None:
    p = sub.add_parser(
        "estimate", formatter_class=HelpFormatter,
        help="what each optimizer will cost on YOUR program, before any paid call (offline, projected)",
        description="Run each optimizer on your program, data and metric against the offline LM (free, exact "
                    "counts, a stated accuracy) and print its LM calls, tokens, spend at each price and time: a "
                    "projection before you spend anything.")
    add_arguments(p, required=True)
    p.add_argument("--strategy", default=None, help="comma list (default: every prompt strategy that runs on it)")
    p.add_argument("--price-as", default=",".join(DEFAULT_PRICES), help="comma list of provider/model prices")
    p.add_argument("--prompt-price-as", default=None, metavar="MODEL",
                   help="price the optimizer's own prompts (proposals, reflections) at this model's price: a strong "
                        "prompt/reflection LM beside a cheap task LM (default: each --price-as model for both)")
    p.add_argument("--pass-rate", type=float, default=None,
                   help=f"the share of the program's answers the offline LM gets right under a bare prompt (the "
                        f"accuracy you expect of your model), 0-1 (default: {DEFAULT_PASS_RATE}, or measured with "
                        f"--calibrate-with)")
    p.add_argument("--calibrate-with", default=None, metavar="LM",
                   help="measure the accuracy and format failures from a few real calls instead of stating them: "
                        "the bare program on --calibrate-n rows with this LM (local/<name>, which the harness "
                        "serves, or a hosted provider/model: billed), then the offline LM answers at those rates")
    p.add_argument("--calibrate-api-base", default=None, metavar="URL",
                   help="base URL of the OpenAI-compatible server of --calibrate-with")
    p.add_argument("--calibrate-n", type=int, default=10, metavar="N",
                   help="rows the bare program answers with --calibrate-with (test rows first, then dev and train "
                        "rows; about N to 3N calls)")
    p.add_argument("--offline-calibration", default=None, metavar="FILE",
                   help="the offline LM answers with a real model's measured format failures and accuracy (the "
                        "calibration.json of `harness fidelity`), so that the estimate counts that model's fallback "
                        "calls")
    p.add_argument("--profile", default=None,
                   help="the optimizers' budgets: standard (each library's defaults), quick or local (small ones); "
                        "default: standard, or the --against runs' profile")
    p.add_argument("--seconds-per-call", type=float, default=DEFAULT_SECONDS_PER_CALL,
                   help="a hosted call's latency, for the projected time (an assumption, stated as one)")
    p.add_argument("--concurrency", type=int, default=1, help="calls in flight at once, for the projected time")
    for split in ("train", "dev", "test"):
        p.add_argument(f"--n-{split}", type=int, default=None, metavar="N",
                       help=f"the first N {split} rows (default: all, or as many as the --against runs had)")
    p.add_argument("--against", default=None, metavar="RUN_OUT",
                   help="a bench folder with real runs of the same program: their calls and tokens beside the "
                        "estimate, which then uses their profile and split sizes")
    p.add_argument("--out", default=None, help="folder for the runs, estimate.md and estimate.json (default: "
                                               "results/estimate/<name>)")


def main(args: argparse.Namespace) -> int:
    if args.pass_rate is not None and not 0 <= args.pass_rate <= 1:
        raise HarnessError(f"--pass-rate must be between 0 and 1, got {args.pass_rate}")
    if args.seconds_per_call <= 0 or args.concurrency < 1:
        raise HarnessError("--seconds-per-call must be above 0 and --concurrency 1 or more")
    prices = [m.strip() for m in args.price_as.split(",") if m.strip()]
    if not prices:
        raise HarnessError("--price-as names no model")
    for m in [*prices, *([args.prompt_price_as] if args.prompt_price_as else [])]:
        price_of(m)  # an unknown price is a one-line error before anything runs
    if args.calibrate_with and (args.pass_rate is not None or args.offline_calibration):
        raise HarnessError("--calibrate-with measures the pass rate and format failures: leave out --pass-rate and "
                           "--offline-calibration")
    if args.calibrate_n < 1:
        raise HarnessError(f"--calibrate-n must be 1 or more, got {args.calibrate_n}")
    pass_rate = DEFAULT_PASS_RATE if args.pass_rate is None else args.pass_rate
    spec = ProgramSpec.from_args(args.program, args.data, args.metric, pass_rate, args.name)
    task = registry.use_task(build_task(spec))
    if args.profile is not None:
        registry.get_profile(args.profile)
    names = registry.split_names(args.strategy, "strategy")
    known = registry.strategies()
    for n in names or []:
        registry.get_strategy(n)
    names = names or [n for n, s in known.items() if s.kind == "prompt" and not n.startswith("_")]
    skipped = [n for n in names if not known[n].runs_on(task.name)]
    names = [n for n in names if known[n].runs_on(task.name)]
    if not names:
        raise HarnessError(f"none of the strategies runs on {task.name}")
    sizes = {key: getattr(args, key) for key in SIZES}
    for key, n in sizes.items():
        if n is not None and n < 1:
            raise HarnessError(f"--{key.replace('_', '-')} must be 1 or more, got {n}")
    profile = args.profile or "standard"
    against = None
    if args.against:
        against = real_runs(Path(args.against), task.name)
        profile, matched = matched_workload(against, args.against, args.profile, sizes)
        sizes.update(matched)
    options: dict = {"program": spec.as_dict(), **{k: n for k, n in sizes.items() if n is not None}}
    if args.offline_calibration:
        options["offline_calibration"] = read_calibration(args.offline_calibration)
    out = ensure_writable(Path(args.out or f"results/estimate/{task.name}"))
    say = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    measured = None
    if args.calibrate_with:
        with OutLock(out), stop_on_signals():
            rate, cal, measured = measure_model(args.calibrate_with, args.calibrate_api_base, task, spec, profile,
                                                args.calibrate_n, out, say)
        spec = replace(spec, pass_rate=rate)
        task = registry.use_task(build_task(spec))
        options.update(program=spec.as_dict(), offline_calibration=cal)
    if skipped:
        say(f"left out (they run only on their own tasks): {', '.join(skipped)}")
    say(f"estimating {len(names)} optimizers on {task.name} ({task.split_note}) against the offline LM, "
        f"{task.pass_rate:.0%} right under a bare prompt ...")
    lines: list[Line] = []

    def write() -> str:
        """estimate.md and .json with the strategies measured so far (rewritten whole after each, so that an
        interrupted estimate keeps every line it finished)."""
        text = render(lines, task=task, prices=prices, seconds_per_call=args.seconds_per_call,
                      concurrency=args.concurrency, against=against, against_label=args.against or "",
                      prompt_price=args.prompt_price_as,
                      calibrated=(options.get("offline_calibration") or {}).get("model"), sizes=sizes,
                      profile=profile, measured=measured)
        if len(lines) < len(names):
            text += f"\n_Partial: {len(lines)} of {len(names)} strategies estimated so far._\n"
        atomic_write_text(out / "estimate.md", text + "\n")
        atomic_write_json(out / "estimate.json", {
            "schema_version": 1, "kind": "dspy-resource-bench/estimate", "task": task.name,
            "program": spec.as_dict(), "split": task.split_note, "pass_rate": task.pass_rate, "profile": profile,
            "sizes": {k: n for k, n in sizes.items() if n is not None}, "prices": prices,
            "prompt_price": args.prompt_price_as, "seconds_per_call": args.seconds_per_call,
            "concurrency": args.concurrency, "complete": len(lines) == len(names),
            "calibration": options.get("offline_calibration"), "measured": measured,
            "projected_from": "one run per strategy against the offline LM (harness.tasks.user.DataOracle)",
            "strategies": [asdict(ln) for ln in lines]})
        return text

    with OutLock(out), stop_on_signals():
        for i, name in enumerate(names, 1):
            rec = run_one(RunSpec(strategy=name, task=task.name, profile=profile, price_as=prices[0],
                                  options=options), out)
            ln = line_of(rec, prices, args.seconds_per_call, args.concurrency, args.prompt_price_as)
            lines.append(ln)
            say(f"[{i}/{len(names)}] {name}: {rec.status}, {_n(ln.compile_calls)} calls, "
                f"{_n(_tok(ln))} tokens, {_money(ln.spend.get(prices[0]))} at {prices[0]} (projected)")
            text = write()
    print(text)
    print(f"\nwrote {out / 'estimate.md'} and estimate.json")
    failed = [ln.strategy for ln in lines if ln.status != "ok"]
    if failed:
        say(f"error: {len(failed)} of {len(lines)} estimates did not end ok: {', '.join(failed)} (see {out}/logs)")
        return 1
    return 0

