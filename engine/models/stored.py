"""The columns a deployed model's predictions are stored with: no scikit-learn import, so the cluster's
command can create the predictions table without loading it."""
from __future__ import annotations

import pyarrow as pa

PREDICTION_SCHEMA = pa.schema([("_rid", pa.int64()), ("model", pa.string()), ("prediction", pa.string()),
                               ("value", pa.float64()), ("proba", pa.list_(pa.float64()))])
