"""The offline LM held against a real one: the same workload, per strategy, side by side.

``python -m harness fidelity OFFLINE_OUT REAL_OUT`` reads two bench reports of the same profile (one with the
offline LM, one with a real model, e.g. ``--lm local/smollm2-135m``) and writes ``REAL_OUT/fidelity.md`` and
``fidelity.json``: LM calls, tokens, adapter fallbacks, failed calls and scores of each strategy with both LMs,
with their ratios, and the parameters measured from the real model that calibrate the offline LM to it
(``calibration.json``, read by ``--offline-calibration``; harness.lm.brain.Calibration).
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.files import atomic_write_text
from harness.load import SchemaError, load_report
from harness.record import Report, RunRecord

WITHIN = 0.25  # the offline LM stands in for the real one where its calls are within 25% of the real model's
KIND = "dspy-resource-bench/fidelity"


def _load(path: str | Path) -> Report:
    p = Path(path)
    p = p / "report.json" if p.is_dir() else p
    try:
        return load_report(p)
    except SchemaError as exc:
        raise HarnessError(str(exc)) from None


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else round(a / b, 3)


def _by_pair(report: Report) -> dict[tuple[str, str], RunRecord]:
    return {r.key: r for r in report.runs if r.status == "ok" and r.repeat == 0}


def calibration_of(real: Report, offline: Report | None = None) -> dict[str, Any]:
    """What the real model did that the offline LM does not, measured over every ok run of `real`."""
    runs = [r for r in real.runs if r.status == "ok" and r.lm_failures is not None and r.lm_calls]
    if not runs:
        raise HarnessError("the real report has no ok run with counted LM failures to calibrate from")
    calls = sum(r.lm_calls for r in runs)
    fallbacks = sum(r.lm_failures.adapter_fallbacks for r in runs)
    parse = sum(r.lm_failures.by_kind.get("parse", 0) for r in runs)
    chat_answers = calls - fallbacks  # every fallback is one more (JSONAdapter) call
    befores = [r.score_before for r in runs if r.score_before is not None]
    outs = [r.output_tokens / r.lm_calls for r in runs if r.output_tokens is not None]
    off = [r.score_before for r in (offline.runs if offline else []) if r.status == "ok" and r.score_before is not None]
    scale = round(statistics.fmean(befores) / statistics.fmean(off), 4) if befores and off and statistics.fmean(off) \
        else None
    return {
        "kind": "dspy-resource-bench/calibration", "model": real.lm, "profile": real.profile,
        "chat_format_fail": round(fallbacks / chat_answers, 4) if chat_answers else 0.0,
        "json_fail": round(parse / fallbacks, 4) if fallbacks else 0.0,
        "accuracy": round(statistics.fmean(befores) / 100, 4) if befores else None, "accuracy_scale": scale,
        "output_tokens_per_call": round(statistics.fmean(outs), 1) if outs else None,
        "from": f"{len(runs)} ok runs of {real.lm} ({real.profile} profile): {calls:,} calls, {fallbacks:,} adapter "
                f"fallbacks, {parse:,} unparsable answers; accuracy = mean score before optimizing; accuracy_scale = that "
                "over the offline LM's mean score before optimizing on the same workload",
    }


def fidelity(offline: Report, real: Report) -> dict[str, Any]:
    if offline.profile != real.profile:
        raise HarnessError(f"the reports ran different profiles ({offline.profile} and {real.profile}): run the "
                           "offline bench with the real bench's PROFILE")
    off, rl = _by_pair(offline), _by_pair(real)
    pairs = [k for k in rl if k in off]
    if not pairs:
        raise HarnessError("the two reports share no strategy/task pair that ran ok in both")
    rows = []
    for key in pairs:
        o, r = off[key], rl[key]
        fb = r.lm_failures.adapter_fallbacks if r.lm_failures else None
        ratio = _ratio(r.lm_calls, o.lm_calls)
        rows.append({
            "strategy": key[0], "task": key[1], "calls_offline": o.lm_calls, "calls_real": r.lm_calls,
            "calls_ratio": ratio, "input_tokens_ratio": _ratio(r.input_tokens, o.input_tokens),
            "output_tokens_ratio": _ratio(r.output_tokens, o.output_tokens),
            "fallbacks_offline": o.lm_failures.adapter_fallbacks if o.lm_failures else None, "fallbacks_real": fb,
            "parse_failures_real": r.lm_failures.by_kind.get("parse", 0) if r.lm_failures else None,
            "errored_real": r.lm_failures.errored if r.lm_failures else None,
            "score_offline": [o.score_before, o.score_after], "score_real": [r.score_before, r.score_after],
            "wall_s_offline": o.wall_s, "wall_s_real": r.wall_s,
            "within": ratio is not None and abs(ratio - 1) <= WITHIN,
            "why": None if ratio is not None and abs(ratio - 1) <= WITHIN else _why(o, r),
        })
    first = {r.key: r for r in reversed(offline.runs) if r.repeat == 0}
    failed = [{"strategy": r.strategy, "task": r.task, "real": f"{r.status}: {_head(r.error)}",
               "offline": (f"{first[r.key].status}" + (f": {_head(first[r.key].error)}" if first[r.key].error else ""))
               if r.key in first else "not run"}
              for r in real.runs if r.repeat == 0 and r.status != "ok"]
    return {"kind": KIND, "offline": offline.lm, "real": real.lm, "profile": real.profile, "not_ok": failed,
            "offline_calibrated_to": _calibrated_to(offline), "within": WITHIN, "rows": rows,
            "calibration": calibration_of(real, offline)}


def _head(error: str | None) -> str:
    text = (error or "no reason recorded").split(" LM Response:")[0]
    return text if len(text) <= 160 else text[:157] + "..."


def _calibrated_to(report: Report) -> str | None:
    for r in report.runs:
        if r.extra.get("offline_calibrated_to"):
            return r.extra["offline_calibrated_to"]
    return None


def _why(o: RunRecord, r: RunRecord) -> str:
    """The structural reason a real model's calls differ, from what the records show."""
    reasons = []
    fb = r.lm_failures.adapter_fallbacks if r.lm_failures else 0
    if r.lm_calls and fb / r.lm_calls >= 0.2:
        reasons.append(f"{fb} of its {r.lm_calls} calls were JSONAdapter fallbacks after answers not in "
                       "ChatAdapter's format")
    if (r.score_before or 0) + 25 < (o.score_before or 0):
        reasons.append(f"its answers pass the metric far less often ({r.score_before:.0f}% vs {o.score_before:.0f}% "
                       "before optimizing), which changes how many examples an optimizer tries")
    if r.lm_calls and o.lm_calls and r.lm_calls < o.lm_calls and not reasons:
        reasons.append("the optimizer stopped earlier with the real model")
    return "; ".join(reasons) or "no structural difference in the records: the optimizer's own path differed"


