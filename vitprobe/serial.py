"""One serialisation for the result classes (``EigenResult``, ``TraceResult``, ``Density``,
``Spectrum``, ``landscape.Surface``, ``stats.Interval``): ``to_dict`` gives every recorded
field by name, as it is (``results.save_json`` writes arrays as lists), then the summaries
the class derives (``DERIVED``: methods whose values are recorded beside the fields);
``from_dict`` reads such a dict back, each array field as a numpy array (a JSON null inside
one reads back as NaN). A field marked ``field(metadata=NOT_RECORDED)`` (an eigenvector
matrix) is left out of both."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, ClassVar

import numpy as np

NOT_RECORDED = {"recorded": False}


def _recorded(cls_or_obj) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(cls_or_obj) if f.metadata.get("recorded", True)]


def _array(value: Any) -> np.ndarray:
    a = np.asarray(value)
    return a if a.dtype == bool else np.asarray(value, dtype=float)


def _read(hint: Any, value: Any) -> Any:
    """``value`` as the field's type hint has it: arrays (or a tuple of them) as numpy."""
    if value is None:
        return None
    if hint is np.ndarray:
        return _array(value)
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return _read(next((h for h in typing.get_args(hint) if h is not type(None)), Any),
                     value)
    if typing.get_origin(hint) is tuple and typing.get_args(hint)[:1] == (np.ndarray,):
        return tuple(_array(v) for v in value)
    return value


class Serialised:
    """A frozen dataclass's ``to_dict`` / ``from_dict``."""

    DERIVED: ClassVar[tuple[str, ...]] = ()

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in _recorded(self)}
        d.update({name: getattr(self, name)() for name in self.DERIVED})
        return d

    @classmethod
    def from_dict(cls, d: dict):
        """The object ``to_dict`` wrote (derived values are computed again, not read)."""
        hints = typing.get_type_hints(cls)
        return cls(**{f.name: _read(hints[f.name], d[f.name])
                      for f in _recorded(cls) if f.name in d})
