"""Preprocessing page under AppTest: build steps with widgets, reorder and remove them, preview,
apply with a backfill whose statistics match pandas, refuse a hostile expression, go back a version."""
import numpy as np
import pandas as pd
import pytest

from tests.test_app import SOURCES, app, button, metric, open_app, rerun_until  # noqa: F401  (fixture)

PAGE = "pages/2_Preprocessing.py"


def frame(n=400) -> pd.DataFrame:
    rng = np.random.default_rng(8)
    x = rng.normal(10, 2, n).round(4)
    x[rng.random(n) < 0.2] = np.nan
    return pd.DataFrame({"x": x, "y": rng.normal(size=n).round(4), "site": rng.choice(["n", "s"], n)})


@pytest.fixture
def page(app, monkeypatch):
    monkeypatch.setenv("RIVULET_DEMO", "0")
    df = frame()
    at = open_app(SOURCES)
    at.file_uploader[0].set_value(("raw.csv", df.to_csv(index=False).encode(), "text/csv")).run()
    button(at, "Start replay").click().run()
    rerun_until(at, lambda a: metric(a, "Rows") == "400")
    at.switch_page(PAGE).run()
    assert not at.exception
    return at, df, app


def steps_shown(at) -> list[str]:
    return [m.value.split("** ", 1)[1] for m in at.markdown if m.value.startswith("**") and ".** " in m.value]


def add(at, kind: str, **widgets) -> None:
    at.selectbox(key="pp_kind").set_value(kind).run()
    for key, value in widgets.items():
        getattr(at, {"cols": "multiselect", "value": "text_input", "method": "selectbox", "name": "text_input",
                     "expr": "text_input", "lower": "text_input", "upper": "text_input"}[key.split("_")[-1]]
                )(key=f"pp_{key}").set_value(value).run()
    button(at, "Add step").click().run()
    assert not at.exception


def test_fill_apply_and_backfill_match_pandas(page):
    at, df, data = page
    assert steps_shown(at) == []
    add(at, "fill_missing", fm_cols=["x"], fm_value="0")
    assert steps_shown(at) == ["Fill missing x with 0"]
    before, after = at.dataframe[0].value, at.dataframe[1].value
    assert before["x"].isna().any() and not after["x"].isna().any()
    np.testing.assert_array_equal(after["x"], before["x"].fillna(0))
    button(at, "Apply").click().run()
    at = rerun_until(at, lambda a: any("History re-run with version 1" in s.value for s in a.success))
    from ui.engine import _shared_engine
    engine = _shared_engine(str(data), False)
    stats = engine.snapshot("raw").to_json()["cumulative"]["x"]
    want = df["x"].fillna(0)
    assert stats["count"] == len(df)
    assert stats["mean"] == pytest.approx(want.mean(), rel=1e-9)
    assert stats["var"] == pytest.approx(want.var(), rel=1e-9)
    history = at.dataframe[-1].value
    assert history.set_index("version").loc[1, "running"] == "● running"


def test_reorder_remove_refuse_and_go_back(page):
    at, df, data = page
    add(at, "clip", clip_cols=["y"], clip_lower="-1", clip_upper="1")
    add(at, "normalise", norm_cols=["x"])
    assert steps_shown(at) == ["Clip y to [-1, 1]", "Normalise x (z-score, running statistics)"]
    at.button(key="pp_up_1").click().run()
    assert steps_shown(at) == ["Normalise x (z-score, running statistics)", "Clip y to [-1, 1]"]
    assert at.dataframe[1].value["y"].between(-1, 1).all()
    at.button(key="pp_remove_0").click().run()
    assert steps_shown(at) == ["Clip y to [-1, 1]"]
    # an expression that reaches for Python is refused and the draft is unchanged
    add(at, "derive", derive_name="z", derive_expr="__import__('os').system('true')")
    assert any("is not allowed" in e.value for e in at.error)
    # shown as typed: Markdown would turn __import__ into a bold "import"
    assert any(r"\_\_import\_\_" in e.value for e in at.error)
    assert steps_shown(at) == ["Clip y to [-1, 1]"]
    at.toggle(key="pp_backfill").set_value(False).run()
    button(at, "Apply").click().run()
    assert any("Version 1 runs from row" in s.value for s in at.success)
    at.selectbox(key="pp_version").set_value(0).run()
    button(at, "Go back to it").click().run()
    assert not at.exception
    assert any("Version 0 runs again" in s.value for s in at.success)
    assert steps_shown(at) == []
    history = at.dataframe[-1].value.set_index("version")
    assert history.loc[0, "running"] == "● running" and history.loc[1, "running"] == ""


def test_normalise_with_no_column_picked_takes_every_number_column(page):
    """A wide file (breast_cancer: 30 columns) needed a click per column before Add step could be pressed."""
    at, df, _ = page
    add(at, "normalise")
    assert steps_shown(at) == ["Normalise x, y (z-score, running statistics)"]
    add(at, "clip", clip_upper="1")
    assert steps_shown(at)[1] == "Clip x, y to [−∞, 1]"
    assert at.dataframe[1].value[["x", "y"]].max().max() <= 1


def test_every_number_column_leaves_out_the_event_time_and_the_label(app, monkeypatch):
    """Normalise with no column picked z-scored an epoch-seconds time column (its buckets landed in 1970)
    and a 0/1 `target` (the Models page then guessed regression): both are left out, and the box says so."""
    monkeypatch.setenv("RIVULET_DEMO", "0")
    df = frame(200).assign(t=1.7e9 + np.arange(200.0), target=np.arange(200) % 2)
    at = open_app(SOURCES)
    at.file_uploader[0].set_value(("labelled.csv", df.to_csv(index=False).encode(), "text/csv")).run()
    at.selectbox(key="upload_time_column").set_value("t").run()
    button(at, "Start replay").click().run()
    rerun_until(at, lambda a: metric(a, "Rows") == "200")
    at.switch_page(PAGE).run()
    add(at, "normalise")
    assert at.multiselect(key="pp_norm_cols").label == "Columns (none = every number column but t, target)"
    assert steps_shown(at) == ["Normalise x, y (z-score, running statistics)"]


def test_a_cast_to_time_names_its_format():
    """Day-first dates cast with %d/%m/%Y showed as 'Cast date to time': which way round was not said."""
    from ui.steps import describe
    step = {"kind": "cast", "params": {"columns": ["date"], "to": "time", "format": "%d/%m/%Y"}}
    assert describe(step) == "Cast date to time (%d/%m/%Y)"
    assert describe({"kind": "cast", "params": {"columns": ["x"], "to": "number"}}) == "Cast x to number"
