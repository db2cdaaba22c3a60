"""Reading the harness's files: one home for opening, parsing, migrating and validating them.

Every file the harness reads back (run records, reports, thresholds, claims, side files such as
``scaling.json`` and ``finetune_memory.json``, a bench's ``bench.json``) goes through here, so that
every file that cannot be used gives the same kind of error: :class:`SchemaError`, one line naming
the file and, where there is one, the field, exit status 2.

This module sits below the schema (``harness.record`` holds the models only) and above nothing
else of the harness but ``harness.errors``: the report, the claims, ``compare`` and ``check`` import it.

Versioning: ``SCHEMA_VERSION`` (harness.record) rises whenever a field changes meaning or is
removed. :func:`load_report` and :func:`load_record` migrate older files and refuse newer ones.
History: 1 -> 2 added the stored ``Report.aggregates``; 2 -> 3 removed it again (aggregates are
computed from the runs, never stored) and made measured fields reject NaN, Infinity and negatives.
"""

from __future__ import annotations

import json
import math
import tomllib
from pathlib import Path
from typing import Any, Callable

from pydantic import ValidationError

from harness.errors import HarnessError
from harness.lm.brain import Calibration
from harness.record import REPORT_KIND, SCHEMA_VERSION, Report, RunRecord

MAX_JSON_INT_DIGITS = 30  # no measured figure has more; a 5,000-digit integer is refused, not computed with


class SchemaError(HarnessError):
    """A file is not one this version of the harness can use; the message names the file and the field."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code=2)


# --------------------------------------------------------------------------- raw reading


def _text(path: Path, what: str) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        raise SchemaError(f"{what} {path} does not exist") from None
    except IsADirectoryError:
        raise SchemaError(f"{what} {path} is a directory, not a file") from None
    except UnicodeDecodeError:
        raise SchemaError(f"{what} {path} is not a text file") from None
    except OSError as exc:
        raise SchemaError(f"{what} {path} cannot be read: {exc.strerror}") from None


class _Refused:
    """A JSON value read_json refuses (NaN, Infinity, a huge integer), held until its field is found."""

    def __init__(self, why: str) -> None:
        self.why = why


def _first_refused(value: Any, where: str = "") -> tuple[str, _Refused] | None:
    """The field path ("runs.0.wall_s") and the first _Refused value inside `value`, or None."""
    if isinstance(value, _Refused):
        return where, value
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        if (hit := _first_refused(item, f"{where}.{key}" if where else str(key))) is not None:
            return hit
    return None


def read_json(path: str | Path, what: str) -> dict[str, Any]:
    """A JSON object from `path`. NaN, Infinity and absurdly long integers are refused here, in one line
    naming the field."""
    path = Path(path)
    text = _text(path, what)
    refused: list[_Refused] = []

    def constant(name: str) -> _Refused:
        refused.append(_Refused(f"{name} is not a number this harness accepts"))
        return refused[-1]

    def integer(digits: str) -> int | _Refused:
        n = len(digits.lstrip("-"))
        if n <= MAX_JSON_INT_DIGITS:
            return int(digits)
        refused.append(_Refused(f"an integer of {n:,} digits is not a measured figure"))
        return refused[-1]

    try:
        data = json.loads(text, parse_constant=constant, parse_int=integer)
    except json.JSONDecodeError as exc:
        raise SchemaError(f"{what} {path} is not valid JSON (line {exc.lineno}: {exc.msg})") from None
    if refused:
        where, bad = _first_refused(data) or ("?", refused[0])
        raise SchemaError(f"{what} {path}: {where}: {bad.why}")
    if not isinstance(data, dict):
        raise SchemaError(f"{what} {path} is not a JSON object")
    return data


def read_toml(path: str | Path, what: str) -> dict[str, Any]:
    """A TOML table from `path`, or a one-line SchemaError."""
    path = Path(path)
    text = _text(path, what)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SchemaError(f"{what} {path} is not valid TOML: {exc}") from None


def read_kind(path: str | Path, what: str, kind: str) -> dict[str, Any]:
    """A JSON side file (scaling.json, finetune_memory.json, ...) whose "kind" must be `kind`."""
    data = read_json(path, what)
    if data.get("kind") != kind:
        raise SchemaError(f"{what} {path} is not a {kind} file (its kind is {data.get('kind')!r})")
    return data


def finite(value: Any, where: str) -> float:
    """`value` as a finite float, or a SchemaError naming `where` (a file and a field)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
        raise SchemaError(f"{where} must be a finite number, not {value!r}")
    return float(value)


