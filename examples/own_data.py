"""Train and probe on your own images: a folder in torchvision's ImageFolder layout.

python examples/own_data.py --data-dir DIR     # DIR/train/<class>/*.png, DIR/test/<class>/*.png
python examples/own_data.py                    # makes a small two-class folder to try it on

The same from the shell: ``vitprobe train --data imagefolder --data-dir DIR --model resnet-18``
then ``vitprobe fourier --data imagefolder --data-dir DIR --model resnet-18``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from vitprobe.studies.fourier import FourierConfig
from vitprobe.studies.fourier import run as fourier_run
from vitprobe.studies.train import TrainStudyConfig
from vitprobe.studies.train import run as train_run


def toy_folder(root: Path) -> Path:
    """Two classes of 24-px images: noise with a bright square top-left or bottom-right."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", 64), ("test", 16)):
        for c, name in enumerate(("top-left", "bottom-right")):
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                a = rng.integers(0, 90, (24, 24, 3), dtype=np.uint8)
                r = slice(3, 11) if c == 0 else slice(13, 21)
                a[r, r] = 230
                Image.fromarray(a).save(root / split / name / f"{i:03d}.png")
    return root


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=None, help="your image folder (default: a toy one)")
    p.add_argument("--model", default="resnet-18", help="a model name (vitprobe models)")
    p.add_argument("--preset", default="smoke", help="smoke (seconds) or quick")
    p.add_argument("--out", default=None, help="results folder (default: a temporary one)")
    args = p.parse_args(argv)
    out = Path(args.out or tempfile.mkdtemp(prefix="vitprobe-own-data-"))
    data_dir = args.data_dir or str(toy_folder(out / "images"))
    common = dict(model=args.model, data="imagefolder", data_dir=data_dir,
                  preset=args.preset, runs_dir=str(out / "runs"), quiet=True)
    trained = train_run(TrainStudyConfig(**common, out=str(out / "train")))
    print("test accuracy:", trained.test_accuracy())
    config = FourierConfig(**common, num_images=16, out=str(out / "fourier"))
    print("the same from the shell:", config.command())
    result = fourier_run(config)
    for label, profile in result.profiles().items():
        print(f"{label}: ΔlogAmp at the highest frequency per tap (mean over images):",
              profile.per_image.mean(axis=0).round(3).tolist())


if __name__ == "__main__":
    main()
