"""Turning a Report into the files a reader uses, beside OUT/report.json.

``write_outputs(report, out)`` (the end of every bench, and ``make report``) writes ``runs.csv`` (one tidy row
per run), ``claims.json`` (every claim's verdict, rule, method and figures, and the projection tables),
``report.md`` (the cost card first, then the verdicts), ``report.html`` (report.md as one self-contained page:
sortable tables, plots inline, sections folded) and PNG plots in ``plots/``. ``rebuild(out)`` reloads ``report.json``,
takes in the records under ``runs/`` and writes everything again.

Modules: ``tables`` (pandas frames), ``markdown`` (report.md), ``plots`` (matplotlib, Agg).
"""

from __future__ import annotations

import sys
from pathlib import Path

from harness import registry
from harness.errors import HarnessError
from harness.files import atomic_write_text
from harness.load import SchemaError, load_record, load_report
from harness.redact import scrub
from harness.record import Report, RunRecord, utcnow

__all__ = ["build_report", "write_outputs", "rebuild", "runs_frame", "NOTES_OFFLINE"]

NOTES_OFFLINE = [
    "LM: the embedded offline LM (offline/simulated), served through dspy.LM with a custom engine. "
    "Real: the optimizer process's time, CPU, memory and disk, and the LM calls and tokens it made "
    "(counted where served, tokenizer of the price model). Not real: the LM's own latency, and the "
    "quality of its answers: scores show that an optimizer did its work, not how good it is on a real model.",
]


def lm_notes(lm: str | None, price_as: str | None) -> list[str]:
    """What the figures of a bench with this LM are and are not (the first notes of every report)."""
    from harness.lm.backend import LOCAL, OFFLINE, OFFLINE_HTTP, kind_of

    kind = kind_of(lm)
    if kind == OFFLINE:
        return list(NOTES_OFFLINE)
    if kind == OFFLINE_HTTP:
        return ["LM: the offline LM served over loopback HTTP (offline-http): the same brain as offline/simulated "
                "behind an OpenAI-compatible endpoint the harness started, reached through DSPy's own client. Calls "
                "and tokens are counted in the run and checked against the server's own usage at the harness's "
                "proxy (lm_server in each record). Scores show that an optimizer did its work, not quality."]
    if kind == LOCAL:
        spend = f"spend priced as {price_as}" if price_as else "spend not priced (a local model has no price)"
        return [f"LM: {lm}, a real pretrained model the harness installed, served on 127.0.0.1 (llama.cpp) and "
                f"stopped. Calls, tokens, adapter fallbacks and failed calls are counted in the run and checked "
                f"against the server's own usage at the harness's proxy; the server's memory and time per call are "
                f"in each record's lm_server, apart from the optimizer's; {spend}. A model this small is a realistic "
                f"cost load (real calls, tokens, latency, format failures) and a weak measure of quality: its "
                f"scores are small-model evidence only."]
    return [f"LM: {lm} (real). Calls and tokens counted for every call in every thread; spend priced at "
            f"{price_as or lm} from DSPy's bundled price table (null where the server reported no usage)."]


def build_report(runs: list[RunRecord], expected: list[str], *, profile: str, lm: str | None,
                 priced_as: str | None, machine, software, git, calibration=None,
                 bench_wall_s: float | None = None, notes: list[str] | None = None, created_at=None) -> Report:
    """The one place a Report is put together (a bench's end, and `report` from records alone): the runs in
    the order asked, the asked-for runs without a record named, and the notes that say what the figures are."""
    by_id = {r.run_id: r for r in runs}
    ids = [*expected, *(i for i in by_id if i not in expected)]
    missing = [i for i in expected if i not in by_id]
    notes = [n for n in (notes if notes is not None else lm_notes(lm, priced_as)) if not n.startswith("INCOMPLETE:")]
    calibrated = sorted({str(r.extra["offline_calibrated_to"]) for r in runs if r.extra.get("offline_calibrated_to")})
    if calibrated and not any(n.startswith("Calibrated:") for n in notes):
        notes.append(f"Calibrated: the offline LM answered as calibrated to {', '.join(calibrated)} (harness fidelity's "
                     "calibration.json: that model's measured share of answers not in ChatAdapter's format, of "
                     "unparsable JSON answers, and its accuracy); how far it then stands in for that model: "
                     "`harness fidelity` against the real bench (fidelity-calibrated.md).")
    if missing:
        notes.insert(0, f"INCOMPLETE: {len(missing)} of {len(expected)} runs have no record: " + ", ".join(missing))
    return Report(created_at=created_at or utcnow(), profile=profile, lm=lm or "offline/simulated", priced_as=priced_as,
                  machine=machine, software=software, git=git, calibration=calibration, bench_wall_s=bench_wall_s,
                  expected_runs=list(expected), missing_runs=missing, complete=not missing,
                  runs=[by_id[i] for i in ids if i in by_id], notes=notes)


