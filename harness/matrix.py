"""`harness matrix`: the same bench against several DSPy releases, and what changed between them.

Each release gets its own environment, made with uv and kept under ``.venv-dspy/<release>/`` beside the
project's ``.venv``: the release and what it pins, and, after them on the path, the project's own packages
(torch, pydantic, ...) through a ``.pth`` file, so that the harness's code runs under every release without
a second copy of the stack. Every run still gets a fresh measured process, started with that environment's
interpreter; all of them talk to the same offline LM, served over loopback HTTP by this process (the one LM
path every release accepts), with the same tasks, budgets and sizes. Per-release shims: harness.releases.

A release may be named ``3.4.1:litellm``: DSPy 3.4's LiteLLM engine instead of its default (lm15), so that
the pair isolates the LM layer.

OUT/<release>/ holds each release's bench (runs, report.json and the rest, as `harness bench` writes them);
OUT/matrix.md and OUT/matrix.json put them side by side, one table per strategy and task, a column per release,
each change the gate (harness check, its thresholds) counts marked against the release before it.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from harness import registry
from harness.bench import Bench, BenchConfig, say
from harness.check import evaluate, load_thresholds
from harness.context import load
from harness.errors import HarnessError
from harness.files import OutLock, atomic_write_json, atomic_write_text, ensure_writable
from harness.install import pip_install
from harness.load import load_report
from harness.releases import DEFAULT_RELEASES, check_release, has_strategy
from harness.report.markdown import duration, money
from harness.runner import stop_on_signals

ROOT = Path(__file__).resolve().parent.parent
ENVS = ROOT / ".venv-dspy"
ENGINES = ("litellm",)
FIGURES = (("lm_calls", "LM calls", "{:,.0f}"), ("input_tokens", "input tokens", "{:,.0f}"),
           ("output_tokens", "output tokens", "{:,.0f}"), ("api_cost_usd", "spend", None),
           ("wall_s", "wall", None), ("peak_rss_mb", "peak RAM MiB", "{:,.0f}"),
           ("score_before", "score before", "{:.1f}"), ("score_after", "score after", "{:.1f}"))


@dataclass(frozen=True)
class Release:
    """One column of the matrix: a DSPy version, and the engine its LM uses (None: the release's default)."""

    version: str
    engine: str | None = None

    @property
    def label(self) -> str:
        return self.version + (f":{self.engine}" if self.engine else "")

    @property
    def folder(self) -> str:
        """Its bench's folder under OUT: the label with '-' for ':' (a name every file system takes)."""
        return self.label.replace(":", "-")

    @staticmethod
    def parse(text: str) -> "Release":
        version, _, engine = text.strip().partition(":")
        check_release(version)
        if engine and engine not in ENGINES:
            raise HarnessError(f"DSPy release {text!r}: the engine after ':' must be one of {', '.join(ENGINES)}")
        if engine and tuple(int(p) for p in version.split(".")[:2]) < (3, 4):
            raise HarnessError(f"DSPy release {text!r}: engines are chosen from 3.4.0 on; before, every LM call goes "
                               "through LiteLLM already")
        return Release(version, engine or None)


def parse_releases(text: str | None) -> list[Release]:
    names = [t for t in (text or ",".join(DEFAULT_RELEASES)).split(",") if t.strip()]
    releases = [Release.parse(t) for t in names]
    if len({r.label for r in releases}) != len(releases):
        raise HarnessError(f"--dspy names a release twice: {text}")
    if not releases:
        raise HarnessError("--dspy names no release, e.g. --dspy 3.3.1,3.4.1")
    return releases


# --------------------------------------------------------------------------- environments


def _run(cmd: list[str], what: str, timeout: float = 900) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise HarnessError(f"{what} failed: {exc}") from None
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise HarnessError(f"{what} failed (exit {proc.returncode}): {tail[0][:300]}")
    return proc.stdout


def _uv(say_: Callable[[str], None]) -> list[str]:
    """uv, installed into the project's environment on first use (not part of `make test`'s default install)."""
    probe = subprocess.run([sys.executable, "-m", "uv", "--version"], capture_output=True, text=True)
    if probe.returncode != 0:
        pip_install(["uv>=0.9,<1"], say_, "uv", "harness matrix makes each release's environment with uv")
    return [sys.executable, "-m", "uv"]


def env_python(version: str, say_: Callable[[str], None] = say, envs: Path = ENVS) -> Path:
    """The interpreter of DSPy `version`'s environment, made on first use (uv venv + uv pip install dspy==V, then a
    .pth that puts the project's own site-packages after the release's)."""
    folder = envs / version
    python, stamp = folder / "bin" / "python", folder / ".ready"
    if stamp.exists() and python.exists():
        return python
    uv = _uv(say_)
    say_(f"making the environment of DSPy {version} in {folder} (uv; once) ...")
    shutil.rmtree(folder, ignore_errors=True)
    _run([*uv, "venv", "-q", "--python", sys.executable, str(folder)], f"uv venv for DSPy {version}")
    _run([*uv, "pip", "install", "-q", "--python", str(python), "--compile-bytecode", f"dspy=={version}"],
         f"uv pip install dspy=={version} (is it on PyPI, and PyPI reachable?)")
    ours = _site_packages(Path(sys.executable))
    theirs = Path(_site_packages(python))
    (theirs / "zz_dspy_resource_bench.pth").write_text(ours + "\n")  # (after the release's own packages)
    got = _run([str(python), "-c", "import dspy, importlib.metadata as m; print(m.version('dspy'))"],
               f"importing DSPy {version} in its environment").strip()
    if got != version:
        raise HarnessError(f"the environment of DSPy {version} imports DSPy {got}: remove {folder} and run again")
    stamp.write_text(version + "\n")
    return python


def _site_packages(python: Path) -> str:
    return _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                f"reading {python}'s site-packages").strip()


