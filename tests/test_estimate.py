"""Your own program: `harness estimate` on a program that is not a shipped task, and the same program run
against another LM (a stand-in server on 127.0.0.1 answering by its own rules), side by side."""

from __future__ import annotations

import json

import pytest

from harness.errors import HarnessError
from harness.lm.pricing import price_of
from harness.load import load_record
from harness.tasks.oracles import norm
from harness.tasks.user import ProgramSpec, build_task
from tests.helpers import ROOT, harness
from tests.openai_server import ChatServer

PROGRAM = ["--program", "tests/fixtures/review_program.py:make_program", "--data", "tests/fixtures/reviews.jsonl",
           "--metric", "tests/fixtures/review_program.py:metric"]
STRATEGIES = "LabeledFewShot,BootstrapFewShot,MIPROv2"
PRICES = "openai/gpt-4o-mini,openai/gpt-4o"


class KeywordModel:
    """A stand-in model that is not the offline LM: it reads the review and answers by a few keywords of its
    own (right on some reviews, wrong on others), whatever the data says."""

    fields = frozenset({"sentiment"})
    hints, hint_phrases, topic = (), (), "product reviews"

    def find(self, inputs):
        return {"id": norm(inputs.get("review", "")), "review": inputs.get("review", "")} if "review" in inputs else None

    def base_p(self, row):
        return 1.0

    def demo_correct(self, row, outputs):
        return True

    def related(self, row, other):
        return False

    def answer(self, prompt, row, skill, rand):
        text = row["review"].lower()
        guess = ("negative" if any(w in text for w in ("broke", "waste", "damaged", "flimsy")) else
                 "positive" if any(w in text for w in ("perfectly", "great", "worth", "sturdy")) else "positive")
        return {"sentiment": guess}


def test_estimate_prints_calls_tokens_and_spend_at_two_prices_beside_a_real_run(tmp_path):
    with ChatServer(KeywordModel()) as srv:  # the program, data and metric against an LM that is not the offline LM
        for name in STRATEGIES.split(","):
            run = harness("run", "--strategy", name, *PROGRAM, "--profile", "quick", "--lm", "openai/keyword-model",
                          "--api-base", srv.base_url, "--price-as", "openai/gpt-4o-mini", "--out", str(tmp_path / "real"))
            assert run.returncode == 0, run.stderr
        served = srv.totals["requests"]
    real = {n: load_record(tmp_path / "real" / "runs" / f"{n}__review_program__r0.json") for n in STRATEGIES.split(",")}
    assert sum(r.lm_calls for r in real.values()) == served  # counted where served
    other = harness("estimate", *PROGRAM, "--profile", "standard", "--against", str(tmp_path / "real"))
    assert other.returncode == 2 and "its runs used --profile quick, not standard" in other.stderr  # not the workload

    est = harness("estimate", *PROGRAM, "--strategy", STRATEGIES, "--price-as", PRICES, "--out", str(tmp_path / "est"),
                  "--against", str(tmp_path / "real"))  # (the runs' profile, quick, and their split sizes)
    assert est.returncode == 0, est.stderr
    assert "# What each optimizer will cost on review_program" in est.stdout and "**Projections**" in est.stdout
    data = json.loads((tmp_path / "est" / "estimate.json").read_text())
    assert data["profile"] == "quick" and data["sizes"] == {"n_train": 27, "n_dev": 9, "n_test": 9} and data["complete"]
    lines = {ln["strategy"]: ln for ln in data["strategies"]}
    assert set(lines) == set(STRATEGIES.split(",")) and all(ln["status"] == "ok" for ln in lines.values())
    assert lines["LabeledFewShot"]["compile_calls"] == 0 and lines["MIPROv2"]["compile_calls"] > 0
    for ln in lines.values():  # spend at each named price: the same tokens at that model's price
        for model in PRICES.split(","):
            assert ln["spend"][model] == pytest.approx(price_of(model).cost(ln["input_tokens"], ln["output_tokens"]))
    mipro = load_record(tmp_path / "est" / "runs" / "MIPROv2__review_program__r0.json")
    prompts = mipro.extra["optimizer_prompts"]["compile"]  # MIPROv2's proposer calls, apart from the program's
    assert 0 < prompts["lm_calls"] < lines["MIPROv2"]["compile_calls"]
    assert lines["MIPROv2"]["optimizer_calls"] == prompts["lm_calls"]
    assert f"({lines['MIPROv2']['compile_calls'] - prompts['lm_calls']:,} + {prompts['lm_calls']:,})" in est.stdout
    assert mipro.lm_kind == "offline" and mipro.task == "review_program" and mipro.n_train == 27
    assert lines["MIPROv2"]["compile_calls"] == mipro.phase("compile").usage.lm_calls

    table = est.stdout[est.stdout.index("## Against a real run"):]
    for name, rec in real.items():
        row = next(ln for ln in table.splitlines() if ln.startswith(f"| {name} |"))
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[1] == f"{lines[name]['compile_calls']:,}" and cells[2] == f"{rec.phase('compile').usage.lm_calls:,}"
        assert cells[-1] == "ok"


