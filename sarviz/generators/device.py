"""Device and dtype facts of this machine: which devices exist, what the CPU can do, the rule of thumb.

A leaf module (torch only): :mod:`sarviz.generators.runtime` (queue, cache, the measured choice)
and :mod:`sarviz.generators.dtype_choice` (the measurement) both build on it.
"""

from __future__ import annotations

import functools
from typing import Any

from sarviz.generators.base import GenerationError

DTYPES = ("float32", "bfloat16", "float16")
DEVICES = ("cpu", "cuda", "mps")


# -- device / dtype --------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def cpu_capability() -> dict[str, Any]:
    """What this CPU can do for inference (from torch's own runtime checks)."""
    import torch

    info: dict[str, Any] = {"isa": torch.backends.cpu.get_cpu_capability(), "threads": torch.get_num_threads()}
    # torch.cpu._is_amx_tile_supported() asks the CPU (CPUID) and the kernel (XFEATURE
    # permission); /proc/cpuinfo flags alone do not say whether the OS enabled AMX.
    probes = {
        "amx_tile": "_is_amx_tile_supported",
        "amx_fp16": "_is_amx_fp16_supported",
        "avx512_bf16": "_is_avx512_bf16_supported",
    }
    for name, fn in probes.items():
        try:
            info[name] = bool(getattr(torch.cpu, fn)())
        except Exception:  # older/newer torch without the private probe: assume absent
            info[name] = False
    try:
        info["mkldnn_bf16"] = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:
        info["mkldnn_bf16"] = False
    info["fast_bf16"] = info["amx_tile"] and info["mkldnn_bf16"]
    return info


def available_devices() -> list[str]:
    import torch

    out = []
    if torch.cuda.is_available():
        out.append("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        out.append("mps")
    out.append("cpu")
    return out


def choose_device(requested: str | None = None) -> str:
    """``requested`` ("auto"/None, "cpu", "cuda", "cuda:1", "mps") checked against this machine."""
    req = (requested or "auto").strip().lower()
    have = available_devices()
    if req == "auto":
        return have[0]
    kind = req.split(":", 1)[0]
    if kind not in DEVICES:
        raise GenerationError(f"unknown device {requested!r}; use auto, {', '.join(DEVICES)}")
    if kind not in have:
        raise GenerationError(f"device {requested!r} is not available on this machine (available: {', '.join(have)})")
    if kind == "cuda" and ":" in req:
        import torch

        try:
            index = int(req.split(":", 1)[1])
        except ValueError:
            raise GenerationError(f"device {requested!r}: the CUDA index must be a number") from None
        if not 0 <= index < torch.cuda.device_count():
            raise GenerationError(f"device {requested!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return req


def _normalise_dtype(device: str, requested: str) -> str:
    aliases = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16", "half": "float16"}
    req = aliases.get(requested, requested)
    if req not in DTYPES:
        raise GenerationError(f"unknown dtype {requested!r}; use auto, {', '.join(DTYPES)}")
    if device.split(":", 1)[0] == "cpu" and req == "float16":
        raise GenerationError("float16 is not supported for generation on the CPU; use bfloat16 or float32")
    return req


def rule_of_thumb_dtype(device: str) -> str:
    """The dtype a rule picks when measuring is impossible (or switched off).

    CUDA: bfloat16 where supported (Ampere+), else float16. MPS: float32. CPU: bfloat16 when
    it has native bf16 arithmetic (AMX tiles, or AVX512-BF16 as on AMD EPYC Zen 4), else
    float32 — without either, oneDNN emulates bf16 and it is 2–3× slower.
    """
    kind = device.split(":", 1)[0]
    if kind == "cuda":
        import torch

        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    if kind == "mps":
        return "float32"
    cap = cpu_capability()
    return "bfloat16" if cap["mkldnn_bf16"] and (cap["amx_tile"] or cap["avx512_bf16"]) else "float32"


def torch_dtype(name: str):
    import torch

    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]