def _fmt(x: Any, spec: str = ",") -> str:
    if x is None:
        return "-"
    return format(x, spec) if isinstance(x, (int, float)) else str(x)


def _score(pair: list) -> str:
    return "-" if None in pair else f"{pair[0]:.0f} -> {pair[1]:.0f}"


def markdown(fid: dict[str, Any]) -> str:
    cal = fid["calibration"]
    head = f"offline LM ({fid['offline']}" + (f", calibrated to {fid['offline_calibrated_to']}"
                                              if fid["offline_calibrated_to"] else ", not calibrated") + ")"
    lines = [f"# Fidelity: the {head} against {fid['real']}", "",
             f"Profile {fid['profile']}, the same tasks, sizes and budgets; figures of repeat 0 of each run that "
             f"ended ok in both reports. Ratio = real / offline. The offline LM stands in for the real model where "
             f"its calls are within {int(fid['within'] * 100)}% of the real model's.", "",
             "| strategy | task | calls offline | calls real | ratio | input tokens ratio | output tokens ratio | "
             "fallbacks offline | fallbacks real | unparsable real | errored examples real | score offline | "
             "score real | within |", "|" + "---|" * 14]
    for r in fid["rows"]:
        lines.append(f"| {r['strategy']} | {r['task']} | {_fmt(r['calls_offline'])} | {_fmt(r['calls_real'])} | "
                     f"{_fmt(r['calls_ratio'], '.2f')} | {_fmt(r['input_tokens_ratio'], '.2f')} | "
                     f"{_fmt(r['output_tokens_ratio'], '.2f')} | {_fmt(r['fallbacks_offline'])} | "
                     f"{_fmt(r['fallbacks_real'])} | {_fmt(r['parse_failures_real'])} | {_fmt(r['errored_real'])} | "
                     f"{_score(r['score_offline'])} | {_score(r['score_real'])} | {'yes' if r['within'] else 'no'} |")
    out = [r for r in fid["rows"] if not r["within"]]
    n = len(fid["rows"])
    lines += ["", f"Within {int(fid['within'] * 100)}%: {n - len(out)} of {n} strategies."]
    if out:
        lines += ["", "Where not, and why (from the records):", ""]
        lines += [f"- **{r['strategy']}** ({_fmt(r['calls_ratio'], '.2f')}x): {r['why']}" for r in out]
    if fid.get("not_ok"):
        lines += ["", f"Runs of {fid['real']} that did not end ok (not in the table), and the same pair offline:", ""]
        lines += [f"- **{f['strategy']}** on {f['task']}: real {f['real']}; offline {f['offline']}"
                  for f in fid["not_ok"]]
    lines += ["", "## What the real model does that the offline LM does not (calibration.json)", "",
              f"- Answers not in ChatAdapter's format (then asked again through JSONAdapter): "
              f"{cal['chat_format_fail'] * 100:.1f}% of ChatAdapter answers.",
              f"- JSONAdapter answers that could not be parsed either: {cal['json_fail'] * 100:.1f}%.",
              f"- Accuracy before optimizing: " + ("-" if cal["accuracy"] is None else f"{cal['accuracy'] * 100:.1f}%")
              + "; output tokens per call: " + _fmt(cal["output_tokens_per_call"]) + ".",
              f"- Measured from {cal['from']}.",
              "", "`--offline-calibration calibration.json` makes the offline LM answer with these rates, and lengthens "
              "a shorter answer to about this many output tokens with text no adapter reads (a JSON answer "
              "excepted) (harness.lm.brain.Calibration); its report then names the model it was calibrated to.", ""]
    return "\n".join(lines)


