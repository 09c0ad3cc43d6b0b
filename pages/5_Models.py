"""Models: train and evaluate on stored history, search, compare, deploy, and watch the live score."""
from __future__ import annotations

import time

import streamlit as st

from engine.models.data import guess_task, split_features
from engine.models.selection import GRIDS
from engine.models.spec import ALGORITHMS, ModelSpec
from engine.views import parse_time
from ui import charts
from ui import format as fmt
from ui.controls import flash, show_flash, stream_row
from ui.guard import guard
from ui.page import header
from ui.refresh import keep, remember

engine, every = header(
    "Models",
    "Train on the stream's stored history, judge the result against a trivial baseline, deploy it onto "
    "the stream and watch its live accuracy.")
NAMES = {"logreg": "Logistic regression", "svm": "SVM (RBF kernel)", "svm-linear": "Linear SVM",
         "rf": "Random forest", "hgb": "Gradient boosting", "sgd": "SGD linear model", "ridge": "Ridge regression"}
SLICES = ["Last N rows", "Time range", "All stored rows"]
CV_KINDS = {"Time-series split": "time", "Stratified k-fold": "stratified"}
CLASS_METRICS = [("accuracy", "Accuracy"), ("precision", "Precision"), ("recall", "Recall"), ("f1", "F1"),
                 ("roc_auc", "ROC AUC")]
REG_METRICS = [("mae", "MAE"), ("rmse", "RMSE"), ("r2", "R²")]


# --- the training form ---------------------------------------------------------------

def kept_select(label: str, options: list, key: str, default, **kw):
    remember(key, default, options)
    return st.selectbox(label, options, key=key, on_change=keep, args=(key,), **kw)


def hyperparameters(algorithm: str) -> dict:
    """The algorithm's main hyperparameters; values from the search grid, defaults as scikit-learn's."""
    p = {}
    c = st.columns(3)
    if algorithm in ("logreg", "svm", "svm-linear"):
        p["C"] = c[0].select_slider("C (inverse regularisation)", GRIDS[algorithm]["C"], value=1.0, key="m_C")
    if algorithm == "svm":
        gamma = c[1].selectbox("gamma (kernel width)", ["scale", 0.01, 0.1, 1.0], key="m_gamma")
        p["gamma"] = gamma
    if algorithm == "rf":
        p["n_estimators"] = int(c[0].number_input("Trees", 10, 1000, 100, step=10, key="m_trees"))
        depth = int(c[1].number_input("Max depth (0 = unlimited)", 0, 50, 0, key="m_depth"))
        p["max_depth"] = depth or None
        p["min_samples_leaf"] = int(c[2].number_input("Min rows per leaf", 1, 100, 1, key="m_leaf"))
    if algorithm == "hgb":
        p["learning_rate"] = c[0].select_slider("Learning rate", [0.01, 0.03, 0.1, 0.3], value=0.1, key="m_lr")
        p["max_iter"] = int(c[1].number_input("Boosting rounds", 10, 1000, 100, step=10, key="m_rounds"))
        p["max_leaf_nodes"] = int(c[2].number_input("Leaves per tree", 2, 255, 31, key="m_leaves"))
    if algorithm in ("sgd", "ridge"):
        grid = [1e-5, 1e-4, 1e-3, 1e-2] if algorithm == "sgd" else [0.1, 1.0, 10.0, 100.0]
        p["alpha"] = c[0].select_slider("alpha (regularisation)", grid, value=grid[1], key=f"m_alpha_{algorithm}")
    return p


def training_slice() -> dict:
    c1, c2, c3 = st.columns([2, 1, 1], vertical_alignment="bottom")
    remember("m_slice", SLICES[0], SLICES)
    kind = c1.radio("Training rows", SLICES, key="m_slice", horizontal=True, on_change=keep, args=("m_slice",))
    if kind == SLICES[0]:
        n = c2.number_input("Rows", 20, 10_000_000, 5000, step=1000, key="m_last",
                            help="The newest N stored rows, oldest first.")
        return {"last": int(n)}
    if kind == SLICES[1]:
        start = c2.text_input("From", key="m_from", placeholder="2024-01-31 12:00")
        end = c3.text_input("To", key="m_to", placeholder="now")
        out = {}
        if start.strip():
            out["start"] = parse_time(start)
        if end.strip():
            out["end"] = parse_time(end)
        return out
    return {}


