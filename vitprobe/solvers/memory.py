"""How much memory a solver may take, and the Lanczos basis layout that fits in it: the basis
with its kept products (8 ``ncv`` bytes per parameter of a float32 model) where that fits in
half of what is available, else the float32 basis alone (4 ``ncv`` bytes per parameter, k
more products to certify). Half: the operator's own products (the model's activations and
their gradient graph) need the rest."""

from __future__ import annotations

import resource

import torch

# share of the available memory the basis with its kept products may take
BASIS_SHARE = 0.5


def _meminfo(field: str) -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _address_space_left() -> int | None:
    """What the process's address-space limit (``ulimit -v``) leaves, or None without one."""
    soft = resource.getrlimit(resource.RLIMIT_AS)[0]
    if soft == resource.RLIM_INFINITY:
        return None
    try:
        with open("/proc/self/status") as f:
            used = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    except (OSError, StopIteration):
        used = 0
    return max(0, soft - used)


def available_bytes(device: torch.device | str) -> int | None:
    """Free memory on ``device``: the GPU's free memory, or the host's available memory
    (``MemAvailable``) capped by what the address-space limit leaves; None when unknown."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    found = [b for b in (_meminfo("MemAvailable"), _address_space_left()) if b is not None]
    return min(found) if found else None


def lanczos_bytes(n: int, dtype: torch.dtype, ncv: int, low_memory: bool) -> int:
    """The Lanczos solver's buffers for ``n`` parameters (``lanczos._thick_lanczos``): the
    basis (float64 for a float64 operator with kept products, else float32), the kept
    products in the operator's dtype, and a few vectors."""
    item = torch.empty(0, dtype=dtype).element_size()
    if low_memory:
        return n * (4 * ncv + 3 * item)
    basis = 8 if dtype == torch.float64 else 4
    return n * (basis * ncv + item * ncv + 2 * item)


def low_memory_needed(n: int, dtype: torch.dtype, ncv: int, device) -> bool:
    """True where the basis with its kept products would take more than ``BASIS_SHARE`` of
    the available memory (False when that is unknown)."""
    free = available_bytes(device)
    return free is not None and lanczos_bytes(n, dtype, ncv, False) > BASIS_SHARE * free