def main(args) -> int:
    offline, real = _load(args.offline), _load(args.real)
    fid = fidelity(offline, real)
    out = Path(args.out) if args.out else (Path(args.real) if Path(args.real).is_dir() else Path(args.real).parent)
    out.mkdir(parents=True, exist_ok=True)
    name = "fidelity-calibrated" if fid["offline_calibrated_to"] else "fidelity"
    atomic_write_text(out / f"{name}.json", json.dumps(fid, indent=1) + "\n")
    atomic_write_text(out / f"{name}.md", markdown(fid))
    wrote = [out / f"{name}.md", out / f"{name}.json"]
    if not fid["offline_calibrated_to"]:  # (against a calibrated offline LM, accuracy_scale would be relative to it)
        atomic_write_text(out / "calibration.json", json.dumps(fid["calibration"], indent=1) + "\n")
        wrote.append(out / "calibration.json")
    print(markdown(fid))
    print(f"wrote {', '.join(map(str, wrote))}")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("fidelity", help="the offline LM against a real model, per strategy (calls, tokens, "
                       "fallbacks, scores), and the calibration that makes the offline LM stand in for it")
    p.add_argument("offline", help="OUT folder or report.json of a bench with the offline LM")
    p.add_argument("real", help="OUT folder or report.json of the same profile with a real model (--lm local/...)")
    p.add_argument("--out", default=None, help="folder for fidelity.md/.json and calibration.json (default: the real "
                   "bench's OUT)")