def test_your_program_is_checked_before_anything_runs(tmp_path):
    bad = harness("estimate", "--program", "tests/fixtures/review_program.py:nope", "--data",
                  "tests/fixtures/reviews.jsonl", "--metric", "tests/fixtures/review_program.py:metric",
                  "--out", str(tmp_path / "x"))
    assert bad.returncode == 2 and bad.stderr.startswith("error: --program") and "no 'nope'" in bad.stderr
    assert not (tmp_path / "x").exists()
    (tmp_path / "rows.jsonl").write_text('{"text": "a", "label": "b"}\n' * 6)
    cols = harness("estimate", *PROGRAM[:2], "--data", str(tmp_path / "rows.jsonl"), *PROGRAM[4:])
    assert cols.returncode == 2 and "none of the program's input fields (review)" in cols.stderr
    (tmp_path / "broken.jsonl").write_text('{"review": "x", "sentiment": "positive"}\n{not json\n')
    broken = harness("estimate", *PROGRAM[:2], "--data", str(tmp_path / "broken.jsonl"), *PROGRAM[4:])
    assert broken.returncode == 2 and "not valid JSONL (line 2" in broken.stderr  # the line that is broken
    half = harness("run", "--strategy", "LabeledFewShot", "--program", PROGRAM[1])
    assert half.returncode == 2 and "--data, --metric missing" in half.stderr
    rate = harness("estimate", *PROGRAM, "--pass-rate", "1.5")
    assert rate.returncode == 2 and "--pass-rate must be between 0 and 1" in rate.stderr


def test_the_offline_lm_answers_your_program_at_the_stated_rate():
    """The DataOracle answers right about as often as --pass-rate says under a bare prompt."""
    import dspy

    from harness.lm.offline import make_offline_lm

    for rate in (0.2, 0.8):
        task = build_task(ProgramSpec.from_args(PROGRAM[1], PROGRAM[3], PROGRAM[5], rate))
        lm = make_offline_lm(task.oracle(), price_as="openai/gpt-4o-mini")
        program = task.make_program()
        rows = [*task.examples("train", "quick"), *task.examples("dev", "quick"), *task.examples("test", "quick")]
        with dspy.context(lm=lm):
            right = sum(bool(task.metric(ex, program(**ex.inputs()))) for ex in rows)
        assert abs(right / len(rows) - rate) < 0.2, (rate, right, len(rows))
    with pytest.raises(HarnessError, match="one file needs 5 or more"):
        (ROOT / "tests" / "fixtures").exists() and build_task(ProgramSpec.from_args(
            PROGRAM[1], "tests/fixtures/review_program.py:few_rows", PROGRAM[5]))


