"""How results and figures name a model: labels with the smoke preset's mark, the pooling a
ViT label names, and labels as file-name parts."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from vitprobe import results
from vitprobe.models import family, list_models

# what a label ends with when its model is the smoke preset's shrunk one
SMOKE_MARK = " [smoke]"


def unmarked(obj):
    """``obj`` with the smoke preset's mark taken off every label (keys and strings), so
    readers find the same names at every preset."""
    if isinstance(obj, dict):
        return {unmarked(k): unmarked(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [unmarked(v) for v in obj]
    return obj.replace(SMOKE_MARK, "") if isinstance(obj, str) else obj


def read_results(path: Path) -> dict | list:
    """The ``results`` of a study's result file, labels without the smoke mark."""
    return unmarked(results.load_json(path)["results"])


def with_pooling(label: str, model: nn.Module) -> str:
    """``label`` naming a token model's pooling even where it is the default, for figure
    titles: ``vit-ti`` -> ``vit-ti (cls)``; labels that name one already, and models
    without a ``pool``, are left as they are."""
    pool = getattr(model, "pool", None)
    if not isinstance(pool, str) or f"({pool})" in label:
        return label
    base, mark = (label[:-len(SMOKE_MARK)], SMOKE_MARK) if label.endswith(SMOKE_MARK) else \
        (label, "")
    return f"{base} ({pool}){mark}"


def named_pooling(label: str) -> str:
    """``label`` naming a ViT's default pooling, from the label alone (``with_pooling`` for
    figures drawn without the model): ``vit-mini`` -> ``vit-mini (cls)``."""
    base, mark = (label[:-len(SMOKE_MARK)], SMOKE_MARK) if label.endswith(SMOKE_MARK) else \
        (label, "")
    name = base.split(" (")[0]
    if "(" in base or name not in list_models() or family(name) != "vit":
        return label
    return f"{name} (cls){mark}"


def slug(label: str) -> str:
    """A label as a file-name part: ``vit-ti (gap)`` -> ``vit-ti-gap`` (the smoke mark left
    out: file names stay the same at every preset)."""
    return label.replace(SMOKE_MARK, "").replace(" (", "-").replace(")", "").replace(" ", "_")