# --------------------------------------------------------------------------- the matrix


@dataclass
class MatrixConfig:
    out: Path
    releases: list[Release]
    profile: str = "quick"
    strategies: list[str] | None = None
    tasks: list[str] | None = None
    repeat: int = 1
    resume: bool = False
    timeout_s: float | None = None
    settings: dict[str, dict[str, Any]] | None = None  # --set STRATEGY.key=value, for every release alike


def run_matrix(cfg: MatrixConfig) -> int:
    """One bench per release into OUT/<release>/, then OUT/matrix.md and .json. 0: every run ok."""
    names = registry.plan(cfg.profile, cfg.strategies, cfg.tasks, 1)  # bad names: one line, before any install
    planned = list(dict.fromkeys(registry.split_variant(s)[0] for s, _, _ in names))  # (a bench expands variants)
    out = ensure_writable(Path(cfg.out).resolve())
    pythons = {r.version: env_python(r.version) for r in cfg.releases}  # every environment first: fail early
    code = 0
    with OutLock(out), stop_on_signals():
        for release in cfg.releases:
            mine = [s for s in planned if has_strategy(s, release.version)]
            lacks = [s for s in planned if s not in mine]
            say(f"=== DSPy {release.label}: {len(mine)} strategies"
                + (f" (not in this release: {', '.join(lacks)})" if lacks else ""))
            options = {**({"lm_engine": release.engine} if release.engine else {}),
                       **({"set": cfg.settings} if cfg.settings else {})}
            bench_cfg = BenchConfig(out=out / release.folder, profile=cfg.profile, strategies=mine, tasks=cfg.tasks,
                                    lm="offline-http", repeat=cfg.repeat, resume=cfg.resume, timeout_s=cfg.timeout_s,
                                    options=options, python=str(pythons[release.version]), release=release.version)
            with Bench(bench_cfg) as bench:
                bench.run_all()
                records = bench.recorded()
                if any(records.get(rid) is None or records[rid].status != "ok" for rid in bench.expected):
                    code = 1
        write_matrix(out, cfg.releases)
    say(f"matrix done: {out / 'matrix.md'}")
    return code


# --------------------------------------------------------------------------- the matrix report


def _changes(out: Path, releases: list[Release]) -> dict[tuple[str, str, str, str], tuple[str, str]]:
    """(release, strategy, task, metric) -> ("regressed" or "improved", the gate's line): what the gate (harness
    check, its default thresholds) counts between each release and the one before it."""
    marks = {}
    thresholds = load_thresholds(None)
    for before, after in zip(releases, releases[1:]):
        try:
            outcome = evaluate(load(out / before.folder / "report.json", "baseline"),
                               load(out / after.folder / "report.json", "current"), thresholds, only_present=True)
        except HarnessError:
            continue
        for f in outcome.findings:
            if f.counts:
                marks[(after.label, f.key[0], f.key[1], f.metric)] = ("regressed" if f.regressed else "improved",
                                                                        f.text)
    return marks