def form(name: str, snap) -> tuple[ModelSpec | None, dict]:
    """Draw the training settings; the spec they describe (None when incomplete) and the slice."""
    names = [f.name for f in snap.schema if not f.name.startswith("_") and f.name != snap.time_column
             and str(f.type) in ("string", "large_string", "bool", "double", "float", "int64", "int32")]
    if len(names) < 2:
        st.info("The stream needs a target column and at least one feature column.")
        return None, {}
    c1, c2, c3 = st.columns([2, 1, 2])
    with c1:
        target = kept_select("Target", names, "m_target", names[-1], help="The column to predict.")
    recent = snap.window_table(rows=2000)
    guessed = guess_task(recent, target) if recent.num_rows else "classification"
    tasks = ["classification", "regression"]
    task = c2.radio("Task", tasks, index=tasks.index(guessed), key=f"m_task_{target}",
                    help="Guessed from the target: text, yes/no or a few whole numbers are classes.")
    algorithms = [a for a in ALGORITHMS if ALGORITHMS[a][tasks.index(task)] is not None]
    algorithm = c3.selectbox("Algorithm", algorithms, format_func=NAMES.get, key=f"m_algorithm_{task}")
    others = [n for n in names if n != target]
    remember("m_features", others)
    st.session_state["m_features"] = [f for f in st.session_state["m_features"] if f in others] or others
    features = st.multiselect("Features", others, key="m_features", on_change=keep, args=("m_features",),
                              help="Numbers are imputed and scaled; text columns are one-hot encoded.")
    params = hyperparameters(algorithm)
    slice_ = training_slice()
    c1, c2, c3 = st.columns([2, 1, 1], vertical_alignment="bottom")
    cv_label = c1.radio("Cross-validation", list(CV_KINDS), key="m_cv_kind", horizontal=True,
                        help="Time-series split trains on older rows and scores the rows right after them; "
                             "stratified k-fold shuffles time away (only for classification).")
    folds = int(c2.number_input("Folds", 2, 10, 5, key="m_folds"))
    holdout = c3.slider("Holdout (newest rows)", 0.1, 0.5, 0.2, 0.05, key="m_holdout", format="%.2f",
                        help="The newest share of the rows, scored once by the final model.")
    if not features:
        st.info("Choose at least one feature.")
        return None, slice_
    numeric, categorical = split_features(snap.schema.empty_table(), features, target)
    spec = ModelSpec(task, target, tuple(numeric), tuple(categorical), algorithm, params, cv=folds,
                     cv_kind=CV_KINDS[cv_label], holdout=holdout)
    return spec, slice_


def actions(name: str, spec: ModelSpec, slice_: dict) -> None:
    busy = st.session_state.get("m_job") is not None
    c1, c2, c3, _ = st.columns([1, 1.5, 1.5, 1])
    if c1.button("Train", type="primary", icon=":material/model_training:", width="stretch", disabled=busy):
        with guard("Training"):
            start_job(engine.models.train(name, spec, slice_), "train")
    with c2.popover("Search hyperparameters", icon=":material/manage_search:", width="stretch", disabled=busy):
        grid = GRIDS[spec.algorithm]
        st.caption("Candidates from " + "; ".join(f"{k} ∈ {{{', '.join(map(str, v))}}}" for k, v in grid.items())
                   + ", scored on the same folds; the best is trained and kept.")
        method = st.radio("Method", ["halving", "random"], key="m_search_method", horizontal=True,
                          format_func={"halving": "Successive halving", "random": "Random"}.get)
        n_iter = st.number_input("Candidates", 2, 20, 8, key="m_search_n")
        if st.button("Start search", type="primary", key="m_search_go"):
            with guard("The search"):
                start_job(engine.models.search(name, spec, slice_, method, int(n_iter)), "search")
    with c3.popover("Compare algorithms", icon=":material/compare_arrows:", width="stretch", disabled=busy):
        task_index = ["classification", "regression"].index(spec.task)
        options = [a for a in ALGORITHMS if ALGORITHMS[a][task_index] is not None]
        chosen = st.multiselect("Algorithms", options, default=options[:3], format_func=NAMES.get, key="m_compare")
        st.caption("Default hyperparameters, same rows, folds and holdout; each result is kept.")
        if st.button("Start comparison", type="primary", key="m_compare_go", disabled=not chosen):
            with guard("The comparison"):
                specs = [spec.with_(algorithm=a, params={}) for a in chosen]
                start_job(engine.models.compare(name, specs, slice_), "compare")


