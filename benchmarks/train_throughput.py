"""Training images/s: our vit-ti vs timm's VisionTransformer of the same configuration, and
our resnet-18 vs torchvision's resnet18 with the same CIFAR stem, in one run, interleaved.

python -m benchmarks.train_throughput [--batch-size 64] [--steps 4] [--rounds 3] [--bf16]
                                      [--device cpu]
Goal: ratio (ours / peer) >= 0.95 for both.

Both sides train in float32, the CPU presets' precision (``--bf16``: both under bf16
autocast, a recipe's ``precision="bfloat16"``). Ours also uses the attention
kernel ``fit`` picks for the device (``TrainConfig.fused_attention``: explicit softmax on CPU,
fused SDPA on CUDA); the peer keeps timm's default (fused SDPA).
"""

from __future__ import annotations

import argparse
from contextlib import nullcontext

import torch
import torch.nn.functional as F

from benchmarks.common import Headline, add_device, interleaved, record
from vitprobe.models import create_model
from vitprobe.modes import explicit_attention
from vitprobe.train import TrainConfig, autocast, autocast_dtype

HEADLINES = (Headline("train_throughput", "training images/s, ours / the peer's same "
                      "architecture (timm ViT, torchvision ResNet), worst of the two",
                      lambda rows: min(r["ratio"] for r in rows), goal=0.95, at_least=True),)


def peer_vit():
    import timm

    return timm.models.vision_transformer.VisionTransformer(
        img_size=28, patch_size=4, in_chans=1, num_classes=10, embed_dim=192, depth=12,
        num_heads=3, qkv_bias=False)


def peer_resnet():
    import torchvision

    m = torchvision.models.resnet18(num_classes=10)
    m.conv1 = torch.nn.Conv2d(1, 64, 3, 1, 1, bias=False)
    m.maxpool = torch.nn.Identity()
    return m


def train_steps(model, x, y, steps, amp: torch.dtype | None, policy: bool):
    """``steps`` AdamW steps; ``policy``: with the attention kernel ``fit`` picks on the
    device."""
    opt = torch.optim.AdamW(model.parameters(), 1e-4)
    model.train()
    explicit = policy and not TrainConfig(recipe=None, device=x.device).attention_is_fused()

    def run():
        with explicit_attention(model) if explicit else nullcontext():
            for _ in range(steps):
                with autocast(x.device, amp):
                    loss = F.cross_entropy(model(x).float(), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
    return run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--bf16", action="store_true", help="bf16 autocast on both sides")
    add_device(p)
    a = p.parse_args()
    torch.manual_seed(0)
    x = torch.randn(a.batch_size, 1, 28, 28, device=a.device)
    y = torch.randint(0, 10, (a.batch_size,), device=a.device)
    pairs = {
        "vit-ti": (create_model("vit-ti", num_classes=10, in_chans=1, img_size=28, patch_size=4),
                   peer_vit(), "timm VisionTransformer"),
        "resnet-18": (create_model("resnet-18", num_classes=10, in_chans=1, img_size=28),
                      peer_resnet(), "torchvision resnet18 (CIFAR stem)"),
    }
    pairs = {k: (ours.to(a.device), peer.to(a.device), name)
             for k, (ours, peer, name) in pairs.items()}
    amp = autocast_dtype(a.device, "bfloat16" if a.bf16 else "float32")
    print(f"device {a.device}, {torch.get_num_threads()} CPU threads, batch {a.batch_size}, "
          f"{a.steps} steps x {a.rounds} rounds (median), autocast {amp or 'off (float32)'}"
          )
    rows = []
    for name, (ours, peer, peer_name) in pairs.items():
        t = interleaved({"ours": train_steps(ours, x, y, a.steps, amp, policy=True),
                         "peer": train_steps(peer, x, y, a.steps, amp, policy=False)},
                        rounds=a.rounds, device=a.device)
        ips = {k: a.steps * a.batch_size / v for k, v in t.items()}
        print(f"{name:10s} ours {ips['ours']:7.1f} img/s   {peer_name} {ips['peer']:7.1f} img/s"
              f"   ratio {ips['ours'] / ips['peer']:.3f}")
        rows.append({"model": name, "peer": peer_name, "ours img/s": ips["ours"],
                     "peer img/s": ips["peer"], "ratio": ips["ours"] / ips["peer"]})
    record("train_throughput", rows, {**vars(a), "autocast": str(amp)},
           "Training images/s, ours / the peer's same architecture, interleaved in one run "
           "(goal >= 0.95).")


if __name__ == "__main__":
    main()