def test_a_budget_that_holds_against_a_served_lm(tmp_path):
    """--max-calls stops a run at exactly that many calls with status budget (what it spent kept, the server saw
    no more); --max-spend refuses a run whose offline pre-pass projects more, before its first call."""
    from harness.registry import get_task

    with ChatServer(get_task("classify").oracle()) as srv:
        lm = ["--lm", "openai/served", "--api-base", srv.base_url, "--price-as", "openai/gpt-4o-mini"]
        stop = harness("run", "--strategy", "MIPROv2", "--task", "classify", "--profile", "quick", *lm,
                       "--max-calls", "50", "--out", str(tmp_path / "b"))
        assert stop.returncode == 1 and "BUDGET: stopped" in stop.stdout, stop.stdout + stop.stderr
        rec = load_record(tmp_path / "b" / "runs" / "MIPROv2__classify__r0.json")
        assert rec.status == "budget" and rec.lm_calls == 50 == srv.totals["requests"]
        assert "--max-calls 50 reached" in rec.error and rec.api_cost_usd > 0
        assert rec.lm_failures.failed_calls == 0  # the refused call is no failed call
        before = srv.totals["requests"]
        refused = harness("run", "--strategy", "MIPROv2", "--task", "classify", "--profile", "quick", *lm,
                          "--max-spend", "0.0001", "--out", str(tmp_path / "s"))
        assert refused.returncode == 2 and "refused before its first call" in refused.stderr, refused.stderr
        assert "projected spend $" in refused.stderr and srv.totals["requests"] == before  # not one call served
        assert not (tmp_path / "s" / "runs" / "MIPROv2__classify__r0.json").exists()
    unpriced = harness("run", "--strategy", "LabeledFewShot", "--task", "classify", "--lm", "local/smollm2-135m",
                       "--max-spend", "1")
    assert unpriced.returncode == 2 and "--max-spend needs a price" in unpriced.stderr
    nocap = harness("bench", "--profile", "quick", "--strategy", "LabeledFewShot", "--task", "classify",
                    "--lm", "openai/gpt-4o-mini", "--out", str(tmp_path / "h"), env={"CI": "true"})
    assert nocap.returncode == 2 and "is billed and has no cap" in nocap.stderr


def test_a_prompt_lm_beside_the_task_lm_is_counted_and_priced_apart(tmp_path):
    """--prompt-lm: COPRO's proposals go to a second LM (its prompt_model); the record's calls equal the server's,
    the prompt LM's share equals what the server saw for that model, and each share is priced at its own price."""
    from harness.registry import get_task

    with ChatServer(get_task("classify").oracle()) as srv:
        run = harness("run", "--strategy", "COPRO", "--task", "classify", "--profile", "quick",
                      "--lm", "openai/task-model", "--api-base", srv.base_url, "--price-as", "openai/gpt-4o-mini",
                      "--prompt-lm", "openai/proposer", "--prompt-api-base", srv.base_url,
                      "--prompt-price-as", "openai/gpt-4o", "--out", str(tmp_path / "p"))
        assert run.returncode == 0, run.stdout + run.stderr
        served = {m: dict(v) for m, v in srv.by_model.items()}
    rec = load_record(tmp_path / "p" / "runs" / "COPRO__classify__r0.json")
    share = rec.extra["prompt_lm"]
    assert share["given_as"] == ["COPRO(prompt_model=)"] and share["priced_as"] == "openai/gpt-4o"
    assert set(served) == {"task-model", "proposer"} and 0 < share["lm_calls"] < rec.lm_calls
    assert rec.lm_calls == sum(v["requests"] for v in served.values())  # counted where served
    assert share["lm_calls"] == served["proposer"]["requests"]
    assert share["input_tokens"] == served["proposer"]["prompt_tokens"]
    assert share["phases"]["compile"]["lm_calls"] == share["lm_calls"]  # proposals are made while compiling only
    task_in, task_out = rec.input_tokens - share["input_tokens"], rec.output_tokens - share["output_tokens"]
    assert task_in == served["task-model"]["prompt_tokens"]
    assert rec.api_cost_usd == pytest.approx(price_of("openai/gpt-4o-mini").cost(task_in, task_out)
                                             + price_of("openai/gpt-4o").cost(share["input_tokens"],
                                                                              share["output_tokens"]), rel=1e-6)
    report = harness("report", str(tmp_path / "p"))
    assert report.returncode == 0, report.stderr
    card = (tmp_path / "p" / "report.md").read_text().split("## What each optimizer cost")[1]
    assert rec.key == ("COPRO@prompt_lm=openai/proposer", "classify")  # never paired with a run without one
    assert (f"| COPRO@prompt_lm=openai/proposer | ok | {rec.lm_calls:,} ({share['lm_calls']:,} by the prompt LM) |"
            in card)
    assert "Prompt LM (`--prompt-lm`): openai/proposer (priced as openai/gpt-4o)" in card
    offline = harness("run", "--strategy", "COPRO", "--task", "classify", "--prompt-lm", "openai/gpt-4o")
    assert offline.returncode == 2 and "--prompt-lm needs a served --lm" in offline.stderr