def start_job(job_id: str, kind: str) -> None:
    st.session_state["m_job"] = job_id
    st.session_state.pop("_flash_models", None)
    st.rerun()


@st.fragment(run_every=0.5)
def job_panel() -> None:
    """Progress of this session's running job; on completion the whole page redraws with its result."""
    job_id = st.session_state.get("m_job")
    if job_id is None:
        return
    with guard("The job"):
        job = engine.models.jobs.get(job_id)
        if job.active:
            with st.container(border=True):
                c1, c2 = st.columns([5, 1], vertical_alignment="center")
                share = job.done / job.total if job.total else 0.0
                c1.progress(min(share, 1.0), text=f"**{job.label}** · {job.message} · "
                                                   f"{fmt.seconds(max(0.0, time.time() - job.started))}")
                if c2.button("Cancel", icon=":material/cancel:", key="m_cancel", width="stretch"):
                    engine.models.jobs.cancel(job_id)
            return
        st.session_state.pop("m_job")
        if job.state == "done":
            if job.kind == "compare":
                flash("models", "success", f"Compared {len(job.result)} models; the table below ranks them.")
                st.session_state["m_selected"] = job.result[0]["model"] if job.result else None
            else:
                st.session_state["m_selected"] = job.result
                flash("models", "success", f"{job.label}: done, stored as {job.result}.")
        elif job.state == "cancelled":
            flash("models", "info", f"{job.label}: cancelled; nothing was stored.")
        else:
            flash("models", "error", f"{job.label} failed: {job.error}")
        st.rerun(scope="app")


# --- results -------------------------------------------------------------------------

def metric_cards(report: dict) -> None:
    h, b = report["holdout"], report["baseline"]
    keys = CLASS_METRICS if report["task"] == "classification" else REG_METRICS
    lower_better = {"mae", "rmse"}
    for box, (key, label) in zip(st.columns(len(keys)), keys):
        value, base = h.get(key), b.get(key)
        delta = None if value is None or base is None else value - base
        with box.container(border=True):
            st.metric(label, score(value),
                      delta=None if delta is None else f"{delta:+.3f} vs baseline",
                      delta_color="inverse" if key in lower_better else "normal",
                      help=f"On the {report['rows']['holdout']:,} newest rows (holdout). Baseline "
                           + (f"(always predicts {b.get('predicts')!r}): " if "predicts" in b else
                              "(always predicts the training mean): ") + score(base))


def score(x) -> str:
    """A model score: three decimals, so cards and tables line up."""
    return "—" if x is None else f"{x:.3f}"


def results(model_id: str) -> None:
    card = engine.models.registry.card(model_id)
    report = card["metrics"]
    spec = card["spec"]
    training = card.get("training") or {}
    sl = training.get("slice") or {}
    where = (f"last {sl['last']:,} rows" if "last" in sl else "a time range" if "start" in sl or "end" in sl
             else "all stored rows")
    params = ", ".join(f"{k}={v}" for k, v in (report.get("params") or {}).items()) or "defaults"
    st.caption(f"**{card['name']}** · {NAMES.get(spec['algorithm'], spec['algorithm'])} ({params}) → "
               f"**{spec['target']}** · trained on {report['rows']['train']:,} rows of {where}, scored on the "
               f"newest {report['rows']['holdout']:,} · {', '.join(f['name'] for f in card['features'])}")
    metric_cards(report)
    h = report["holdout"]
    cv = report["cv"]
    c1, c2, c3 = st.columns(3, gap="medium")
    if report["task"] == "classification":
        with c1:
            st.markdown("**Confusion matrix** · holdout rows")
            st.plotly_chart(charts.confusion(h["confusion"], h["classes"], spec["target"]), key="m_chart_confusion",
                            config={"displayModeBar": False})
        with c2:
            if h.get("roc"):
                st.markdown(f"**ROC curve** · positive class {h['classes'][1]!r}")
                st.plotly_chart(charts.roc(h["roc"]["fpr"], h["roc"]["tpr"], h.get("roc_auc")),
                                key="m_chart_roc", config={"displayModeBar": False})
            else:
                st.markdown("**Per class** · holdout rows")
                st.dataframe([{"class": k, **v} for k, v in h["per_class"].items()], hide_index=True,
                             width="stretch", column_config={c: st.column_config.NumberColumn(format="%.3f")
                                                             for c in ("precision", "recall", "f1")})
    else:
        with c1:
            st.markdown("**Residuals** · holdout rows")
            st.plotly_chart(charts.residuals(h["residuals"]["predicted"], h["residuals"]["residual"],
                                             spec["target"]), key="m_chart_residuals", config={"displayModeBar": False})
    with (c3 if report["task"] == "classification" else c2):
        st.markdown(f"**Cross-validation** · {cv['metric']} per fold, {score(cv['mean'])} ± {score(cv['std'])}")
        st.plotly_chart(charts.fold_scores(cv["scores"], cv["metric"], report["baseline"].get(cv["metric"]),
                                           cv["kind"]), key="m_chart_folds", config={"displayModeBar": False})
    if report.get("search"):
        s = report["search"]
        with st.expander(f"Hyperparameter search · {s['method']} · best {s['best']}",
                         icon=":material/manage_search:"):
            st.dataframe([{**{k: str(v) for k, v in r["params"].items()}, f"{s['metric']} mean": r["mean"],
                           "std": r["std"], "rows": r["rows"], "round": r["round"]} for r in s["table"]],
                         hide_index=True, width="stretch",
                         column_config={f"{s['metric']} mean": st.column_config.NumberColumn(format="%.4f"),
                                        "std": st.column_config.NumberColumn(format="%.4f")})


