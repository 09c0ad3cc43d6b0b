"""The preprocessing pipeline between parse and the operators: specs, versions, running it.

A spec is data, never code: JSON ``{"version": n, "steps": [{"kind": ..., "params": {...}}]}``
with each kind from the fixed registry in `steps.py` (drop_missing, fill_missing,
cast, normalise, clip, derive, filter, select, rename, onehot; README lists their
params). `derive` expressions are checked by `expr.py` against a whitelist.

Engine API (engine/runtime.py) for the Preprocessing page; `spec` is a dict, a
list of steps, JSON text or a `Pipeline`; every refusal is a `UserError` whose
message names the step ("step 2 (derive): unknown column 'x'; columns here: ...")
and leaves the running pipeline as it was:

    engine.preview(name, spec, n=20) -> Preview
        .before / .after (pyarrow Tables: the n newest stored raw rows, and what the
        spec makes of them), .kept (positions of `after`'s rows in `before`),
        .dropped, .added, .removed (column names), .pipeline (the spec with frozen
        statistics written in), .schema (columns the operators would see).
        Changes nothing.
    engine.apply(name, spec, backfill=False) -> {"version", "spec", "from_row", "rebuilt"[, "backfill"]}
        checks the spec against the stream and its 10,000 newest stored rows, freezes
        statistics (frozen normalise, mean/median fill, one-hot categories) from them,
        records it as the next version (the engine numbers versions; a "version" in the
        spec is ignored) and runs it from the next batch (`from_row`).
        If the columns the operators see change, windows/buckets/groups/cumulative
        restart empty (`rebuilt`); otherwise they keep their rows until a backfill.
    engine.use_pipeline(name, version, backfill=False) -> same dict; back to a recorded
        version (0 = no steps) with the statistics it was recorded with.
    engine.pipeline(name) -> dict                 the current spec
    engine.pipelines(name) -> [{"version", "spec", "created"}]   every version, oldest first
    engine.backfill(name) -> Backfill             re-run stored raw history through the
        current version in the background; ingest goes on. Backfill.status() ->
        {"state": running|done|cancelled|failed|superseded, "version", "rows", "total",
        "progress" (0..1), "seconds", "error"}; .cancel(); .wait(timeout).
    engine.backfill_status(name) -> dict | None;  engine.cancel_backfill(name)
    engine.wait_backfill(name, timeout=None) -> dict | None

Every snapshot carries `pipeline` (the version new rows go through) and
`pipeline_from` (the oldest version behind any row in its statistics; equal to
`pipeline` after a rebuild or a backfill), and `pipeline_error` when a spec given
at start (`add_replay(..., pipeline=spec)`) was refused by the first rows: the
stream then runs without steps until an `apply`.

In this module: `Pipeline.check` validates a spec against a schema (and recent
rows) and returns the schema it produces; `freeze` writes statistics into the
spec so a stored version is self-contained; `fit` is check + freeze; a `Runner`
carries running state (forward fill, running statistics) from batch to batch;
`Pipeline.load` reads a spec file (the CLI's --pipeline).
"""
from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from ..errors import UserError
from ..schema import Schema, as_floats, kind_of, name_clash
from .steps import STEPS, Kinds, Step, arrow_type, kinds_of

FREEZE_ROWS = 10_000      # newest stored rows that frozen statistics and data checks come from


def as_pipeline(spec) -> "Pipeline":
    """A spec as a page or the CLI has it: a Pipeline, a dict, a list of steps or JSON text."""
    if isinstance(spec, Pipeline):
        return spec
    if isinstance(spec, str):
        return Pipeline.from_json(spec)
    return Pipeline.from_dict(spec)


@contextmanager
def _step(i: int, kind: str):
    """Name the step in every message it raises."""
    try:
        yield
    except UserError as e:
        raise UserError(f"step {i + 1} ({kind}): {e}") from None


def _names_checked(before: Kinds, after: Kinds) -> Kinds:
    """A step's output, refused when a name it adds is reserved or differs from another only in case."""
    why = name_clash(after, [c for c in after if c not in before])
    if why:
        raise UserError(why)
    return after


