import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from river import drift as river_drift

from engine.models.drift import PageHinkley
from engine.models.online import LiveMetrics, OnlineLearner


def river_hits(x, **kw):
    ph = river_drift.PageHinkley(mode="up", **kw)
    hits = []
    for i, v in enumerate(x):
        ph.update(float(v))
        if ph.drift_detected:
            hits.append(i)
    return hits


def batched_hits(x, size, **kw):
    ph = PageHinkley(**kw)
    hits = []
    for s in range(0, len(x), size):
        hits += (ph.update(x[s:s + size]) + s).tolist()
    return hits


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), size=st.integers(1, 3000),
       rates=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=4),
       threshold=st.sampled_from([5.0, 20.0, 50.0]))
def test_page_hinkley_fires_on_the_same_rows_as_river(seed, size, rates, threshold):
    rng = np.random.default_rng(seed)
    x = np.concatenate([(rng.random(1500) < r).astype(float) for r in rates])
    assert batched_hits(x, size, threshold=threshold) == river_hits(x, threshold=threshold)


def concept_change(n=40_000, change=20_000, d=10, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    w = rng.normal(size=d)
    y = (X @ w > 0).astype(int)
    y[change:] = 1 - y[change:]         # the same features now mean the opposite
    return X, y


def test_online_learner_recovers_after_an_abrupt_change_and_drift_fires_after_it():
    X, y = concept_change()
    learner = OnlineLearner("classification", classes=[0, 1], window=1000)
    accuracy = []
    for s in range(0, len(y), 1000):
        learner.learn(X[s:s + 1000], y[s:s + 1000])
        accuracy.append(learner.metrics.score())
    drifts = learner.metrics.drifts
    assert accuracy[19] > 0.9                       # learned the first concept (rows 19000-19999)
    assert accuracy[20] < 0.6                       # the batch right after the change
    assert accuracy[-1] > 0.9                       # recovered
    assert drifts and all(d >= 20_000 - 1000 for d in drifts)   # labelled rows start after the first batch
    assert drifts[0] - (20_000 - 1000) < 500        # and it fired soon after the change
    assert learner.resets >= 1


def test_learner_without_reset_still_flags_drift():
    X, y = concept_change(n=20_000, change=10_000)
    learner = OnlineLearner("classification", classes=[0, 1], reset_on_drift=False)
    for s in range(0, len(y), 1000):
        learner.learn(X[s:s + 1000], y[s:s + 1000])
    assert learner.resets == 0 and learner.metrics.drifts[0] >= 9000


def test_prequential_accuracy_is_over_the_last_window_rows():
    m = LiveMetrics("classification", window=100)
    m.update(np.zeros(150), np.zeros(150))      # all right
    m.update(np.zeros(30), np.ones(30))         # 30 wrong
    assert m.score() == pytest.approx(0.7)
    assert m.status()["labelled"] == 180


def test_online_regression_learns():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(20_000, 4))
    y = X @ np.array([1.0, -2.0, 0.5, 0.0]) + 0.1 * rng.normal(size=20_000)
    learner = OnlineLearner("regression", window=1000)
    for s in range(0, len(y), 1000):
        learner.learn(X[s:s + 1000], y[s:s + 1000])
    assert learner.metrics.score() < 0.2


def test_live_headline_is_macro_f1_or_r2_over_the_window_as_sklearn_computes_it():
    from sklearn.metrics import f1_score, r2_score
    rng = np.random.default_rng(2)
    m = LiveMetrics("classification", window=500)
    actual = rng.choice(["a", "b", "c"], 1700, p=[0.6, 0.3, 0.1])
    predicted = np.where(rng.random(1700) < 0.7, actual, rng.choice(["a", "b", "c", "d"], 1700))
    for k in range(0, 1700, 300):
        m.update(predicted[k:k + 300], actual[k:k + 300])
    assert m.headline() == pytest.approx(f1_score(actual[-500:], predicted[-500:], average="macro"))
    status = m.status()
    assert (status["metric"], status["metric_label"]) == ("f1", "macro F1") and status["f1"] == m.headline()
    assert m.curve[-1][1] == m.headline()
    r = LiveMetrics("regression", window=300)
    y = rng.normal(size=1000)
    guess = y + rng.normal(0, 0.5, 1000)
    for k in range(0, 1000, 250):
        r.update(guess[k:k + 250], y[k:k + 250])
    assert r.headline() == pytest.approx(r2_score(y[-300:], guess[-300:]))
    assert r.status()["metric_label"] == "R²" and r.status()["mae"] == pytest.approx(np.abs(y - guess)[-300:].mean())