def deploy_controls(name: str, model_id: str) -> None:
    live = engine.models.live(name)           # the deployment itself: a snapshot only follows the next batch
    c1, c2, c3 = st.columns([1, 1, 3], vertical_alignment="center")
    if c1.button("Deploy onto " + name, type="primary", icon=":material/rocket_launch:", width="stretch",
                 disabled=live is not None and live["model_id"] == model_id):
        with guard("Deploying"):
            engine.deploy(name, model_id)
            st.toast(f"{model_id} now predicts every new row of {name}")
            st.rerun()
    if c2.button("Undeploy", icon=":material/stop_circle:", disabled=live is None, width="stretch"):
        with guard("Undeploying"):
            engine.undeploy(name)
            st.rerun()
    if live is not None:
        c3.markdown(f":green[● deployed]: **{live['name']}** predicts every new row of {name}")


def leaderboard(name: str, target: str) -> None:
    rows = engine.models.leaderboard(name, target)
    if not rows:
        st.info(f"No models for {target} yet: train one above, or compare several algorithms at once.",
                icon=":material/info:")
        return
    metric = rows[0]["metric"]
    st.dataframe([{"model": r["name"], "algorithm": NAMES.get(r["algorithm"], r["algorithm"]),
                   "hyperparameters": ", ".join(f"{k}={v}" for k, v in r["params"].items()) or "defaults",
                   f"CV {metric}": r["cv_mean"], "± std": r["cv_std"], f"holdout {metric}": r["holdout"],
                   f"baseline {metric}": r["baseline"], "rows": r["rows"],
                   "trained (UTC)": (r["created"] or "").replace("T", " ").rstrip("Z")} for r in rows],
                 hide_index=True, width="stretch",
                 column_config={c: st.column_config.NumberColumn(format="%.3f")
                                for c in (f"CV {metric}", "± std", f"holdout {metric}", f"baseline {metric}")}
                 | {f"CV {metric}": st.column_config.ProgressColumn(f"CV {metric}", min_value=0.0, max_value=1.0,
                                                                      format="%.3f")}
                 | {"rows": st.column_config.NumberColumn(format="localized")})
    st.caption(f"Best cross-validation {metric} first; every model was scored on its own newest rows.")


def ranking(name: str, spec: ModelSpec, slice_: dict) -> None:
    c1, c2 = st.columns([3, 2], vertical_alignment="bottom")
    method = c1.radio("Score", ["mutual_info", "f_test"], horizontal=True, key="m_rank_method",
                      format_func={"mutual_info": "Mutual information", "f_test": "F-test"}.get)
    if c2.button("Rank features", icon=":material/sort:", width="stretch"):
        with guard("Ranking"), st.spinner("Scoring each feature…"):
            st.session_state["m_ranking"] = (spec.target, method, engine.models.rank(
                name, spec.target, spec.features, spec.task, method, slice_))
    kept = st.session_state.get("m_ranking")
    if kept and kept[0] == spec.target:
        label = "mutual information (nats)" if kept[1] == "mutual_info" else "F statistic"
        st.plotly_chart(charts.ranking([r["feature"] for r in kept[2]], [r["score"] for r in kept[2]], label),
                        key="m_chart_ranking", config={"displayModeBar": False})
    else:
        st.caption(f"How much each feature alone tells about {spec.target}, best first.")


