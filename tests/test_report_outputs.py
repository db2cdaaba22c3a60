"""The report files written from the committed standard reference (results/standard-2core: its report,
scaling.json and finetune_memory.json, all in the repository): they exist, report.md opens with the
verdict table, claims.json is complete, and every plot is a valid PNG. Runs on every machine."""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import zlib
from pathlib import Path

import pandas as pd
import pytest

from harness.load import load_report
from harness.report import rebuild, write_outputs

REFERENCE = Path(__file__).resolve().parent.parent / "results" / "standard-2core"
SAMPLE = REFERENCE / "report.json"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_valid_png(path: Path) -> None:
    """Signature, an IHDR with a sane size, every chunk's CRC, and IEND last."""
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, path
    pos, chunks = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert zlib.crc32(kind + body) == crc, f"{path}: bad CRC in {kind!r}"
        chunks.append(kind)
        pos += 12 + length
    assert chunks[0] == b"IHDR" and chunks[-1] == b"IEND" and b"IDAT" in chunks, path
    width, height = struct.unpack(">II", data[16:24])
    assert 300 < width < 5000 and 200 < height < 5000, (path, width, height)


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("report")
    for name in ("report.json", "finetune_memory.json", "scaling.json"):
        shutil.copy(REFERENCE / name, folder / name)
    (folder / "plots").mkdir()
    (folder / "plots" / "stale.png").write_bytes(PNG_MAGIC)  # left by an older report: must go
    rebuild(folder)
    return folder


