"""Result and checkpoint I/O: atomic writes, and the provenance every result file records
(config, seed, library versions, git commit) so a figure can be regenerated from it."""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import __version__
from .fingerprint import CODE_PACKAGES, code_identity  # noqa: F401 -- results.code_identity
from .identity import identities


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write to a temporary file in the same folder, fsync, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; results are ordinary files
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError) and e.filename is None:  # name the file being written
            raise OSError(e.errno, e.strerror or str(e), str(path)) from None
        raise
    return path


def _jsonable(x: Any) -> Any:
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return {f.name: _jsonable(getattr(x, f.name)) for f in dataclasses.fields(x)}
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, torch.Tensor):
        return _jsonable(x.detach().cpu().numpy())
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, Path):
        return str(x)
    if isinstance(x, float) and (x != x or x in (float("inf"), float("-inf"))):
        return str(x)
    return x


def to_json(obj: Any) -> str:
    return json.dumps(_jsonable(obj), indent=2)


def save_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_bytes(path, (to_json(obj) + "\n").encode())


def load_json(path: str | Path) -> Any:
    with open(path) as f:
        return json.load(f)


def write_jsonl(path: str | Path, records: list[dict]) -> Path:
    """The whole file rewritten atomically, one JSON object per line."""
    text = "".join(json.dumps(_jsonable(r)) + "\n" for r in records)
    return atomic_write_bytes(path, text.encode())


def git_commit() -> str | None:
    """The commit named by ``VITPROBE_GIT_COMMIT`` where it is set (a copy of the tree run
    elsewhere, whose own git state may not be the commit it was copied from), else HEAD's
    (``-dirty`` with uncommitted changes to tracked files), else None."""
    import os

    if os.environ.get("VITPROBE_GIT_COMMIT"):
        return os.environ["VITPROBE_GIT_COMMIT"]
    try:
        root = Path(__file__).resolve().parent.parent
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                             text=True, timeout=5)
        if out.returncode != 0:
            return os.environ.get("VITPROBE_GIT_COMMIT")
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=root, capture_output=True, text=True, timeout=5).stdout
        return out.stdout.strip() + ("-dirty" if dirty.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return os.environ.get("VITPROBE_GIT_COMMIT")


def provenance() -> dict:
    """Versions, commit, host and time, for every result file."""
    import timm

    return {
        "vitprobe": __version__,
        "git_commit": git_commit(),
        "code": code_identity(),
        "identities": identities(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "timm": timm.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "cuda": torch.version.cuda if torch.cuda.is_available() else None,
        "device": (torch.cuda.get_device_name() if torch.cuda.is_available()
                   else f"CPU ({platform.processor() or platform.machine()}, "
                        f"{torch.get_num_threads()} threads)"),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": " ".join(sys.argv),
    }


def save_result(path: str | Path, results: Any, config: dict, seed: int | None) -> Path:
    """A result file: the numbers plus what is needed to regenerate them."""
    return save_json(path, {"results": results, "config": config, "seed": seed,
                            "provenance": provenance()})


# A checkpoint written by ``save_state`` / ``save_weights`` carries the SHA-256 of its bytes
# (state: a header before torch.save's bytes; safetensors: in its metadata, over the tensor
# data), so a file with flipped bits is refused when read instead of giving a wrong model.
_STATE_MAGIC = b"VITPROBE-STATE-SHA256\n"
_WEIGHTS_KEY = "vitprobe_sha256"


class CorruptCheckpoint(ValueError):
    """A checkpoint whose bytes do not match the checksum written with them."""


class NotSafetensors(CorruptCheckpoint):
    """A weights file that is not safetensors at all (a checkpoint cache treats it as
    corrupt; a user's --checkpoint gets this one line)."""


def _corrupt(path) -> CorruptCheckpoint:
    return CorruptCheckpoint(f"{path} is corrupt: its bytes do not match the SHA-256 written "
                             f"with them (flipped bits or a partial copy)")


def save_state(path: str | Path, state: dict) -> Path:
    """torch.save to a temporary file, then rename (loaded with weights_only=True); the
    payload's SHA-256 goes in front of it."""
    import hashlib
    import io

    buf = io.BytesIO()
    torch.save(state, buf)
    payload = buf.getvalue()
    return atomic_write_bytes(path, _STATE_MAGIC + hashlib.sha256(payload).digest() + payload)


def load_state(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """``save_state``'s dict; ``CorruptCheckpoint`` where the checksum does not match (a
    file without one, from an older vitprobe, is read as it is)."""
    import hashlib
    import io

    blob = Path(path).read_bytes()
    if blob.startswith(_STATE_MAGIC):
        n = len(_STATE_MAGIC)
        digest, payload = blob[n:n + 32], blob[n + 32:]
        if hashlib.sha256(payload).digest() != digest:
            raise _corrupt(path)
        blob = payload
    return torch.load(io.BytesIO(blob), map_location=map_location, weights_only=True)


def _safetensors_data(blob: bytes) -> tuple[dict, bytes]:
    """(the header's metadata, the tensor data) of a safetensors file's bytes."""
    n = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8:8 + n])
    return header.get("__metadata__") or {}, blob[8 + n:]


def save_weights(path: str | Path, state_dict: dict[str, torch.Tensor],
                 metadata: dict | None = None) -> Path:
    """safetensors file of a state dict (tensors cloned and made contiguous), atomically,
    with the SHA-256 of its tensor data in the metadata."""
    import hashlib

    from safetensors.torch import save

    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in state_dict.items()}
    meta = {k: json.dumps(_jsonable(v)) for k, v in (metadata or {}).items()}
    _, data = _safetensors_data(save(tensors, metadata=meta))
    meta[_WEIGHTS_KEY] = hashlib.sha256(data).hexdigest()
    return atomic_write_bytes(path, save(tensors, metadata=meta))


def weights_metadata(path: str | Path) -> dict[str, str]:
    """The metadata a safetensors file carries (its SHA-256, training seconds ...)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata() or {})


def load_weights(path: str | Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """A safetensors file's tensors; ``CorruptCheckpoint`` where it carries our checksum and
    its data does not match it (anyone's safetensors file without one is read as it is)."""
    import hashlib

    from safetensors.torch import load

    blob = Path(path).read_bytes()
    try:
        meta, data = _safetensors_data(blob)
    except (ValueError, UnicodeDecodeError):
        raise NotSafetensors(f"{path} is not a safetensors file (its header is not the JSON a "
                             f"safetensors file starts with)") from None
    if _WEIGHTS_KEY in meta and hashlib.sha256(data).hexdigest() != meta[_WEIGHTS_KEY]:
        raise _corrupt(path)
    tensors = load(blob)
    return {k: v.to(device) for k, v in tensors.items()} if str(device) != "cpu" else tensors


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub markdown table: ``header`` cells, then one line per row; cells are written
    with ``str`` (format numbers before), pipes inside a cell escaped."""
    def line(cells) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    header = list(header)
    out = [line(header), "|" + "---|" * len(header)]
    for row in rows:
        row = list(row)
        if len(row) != len(header):
            raise ValueError(f"a row has {len(row)} cells; the header has {len(header)}")
        out.append(line(row))
    return "\n".join(out)
