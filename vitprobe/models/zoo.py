"""Architectures timm already implements, configured for small images (28/32 px) as in
Park & Kim 2022's CIFAR experiments: DeiT with a distillation token (Touvron et al. 2021),
CaiT (Touvron et al. 2021b), PiT (Heo et al. 2021) and Swin (Liu et al. 2021).
"""

from __future__ import annotations

from torch import nn


def _patch(img_size: int, patch_size: int | None) -> int:
    p = patch_size or (2 if img_size <= 32 else 16)
    if img_size % p:
        raise ValueError(f"patch_size {p} does not divide img_size {img_size}")
    return p


def deit(num_classes, in_chans, img_size, patch_size=None, embed_dim=192, depth=12, heads=3,
         drop_path_rate=0.0) -> nn.Module:
    from timm.models.deit import VisionTransformerDistilled

    return VisionTransformerDistilled(img_size=img_size, patch_size=_patch(img_size, patch_size),
                                      in_chans=in_chans, num_classes=num_classes,
                                      embed_dim=embed_dim, depth=depth, num_heads=heads,
                                      qkv_bias=False, drop_path_rate=drop_path_rate)


def cait(num_classes, in_chans, img_size, patch_size=None, embed_dim=192, depth=24, heads=4,
         init_values=1e-5, drop_path_rate=0.0) -> nn.Module:
    from timm.models.cait import Cait

    return Cait(img_size=img_size, patch_size=_patch(img_size, patch_size), in_chans=in_chans,
                num_classes=num_classes, embed_dim=embed_dim, depth=depth, num_heads=heads,
                init_values=init_values, drop_path_rate=drop_path_rate)


def pit(num_classes, in_chans, img_size, patch_size=None, stride=1, drop_path_rate=0.0,
        base_dims=(32, 32, 32), depth=(2, 6, 4), heads=(2, 4, 8)) -> nn.Module:
    from timm.models.pit import PoolingVisionTransformer

    return PoolingVisionTransformer(img_size=img_size, patch_size=_patch(img_size, patch_size),
                                    stride=stride, base_dims=list(base_dims), depth=list(depth),
                                    heads=list(heads), mlp_ratio=4, num_classes=num_classes,
                                    in_chans=in_chans, drop_path_rate=drop_path_rate)


def swin(num_classes, in_chans, img_size, patch_size=1, window=4, embed_dim=96,
         depths=(2, 2, 6, 2), heads=(3, 6, 12, 24), drop_path_rate=0.0) -> nn.Module:
    from timm.models.swin_transformer import SwinTransformer

    if img_size % patch_size:
        raise ValueError(f"patch_size {patch_size} does not divide img_size {img_size}")
    return SwinTransformer(img_size=img_size, patch_size=patch_size, in_chans=in_chans,
                           num_classes=num_classes, embed_dim=embed_dim, depths=tuple(depths),
                           num_heads=tuple(heads), window_size=window,
                           drop_path_rate=drop_path_rate)
