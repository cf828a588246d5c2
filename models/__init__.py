"""The model registry: ``create_model(name, num_classes, in_chans, img_size, **overrides)``.

Names are lower case and hyphenated (``vit-ti``, ``resnet-18``, ``alternet-18``);
``timm:<name>`` passes through to ``timm.create_model``. Every model of ours lists its probe
taps (``probe_taps()``) so ``vitprobe`` can read it without importing this package.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from torch import nn

from . import alternet as _alternet
from . import cct as _cct
from . import resnet as _resnet
from . import vit as _vit
from . import zoo as _zoo

_Builder = Callable[..., nn.Module]
_REGISTRY: dict[str, tuple[_Builder, dict, tuple[str, ...]]] = {}
_FAMILY: dict[str, str] = {}  # name -> its family (vit, resnet, preresnet, alternet, cct ...)

_VIT_OVERRIDES = ("pool", "patch_size", "embed_dim", "depth", "heads", "mlp_ratio", "qkv_bias",
                  "drop_rate", "attn_drop_rate", "drop_path_rate", "patch_drop_rate")
_RESNET_OVERRIDES = ("layers", "drop_path_rate", "widths")
_CCT_OVERRIDES = ("embed_dim", "heads", "mlp_ratio", "attn_drop_rate", "drop_rate",
                  "drop_path_rate", "pos_init_std")
_ALTERNET_OVERRIDES = ("layers", "msa", "window", "drop_path_rate", "widths", "heads")


def _register(name: str, family: str, builder: _Builder, defaults: dict,
              overrides: tuple[str, ...]) -> None:
    _REGISTRY[name] = (builder, defaults, overrides)
    _FAMILY[name] = family


def _build_vit(num_classes, in_chans, img_size, **kw):
    kw.setdefault("patch_size", 2 if img_size <= 32 else 16)
    return _vit.VisionTransformer(img_size=img_size, in_chans=in_chans, num_classes=num_classes,
                                  **kw)


def _build_resnet(num_classes, in_chans, img_size, **kw):
    return _resnet.resnet(in_chans=in_chans, num_classes=num_classes, **kw)


def _build_alternet(num_classes, in_chans, img_size, **kw):
    return _alternet.alternet(in_chans=in_chans, num_classes=num_classes, **kw)


def _build_cct(num_classes, in_chans, img_size, **kw):
    return _cct.CompactTransformer(img_size=img_size, in_chans=in_chans,
                                   num_classes=num_classes, **kw)


for _name, _cfg in _cct.CONFIGS.items():
    _register(_name, "cct", _build_cct, _cfg, _CCT_OVERRIDES)
for _name, (_fn, _cfg, _over) in _zoo.CONFIGS.items():
    _register(_name, _fn.__name__, lambda num_classes, in_chans, img_size, _fn=_fn, **kw: _fn(
        num_classes, in_chans, img_size, **kw), _cfg, _over)
for _name, _cfg in _vit.CONFIGS.items():
    _register(_name, "vit", _build_vit, _cfg, _VIT_OVERRIDES)
for _name, _cfg in _resnet.CONFIGS.items():
    _register(_name, "preresnet" if _cfg["block"] in _resnet.PRE_ACTIVATION else "resnet",
              _build_resnet, _cfg, _RESNET_OVERRIDES)
for _name, _cfg in _alternet.CONFIGS.items():
    _register(_name, "alternet", _build_alternet, _cfg, _ALTERNET_OVERRIDES)


def list_models() -> list[str]:
    """Registered names (``timm:<name>`` is accepted besides these)."""
    return sorted(_REGISTRY)


def family(name: str) -> str:
    """The family of a registered name (``vit``, ``resnet``, ``preresnet``, ``alternet``,
    ``cct``, ``deit``, ``cait``, ``pit``, ``swin``), ``timm`` for ``timm:<name>``; an unknown
    name is a ValueError naming the allowed."""
    if name.startswith("timm:"):
        return "timm"
    if name not in _FAMILY:
        raise ValueError(f"unknown model {name!r}; allowed: {', '.join(list_models())} "
                         f"or timm:<name>")
    return _FAMILY[name]


# the families of convolutional networks whose blocks we list (residual CNNs, AlterNets)
CNN_FAMILIES = ("resnet", "preresnet", "alternet")


@dataclass(frozen=True)
class ModelId:
    """A model as studies name it: a registry name (or ``timm:<name>``), a pooling for token
    models, and architecture overrides; validated when built, so everything derived from it
    (labels, run folder names) comes from checked fields only."""

    name: str
    pool: str | None = None
    overrides: tuple[tuple[str, object], ...] = field(default=())

    def __post_init__(self) -> None:
        from .vit import POOLS

        family(self.name)  # the name is registered (or timm:)
        if self.pool is not None and self.pool not in POOLS:
            raise ValueError(f"unknown pooling {self.pool!r}; allowed: {', '.join(POOLS)}")

    @classmethod
    def parse(cls, text: str) -> ModelId:
        """``vit-ti`` or ``vit-ti@gap`` (a pooling per entry of a --model list)."""
        name, _, pool = text.partition("@")
        return cls(name, pool or None)

    @property
    def family(self) -> str:
        return family(self.name)

    @property
    def is_vit(self) -> bool:
        """One of our plain ViTs (class token or a pooling, patch embedding, no convs)."""
        return self.family == "vit"

    @property
    def is_cnn(self) -> bool:
        return self.family in CNN_FAMILIES


def create_model(name: str, num_classes: int = 10, in_chans: int = 3, img_size: int = 32,
                 **overrides) -> nn.Module:
    """Build a registered model. Unknown name or override -> ValueError naming the allowed."""
    if name.startswith("timm:"):
        import timm

        timm_name = name[len("timm:"):]
        if timm_name not in timm.list_models():
            raise ValueError(f"unknown timm model {timm_name!r}; see timm.list_models()")
        try:
            return timm.create_model(timm_name, pretrained=False, num_classes=num_classes,
                                     in_chans=in_chans, img_size=img_size, **overrides)
        except TypeError:  # a family without an img_size argument (CNNs)
            return timm.create_model(timm_name, pretrained=False, num_classes=num_classes,
                                     in_chans=in_chans, **overrides)
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; allowed: {', '.join(list_models())} "
                         f"or timm:<name>")
    builder, defaults, allowed = _REGISTRY[name]
    bad = sorted(set(overrides) - set(allowed))
    if bad:
        raise ValueError(f"model {name} does not take override(s) {', '.join(bad)}; "
                         f"allowed: {', '.join(allowed)}")
    return builder(num_classes, in_chans, img_size, **{**defaults, **overrides})


__all__ = ["CNN_FAMILIES", "ModelId", "create_model", "family", "list_models"]