def write_matrix(out: Path, releases: list[Release]) -> None:
    """OUT/matrix.json and OUT/matrix.md from each release's OUT/<folder>/report.json."""
    reports = {r.label: load_report(out / r.folder / "report.json") for r in releases}
    marks = _changes(out, releases)
    rows: dict[tuple[str, str], dict[str, dict]] = {}
    for label, report in reports.items():
        for rec in report.runs:
            if rec.repeat:
                continue  # (one run per release and pair: the first repeat)
            rows.setdefault((rec.key[0], rec.task), {})[label] = {
                "status": rec.status, "error": rec.error, "workaround": rec.workaround,
                "dspy": rec.software.packages.get("dspy"), "litellm": rec.software.packages.get("litellm"),
                "server_choices": rec.lm_server.choices if rec.lm_server else None,  # (completions, as lm_calls)
                **{name: getattr(rec, name) for name, _, _ in FIGURES}}
    first = next(iter(reports.values()), None)
    data = {"releases": list(reports), "folders": {r.label: r.folder for r in releases},
            "profile": first.profile if first else None, "lm": "offline-http",
            "machine": first.machine.model_dump() if first else None,
            "rows": [{"strategy": s, "task": t, "by_release": v} for (s, t), v in rows.items()],
            "changes": [{"release": r, "strategy": s, "task": t, "metric": m, "kind": k, "text": text}
                        for (r, s, t, m), (k, text) in sorted(marks.items())]}
    atomic_write_json(out / "matrix.json", data)
    atomic_write_text(out / "matrix.md", matrix_markdown(data))


def _cell(value, name: str, fmt: str | None) -> str:
    if value is None:
        return "-"
    if name == "api_cost_usd":
        return money(value)
    if name == "wall_s":
        return duration(value)
    return fmt.format(value)


def matrix_markdown(data: dict) -> str:
    labels = data["releases"]
    lines = ["# Costs across DSPy releases", "",
             f"Profile {data['profile']}; the offline LM over loopback HTTP (the one LM path every release takes), "
             "the same tasks, budgets and sizes on each; each run a fresh measured process in that release's own "
             "environment (harness matrix). Spend: the offline LM's tokens at gpt-4o-mini's price (projected). "
             "**▲** a figure the gate (`harness check`, default thresholds) counts as a regression against the "
             "release to its left, **▼** an improvement; times and RAM are this machine's, single runs.", ""]
    marks = {(c["release"], c["strategy"], c["task"], c["metric"]): c["kind"] for c in data["changes"]}
    lines += _summary(data) + _largest(data)
    for row in data["rows"]:
        s, t, by = row["strategy"], row["task"], row["by_release"]
        lines += [f"## {s} on {t}", "", "| figure | " + " | ".join(labels) + " |",
                  "|---|" + "---:|" * len(labels)]
        lines.append("| status | " + " | ".join(by[r]["status"] if r in by else "not in this release"
                                                for r in labels) + " |")
        for name, title, fmt in FIGURES:
            cells = []
            for r in labels:
                if r not in by:
                    cells.append("-")
                    continue
                mark = {"regressed": " ▲", "improved": " ▼"}.get(marks.get((r, s, t, name)), "")
                cells.append(_cell(by[r][name], name, fmt) + mark)
            lines.append(f"| {title} | " + " | ".join(cells) + " |")
        notes = [f"DSPy {r}: {by[r]['error']}" for r in labels if r in by and by[r]["error"]]
        notes += [f"DSPy {r}: the run counted {by[r]['lm_calls']} LM calls, the server answered "
                  f"{by[r]['server_choices']} completions" for r in labels
                  if r in by and by[r]["server_choices"] is not None and by[r]["lm_calls"] != by[r]["server_choices"]]
        notes += [f"DSPy {r}: workaround: {by[r]['workaround']}" for r in labels if r in by and by[r]["workaround"]]
        lines += [""] + [f"- {n}" for n in notes] + ([""] if notes else [])
    if data["changes"]:
        lines += ["## Every finding of the gate (each release against the one to its left)", ""]
        lines += [f"- DSPy {c['release']}: {c['kind']}: {c['text']}" for c in data["changes"]] + [""]
    return "\n".join(lines) + "\n"