# --- live ----------------------------------------------------------------------------

def live_panel(name: str, spec: ModelSpec | None) -> None:
    @st.fragment(run_every=every)
    def live() -> None:
        with guard("The live score"):
            status = engine.models.live(name) if name in engine.names() else None
            if status is None:
                st.info(f"No model is deployed on {name}. Deploy a trained model above, or start an online "
                        "learner that learns from every labelled row.", icon=":material/info:")
                return
            metric = status["metric"]
            cols = st.columns(4)
            cols[0].metric("Live " + ("accuracy" if metric == "accuracy" else "MAE"),
                           fmt.num(status.get(metric)) if status.get(metric) is not None else "waiting",
                           help=f"Prequential: each labelled row is scored before the model sees its label; "
                                f"over the last {status['window']:,} labelled rows.")
            cols[1].metric("Rows predicted", fmt.count(status["predicted"]))
            cols[2].metric("Labelled rows", fmt.count(status["labelled"]))
            cols[3].metric("Drift alarms", fmt.count(status["drifts"]),
                           help="Page-Hinkley test on the error rate; a jump in errors raises an alarm.")
            if status.get("drift"):
                st.warning(f"Drift detected at labelled row {status['last_drift_row']:,}: the error rate rose. "
                           + ("The online learner restarted from the rows after it." if status["online"] else
                              "Consider retraining on recent rows."), icon=":material/warning:")
            if status["curve"]["labelled"]:
                st.plotly_chart(charts.live_score(status["curve"], status["drift_rows"], metric, status["window_size"]),
                                key="m_chart_live", config={"displayModeBar": False})
            else:
                st.caption("The chart starts with the first labelled row.")
            st.caption(f"**{status['name']}** ({status['model_id']}) on {name} · updated {fmt.clock()}")
    live()
    if spec is not None and spec.numeric:
        c1, c2 = st.columns([1, 2], vertical_alignment="center")
        if c1.button("Start online learner", icon=":material/autorenew:", width="stretch",
                     help="An SGD model that predicts each batch, then learns from its labels; "
                          "it restarts when drift is detected."):
            with guard("Starting the online learner"):
                engine.deploy_online(name, spec.target, list(spec.numeric), task=spec.task)
                st.rerun()
        c2.caption(f"Online learner: {spec.task} of **{spec.target}** from the numeric features "
                   f"{', '.join(spec.numeric)}; replaces the deployed model.")


def page() -> None:
    name, snap, _ = stream_row(engine)
    if snap is None:
        return
    show_flash("models")
    spec = slice_ = None
    with st.container(border=True):
        st.subheader("Train")
        with guard("The training settings"):
            spec, slice_ = form(name, snap)
        if spec is not None:
            actions(name, spec, slice_)
    job_panel()
    st.subheader("Evaluation")
    models = [c for c in engine.models.registry.list() if (c.get("training") or {}).get("stream") == name]
    if not models:
        st.info("No trained models for this stream yet: choose a target and features, then Train. "
                "The results appear here.", icon=":material/info:")
    else:
        ids = [c["id"] for c in models]
        labels = {c["id"]: f"{c['name']} · {c['spec']['target']} · trained {c['created'].replace('T', ' ')[:-4]}"
                  for c in models}
        if st.session_state.get("m_selected") in ids:
            st.session_state["m_model"] = st.session_state.pop("m_selected")
        c1, _ = st.columns([1, 1])
        model_id = c1.selectbox("Model", ids, format_func=labels.get, key="m_model")
        with guard("The evaluation"):
            results(model_id)
            deploy_controls(name, model_id)
    if spec is not None:
        st.subheader(f"Trained models for {spec.target}")
        with guard("The comparison"):
            leaderboard(name, spec.target)
    left, right = st.columns([2, 3], gap="large")
    with left:
        st.subheader("Feature ranking")
        if spec is not None:
            with guard("The ranking"):
                ranking(name, spec, slice_)
    with right:
        st.subheader("Live score")
        live_panel(name, spec)


if engine is not None:
    with guard("This page"):
        page()
