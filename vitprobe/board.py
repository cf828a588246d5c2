"""TensorBoard logging (as timm, the paper's code and CCT log): scalars and figures of a run
or a study under a log folder; a ``Board(None)`` does nothing, so callers need no branches.

    board = Board("tb/vit-ti")      # tensorboard --logdir tb
    board.scalar("train/loss", 0.71, step=10)
    board.image("hessian", "results/hessian.png")
    board.close()
"""

from __future__ import annotations

from pathlib import Path


class Board:
    def __init__(self, log_dir: str | Path | None) -> None:
        self.writer = None
        if log_dir is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # torch's writer needs the tensorboard package
                raise ValueError("--tensorboard needs the tensorboard package: "
                                 "pip install tensorboard") from None
            self.writer = SummaryWriter(log_dir=str(log_dir))

    def scalar(self, tag: str, value: float, step: int = 0) -> None:
        if self.writer is not None and value is not None:
            self.writer.add_scalar(tag, float(value), step)

    def image(self, tag: str, png: str | Path, step: int = 0) -> None:
        """A saved figure (PNG) as an image."""
        if self.writer is None:
            return
        import numpy as np
        from PIL import Image

        with Image.open(png) as im:
            self.writer.add_image(tag, np.asarray(im.convert("RGB")), step, dataformats="HWC")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
