"""Every claim judged, and the projection tables behind the verdicts, as one result."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.claims import analytic, beyond as beyond_checks, memory_data, profiles, projections, training_cost
from harness.claims.checks import CHECKS, literature_agreement, usable_scaling
from harness.claims.evidence import Evidence, gather
from harness.claims.memory_data import shown_path
from harness.claims.spec import ClaimsFile, load_claims
from harness.claims.verdict import VERDICTS, Verdict
from harness.errors import HarnessError
from harness.load import load_report
from harness.record import Report


@dataclass
class ClaimsResult:
    verdicts: list[Verdict]
    claims_file: str
    study: dict[str, Any]
    report: dict[str, Any]
    rules: dict[str, str]
    projections: dict[str, Any] = field(default_factory=dict)
    provisional_reason: str | None = None  # set for a report whose profile is not the standard one
    profile_differences: dict[str, Any] | None = None  # {"quick_report", "rows"}: a standard report vs a quick one
    beyond: "ClaimsResult | None" = None  # the claims beyond the study (beyond.toml): never counted in the study's
    beyond_error: str | None = None  # why the claims beyond the study could not be judged (the study's still are)

    @property
    def provisional(self) -> bool:
        return self.provisional_reason is not None

    def counts(self) -> dict[str, int]:
        return {v: sum(1 for x in self.verdicts if x.verdict == v) for v in VERDICTS}

    def as_dict(self) -> dict[str, Any]:
        return {"kind": "dspy-resource-bench/claims", "version": 1, "study": self.study, "claims_file": self.claims_file,
                "report": self.report, "counts": self.counts(), "rules": self.rules, "provisional": self.provisional,
                "provisional_reason": self.provisional_reason, "verdicts": [v.as_dict() for v in self.verdicts],
                "profile_differences": _clean(self.profile_differences), "projections": _clean(self.projections),
                **({"beyond": _clean(self.beyond.as_dict())} if self.beyond is not None else {}),
                **({"beyond_error": self.beyond_error} if self.beyond_error else {})}


def _clean(x: Any) -> Any:
    """JSON-safe: NaN -> None, tuples -> lists, numpy scalars -> Python."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if hasattr(x, "item") and not isinstance(x, (str, bytes)):
        try:
            x = x.item()
        except (ValueError, AttributeError):
            pass
    if isinstance(x, float) and math.isnan(x):
        return None
    return x


def judge(ev: Evidence) -> list[Verdict]:
    out = []
    for claim in ev.claims.claims:
        fn = CHECKS.get(claim.check)
        if fn is None:
            raise HarnessError(f"claims file: claim {claim.id!r} names an unknown check {claim.check!r}; "
                               f"known: {', '.join(sorted(CHECKS))}")
        for v in fn(claim, ev):
            why = " ".join(str(claim.get("why", "")).split())
            if why and why not in v.rule:
                v.rule = f"{v.rule}. {why}" if v.rule else why
            out.append(v)
    return out


def projection_tables(ev: Evidence) -> dict[str, Any]:
    """The projections the verdicts rest on, each with its label and method."""
    claims = ev.claims
    table, notes = projections.prices(claims)
    out: dict[str, Any] = {
        "prices": {"label": "DSPy's bundled price table",
                   "notes": [*notes, " ".join(str(claims.assumption("prices", "tokenizer_note", default="")).split())],
                   "models": {m: {"input_usd_per_mtok": p.input_per_token * 1e6,
                                  "output_usd_per_mtok": p.output_per_token * 1e6, "source": p.source}
                              for m, p in table.items()}},
        "latency": {"label": "assumed", "source": claims.assumption("latency", "source"),
                    "concurrency": projections.concurrencies(claims),
                    "models": {m: {"ttft_s": l.ttft_s, "output_tokens_per_s": l.output_tokens_per_s}
                               for m, l in projections.latencies(claims).items()}},
    }
    pairs = ev.pairs("prompt")
    if not pairs.empty:
        runs = projections.run_projections(pairs, claims)
        out["prompt_runs"] = {"label": "projected", "method": projections.PRICE_METHOD + "; " + projections.LATENCY_METHOD,
                              "rows": runs.drop(columns=["run_ids"]).to_dict("records") if not runs.empty else []}
    out["scaling"] = scaling_tables(ev)
    cases, speed, gpu = training_cost.cases(claims, ev.memory)
    out["training"] = {"label": "projected", "method": training_cost.method(claims, speed, gpu),
                       "speed": {"mfu": speed.mfu, "basis": speed.basis, "source": speed.source},
                       "gpu": {"name": gpu.name, "tflops": gpu.tflops, "memory_gb": gpu.memory_gb,
                               "usd_per_hour": list(gpu.usd_per_hour)},
                       "workloads": claims.assumptions.get("workloads", []),
                       "rows": [c.as_dict() for c in cases]}
    cfg = training_cost.finetune_config(claims)
    sizes = list(claims.assumption("finetune", "sizes", default=list(analytic.ARCHS)))
    out["analytic_memory"] = {"label": "projected (analytic)", "config": cfg.describe(),
                              "assumptions": analytic.ASSUMPTIONS,
                              "architectures": {s: {"source": analytic.ARCHS[s].source,
                                                    "params": analytic.ARCHS[s].params()} for s in sizes},
                              "rows": [e.as_dict() for e in analytic.table(sizes, ["full", "lora", "qlora"], cfg)]}
    out["literature"] = {"label": "published figures vs analytic", "rows": literature_agreement(ev)}
    if ev.memory is not None:
        out["memory_agreement"] = {
            "label": "measured vs analytic", "file": ev.memory.path, "method": ev.memory.method,
            "entries": [{**a.__dict__, "ratio": a.ratio} for a in memory_data.agreement(ev.memory)],
            "slopes": memory_data.slope_agreement(ev.memory)}
    return out


