"""`python -m engine train` and `predict`: a CSV in, no running engine needed."""
from __future__ import annotations

import json
import os
import sys

from ..errors import UserError
from ..output import print_value

# spec.ALGORITHMS' names, here so that building the CLI parser does not import scikit-learn
ALGORITHM_NAMES = ("logreg", "ridge", "svm", "svm-linear", "rf", "hgb", "sgd")


def add_parsers(sub, positive_int) -> None:
    t = sub.add_parser("train", help="train and evaluate a model on a CSV file",
                       description="Train on every row of FILE (after --pipeline), oldest first; "
                                   "cross-validate on the older rows and score on the newest (the holdout).")
    t.add_argument("file", metavar="FILE")
    t.add_argument("--target", required=True, metavar="T")
    t.add_argument("--time-column", metavar="C",
                   help="order rows by this column before the holdout (default: the first timestamp column)")
    t.add_argument("--features", metavar="a,b,...", help="feature columns (default: every other column)")
    t.add_argument("--model", default="logreg", choices=ALGORITHM_NAMES)
    t.add_argument("--task", choices=["classification", "regression"],
                   help="default: classification for text/bool or up to 20 whole-number values")
    t.add_argument("--cv", type=positive_int, default=5, metavar="K", help="cross-validation folds (default 5)")
    t.add_argument("--cv-kind", choices=["time", "stratified"], default="time")
    t.add_argument("--holdout", type=float, default=0.2, metavar="SHARE", help="newest share kept for scoring")
    t.add_argument("--k-best", type=positive_int, metavar="K", help="keep the top K features (F-test)")
    t.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="a hyperparameter, e.g. n_estimators=50 (repeatable)")
    t.add_argument("--out", metavar="MODEL", help="write the model (.skops, .joblib or .onnx) and MODEL.card.json")
    t.add_argument("--pipeline", metavar="P.json", help="preprocessing spec applied before training")
    t.add_argument("--cluster", metavar="C",
                   help="run the cross-validation folds on Dask: local (starts a LocalCluster here) or "
                        "redis://... with RIVULET_DASK (default $RIVULET_CLUSTER; none: in this process)")
    t.add_argument("--json", action="store_true", help="print the evaluation as JSON")

    p = sub.add_parser("predict", help="predict every row of a CSV file with a .skops model",
                       description="Write FILE's rows as CSV to stdout with the prediction as the last field.")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--proba", action="store_true", help="add class-probability columns before the prediction")


def read_pipeline(path: str | None):
    from ..prep.pipeline import Pipeline
    return Pipeline.load(path) if path else Pipeline()


def parse_params(items: list[str]) -> dict:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise UserError(f"--param {item!r}: write NAME=VALUE")
        try:
            out[name] = json.loads(value)
        except json.JSONDecodeError:
            out[name] = value
    return out


def cmd_train(args) -> int:
    from .data import column_kinds, guess_task, in_time_order, read_csv, split_features, training_rows
    from .registry import make_card
    from .spec import ModelSpec
    from .train import headline, train
    table, quarantined = read_csv(args.file)
    source_kinds = column_kinds(table)
    # statistics the spec freezes come from the training rows and go into the card, so predict
    # runs the same transformation on new raw rows
    pipeline, _ = read_pipeline(args.pipeline).fit(table.schema, table)
    table = pipeline.runner().run(table)
    table, time_column = in_time_order(table, args.time_column)
    names = [c.strip() for c in args.features.split(",") if c.strip()] if args.features else None
    task = args.task or guess_task(table, args.target)
    numeric, categorical = split_features(table, names, args.target)
    spec = ModelSpec(task, args.target, tuple(numeric), tuple(categorical), args.model, parse_params(args.param),
                     k_best=args.k_best, cv=args.cv, cv_kind=args.cv_kind, holdout=args.holdout)
    rows = training_rows(table, args.target, numeric, categorical, task)
    cluster = args.cluster if args.cluster is not None else os.environ.get("RIVULET_CLUSTER")
    if cluster:
        from ..cluster.dask_compute import DaskMapper, dask_client
        with dask_client(cluster) as client:
            mapper = DaskMapper(client)
            result = train(rows, spec, map_folds=mapper)
            result.report["cv"]["scheduler"] = mapper.address
    else:
        result = train(rows, spec)
    result.report["rows"]["quarantined"] = quarantined
    result.report["rows"]["ordered_by"] = time_column
    out = headline(result.report)
    if args.out:
        from .export import export
        card = make_card(result.model, spec, result.report, column_kinds(table),
                         {"source": os.path.abspath(args.file), "rows": len(rows.y)},
                         json.loads(pipeline.to_json()), source_kinds=source_kinds)
        written = export(result.model, card, args.out)
        out["model"] = {"path": os.path.abspath(args.out), "format": written["format"], "sha256": written["sha256"],
                        "raw_columns": written["raw_columns"]}
        if not written["raw_columns"]:
            from .export import raw_warning
            sys.stderr.write(f"warning: {raw_warning(written)}\n")
    print_value(out, args.json)
    return 0


def cmd_predict(args) -> int:
    import pyarrow as pa
    import pyarrow.csv as pcsv

    from ..prep.pipeline import Pipeline
    from .data import read_parsed, with_gaps
    from ..read.export_csv import whole_seconds
    from .export import import_file
    model, card = import_file(args.model)
    parsed = read_parsed(args.file)
    table = parsed.table
    if card.get("pipeline", {}).get("steps") and not card.get("pipeline_in_model"):
        rows = table.num_rows
        table = Pipeline.from_dict(card["pipeline"]).apply(table)
        if table.num_rows < rows:
            sys.stderr.write(f"warning: the model's pipeline drops {rows - table.num_rows} rows of {args.file}; "
                             f"they are not in the output\n")
    frame = model_frame(table, card)
    pred = model.predict(frame)
    out = table
    if args.proba:
        if not hasattr(model, "predict_proba"):
            raise UserError("this model gives no class probabilities; drop --proba")
        proba = model.predict_proba(frame)
        for i, c in enumerate(model.classes_):
            out = out.append_column(unique_name(out, f"proba_{c}"), pa.array(proba[:, i]))
    out = out.append_column(unique_name(out, "prediction"), pa.array(pred.tolist()))
    if parsed.rejected and out.num_rows == parsed.table.num_rows:     # a filtering pipeline loses the places
        out = with_gaps(out, parsed)
        sys.stderr.write(f"warning: {parsed.rejected} rows of {args.file} could not be parsed; "
                         f"their lines are empty, prediction included\n")
    pcsv.write_csv(whole_seconds(out), sys.stdout.buffer, pcsv.WriteOptions(quoting_style="needed"))
    sys.stdout.flush()
    return 0


def unique_name(table, name: str) -> str:
    base, n = name, 1
    while name in table.column_names:
        n += 1
        name = f"{base}_{n}"
    return name


def model_frame(table, card: dict):
    """The feature columns a model's card asks for, checked against the table."""
    from .data import check_features, column_kinds, feature_roles, features_frame
    kinds = column_kinds(table)
    numeric, categorical = feature_roles(card["features"], kinds)
    check_features(kinds, numeric, categorical, "the data")
    frame = features_frame(table, numeric, categorical)
    return frame[[f["name"] for f in card["features"]]]