def test_the_pass_rate_and_format_failures_can_be_measured_with_a_few_real_calls(tmp_path):
    """--calibrate-with: the bare program on N test rows against a real LM sets the offline LM's pass rate and its
    format-failure rates; a model whose every answer is unparsable gives 0% and rates of 1."""
    from harness.tasks.user import read_rows

    rows = read_rows("tests/fixtures/reviews.jsonl", ROOT)
    test_rows = rows[int(len(rows) * 0.8):][:6]
    model = KeywordModel()
    right = sum(model.answer(None, r, None, None)["sentiment"] == r["sentiment"] for r in test_rows)
    with ChatServer(model) as srv:
        est = harness("estimate", *PROGRAM, "--strategy", "LabeledFewShot", "--profile", "quick",
                      "--calibrate-with", "openai/keyword-model", "--calibrate-api-base", srv.base_url,
                      "--calibrate-n", "6", "--out", str(tmp_path / "m"))
        assert est.returncode == 0, est.stderr
        asked = srv.totals["requests"]
    data = json.loads((tmp_path / "m" / "estimate.json").read_text())
    assert asked == 6 and data["pass_rate"] == pytest.approx(right / 6)  # one call per row, all parsed
    assert data["calibration"] == {"model": "openai/keyword-model", "chat_format_fail": 0.0, "json_fail": 0.0}
    assert f"a measured rate of {right / 6:.0%}" in est.stdout and f"{right} of 6 parsed answers right" in est.stdout
    with ChatServer(garbage=True) as srv:
        bad = harness("estimate", *PROGRAM, "--strategy", "LabeledFewShot", "--profile", "quick",
                      "--calibrate-with", "openai/garbage", "--calibrate-api-base", srv.base_url,
                      "--calibrate-n", "3", "--out", str(tmp_path / "g"))
        assert bad.returncode == 1 and "0 of 0 parsed answers right (0%)" in bad.stderr, bad.stderr
    data = json.loads((tmp_path / "g" / "estimate.json").read_text())
    assert data["pass_rate"] == 0 and data["calibration"]["chat_format_fail"] == 1.0
    assert data["calibration"]["json_fail"] == 1.0  # and the offline LM, answering as that model, fails as it would
    assert data["strategies"][0]["status"] == "failed" and "every LM call failed" in data["strategies"][0]["error"]
    both = harness("estimate", *PROGRAM, "--calibrate-with", "openai/x", "--pass-rate", "0.5")
    assert both.returncode == 2 and "leave out --pass-rate" in both.stderr


def test_against_reads_a_committed_results_folder_that_keeps_only_its_report(tmp_path):
    """A committed results folder has report.json and no runs/: --against reads the runs from the report."""
    import shutil

    from harness.estimate import real_runs

    shutil.copy(ROOT / "results" / "review-smollm2" / "report.json", tmp_path / "report.json")
    runs = real_runs(tmp_path, "review_program")
    assert len(runs) == 12 and runs["MIPROv2"].status == "ok" and runs["COPRO"].status == "failed"
    assert runs["MIPROv2"].lm == "local/smollm2-135m" and runs["MIPROv2"].phase("compile").usage.lm_calls == 54
    with pytest.raises(HarnessError, match="no runs/ folder or report.json"):
        real_runs(tmp_path / "empty", "review_program")
    with pytest.raises(HarnessError, match="no run of math there"):
        real_runs(tmp_path, "math")


def test_a_calibration_can_use_more_rows_than_the_test_split():
    """--calibrate-with on a small data set: the bare program answers every row, test rows first (no demos, so
    any row will do), so that --calibrate-n can go past the test split's 9 rows."""
    from dataclasses import replace

    spec = ProgramSpec.from_args(PROGRAM[1], PROGRAM[3], PROGRAM[5])
    plain, every = build_task(spec), build_task(replace(spec, every_row_tests=True))
    assert len(plain.rows("test")) == 9 and len(every.rows("test")) == 45
    assert every.rows("test")[:9] == plain.rows("test") and every.rows("train") == plain.rows("train")
    assert ProgramSpec.from_dict(replace(spec, every_row_tests=True).as_dict()).every_row_tests
