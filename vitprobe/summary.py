"""How a per-tap measure changes through a model's blocks, summarised by block kind — the
numbers behind the paper's "MSAs reduce, convs/MLPs increase" findings (F6, F8)."""

from __future__ import annotations

import numpy as np


def change_by_kind(taps: list, value: str) -> dict[str, float]:
    """Mean of (measure at tap t) - (measure at tap t-1) over taps of each kind.

    Returns ``{"msa": ..., "conv_mlp": ..., "n_msa": ..., "n_conv_mlp": ...}``; a kind with
    no taps gives NaN.
    """
    vals = [getattr(t, value) for t in taps]
    msa, other = [], []
    for prev, cur, tap in zip(vals, vals[1:], taps[1:]):
        (msa if tap.kind == "msa" else other if tap.kind in ("conv", "mlp") else []).append(
            cur - prev)
    return {"msa": float(np.mean(msa)) if msa else float("nan"),
            "conv_mlp": float(np.mean(other)) if other else float("nan"),
            "n_msa": len(msa), "n_conv_mlp": len(other)}