# --------------------------------------------------------------------------- migrations


def _v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    """2 added a stored Report.aggregates; 3 removes it, so nothing needs computing here."""
    return {**data, "schema_version": 2}


def _v2_to_v3(data: dict[str, Any]) -> dict[str, Any]:
    """3 dropped the stored Report.aggregates (computed from the runs instead)."""
    data = {k: v for k, v in data.items() if k != "aggregates"}
    return {**data, "schema_version": 3}


def _v3_to_v4(data: dict[str, Any]) -> dict[str, Any]:
    """4 added the run status "budget" (stopped at --max-spend or --max-calls); a version-3 document has no such
    run, so it reads unchanged. The version rose so that a version-3 harness refuses a record it cannot read with
    "update the harness", not a validation error on the status."""
    return {**data, "schema_version": 4}


def _v4_to_v5(data: dict[str, Any]) -> dict[str, Any]:
    """5 added a run's `jobs` and `ran_beside` (benches running N runs at once); every version-4 run ran alone, which
    their defaults (1 and 0) say, so it reads unchanged."""
    return {**data, "schema_version": 5}


# MIGRATIONS[v] turns a version-v document into a version-(v+1) one.
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {1: _v1_to_v2, 2: _v2_to_v3, 3: _v3_to_v4, 4: _v4_to_v5}


def migrate(data: dict[str, Any], what: str) -> dict[str, Any]:
    """Bring an older document up to SCHEMA_VERSION; refuse a newer one."""
    version = data.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise SchemaError(f"{what} has no valid schema_version: not a dspy-resource-bench file")
    if version > SCHEMA_VERSION:
        raise SchemaError(
            f"{what} has schema_version {version}, newer than this harness reads ({SCHEMA_VERSION}): "
            "update the harness (git pull) to read it")
    for step in range(version, SCHEMA_VERSION):
        data = MIGRATIONS[step](data)
    return data


def first_error(exc: ValidationError) -> str:
    """"runs.3.wall_s: Input should be a finite number (got nan)": the field and what is wrong with it."""
    err = exc.errors()[0]
    loc = ".".join(str(x) for x in err["loc"])
    got = err.get("input")
    shown = "" if isinstance(got, (dict, list)) else f" (got {str(got)[:40]!r})"
    return f"{loc}: {err['msg']}{shown}"


# --------------------------------------------------------------------------- records and reports


def load_report(path: str | Path) -> Report:
    """Read a report, migrating older schema versions. Raises SchemaError with a one-line reason."""
    data = read_json(Path(path), "report")
    if data.get("kind") != REPORT_KIND:
        raise SchemaError(f"{path} is not a dspy-resource-bench report (no kind={REPORT_KIND!r})")
    data = migrate(data, f"report {path}")
    runs = data.get("runs")
    for run in runs if isinstance(runs, list) else []:
        if isinstance(run, dict) and isinstance(run.get("schema_version"), int):
            run.update(migrate(run, f"run {run.get('run_id')} in {path}"))
    try:
        return Report.model_validate(data)
    except ValidationError as exc:
        raise SchemaError(f"report {path} does not match the schema: {first_error(exc)}") from None


def load_record(path: str | Path) -> RunRecord:
    """Read one run record, migrating older schema versions. Raises SchemaError with a one-line reason."""
    data = migrate(read_json(Path(path), "run record"), f"run record {path}")
    try:
        return RunRecord.model_validate(data)
    except ValidationError as exc:
        raise SchemaError(f"run record {path} does not match the schema: {first_error(exc)}") from None


def read_calibration(path: str | Path) -> dict[str, Any]:
    """The calibration.json `harness fidelity` wrote (a real model's measured format failures and accuracy),
    checked: the fields the offline LM takes (harness.lm.brain.Calibration)."""
    try:
        data = read_kind(path, "calibration", "dspy-resource-bench/calibration")
        Calibration.from_dict(data)
    except (SchemaError, ValueError) as exc:
        raise HarnessError(f"calibration file {path}: {exc}") from None
    return {k: data[k] for k in ("model", "chat_format_fail", "json_fail", "accuracy_scale",
                                       "output_tokens_per_call") if k in data}