def runs_frame(report: Report):
    from harness.report.tables import runs_frame as frame

    return frame(report)


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def write_outputs(report: Report, out: Path) -> None:
    """runs.csv, claims.json, plots/*.png and report.md beside report.json. A failure in the claims or a plot
    is written into report.md; it never costs the other files."""
    from harness.claims.evidence import gather
    from harness.claims.render import to_json
    from harness.claims.results import result_of
    from harness.claims.spec import load_claims
    from harness.report import html, markdown, plots, tables

    out = Path(out)
    atomic_write_text(out / "runs.csv", tables.runs_frame(report).to_csv(index=False))
    ev = result = error = None
    try:
        ev = gather(report, load_claims(), out)
        result = result_of(ev)
        atomic_write_text(out / "claims.json", to_json(result))
    except Exception as exc:  # noqa: BLE001 - reported in report.md, and the bench's report still gets written
        error = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
        _say(f"warning: claims not judged: {error}")
    written, failed = plots.write_plots(ev, out) if ev is not None else ([], [])
    keep = {Path(p.file).name for p in written}
    for old in (out / "plots").glob("*.png") if (out / "plots").is_dir() else []:
        if old.name not in keep:  # a plot this report has no data for must not survive from an older one
            old.unlink(missing_ok=True)
    for line in failed:
        _say(f"warning: plot not drawn: {line}")
    md = markdown.build(report, result, ev, written, failed, error)
    atomic_write_text(out / "report.md", md)
    title = md.splitlines()[0].lstrip("# ").strip() if md else "dspy-resource-bench report"
    atomic_write_text(out / "report.html", html.to_html(md, out, title))  # the same text, one self-contained page


def _records(out: Path) -> list[RunRecord]:
    folder = out / "runs"
    records = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            records.append(load_record(path))
        except SchemaError as exc:
            _say(f"warning: skipping {path.name}: {exc}")
    return sorted(records, key=_run_order())


def _run_order():
    """Records read from runs/ (no bench to give their order): strategies in the registry's order, each one's
    budgets light < medium < heavy, tasks in the registry's order, then repeats."""
    strategies, tasks = list(registry.strategies()), list(registry.tasks())

    def key(rec: RunRecord) -> tuple:
        name, level, settings = registry.budget_order(rec.key[0])
        return (strategies.index(name) if name in strategies else len(strategies), name, level, settings,
                tasks.index(rec.task) if rec.task in tasks else len(tasks), rec.task, rec.repeat)
    return key


def _from_records(records: list[RunRecord]) -> Report:
    first = records[0]
    return build_report(records, [r.run_id for r in records], profile=first.profile, lm=first.lm,
                        priced_as=first.priced_as, machine=first.machine, software=first.software, git=first.git)


def rebuild(out: Path) -> Report:
    """Reload OUT/report.json, take in OUT/runs/*.json if present, and rewrite every output file."""
    out = Path(out)
    path = out / "report.json"
    records = _records(out)
    if path.exists():
        report = load_report(path)
        if records:
            by_id = {r.run_id: r for r in report.runs} | {r.run_id: r for r in records}
            report = build_report(list(by_id.values()), report.expected_runs or list(by_id), profile=report.profile,
                                  lm=report.lm, priced_as=report.priced_as, machine=report.machine,
                                  software=report.software, git=report.git, calibration=report.calibration,
                                  bench_wall_s=report.bench_wall_s, notes=report.notes, created_at=report.created_at)
    elif records:
        report = _from_records(records)
    else:
        raise HarnessError(f"{out} holds neither report.json nor runs/*.json: nothing to build a report from "
                           f"(run `python -m harness bench --out {out}` first)")
    atomic_write_text(path, scrub(report.model_dump_json(indent=1)) + "\n")
    write_outputs(report, out)
    return report
