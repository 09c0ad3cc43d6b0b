"""Try a model file from outside in a spawned process before this process uses it.

The checks in `safe` and `trees` cover what is known to crash scikit-learn's compiled
code; a model that still kills the process that predicts with it (a signal, not an
exception) must not take the dashboard down, so its first predictions run elsewhere.
"""
from __future__ import annotations

import signal

import numpy as np
import pandas as pd

from ..errors import UserError

TRIAL_SECONDS = 120
NUMBERS = [0.0, 1.0, -1.0, np.nan, 1e9]
TEXTS = ["a", "b", "", None, "zz"]


def sample_frame(card: dict) -> pd.DataFrame:
    """Five rows of the card's features: ordinary, extreme and missing values."""
    return pd.DataFrame({f["name"]: TEXTS if f.get("role") == "categorical" else NUMBERS
                         for f in card["features"]})


def tried(data: bytes, card: dict, what: str) -> None:
    """Refuse the model in `data` when predicting `card`'s features kills or hangs the process that tries.

    An exception is not a crash: the model may refuse these made-up rows and still suit real ones.
    """
    from ..compute import isolated
    outcome, detail = isolated("trial", {"data": data, "frame": sample_frame(card)}, TRIAL_SECONDS)
    if outcome == "died":
        how = f"signal {signal.Signals(-detail).name}" if detail is not None and detail < 0 else f"exit code {detail}"
        raise UserError(f"{what} is refused: it crashed the process that tried it on five rows ({how})")
    if outcome == "timeout":
        raise UserError(f"{what} is refused: it did not predict five rows within {TRIAL_SECONDS} s")
