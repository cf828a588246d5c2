"""vitprobe: train vision transformers and CNNs, then probe them (Park & Kim 2022)."""

__version__ = "0.1.0"