def scaling_tables(ev: Evidence) -> dict[str, Any]:
    """The train-size projections (per task, labelled with their rule and fit), the refused lines and the
    optimizers' own formulas beside the fits; or why there are none."""
    scaling, why_not = usable_scaling(ev)
    if scaling is None:
        return {"label": "not projected", "reason": why_not}
    claims = ev.claims
    sizes = list(claims.assumption("scaling", "projection_train_sizes", default=[1000, 10000]))
    scaled = projections.scaled_projections(scaling, claims, sizes, floors=projections.measured_floors(ev.ok("prompt")))
    return {"label": "projected", "method": projections.SCALING_METHOD, "few_points": projections.FEW_POINTS_NOTE,
            "file": scaling.path, "profile": scaling.profile, "fit_sizes": scaling.sizes, "sizes": sizes,
            "tasks": scaling.tasks(), "fits": projections.fit_lines(scaling.runs), "refused": projections.refused(scaling),
            "rows": scaled.to_dict("records") if not scaled.empty else [],
            "measured": projections.measured_rows(scaling), "formulas": projections.formula_rows(scaling, sizes),
            "formula_future": dict(scaling.formula_inputs.get("future") or {})}


def evaluate(report: Report, out: str | Path | None = None, claims: ClaimsFile | str | Path | None = None,
             with_projections: bool = True, against_quick: str | Path | None = None) -> ClaimsResult:
    """Judge every claim of the claims file against `report` (and the files beside it in `out`)."""
    cf = claims if isinstance(claims, ClaimsFile) else load_claims(claims)
    return result_of(gather(report, cf, out), with_projections, against_quick)


def _n_train(report: Report) -> list[int]:
    return sorted({int(r.n_train) for r in report.runs if r.status == "ok" and r.n_train is not None})


def compare_profiles(std: "ClaimsResult", cf: ClaimsFile, quick_path: Path) -> dict[str, Any]:
    """The verdicts of `std` (a standard report) that the quick report at `quick_path` judges differently."""
    quick_report = load_report(quick_path)
    if quick_report.profile == profiles.STANDARD:
        raise HarnessError(f"--against-quick {quick_path}: that report is of the standard profile, not a quick one")
    quick = result_of(gather(quick_report, cf, quick_path.parent), with_projections=False, with_beyond=False)
    rows = profiles.differences(std, quick)
    return {"quick_report": shown_path(quick_path), "quick_profile": quick_report.profile, "verdicts": len(std.verdicts),
            "differ": len(rows), "rows": rows}


def result_of(ev: Evidence, with_projections: bool = True, against_quick: str | Path | None = None,
              with_beyond: bool = True) -> ClaimsResult:
    """The verdicts and projection tables from gathered evidence; a report not of the standard profile has its
    verdicts marked provisional, and a standard one is compared with a quick report when one is at hand."""
    report, cf = ev.report, ev.claims
    verdicts = judge(ev)
    reason = profiles.provisional_reason(report.profile, _n_train(report),
                                         cf.assumption("profiles", "reference_verdicts"))
    profiles.mark(verdicts, reason)
    scaling, scaling_note = usable_scaling(ev)
    summary = {"profile": report.profile, "lm": report.lm, "priced_as": report.priced_as,
               "created_at": report.created_at.isoformat(), "runs": len(report.runs),
               "ok_runs": sum(r.status == "ok" for r in report.runs), "machine_id": report.machine.machine_id,
               "has_gpu": bool(report.machine.gpus), "finetune_memory": ev.memory.path if ev.memory else None,
               "scaling": scaling.path if scaling else None, "scaling_note": scaling_note}
    result = ClaimsResult(verdicts=verdicts, claims_file=cf.path, study=cf.study, report=summary, rules=cf.rules,
                          projections=projection_tables(ev) if with_projections else {}, provisional_reason=reason)
    if with_beyond and Path(cf.path).resolve() != beyond_checks.DEFAULT_PATH.resolve():
        try:
            result.beyond = beyond_of(ev, reason)
        except Exception as exc:  # noqa: BLE001 - a broken second file never costs the study's verdicts
            result.beyond_error = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
    quick = profiles.quick_reference(cf, against_quick) if report.profile == profiles.STANDARD else None
    if quick is not None:
        result.profile_differences = compare_profiles(result, cf, quick)
    return result


def beyond_of(ev: Evidence, reason: str | None, path: str | Path | None = None) -> ClaimsResult:
    """The claims beyond the study (beyond.toml), judged on the same evidence; provisional where the study's are."""
    bf = load_claims(path or beyond_checks.DEFAULT_PATH)
    verdicts = judge(dataclasses.replace(ev, claims=bf))
    profiles.mark(verdicts, reason)
    summary = {"profile": ev.report.profile, "lm": ev.report.lm, "priced_as": ev.report.priced_as,
               "runs": len(ev.report.runs), "ok_runs": sum(r.status == "ok" for r in ev.report.runs)}
    return ClaimsResult(verdicts=verdicts, claims_file=bf.path, study=bf.study, report=summary, rules=bf.rules,
                        provisional_reason=reason)
