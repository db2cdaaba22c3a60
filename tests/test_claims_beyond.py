"""The claims beyond the study (harness/claims/beyond.toml, beyond.py): GEPA vs GRPO, GEPA vs MIPROv2, and DSPy's
own projections against measurement, judged on committed reports (tests/fixtures/gepa_quick_report.json is a quick
bench of GEPA, GRPO and MIPROv2 with its timelines stripped) and on synthetic changes of them."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.claims import evaluate
from harness.claims.beyond import DEFAULT_PATH
from harness.claims.render import to_markdown
from harness.claims.spec import load_claims
from harness.load import load_report

FIXTURES = Path(__file__).parent / "fixtures"
GEPA_REPORT = FIXTURES / "gepa_quick_report.json"
NO_GEPA_REPORT = FIXTURES / "quick_report.json"
IDS = {"gepa_grpo.rollouts", "gepa_grpo.wall", "gepa_grpo.cost", "gepa_grpo.quality", "gepa_mipro.cost",
       "gepa_mipro.quality", "projection.mipro_calls", "projection.gepa_budget"}


def _by_id(result):
    return {v.claim_id: v for v in result.beyond.verdicts}


@pytest.fixture(scope="module")
def gepa_result():
    return evaluate(load_report(GEPA_REPORT), with_projections=False)


def test_beyond_file_has_every_claim_kind():
    cf = load_claims(DEFAULT_PATH)
    assert {c.id for c in cf.claims} == IDS and not cf.strategies and not cf.tiers
    assert {c.check for c in cf.claims} == {"gepa_vs_grpo", "beyond_quality", "gepa_vs_mipro", "mipro_estimate",
                                            "gepa_budget"}


def test_gepa_less_report_is_untestable_with_reason_and_study_unchanged():
    report = load_report(NO_GEPA_REPORT)
    result = evaluate(report, with_projections=False)
    v = _by_id(result)
    assert set(v) == IDS
    for cid in IDS - {"projection.mipro_calls"}:
        assert v[cid].verdict == "untestable here" and "GEPA" in v[cid].reason, cid
    assert not IDS & {x.claim_id for x in result.verdicts}  # never counted among the study's verdicts
    assert "beyond" in result.as_dict() and sum(result.as_dict()["beyond"]["counts"].values()) == len(IDS)


def test_gepa_vs_grpo_measured_ratios(gepa_result):
    v = _by_id(gepa_result)
    roll = v["gepa_grpo.rollouts"]
    assert roll.basis == "measured" and "profile quick" in roll.figure and "max_metric_calls=160" in roll.figure
    tasks = roll.data["tasks"]
    assert set(tasks) == {"math", "classify", "multihop"}
    assert tasks["multihop"] == {"gepa": 173.0, "grpo": 12.0, "ratio": pytest.approx(12 / 173)}
    assert roll.verdict == "contradicted"  # 12 GRPO rollouts (3 steps x 4) vs 160+ GEPA metric calls
    wall = v["gepa_grpo.wall"]  # GRPO trained the random toy: its wall time is not a real GRPO's
    assert wall.verdict == "untestable here" and "random toy student" in wall.reason
    assert v["gepa_grpo.cost"].verdict == "contradicted" and "not priced" in v["gepa_grpo.cost"].figure
    q = v["gepa_grpo.quality"]
    assert q.verdict == "untestable here" and "random-initialised" in q.reason and "offline" in q.reason


def test_gepa_vs_mipro_cost_measured_quality_untestable(gepa_result):
    v = _by_id(gepa_result)
    cost = v["gepa_mipro.cost"]
    assert cost.verdict in ("holds", "contradicted") and cost.basis == "measured"
    assert set(cost.data["levels"]["profile budgets"]["math"]) == {"lm_calls", "tokens", "optimize_wall_s"}
    assert "num_trials=4" in cost.figure and "score after" in cost.figure
    assert cost.verdict == ("holds" if not cost.data["outside"] else "contradicted")
    q = v["gepa_mipro.quality"]
    assert q.verdict == "untestable here" and "offline" in q.reason and "MIPROv2" in q.reason


def test_projections_against_measurement(gepa_result):
    v = _by_id(gepa_result)
    m = v["projection.mipro_calls"]
    assert m.basis == "measured + projected" and m.verdict == "holds"
    math = m.data["tasks"]["math"]
    assert math["projected"] == 63 and math["ratio"] == pytest.approx(math["measured"] / 63)
    b = v["projection.gepa_budget"]
    runs = b.data["runs"]
    assert runs["GEPA__multihop__r0"]["used"] == 173 and runs["GEPA__multihop__r0"]["budget"] == 160
    assert b.verdict == "contradicted" and "1.081" in b.figure  # one iteration past the budget


def test_synthetic_changes_flip_verdicts():
    report = load_report(GEPA_REPORT)
    runs = []
    for r in report.runs:
        if r.strategy == "GEPA":
            r = r.model_copy(update={"budget": r.budget.model_copy(update={"metric_calls": 4, "metric_call_budget": 4})})
        runs.append(r)
    result = evaluate(report.model_copy(update={"runs": runs}), with_projections=False)
    v = _by_id(result)
    assert v["gepa_grpo.rollouts"].verdict == "holds" and v["gepa_grpo.rollouts"].data["tasks"]["math"]["ratio"] == 3
    assert v["projection.gepa_budget"].verdict == "holds"


def test_gepa_only_report_renders_the_section():
    report = load_report(GEPA_REPORT)
    only = report.model_copy(update={"runs": [r for r in report.runs if r.strategy == "GEPA"]})
    result = evaluate(only, with_projections=False)
    v = _by_id(result)
    assert v["projection.gepa_budget"].verdict == "contradicted"
    assert "no ok GRPO run" in v["gepa_grpo.rollouts"].reason
    assert v["projection.mipro_calls"].verdict == "untestable here"
    md = to_markdown(result)
    assert "## Claims beyond the study" in md and "`gepa_grpo.rollouts`" in md and "the source says" in md


def test_report_md_has_its_own_section(gepa_result):
    from harness.report.markdown import claims_section

    lines = claims_section(gepa_result, None)
    i = lines.index("## Claims beyond the study")
    assert "## Claims: verdicts" in lines[:i]
    assert any("`projection.gepa_budget`" in x for x in lines[i:])
    assert not any("`projection.gepa_budget`" in x for x in lines[:i])


def test_a_broken_beyond_file_never_costs_the_study(monkeypatch, tmp_path):
    from harness.claims import beyond

    bad = tmp_path / "beyond.toml"
    bad.write_text("[[claim]]\nid = 'x'\nsection = 's'\ntext = 't'\nstudy = 's'\ncheck = 'no_such_check'\n")
    monkeypatch.setattr(beyond, "DEFAULT_PATH", bad)
    result = evaluate(load_report(NO_GEPA_REPORT), with_projections=False)
    assert result.beyond is None and "no_such_check" in result.beyond_error
    assert len(result.verdicts) == len(evaluate(load_report(NO_GEPA_REPORT), with_projections=False).verdicts)
    assert "could not be judged" in to_markdown(result)


def test_gepa_and_mipro_are_compared_at_each_auto_level_both_ran():
    """Budget variants (--set X.auto=medium, or the standard profile's) are compared level by level, never mixed
    into the profile's own runs: MIPROv2's projection and the cost at the profile's budgets are unchanged."""
    report = load_report(GEPA_REPORT)
    base = _by_id(evaluate(report, with_projections=False))
    medium = []
    for r in report.runs:
        if r.strategy in ("GEPA", "MIPROv2"):
            scaled = r.model_copy(update={"run_id": r.run_id.replace("__", "@auto=medium__", 1), "lm_calls": r.lm_calls * 3,
                                          "extra": {**r.extra, "settings": {"auto": "medium"}}})
            medium.append(scaled)
    result = evaluate(report.model_copy(update={"runs": [*report.runs, *medium]}), with_projections=False)
    v = _by_id(result)
    cost = v["gepa_mipro.cost"]
    assert set(cost.data["levels"]) == {"profile budgets", "auto=medium"}
    assert cost.data["levels"]["profile budgets"] == base["gepa_mipro.cost"].data["levels"]["profile budgets"]
    assert 'auto=medium, math (GEPA' in cost.figure and 'MIPROv2 auto="medium"' in cost.figure
    assert v["projection.mipro_calls"].data == base["projection.mipro_calls"].data  # the variants left out
    assert len(v["projection.gepa_budget"].data["runs"]) == 2 * len(base["projection.gepa_budget"].data["runs"])


def test_the_plots_draw_each_budget_variant_and_the_study_leaves_them_out():
    """The evidence the plots draw holds each budget variant under its own label (a point and a bar of its own,
    ordered light < medium < heavy under its strategy); the study's claims read only the profile's own runs."""
    from harness.claims.evidence import gather
    from harness.registry import budget_order as _budget_order
    from harness.report.plots import _short

    report = load_report(GEPA_REPORT)
    heavy = [r.model_copy(update={"run_id": r.run_id.replace("__", "@auto=heavy__", 1),
                                  "extra": {**r.extra, "settings": {"auto": "heavy"}}})
             for r in report.runs if r.strategy == "GEPA"]
    ev = gather(report.model_copy(update={"runs": [*report.runs, *heavy]}), load_claims())
    assert "GEPA@auto=heavy" not in set(ev.runs["label"]) and len(ev.runs) == len(report.runs)
    labelled = ev.pairs(labelled=True)
    assert set(labelled["strategy"]) == {"GEPA", "GEPA@auto=heavy", "GRPO", "MIPROv2"}
    assert set(ev.pairs()["strategy"]) == {"GEPA", "GRPO", "MIPROv2"}
    assert sorted(["GEPA@auto=heavy", "GEPA@auto=medium", "GEPA", "GEPA@auto=light"], key=_budget_order) == \
        ["GEPA", "GEPA@auto=light", "GEPA@auto=medium", "GEPA@auto=heavy"]
    assert _short("MIPROv2@auto=heavy") == "MIPROv2 heavy" and _short("BootstrapFewShot") == "BFS"