def _summary(data: dict) -> list[str]:
    """One row per release: its runs, and the sums and medians over those that are ok."""
    lines = ["## Each release, in sum", "", "| release | runs ok | LM calls | tokens | spend | peak RAM (median) | "
             "wall (sum) | not ok |", "|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in data["releases"]:
        runs = [row["by_release"][r] for row in data["rows"] if r in row["by_release"]]
        ok = [x for x in runs if x["status"] == "ok"]
        bad = sorted({row["strategy"] for row in data["rows"] if r in row["by_release"]
                      and row["by_release"][r]["status"] != "ok"})
        total = lambda k: sum(x[k] or 0 for x in ok)  # noqa: E731
        peaks = sorted(x["peak_rss_mb"] for x in ok)
        if not ok:  # (nothing to sum: not a release that cost nothing)
            lines.append(f"| {r} | 0 of {len(runs)} | - | - | - | - | - | {', '.join(bad) or '-'} |")
            continue
        lines.append(f"| {r} | {len(ok)} of {len(runs)} | {total('lm_calls'):,.0f} | "
                     f"{total('input_tokens') + total('output_tokens'):,.0f} | {money(total('api_cost_usd'))} | "
                     f"{peaks[len(peaks) // 2]:,.0f} MiB | {duration(total('wall_s'))} | {', '.join(bad) or '-'} |")
    return lines + ["", "Sums over each release's ok runs: two releases compare only over the strategies both ran "
                    "ok (the tables below).", ""]


def _largest(data: dict, floor: float = 0.2, most: int = 5) -> list[str]:
    """The biggest moves of calls, tokens and peak RAM between neighbouring releases (|ratio - 1| >= floor)."""
    labels, moves = data["releases"], []
    for row in data["rows"]:
        by = row["by_release"]
        for before, after in zip(labels, labels[1:]):
            if by.get(before, {}).get("status") != "ok" or by.get(after, {}).get("status") != "ok":
                continue
            for name, title in (("lm_calls", "LM calls"), ("input_tokens", "input tokens"),
                                ("peak_rss_mb", "peak RAM MiB")):
                a, b = by[before][name], by[after][name]
                if a and b and abs(b / a - 1) >= floor:
                    moves.append((title, abs(b / a - 1), f"{row['strategy']} on {row['task']}, {before} -> {after}: "
                                                         f"{title} {a:,.0f} -> {b:,.0f} (x{b / a:.2f})"))
    if not moves:
        return [f"No call, token or peak-RAM figure moved {floor:.0%} or more between neighbouring releases.", ""]
    lines = [f"## The largest changes (calls, tokens and peak RAM moving {floor:.0%} or more between neighbours; the "
             f"{most} largest of each)", ""]
    for title in ("LM calls", "input tokens", "peak RAM MiB"):
        mine = sorted((m for m in moves if m[0] == title), key=lambda m: -m[1])
        lines += [f"- {text}" for _, _, text in mine[:most]]
        lines += [f"- ... and {len(mine) - most} more {title} (the tables below)"] if len(mine) > most else []
    return lines + [""]


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser("matrix", help="the same bench against several DSPy releases, each in its own environment "
                                      "(made with uv on first use), the offline LM served to all of them over "
                                      "loopback HTTP; OUT/<release>/ per release, OUT/matrix.md side by side")
    p.add_argument("--dspy", default=None, metavar="RELEASES",
                   help=f"comma list of DSPy releases (default: {','.join(DEFAULT_RELEASES)}); 3.4.1:litellm is "
                        "3.4.1 with its LiteLLM engine instead of lm15")
    p.add_argument("--profile", default="quick", help="quick or standard (default: quick)")
    p.add_argument("--strategy", default=None, help="comma list (default: the profile's; a release that lacks one "
                                                    "skips it)")
    p.add_argument("--task", default=None, help="comma list (default: the profile's)")
    p.add_argument("--out", default="results/matrix", help="OUT/<release>/ per release, OUT/matrix.md and .json "
                                                           "(default: results/matrix)")
    p.add_argument("--resume", action="store_true", help="keep the ok runs each release's folder already holds")
    p.add_argument("--timeout", type=float, default=None, help="seconds per run (default: the profile's)")
    p.add_argument("--set", action="append", default=None, metavar="STRATEGY.key=value",
                   help="a strategy's setting, as for bench, on every release (e.g. --set MIPROv2.auto=default: "
                        "DSPy's own default auto, which moved in 2.6.17 and 2.6.23)")
    p.add_argument("--rebuild", action="store_true",
                   help="run nothing: write OUT/matrix.md and .json again from the releases' folders in OUT")
    return p


def main(args: argparse.Namespace) -> int:
    from harness.registry import parse_settings, split_names

    if args.rebuild:
        releases = parse_releases(args.dspy)
        missing = [r.folder for r in releases if not (Path(args.out) / r.folder / "report.json").exists()]
        if missing:
            raise HarnessError(f"--rebuild: {args.out} has no report of {', '.join(missing)}: name the releases it "
                               "holds with --dspy")
        write_matrix(Path(args.out), releases)
        say(f"matrix written: {Path(args.out) / 'matrix.md'}")
        return 0
    cfg = MatrixConfig(out=Path(args.out), releases=parse_releases(args.dspy), profile=args.profile,
                       strategies=split_names(args.strategy, "strategy"), tasks=split_names(args.task, "task"),
                       resume=args.resume, timeout_s=args.timeout, settings=parse_settings(args.set) or None)
    return run_matrix(cfg)

