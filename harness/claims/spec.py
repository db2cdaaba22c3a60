"""The claims file (``claims.toml``) read into typed objects, with one-line errors for a bad file."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

DEFAULT_PATH = Path(__file__).with_name("claims.toml")
CHANGES = ("prompt", "weights", "both")
NOT_IN_STUDY = "not in the study"  # how a strategy the claims file gives no tier (GEPA) is shown; no claim counts it


@dataclass(frozen=True)
class StrategyClaim:
    name: str
    target: str
    tier: str
    changes: str  # "prompt", "weights" or "both"
    study_says: str

    @property
    def trains_weights(self) -> bool:
        return self.changes in ("weights", "both")


@dataclass(frozen=True)
class Claim:
    id: str
    section: str
    text: str
    study: str
    check: str
    params: dict[str, Any] = field(default_factory=dict)

    def get(self, key: str, default: Any = None) -> Any:
        return self.params.get(key, default)

    def need(self, key: str) -> Any:
        if key not in self.params:
            raise HarnessError(f"claims file: claim {self.id!r} (check {self.check!r}) needs the key {key!r}")
        return self.params[key]


@dataclass
class ClaimsFile:
    path: str
    study: dict[str, Any]
    tiers: list[str]
    strategies: dict[str, StrategyClaim]
    claims: list[Claim]
    rules: dict[str, str]
    assumptions: dict[str, Any]
    literature: list[dict[str, Any]]

    def tier_rank(self, tier: str) -> int:
        """1 for the cheapest tier."""
        return self.tiers.index(tier) + 1

    def strategy(self, name: str) -> StrategyClaim | None:
        return self.strategies.get(name)

    def assumption(self, *keys: str, default: Any = None) -> Any:
        node: Any = self.assumptions
        for k in keys:
            if not isinstance(node, dict) or k not in node:
                return default
            node = node[k]
        return node


def load_claims(path: str | Path | None = None) -> ClaimsFile:
    path = Path(path) if path else DEFAULT_PATH
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise HarnessError(f"claims file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise HarnessError(f"claims file {path} is not valid TOML: {exc}") from None
    tiers = list(data.get("tiers", {}).get("order", []))
    if not tiers and data.get("strategy"):  # a claims file with no strategies (beyond.toml) needs no tiers
        raise HarnessError(f"claims file {path}: [tiers] order is missing")
    strategies: dict[str, StrategyClaim] = {}
    for row in data.get("strategy", []):
        try:
            s = StrategyClaim(name=row["name"], target=row["target"], tier=row["tier"], changes=row["changes"],
                              study_says=row.get("study_says", ""))
        except KeyError as exc:
            raise HarnessError(f"claims file {path}: a [[strategy]] lacks {exc.args[0]!r}") from None
        if s.tier not in tiers:
            raise HarnessError(f"claims file {path}: strategy {s.name} has tier {s.tier!r}, not one of {tiers}")
        if s.changes not in CHANGES:
            raise HarnessError(f"claims file {path}: strategy {s.name} changes {s.changes!r}, not one of {CHANGES}")
        strategies[s.name] = s
    claims = []
    seen = set()
    for row in data.get("claim", []):
        row = dict(row)
        try:
            c = Claim(id=row.pop("id"), section=row.pop("section"), text=row.pop("text"), study=row.pop("study"),
                      check=row.pop("check"), params=row)
        except KeyError as exc:
            raise HarnessError(f"claims file {path}: a [[claim]] lacks {exc.args[0]!r}") from None
        if c.id in seen:
            raise HarnessError(f"claims file {path}: claim id {c.id!r} appears twice")
        seen.add(c.id)
        claims.append(c)
    return ClaimsFile(path=str(path), study=dict(data.get("study", {})), tiers=tiers, strategies=strategies,
                      claims=claims, rules=dict(data.get("rules", {})), assumptions=dict(data.get("assumptions", {})),
                      literature=list(data.get("literature", [])))