def test_files_exist(out):
    for name in ("report.json", "runs.csv", "report.md", "claims.json", "report.html"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert not (out / "plots" / "stale.png").exists()


def test_runs_csv_is_one_tidy_row_per_run(out):
    df = pd.read_csv(out / "runs.csv")
    report = load_report(out / "report.json")
    assert len(df) == len(report.runs) and df["run_id"].is_unique
    for col in ("strategy", "task", "status", "peak_rss_mb", "lm_calls", "compile_lm_calls", "opt_lm_calls",
                "training_steps"):
        assert col in df.columns, col


def test_report_md_opens_with_the_cost_card_then_the_verdicts(out):
    md = (out / "report.md").read_text()
    lines = [ln for ln in md.splitlines() if ln.strip()]
    assert lines[0].startswith("# ")
    assert lines[1] == "## What each optimizer cost"
    assert lines[4].startswith("| strategy | status | LM calls | tokens | spend | wall | peak RAM | score |")
    report = load_report(out / "report.json")
    assert md.index("## What each optimizer cost") < md.index("## Claims: verdicts")
    for r in report.runs:  # every pair has its row in its task's card, with what its calls scale with
        card = md[md.index(f"**{r.task}**"):md.index("## Claims: verdicts")]
        assert f"| {r.strategy} |" in card or (r.toy_student and f"| {r.strategy} (toy student) |" in card)
    assert "| LabeledFewShot | ok |" in md and "nothing at compile (0 calls)" in md
    claims = [ln for ln in lines[lines.index("## Claims: verdicts"):]]
    assert claims[1].startswith("| claim | the study says | verdict |")
    assert "`tiers.order.lm_calls`" in claims[3]
    for section in ("## Per strategy", "## Projections", "## Plots", "## How each number was measured"):
        assert section in md, section
    assert "not how good it is on a real model" in md  # beside the scores
    assert "projected" in md and "measured / analytic" in md
    assert md.index("## Claims: verdicts") < md.index("## Per strategy")


def test_claims_json_has_a_verdict_per_claim_with_figures(out):
    data = json.loads((out / "claims.json").read_text())
    assert data["kind"] == "dspy-resource-bench/claims"
    assert sum(data["counts"].values()) == len(data["verdicts"]) >= 40
    for v in data["verdicts"]:
        if v["verdict"] == "untestable here":
            assert v["reason"], v["claim_id"]
        else:
            assert v["figure"] and v["basis"] in ("measured", "projected", "measured + projected"), v["claim_id"]
    assert data["report"]["finetune_memory"] and data["report"]["scaling"]
    assert data["projections"]["memory_agreement"]["slopes"]


def test_every_plot_is_a_valid_png_and_linked_from_the_report(out):
    pngs = sorted((out / "plots").glob("*.png"))
    names = {p.name for p in pngs}
    assert {"resources_by_strategy.png", "cost_quality.png", "ram_timeline.png", "memory_measured_vs_analytic.png",
            "finetune_memory_projected.png", "training_cost_projected.png", "scaling_calls.png"} <= names
    md = (out / "report.md").read_text()
    for p in pngs:
        assert_valid_png(p)
        assert f"(plots/{p.name})" in md, p.name


def test_rebuild_from_run_records_alone(tmp_path):
    report = load_report(SAMPLE)
    (tmp_path / "runs").mkdir()
    for rec in report.runs[:3]:
        (tmp_path / "runs" / f"{rec.run_id}.json").write_text(rec.model_dump_json())
    rebuilt = rebuild(tmp_path)
    assert [r.run_id for r in rebuilt.runs] == [r.run_id for r in report.runs[:3]]  # the bench's order, not names
    assert (tmp_path / "report.json").exists() and (tmp_path / "report.md").read_text().startswith("# ")
    assert_valid_png(tmp_path / "plots" / "resources_by_strategy.png")


def test_unwritable_matplotlib_config_falls_back(monkeypatch, tmp_path):
    from harness.report import plots

    blocker = tmp_path / "a-file"
    blocker.write_text("")  # a config folder below a plain file cannot be created, even by root
    monkeypatch.setenv("MPLCONFIGDIR", str(blocker / "mpl"))
    plots.pyplot()
    assert os.environ["MPLCONFIGDIR"] != str(blocker / "mpl") and os.access(os.environ["MPLCONFIGDIR"], os.W_OK)


def test_write_outputs_survives_a_report_without_runs(tmp_path):
    report = load_report(SAMPLE).model_copy(update={"runs": []})
    write_outputs(report, tmp_path)
    md = (tmp_path / "report.md").read_text()
    assert md.splitlines()[2] == "## What each optimizer cost" and "No runs." in md
    assert "## Claims: verdicts" in md
    assert json.loads((tmp_path / "claims.json").read_text())["counts"]["untestable here"] > 0


def chromium() -> str:
    """Debian's chromium: `make test` installs it (scripts/ensure_chromium.sh) where the machine lacks it."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "chromium is not installed: run `make test`, which installs it (scripts/ensure_chromium.sh)"
    return found


def test_report_html_renders_in_headless_chromium(out, tmp_path):
    """report.html opened in headless Chromium: every table and every plot rendered (the page's own script
    counts what loaded), the headers sortable, the claims in a section of their own; a screenshot is kept."""
    import subprocess

    page = out / "report.html"
    text = page.read_text()
    assert text.startswith("<!doctype html>") and "src=\"plots/" not in text  # plots inline, nothing beside it
    assert text.index("What each optimizer cost") < text.index("<summary>Claims: verdicts</summary>")
    args = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000"]
    dom = subprocess.run([*args, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    body = next(ln for ln in dom.stdout.splitlines() if "<body" in ln)
    marks = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', body))
    n_images = text.count("<img ")
    assert int(marks["tables"]) == text.count("<table>") >= 10, marks
    assert int(marks["images"]) == n_images >= 5 and int(marks["images-ok"]) == n_images, marks
    assert marks["sortable"] == "yes"
    shot = tmp_path / "report.png"
    subprocess.run([*args, "--window-size=1400,2400", f"--screenshot={shot}", page.as_uri()], capture_output=True,
                   timeout=120, check=True)
    assert_valid_png(shot)
    keep = os.environ.get("REPORT_SCREENSHOT")
    if keep:  # REPORT_SCREENSHOT=/path/shot.png keeps it, to look at
        shutil.copy(shot, keep)
