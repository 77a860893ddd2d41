"""Where one CPU denoising step goes: time and achieved FLOP/s by operator class.

One step of full-size SD 1.5 UNet + 65-channel ControlNet (random weights from the reference
configs, as ``bench_cpu_speed.py`` builds them): batch 2 (classifier-free guidance), 64×64
latents (512² images, 4,096 tokens in the highest-resolution attention), 77 text tokens.

For each precision (float32; bfloat16 weights and activations) and attention backend
(PyTorch's fused CPU ``scaled_dot_product_attention`` — diffusers' default — and the classic
``baddbmm + softmax + bmm`` processor), the step runs once to warm up and then once under
``torch.profiler``; ``torch.utils.flop_counter.FlopCounterMode`` counts the FLOPs of the same
step by ATen operator. Operators are grouped into classes (convolution, attention, linear,
group norm, activation, layout/copy, dtype cast, element-wise, other) and each class gets its
share of self CPU time and its achieved TFLOP/s, so the slow part is named with numbers.

Profiling adds overhead (a few %), so the step time printed here is the profiled time; the
interleaved, un-profiled ratios live in ``bench_cpu_speed.py``. Results:
``benchmarks/RESULTS_cpu_speed.md`` ("Profile of one step").

    python benchmarks/bench_step_profile.py [--variants float32 bfloat16 bfloat16-cl bfloat16-compiled-cl]
                                            [--backends sdpa classic] [--latent 64] [--out table.md]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_cpu_speed import build  # noqa: E402  (the one builder of the full-size models)

#: ATen operator name fragments → class. First match wins; the order matters (a cast is a
#: ``_to_copy`` whose dtype changes, told apart below by its input/output dtypes).
CLASSES: list[tuple[str, tuple[str, ...]]] = [
    ("convolution", ("convolution", "conv2d", "mkldnn_convolution", "_convolution", "conv_depthwise")),
    ("attention", ("scaled_dot_product", "_flash_attention", "baddbmm", "bmm", "softmax", "_softmax")),
    ("linear", ("addmm", "aten::mm", "linear", "matmul")),
    ("group norm", ("group_norm", "native_group_norm", "layer_norm", "native_layer_norm")),
    ("activation", ("gelu", "silu", "sigmoid")),
    (
        "layout/copy",
        (
            "contiguous",
            "clone",
            "copy_",
            "permute",
            "transpose",
            "reshape",
            "view",
            "cat",
            "_unsafe_view",
            "as_strided",
            "upsample",
            "expand",
        ),
    ),
    ("element-wise", ("add", "mul", "div", "sub", "chunk", "split", "mean", "rsqrt", "pow", "fill_")),
]


def op_class(name: str) -> str:
    # the cast kernel itself runs as the ``copy_`` under ``_to_copy``; in a profile a ``copy_``
    # is counted as layout/copy (the profiler does not record dtypes without record_shapes),
    # so this class holds the casts' dispatch overhead and layout/copy holds their copies
    if name in ("aten::to", "aten::_to_copy", "aten::type_as"):
        return "dtype cast"
    for cls, fragments in CLASSES:
        if any(f in name for f in fragments):
            return cls
    return "other"


def flop_class(op) -> str:
    return op_class(f"aten::{getattr(op, '__name__', str(op)).split('.')[0]}")


def _sdpa_cpu_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    from torch.utils.flop_counter import sdpa_flop_count

    return sdpa_flop_count(query_shape, key_shape, value_shape)


def profile_step(unet, controlnet, x, dtype, backend: str, memory_format=None, flop_models=None):
    """(profiled wall s, self CPU s by class, FLOPs by class) of one step. ``flop_models``: eager twins
    whose FLOPs are counted instead (a compiled model's kernels are not ATen ops: same math, same count)."""
    import torch
    from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0
    from torch.profiler import ProfilerActivity, profile
    from torch.utils.flop_counter import FlopCounterMode

    if flop_models is None:  # a compiled model got its attention backend before it was compiled
        proc = AttnProcessor2_0() if backend == "sdpa" else AttnProcessor()
        unet.set_attn_processor(proc)
        controlnet.set_attn_processor(proc)

    def step(unet=unet, controlnet=controlnet):
        lat, cond, text = x["latents"].to(dtype), x["cond"].to(dtype), x["text"].to(dtype)
        if memory_format is not None:
            lat, cond = lat.contiguous(memory_format=memory_format), cond.contiguous(memory_format=memory_format)
        with torch.inference_mode():
            down, mid = controlnet(
                lat, x["t"], encoder_hidden_states=text, controlnet_cond=cond, conditioning_scale=1.1, return_dict=False
            )
            return unet(
                lat,
                x["t"],
                encoder_hidden_states=text,
                down_block_additional_residuals=down,
                mid_block_additional_residual=mid,
                return_dict=False,
            )[0]

    step()  # warm-up: oneDNN primitive creation and allocator growth are not the steady state
    # PyTorch has no FLOP formula for the CPU flash-attention kernel that SDPA dispatches to;
    # the same formula as its CUDA twins (4·B·H·Lq·Lk·D) is registered here.
    sdpa_cpu = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    mapping = {sdpa_cpu: _sdpa_cpu_flops} if sdpa_cpu is not None else {}
    counter = FlopCounterMode(display=False, custom_mapping=mapping)
    with counter:
        step(*(flop_models or (unet, controlnet)))
    flops: dict[str, float] = defaultdict(float)
    for op, n in counter.get_flop_counts().get("Global", {}).items():
        flops[flop_class(op)] += n
    t0 = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    wall = time.perf_counter() - t0
    times: dict[str, float] = defaultdict(float)
    for ev in prof.key_averages():
        times[op_class(ev.key)] += ev.self_cpu_time_total / 1e6
    return wall, dict(times), dict(flops)


def table(label: str, wall: float, times: dict[str, float], flops: dict[str, float]) -> str:
    total_t = sum(times.values()) or 1.0
    total_f = sum(flops.values())
    rows = [
        f"### {label}: {wall:.2f} s/step profiled, {total_f / 1e12:.3f} TFLOP, "
        f"{total_f / wall / 1e12:.3f} TFLOP/s overall",
        "",
        "| operator class | self CPU s | share | TFLOP | achieved TFLOP/s |",
        "|---|---|---|---|---|",
    ]
    for cls in sorted(set(times) | set(flops), key=lambda c: -times.get(c, 0.0)):
        t, f = times.get(cls, 0.0), flops.get(cls, 0.0)
        rate = f"{f / t / 1e12:.3f}" if f and t else "–"
        rows.append(f"| {cls} | {t:.2f} | {t / total_t:.1%} | {f / 1e12:.3f} | {rate} |")
    return "\n".join(rows)


#: what can be profiled: eager in each dtype and layout, and the compiled default-path candidate
VARIANTS = ("float32", "bfloat16", "bfloat16-cl", "bfloat16-compiled-cl")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--dtypes",
        "--variants",
        dest="variants",
        nargs="+",
        default=["float32", "bfloat16"],
        choices=VARIANTS,
        help="-cl: channels-last weights and inputs; -compiled: torch.compile (inductor) with freezing, as "
        "sarviz compiles on the CPU (its kernels appear by name with cpp.enable_kernel_profile)",
    )
    ap.add_argument("--backends", nargs="+", default=["sdpa", "classic"], choices=["sdpa", "classic"])
    ap.add_argument("--latent", type=int, default=64, help="latent side (64 = 512² images)")
    ap.add_argument("--out", help="also write the tables to this Markdown file")
    args = ap.parse_args()
    import copy

    import torch

    unet, controlnet, _vae, x = build()
    if args.latent != 64:
        import torch.nn.functional as F

        x["latents"] = F.interpolate(x["latents"], size=(args.latent, args.latent))
        x["cond"] = F.interpolate(x["cond"], size=(args.latent * 8, args.latent * 8))
    models = {"float32": (unet, controlnet)}
    from sarviz.generators import dtype_choice, runtime

    cap = runtime.cpu_capability()
    native = [k for k in ("amx_tile", "avx512_bf16") if cap.get(k)] or ["no native bf16"]
    out = [
        f"machine: {dtype_choice._cpu_model()} ({cap['isa']}, {', '.join(native)}), torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f}, latents "
        f"{args.latent}×{args.latent}",
        "",
    ]
    for name in args.variants:
        dtype = getattr(torch, name.split("-")[0])
        cl = torch.channels_last if name.endswith("-cl") else None
        if name not in models:
            models[name] = (copy.deepcopy(unet).to(dtype), copy.deepcopy(controlnet).to(dtype))
            if cl is not None:
                for m in models[name]:
                    m.to(memory_format=cl)
        if "-compiled" in name:
            import torch._inductor.config as inductor_config

            inductor_config.cpp.enable_kernel_profile = True  # fused kernels are named in the profile
            eager = models[name]
            compiled = tuple(torch.compile(m, options={"freezing": True}) for m in eager)
            t0 = time.perf_counter()
            wall, times, flops = profile_step(*compiled, x, dtype, "sdpa", cl, flop_models=eager)
            label = f"{name} (freezing), attention sdpa (compile, warm-up and FLOP count {time.perf_counter() - t0 - wall:.0f} s)"
            out += [table(label, wall, times, flops), ""]
            print(out[-2], "\n", flush=True)
            continue
        for backend in args.backends:
            wall, times, flops = profile_step(*models[name], x, dtype, backend, cl)
            out += [table(f"{name}, attention {backend}", wall, times, flops), ""]
            print(out[-2], "\n", flush=True)
    if args.out:
        Path(args.out).write_text("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
