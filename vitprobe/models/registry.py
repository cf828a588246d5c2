"""The model registry's table: every name, its family, its default hyper-parameters and the
overrides it takes. Plain data, importable without torch (``vitprobe models``, ``--help``
and argument errors read it); ``vitprobe.models.create_model`` imports a family's file only
when it builds one of its models. As timm's registered constructors, each entry is a small
dict of hyper-parameters."""

from __future__ import annotations

from dataclasses import dataclass, field

# how a token model turns its tokens into one vector: a class token (ViT, Dosovitskiy et al.
# 2021), global average pooling (Park & Kim 2022, Fig. 6), SeqPool (CCT, Hassani et al.
# 2021), multi-head attention pooling (timm's MAP)
POOLS = ("cls", "gap", "seqpool", "map")

# stage widths of the ``-mini`` members (a quarter of 64/128/256/512)
MINI_WIDTHS = (16, 32, 64, 128)

# the families of convolutional networks whose blocks we list (residual CNNs, AlterNets)
CNN_FAMILIES = ("resnet", "preresnet", "alternet")

_VIT = ("pool", "patch_size", "embed_dim", "depth", "heads", "mlp_ratio", "qkv_bias",
        "drop_rate", "attn_drop_rate", "drop_path_rate", "patch_drop_rate")
_RESNET = ("layers", "drop_path_rate", "widths")
_CCT = ("embed_dim", "heads", "mlp_ratio", "attn_drop_rate", "drop_rate", "drop_path_rate",
        "pos_init_std")
_ALTERNET = ("layers", "msa", "window", "drop_path_rate", "widths", "heads")
_TIMM_VIT = ("patch_size", "embed_dim", "depth", "heads", "drop_path_rate")


@dataclass(frozen=True)
class Entry:
    """One registered model: its family, the file (``vitprobe.models.<module>``) and function
    that build it, its defaults and the overrides a user may pass."""

    family: str
    module: str
    builder: str
    defaults: dict = field(default_factory=dict)
    overrides: tuple[str, ...] = ()


def _vit(**kw) -> Entry:
    return Entry("vit", "vit", "build", kw, _VIT)


def _resnet(block: str, **kw) -> Entry:
    # a pre-activation block (He et al. 2016b) makes the network a preresnet
    fam = "preresnet" if block.startswith("PreAct") else "resnet"
    return Entry(fam, "resnet", "build", {"block": block, **kw}, _RESNET)


def _alternet(**kw) -> Entry:
    return Entry("alternet", "alternet", "build", kw, _ALTERNET)


def _cct(**kw) -> Entry:
    return Entry("cct", "cct", "build", kw, _CCT)


REGISTRY: dict[str, Entry] = {
    # the paper's CIFAR ViTs (Park & Kim 2022, App. A)
    "vit-ti": _vit(embed_dim=192, depth=12, heads=3),
    "vit-s": _vit(embed_dim=384, depth=12, heads=6),
    "vit-b": _vit(embed_dim=768, depth=12, heads=12),
    # the ``small`` preset's ViT (about 0.67 M parameters at 28 px, patch 4): small enough to
    # train to a plateau on a 2-core CPU, deep enough for MSA/MLP alternation along depth
    "vit-mini": _vit(embed_dim=96, depth=6, heads=3),
    "resnet-18": _resnet("Basic", layers=(2, 2, 2, 2)),
    "resnet-50": _resnet("Bottleneck", layers=(3, 4, 6, 3)),
    "preresnet-18": _resnet("PreActBasic", layers=(2, 2, 2, 2)),
    "preresnet-50": _resnet("PreActBottleneck", layers=(3, 4, 6, 3)),
    # the ``small`` preset's members: the same blocks at a quarter of the widths (16-128)
    "resnet-18-mini": _resnet("Basic", layers=(2, 2, 2, 2), widths=MINI_WIDTHS),
    "preresnet-18-mini": _resnet("PreActBasic", layers=(2, 2, 2, 2), widths=MINI_WIDTHS),
    # AlterNet (Park & Kim 2022, §4): MSA blocks at the end of stages 2-4
    "alternet-18": _alternet(layers=(2, 2, 2, 2), msa=(0, 1, 1, 1), block="PreActBasic"),
    "alternet-50": _alternet(layers=(3, 4, 6, 4), msa=(0, 1, 3, 2), block="PreActBottleneck"),
    # the ``small`` preset's member: preresnet-18-mini's widths, one head of dim 64 per MSA
    # (two in the last stage, 128 wide)
    "alternet-18-mini": _alternet(layers=(2, 2, 2, 2), msa=(0, 1, 1, 1), block="PreActBasic",
                                  widths=MINI_WIDTHS, heads=(1, 1, 1, 2)),
    # Compact Transformers (Hassani et al. 2021): L layers, kernel/patch P, C convs
    "cct-2-3x2": _cct(layers=2, kernel=3, convs=2),
    "cct-7-3x1": _cct(layers=7, kernel=3, convs=1),
    "cct-7-3x2": _cct(layers=7, kernel=3, convs=2),
    "cvt-7-4": _cct(layers=7, kernel=4, tokenizer="patch"),
    "vit-lite-7-4": _cct(layers=7, kernel=4, tokenizer="patch", pool="cls"),
    # timm's architectures configured for small images (vitprobe.models.zoo)
    "deit-ti-distilled": Entry("deit", "zoo", "deit", {}, _TIMM_VIT),
    "cait-xxs24": Entry("cait", "zoo", "cait", {"depth": 24}, (*_TIMM_VIT, "init_values")),
    "cait-xxs12": Entry("cait", "zoo", "cait", {"depth": 12}, (*_TIMM_VIT, "init_values")),
    "pit-ti": Entry("pit", "zoo", "pit", {}, ("patch_size", "stride", "drop_path_rate",
                                              "base_dims", "depth", "heads")),
    "swin-ti": Entry("swin", "zoo", "swin", {}, ("patch_size", "window", "embed_dim",
                                                 "depths", "heads", "drop_path_rate")),
}


def list_models() -> list[str]:
    """Registered names (``timm:<name>`` is accepted besides these)."""
    return sorted(REGISTRY)


def entry(name: str) -> Entry:
    """The registered entry of ``name``; an unknown name is a ValueError naming the allowed."""
    if name not in REGISTRY:
        raise ValueError(f"unknown model {name!r}; allowed: {', '.join(list_models())} "
                         f"or timm:<name>")
    return REGISTRY[name]


def family(name: str) -> str:
    """The family of a registered name (``vit``, ``resnet``, ``preresnet``, ``alternet``,
    ``cct``, ``deit``, ``cait``, ``pit``, ``swin``), ``timm`` for ``timm:<name>``; an unknown
    name is a ValueError naming the allowed."""
    return "timm" if name.startswith("timm:") else entry(name).family


@dataclass(frozen=True)
class ModelId:
    """A model as studies name it: a registry name (or ``timm:<name>``), a pooling for token
    models, and architecture overrides; validated when built, so everything derived from it
    (labels, run folder names) comes from checked fields only."""

    name: str
    pool: str | None = None
    overrides: tuple[tuple[str, object], ...] = field(default=())

    def __post_init__(self) -> None:
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
