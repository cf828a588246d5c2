"""How a per-tap measure changes through a model's blocks, summarised by block kind — the
numbers behind the paper's "MSAs reduce, convs/MLPs increase" findings (F6, F8).

The change at tap t is measured against tap t-1 (the block's input): a difference for a
measure that is already a logarithm (ΔlogAmplitude), a log-ratio ``log(m_t / m_{t-1})``
for a scale (feature-map variance), so that blocks deep in a growing residual stream are not
weighted by its size. Blocks that change the map's resolution (``"subsample"``: stride-2
convs, patch merging) are reported apart from ordinary conv blocks, as the paper shades them
(Figs. 8, 9).
"""

from __future__ import annotations

import numpy as np

from .stats import Interval, bootstrap

# summary groups of tap kinds
GROUPS = {"msa": ("msa",), "conv_mlp": ("conv", "mlp"), "mlp": ("mlp",), "conv": ("conv",),
          "subsample": ("subsample",)}


def tap_changes(values: np.ndarray, log_ratio: bool = False) -> np.ndarray:
    """Per-tap change of ``values`` (..., T) against the previous tap: (..., T - 1)."""
    v = np.asarray(values, dtype=float)
    if log_ratio:
        if (v <= 0).any():
            raise ValueError("a log-ratio needs positive values")
        return np.diff(np.log(v), axis=-1)
    return np.diff(v, axis=-1)


def mean_change(values: np.ndarray, kinds: list[str], group: str,
                log_ratio: bool = False, eligible: list[bool] | None = None) -> float:
    """Mean change over the taps of ``group`` (a key of ``GROUPS``); NaN with none.
    ``eligible`` (one flag per change, i.e. per tap after the first): only those count."""
    ch = tap_changes(values, log_ratio)
    sel = [i for i, k in enumerate(kinds[1:]) if k in GROUPS[group]
           and (eligible is None or eligible[i])]
    return float(ch[..., sel].mean()) if sel else float("nan")


def group_changes(kinds: list[str], group: str, eligible: list[bool] | None = None) -> int:
    """How many changes ``mean_change`` averages for ``group``."""
    return sum(k in GROUPS[group] and (eligible is None or eligible[i])
               for i, k in enumerate(kinds[1:]))


def change_by_kind(taps: list, value: str, log_ratio: bool = False) -> dict:
    """Mean change per group of taps (``msa``, ``conv_mlp``, ``mlp``, ``conv``,
    ``subsample``) and how many taps each holds (``n_msa``, ...)."""
    vals = np.array([getattr(t, value) for t in taps], dtype=float)
    kinds = [t.kind for t in taps]
    out: dict = {}
    for g, members in GROUPS.items():
        out[g] = mean_change(vals, kinds, g, log_ratio)
        out[f"n_{g}"] = sum(k in members for k in kinds[1:])
    return out


def per_image_matrix(taps: list, field: str = "per_image") -> np.ndarray:
    """(images, taps): each tap's per-image values side by side."""
    return np.stack([np.asarray(getattr(t, field) if not isinstance(t, dict) else t[field],
                                dtype=float) for t in taps], axis=1)


def change_interval(matrix: np.ndarray, kinds: list[str], group: str, log_ratio: bool = False,
                    seed: int = 0, num_resamples: int = 2000,
                    eligible: list[bool] | None = None) -> Interval:
    """95 % bootstrap interval over images of ``mean_change`` of the image-averaged measure:
    ``matrix`` is (images, taps) of per-image values."""
    def stat(m):
        return mean_change(m.mean(axis=0), kinds, group, log_ratio, eligible)

    return bootstrap(stat, np.asarray(matrix, dtype=float), seed=seed,
                     num_resamples=num_resamples)


def stages(kinds: list[str]) -> list[list[int]]:
    """Tap indices of each stage: a new stage starts at every ``subsample`` tap (the embedding
    tap belongs to the first)."""
    out: list[list[int]] = [[]]
    for i, k in enumerate(kinds):
        if k == "subsample" and out[-1]:
            out.append([])
        out[-1].append(i)
    return out


def stage_end_peaks(matrix: np.ndarray, kinds: list[str], seed: int = 0,
                    num_resamples: int = 2000) -> list[Interval]:
    """For each stage of two or more taps: ``log(m_end / max(m_other))`` of the image-averaged
    measure with its bootstrap interval over images — above 0 when the stage's measure peaks
    at its last block (the paper's reading of ResNet's variance, Fig. 9)."""
    out = []
    for idx in stages(kinds):
        if len(idx) < 2:
            continue

        def stat(m, idx=idx):
            v = m.mean(axis=0)
            return float(np.log(v[idx[-1]] / v[idx[:-1]].max()))

        out.append(bootstrap(stat, np.asarray(matrix, dtype=float), seed=seed,
                             num_resamples=num_resamples))
    return out
