"""The preprocessing step between parse and the operators.

A pipeline is data: JSON ``{"version": n, "steps": [{"kind": ..., "params": {...}}]}``
with each kind from a fixed registry. This module holds the spine the engine
calls (`apply` per batch, `version` on every snapshot); the step kinds
(fill, cast, normalise, derive, filter, ...) plug into `STEPS`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import pyarrow as pa

from .errors import UserError

STEPS: dict[str, object] = {}      # kind -> step class; filled as step kinds are added


@dataclass(frozen=True)
class Pipeline:
    version: int = 0
    steps: tuple[dict, ...] = field(default_factory=tuple)

    @classmethod
    def from_json(cls, text: str) -> "Pipeline":
        try:
            spec = json.loads(text)
        except json.JSONDecodeError as e:
            raise UserError(f"the pipeline spec is not valid JSON: {e}") from None
        steps = tuple(spec.get("steps", []))
        for i, step in enumerate(steps):
            if step.get("kind") not in STEPS:
                raise UserError(f"step {i + 1}: unknown kind {step.get('kind')!r}; "
                                f"known kinds: {', '.join(sorted(STEPS)) or 'none yet'}")
        return cls(int(spec.get("version", 0)), steps)

    def to_json(self) -> str:
        return json.dumps({"version": self.version, "steps": list(self.steps)})

    def apply(self, table: pa.Table) -> pa.Table:
        for step in self.steps:
            table = STEPS[step["kind"]](**step.get("params", {})).apply(table)
        return table