@dataclass(frozen=True)
class Pipeline:
    version: int = 0
    steps: tuple[dict, ...] = field(default_factory=tuple)

    def __post_init__(self):
        self.build()      # refuse unknown kinds and badly shaped params up front

    # --- JSON ------------------------------------------------------------------------
    @classmethod
    def from_json(cls, text: str) -> "Pipeline":
        try:
            spec = json.loads(text)
        except json.JSONDecodeError as e:
            raise UserError(f"the pipeline spec is not valid JSON: {e}") from None
        except RecursionError:
            raise UserError("the pipeline spec is nested too deeply to read") from None
        return cls.from_dict(spec)

    @classmethod
    def from_dict(cls, spec) -> "Pipeline":
        if isinstance(spec, list):
            spec = {"steps": spec}
        if not isinstance(spec, dict) or not isinstance(spec.get("steps", []), list):
            raise UserError('a pipeline spec is an object {"version": n, "steps": [...]}')
        steps = []
        for i, step in enumerate(spec.get("steps", [])):
            if not isinstance(step, dict) or "kind" not in step:
                raise UserError(f'step {i + 1}: a step is an object {{"kind": ..., "params": {{...}}}}')
            steps.append({"kind": step["kind"], "params": step.get("params", {})})
        try:
            version = int(spec.get("version", 0))
        except (TypeError, ValueError):
            raise UserError(f"the pipeline version must be a whole number, not {spec.get('version')!r}") from None
        return cls(version, tuple(steps))

    @classmethod
    def load(cls, path: str) -> "Pipeline":
        """A spec from a JSON file (the CLI's --pipeline)."""
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            raise UserError(f"cannot read the pipeline {path}: {e.strerror}") from None
        try:
            return cls.from_json(text)
        except UserError as e:
            raise UserError(f"{path}: {e}") from None

    def to_dict(self) -> dict:
        return {"version": self.version, "steps": [dict(s) for s in self.steps]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    def with_version(self, version: int) -> "Pipeline":
        return Pipeline(version, self.steps)

    # --- building and checking --------------------------------------------------------------
    def build(self) -> list[Step]:
        out = []
        for i, step in enumerate(self.steps):
            kind = step.get("kind")
            if not isinstance(kind, str) or kind not in STEPS:
                shown = repr(kind) if len(repr(kind)) <= 40 else repr(kind)[:37] + "..."
                raise UserError(f"step {i + 1}: unknown kind {shown}; known kinds: {', '.join(STEPS)}")
            with _step(i, kind):
                out.append(STEPS[kind](step.get("params", {})))
        return out

    @property
    def needs_freeze(self) -> bool:
        return any(s.needs_freeze() for s in self.build())

    def check(self, schema: pa.Schema | Schema, sample: pa.Table | None = None) -> pa.Schema:
        """The schema this pipeline produces from `schema`, or a UserError naming the step and problem.

        With a `sample` of recent rows, data problems are found too (a cast that fails
        on every row, statistics to freeze from a column without values)."""
        arrow = as_floats((schema.arrow() if isinstance(schema, Schema) else schema).empty_table()).schema
        kinds: Kinds = kinds_of(arrow)
        tz = {f.name: f.type for f in arrow}
        table = as_floats(sample) if sample is not None else None
        for i, step in enumerate(self.build()):
            with _step(i, step.kind):
                if table is not None and table.num_rows and step.needs_freeze():
                    step.output(kinds)
                    step = STEPS[step.kind](step.freeze(table))
                kinds = _names_checked(kinds, step.output(kinds))
                if table is not None:
                    step.check_sample(table)
                    if not step.needs_freeze():
                        table, _ = step.run(table, None)
                    else:
                        table = None        # nothing to freeze from: later data checks are skipped
        # a column that keeps its kind keeps its arrow type (a time column keeps its zone)
        return pa.schema([(c, tz[c] if c in tz and kind_of(tz[c]) == k else arrow_type(k)) for c, k in kinds.items()])

    def integers(self, schema: Schema) -> list[str]:
        """The source's integer columns (Column.integer) that hold only whole numbers after the steps,
        by their names there: what downloads and pages give back as integers (schema.whole_numbers)."""
        kinds: Kinds = kinds_of(schema.arrow())
        names = set(schema.integers)
        for step in self.build():
            kinds = step.output(kinds)
            names = step.integers(names) & {c for c, k in kinds.items() if k == "number"}
        return [c for c in kinds if c in names]

    def fit(self, schema: pa.Schema | Schema, sample: pa.Table) -> tuple["Pipeline", pa.Schema]:
        """Check against a stream and its recent rows, freeze statistics from them: (spec, output schema)."""
        self.check(schema, sample)
        if self.needs_freeze:
            if sample.num_rows == 0:
                step = next(i for i, s in enumerate(self.build()) if s.needs_freeze())
                raise UserError(f"step {step + 1} ({self.steps[step]['kind']}): there are no stored rows yet to "
                                f"take its statistics from; wait for data or give the values in the spec")
            frozen = self.freeze(sample)
        else:
            frozen = self
        return frozen, frozen.check(schema)

    def preview(self, schema: pa.Schema | Schema, sample: pa.Table, n: int) -> "Preview":
        """Before and after for the last `n` rows of `sample`; running statistics warm up on the rows before."""
        frozen, out = self.fit(schema, sample)
        n = max(0, min(int(n), sample.num_rows))
        runner = frozen.runner()
        runner.run(sample.slice(0, sample.num_rows - n))
        before = sample.slice(sample.num_rows - n)
        after, kept = runner.run_indexed(before)
        kept = np.arange(before.num_rows) if kept is None else kept
        return Preview(before, after, kept, frozen, out)

    def matches(self, other: "Pipeline") -> bool:
        """True when `other` is this spec, possibly with statistics frozen into it (same steps)."""
        if len(self.steps) != len(other.steps):
            return False
        return all(a["kind"] == b["kind"] and all(b["params"].get(k) == v for k, v in a["params"].items())
                   for a, b in zip(self.steps, other.steps))

    def freeze(self, sample: pa.Table) -> "Pipeline":
        """The same spec with statistics from `sample` written in where a step needs them."""
        table, steps = as_floats(sample), []
        for i, (spec, step) in enumerate(zip(self.steps, self.build())):
            with _step(i, step.kind):
                step.output(kinds_of(table.schema))
                if step.needs_freeze():
                    step = STEPS[step.kind](step.freeze(table))
                    spec = {"kind": step.kind, "params": step.params}
                table, _ = step.run(table, None)
            steps.append(spec)
        return Pipeline(self.version, tuple(steps))

    # --- running ---------------------------------------------------------------------------
    def runner(self, state: list | None = None) -> "Runner":
        return Runner(self, state)

    def apply(self, table: pa.Table, keep: tuple[str, ...] = ()) -> pa.Table:
        """A fresh-state run over one whole table; statistics still to freeze come from the table itself.

        Columns in `keep` (e.g. the store's _rid, _ingest) skip the steps and come back first, for the
        rows the steps kept."""
        keep = tuple(c for c in keep if c in table.column_names)
        data = table.drop_columns(list(keep)) if keep else table
        p = self.freeze(data) if self.needs_freeze else self
        out, kept = p.runner().run_indexed(data)
        for i, c in enumerate(keep):
            col = table.column(c)
            out = out.add_column(i, c, col if kept is None else col.take(pa.array(kept, pa.int64())))
        return out


@dataclass(frozen=True)
class Preview:
    """What a spec would do to recent rows; nothing in the engine changes."""
    before: pa.Table            # the raw rows
    after: pa.Table             # the same rows after the pipeline (rows a filter drops are absent)
    kept: np.ndarray            # positions in `before` of the rows in `after`
    pipeline: Pipeline          # the spec with frozen statistics written in, as `apply` would record it
    schema: pa.Schema           # the columns the operators would see

    @property
    def dropped(self) -> int:
        return self.before.num_rows - self.after.num_rows

    @property
    def added(self) -> list[str]:
        return [c for c in self.schema.names if c not in self.before.column_names]

    @property
    def removed(self) -> list[str]:
        return [c for c in self.before.column_names if c not in self.schema.names]


class Runner:
    """Runs a frozen pipeline batch after batch, carrying each step's state (JSON-serialisable)."""

    def __init__(self, pipeline: Pipeline, state: list | None = None):
        if pipeline.needs_freeze:
            raise UserError("the pipeline has statistics still to freeze; apply it to a stream or call freeze()")
        self.pipeline = pipeline
        self.steps = pipeline.build()
        self.state = list(state) if state is not None else [None] * len(self.steps)
        if len(self.state) != len(self.steps):
            raise UserError("the saved pipeline state does not match the pipeline's steps")

    @property
    def version(self) -> int:
        return self.pipeline.version

    def run(self, table: pa.Table) -> pa.Table:
        return self.run_indexed(table)[0]

    def run_indexed(self, table: pa.Table) -> tuple[pa.Table, np.ndarray | None]:
        """The output and, when a step dropped rows, the input positions of the rows kept (else None)."""
        table = as_floats(table)        # steps compute in float64 (integer columns are stored as int64)
        if not self.steps:
            return table, None
        state, kept = list(self.state), None
        for i, step in enumerate(self.steps):
            with _step(i, step.kind):
                keep = step.keep(table)         # steps that drop rows hold no state
                if keep is None:
                    table, state[i] = step.run(table, state[i])
                elif not keep.all():
                    kept = np.flatnonzero(keep) if kept is None else kept[keep]
                    table = table.filter(pa.array(keep))
        self.state = state        # only a batch that went through every step moves the state on
        return table, kept

    def state_json(self) -> str:
        return json.dumps(self.state)

    @classmethod
    def from_json(cls, pipeline: Pipeline, text: str | None) -> "Runner":
        return cls(pipeline, json.loads(text) if text else None)
