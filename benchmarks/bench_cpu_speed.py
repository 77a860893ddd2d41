"""CPU speed options for one denoising step of full-size SD 1.5 + 65-channel ControlNet.

One process holds the full-size UNet and ControlNet (random weights, built from
../shared/reference/huiyanearth-sar configs). Each round times one step — ControlNet then
UNet with its residuals, batch 2 (classifier-free guidance), 64×64 latents (512² images),
77 text tokens — in every variant, interleaved, so the ratios hold on a busy machine:

  fp32            float32, NCHW, torch's default threads, PyTorch's fused CPU SDPA (the baseline)
  fp32-classic    attention as baddbmm + softmax + bmm (diffusers' AttnProcessor)
  fp32-sliced     diffusers' SlicedAttnProcessor (one head-batch slice at a time: cache fit)
  fp32-cl         float32, channels_last memory format
  fp32-prepacked  convolution/linear weights pre-packed once for oneDNN (torch.utils.mkldnn)
  fp32-1thread    float32 with one intra-op thread (is the second core used well?)
  bf16            bfloat16 weights and activations
  bf16-cl         bfloat16 with channels_last
  bf16-classic    bfloat16 with the classic attention
  bf16-sliced     bfloat16 with the sliced attention
  bf16-roundtrip  bfloat16, ControlNet residuals cast to float32 and back before the UNet (what
                  per-model cast hooks do; the cast pair is lossless, so only its time differs)
  bf16-autocast   float32 weights under torch.autocast("cpu", bfloat16)
  bf16-prepacked  bfloat16 weights pre-packed for oneDNN
  fp32-compiled[-MODE][-freezing]   torch.compile (inductor) of the UNet and ControlNet, in
                  the --compile-modes mode (one per process); "-freezing" (--freezing-only) sets inductor's freezing (constant
                  weights folded and pre-packed for oneDNN). The first call's extra time is the
                  compile cost (inductor's FX-graph cache makes a second process cheaper —
                  --cache-dir, default SARVIZ_HOME/inductor-cache as sarviz uses)
  vae / vae-compiled   the VAE decoder for one 512² image, eager vs compiled

Pick variants with --variants (names above; default: all eager ones). For each: median s/step, the speed-up over fp32 and the noise-prediction drift (relative L2
against fp32 at equal inputs). Results: benchmarks/RESULTS_cpu_speed.md.

    python benchmarks/bench_cpu_speed.py [--rounds 3] [--variants fp32 bf16 ...] [--no-compile]
                                         [--compile-modes MODE] [--freezing-only]
                                         [--cache-dir DIR]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO.parent / "shared" / "reference" / "huiyanearth-sar"
sys.path.insert(0, str(REPO))


def build():
    import torch
    from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(str(REFERENCE / "unet"))).eval()
    cn_cfg = dict(
        ControlNetModel.load_config(str(REFERENCE / "controlnet_alphaearth_sar_lora_regray" / "checkpoint-7500"))
    )
    controlnet = ControlNetModel.from_config({**cn_cfg, "conditioning_channels": 65}).eval()
    with torch.no_grad():
        for p in controlnet.parameters():
            if not p.any():
                p.normal_(0.0, 0.02)
    vae = AutoencoderKL.from_config(AutoencoderKL.load_config(str(REFERENCE / "vae"))).eval()
    g = torch.Generator().manual_seed(1)
    inputs = {
        "latents": torch.randn(2, 4, 64, 64, generator=g),
        "t": torch.tensor([500, 500]),
        "text": torch.randn(2, 77, 768, generator=g),
        "cond": torch.randn(2, 65, 512, 512, generator=g).clamp(-3, 3),
        "z": torch.randn(1, 4, 64, 64, generator=g),
    }
    return unet, controlnet, vae, inputs


def step(unet, controlnet, x, dtype, memory_format=None, roundtrip=False, autocast=False):
    import contextlib

    import torch

    lat = x["latents"].to(dtype)
    cond = x["cond"].to(dtype)
    if memory_format is not None:
        lat, cond = lat.contiguous(memory_format=memory_format), cond.contiguous(memory_format=memory_format)
    ac = torch.autocast("cpu", dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
    with torch.inference_mode(), ac:
        down, mid = controlnet(
            lat,
            x["t"],
            encoder_hidden_states=x["text"].to(dtype),
            controlnet_cond=cond,
            conditioning_scale=1.1,
            return_dict=False,
        )
        if roundtrip:
            down = [d.float().to(dtype) for d in down]
            mid = mid.float().to(dtype)
        return unet(
            lat,
            x["t"],
            encoder_hidden_states=x["text"].to(dtype),
            down_block_additional_residuals=down,
            mid_block_additional_residual=mid,
            return_dict=False,
        )[0].float()


def set_attention(models, kind: str) -> None:
    """diffusers' attention processors: fused SDPA (default), classic, or sliced."""
    from diffusers.models.attention_processor import (
        AttnProcessor,
        AttnProcessor2_0,
        SlicedAttnProcessor,
    )

    for m in models:
        proc = {"sdpa": AttnProcessor2_0, "classic": AttnProcessor}.get(kind)
        m.set_attn_processor(proc() if proc else SlicedAttnProcessor(slice_size=int(kind.split(":")[1])))


EAGER = [
    "fp32",
    "fp32-classic",
    "fp32-sliced",
    "fp32-cl",
    "fp32-prepacked",
    "fp32-1thread",
    "bf16",
    "bf16-cl",
    "bf16-classic",
    "bf16-sliced",
    "bf16-roundtrip",
    "bf16-autocast",
    "bf16-prepacked",
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--variants", nargs="+", default=EAGER, help="eager variants to time (fp32 is always timed)")
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument(
        "--compile-modes",
        nargs="+",
        default=["default"],
        help="torch.compile modes to time (default, reduce-overhead, max-autotune, ...)",
    )
    ap.add_argument(
        "--compile-dtype",
        default="float32",
        choices=["float32", "bfloat16"],
        help="the weights' dtype in the compiled variants",
    )
    ap.add_argument(
        "--freezing-only", action="store_true", help="compile with inductor freezing (what sarviz does on the CPU)"
    )
    ap.add_argument(
        "--compile-channels-last", action="store_true", help="compiled variants in channels_last (weights and inputs)"
    )
    ap.add_argument("--no-vae", action="store_true")
    ap.add_argument(
        "--fp32-first",
        action="store_true",
        help="time float32 first (not interleaved), then cast the models to bf16 in place: half the memory",
    )
    ap.add_argument("--cache-dir", help="TORCHINDUCTOR_CACHE_DIR (default: SARVIZ_HOME/inductor-cache)")
    args = ap.parse_args()
    if not args.no_compile and len(args.compile_modes) > 1:
        # a second torch.compile of a copy of the same model classes is served the first one's graph
        # (dynamo does not guard on the module object; measured: its "compile" took 1–4 s)
        ap.error("one compiled variant per process: give one --compile-modes mode (run another process for the next)")
    from sarviz.settings import HOME

    os.environ["TORCHINDUCTOR_CACHE_DIR"] = args.cache_dir or str(HOME / "inductor-cache")
    import copy

    import torch

    from sarviz.generators import dtype_choice, runtime

    threads = torch.get_num_threads()
    unet, controlnet, vae, x = build()
    wanted = ["fp32"] + [v for v in args.variants if v != "fp32"]
    cl = torch.channels_last
    need_bf = any(v.startswith("bf16") and v != "bf16-autocast" for v in wanted) or (
        not args.no_compile and args.compile_dtype == "bfloat16"
    )
    fp32_first: dict[str, list] = {}
    if args.fp32_first:
        # memory: time float32 first (not interleaved), keep its output as the drift reference, then
        # cast the models to bf16 in place — one full-size copy instead of two (the interleaved runs
        # at 11–13 GB were killed for memory beside the other jobs on this machine)
        for r in range(args.rounds + 1):
            t0 = time.perf_counter()
            out = step(unet, controlnet, x, torch.float32)
            dt = time.perf_counter() - t0
            fp32_first.setdefault("times", []).append(dt) if r else fp32_first.setdefault("out", [out])
            print(f"fp32 first, round {r}: {dt:.2f} s (load {os.getloadavg()[0]:.1f})", file=sys.stderr, flush=True)
        unet_bf, cn_bf = unet.to(torch.bfloat16), controlnet.to(torch.bfloat16)
        wanted.remove("fp32")
    else:
        unet_bf, cn_bf = (
            (copy.deepcopy(unet).to(torch.bfloat16), copy.deepcopy(controlnet).to(torch.bfloat16))
            if need_bf
            else (None, None)
        )
    nchw_bf16 = any(v in wanted for v in ("bf16", "bf16-classic", "bf16-sliced", "bf16-roundtrip"))
    cl_shared = args.compile_channels_last and unet_bf is not None and not nchw_bf16
    if cl_shared:
        # one bf16 copy in channels_last for both the eager "bf16-cl" and the compiled variants (which wrap
        # the same modules: calling a module directly stays eager) — a second full-size copy per compiled
        # variant got the process killed for memory beside the other jobs. With NCHW bf16 variants
        # wanted too, the compiled variant gets its own copy instead (a compiled graph guards on the
        # weights' strides: switching the shared models' layout between rounds would recompile it).
        unet_bf.to(memory_format=cl)
        cn_bf.to(memory_format=cl)
    prepacked = {}
    if "fp32-prepacked" in wanted or "bf16-prepacked" in wanted:
        from torch.utils import mkldnn as mkldnn_utils

        for name, dt in (("fp32-prepacked", torch.float32), ("bf16-prepacked", torch.bfloat16)):
            if name in wanted:
                # from the float32 models (a bf16 module's linear layers fail oneDNN's inner product)
                prepacked[name] = (
                    mkldnn_utils.to_mkldnn(copy.deepcopy(unet), dt),
                    mkldnn_utils.to_mkldnn(copy.deepcopy(controlnet), dt),
                )

    def with_attention(models, kind, fn):
        set_attention(models, kind)
        try:
            return fn()
        finally:
            set_attention(models, "sdpa")

    def layout(models, memory_format):
        # run before the timer starts: re-laying out ~2 GB of weights is not part of a step
        return lambda: [m.to(memory_format=memory_format) for m in models]

    def run_1thread():
        torch.set_num_threads(1)
        try:
            return step(unet, controlnet, x, torch.float32)
        finally:
            torch.set_num_threads(threads)

    fp, bf = (unet, controlnet), (unet_bf, cn_bf)
    catalogue = {
        "fp32": lambda: step(unet, controlnet, x, torch.float32),
        "fp32-classic": lambda: with_attention(fp, "classic", lambda: step(*fp, x, torch.float32)),
        "fp32-sliced": lambda: with_attention(fp, "sliced:2", lambda: step(*fp, x, torch.float32)),
        "fp32-cl": lambda: step(*fp, x, torch.float32, cl),
        "fp32-prepacked": lambda: step(*prepacked["fp32-prepacked"], x, torch.float32),
        "fp32-1thread": run_1thread,
        "bf16": lambda: step(*bf, x, torch.bfloat16),
        "bf16-cl": lambda: step(*bf, x, torch.bfloat16, cl),
        "bf16-classic": lambda: with_attention(bf, "classic", lambda: step(*bf, x, torch.bfloat16)),
        "bf16-sliced": lambda: with_attention(bf, "sliced:2", lambda: step(*bf, x, torch.bfloat16)),
        "bf16-roundtrip": lambda: step(*bf, x, torch.bfloat16, roundtrip=True),
        "bf16-autocast": lambda: step(unet, controlnet, x, torch.float32, autocast=True),
        "bf16-prepacked": lambda: step(*prepacked["bf16-prepacked"], x, torch.float32),
    }
    nchw, chl = torch.contiguous_format, cl
    # each variant's weight layout, set before its timer starts (None: whatever the models have)
    prepare = {name: layout(fp, chl if name == "fp32-cl" else nchw) for name in wanted if name.startswith("fp32")}
    if not cl_shared:
        prepare.update(
            {name: layout(bf, chl if name == "bf16-cl" else nchw) for name in wanted if name.startswith("bf16")}
        )
    variants = {name: catalogue[name] for name in wanted}
    compile_cost = {}
    cache_dir = Path(os.environ["TORCHINDUCTOR_CACHE_DIR"])
    cache_state = "warm" if cache_dir.is_dir() and any(cache_dir.rglob("*")) else "cold"
    if not args.no_compile:
        import torch._inductor.config as inductor_config

        mode, freezing = args.compile_modes[0], args.freezing_only  # one compiled variant per process
        prefix = "fp32" if args.compile_dtype == "float32" else "bf16"
        name = (
            f"{prefix}-compiled"
            + ("" if mode == "default" else f"-{mode}")
            + ("-freezing" if freezing else "")
            + ("-cl" if args.compile_channels_last else "")
        )
        kw = {} if mode == "default" else {"mode": mode}
        # the compiled variant wraps the eager models themselves when they stay channels_last
        # throughout (cl_shared); otherwise a copy: dynamo guards on the weights' strides (the eager
        # variants' layout changes would recompile it). One compiled variant per process (above).
        src = (unet, controlnet) if prefix == "fp32" else (unet_bf, cn_bf)
        cdt = torch.float32 if prefix == "fp32" else torch.bfloat16
        first_compiled = not any("compiled" in v for v in variants) and prefix == "bf16" and cl_shared
        u, c = src if first_compiled else (copy.deepcopy(src[0]), copy.deepcopy(src[1]))
        mf = cl if args.compile_channels_last else None
        if mf is not None:
            u.to(memory_format=mf)
            c.to(memory_format=mf)
        unet_c, cn_c = torch.compile(u, **kw), torch.compile(c, **kw)
        del u, c

        def run_compiled(u=unet_c, c=cn_c, fz=freezing, dt=cdt, mf=mf):
            with inductor_config.patch(freezing=fz):
                return step(u, c, x, dt, memory_format=mf)

        variants[name] = run_compiled
    times = {v: [] for v in variants}
    outputs = {}
    first = {}
    for r in range(args.rounds + 1):
        for name, fn in variants.items():
            if name in prepare:
                prepare[name]()
            t0 = time.perf_counter()
            out = fn()
            dt = time.perf_counter() - t0
            if r == 0:
                first[name] = dt
                outputs[name] = out
            else:
                times[name].append(dt)
            print(f"round {r} {name}: {dt:.2f} s (load {os.getloadavg()[0]:.1f})", file=sys.stderr, flush=True)
    compile_cost.pop("_first", None)
    for name in variants:
        if "compiled" in name:
            compile_cost[name] = first[name] - statistics.median(times[name])
    if fp32_first:  # timed before the others, not interleaved (see --fp32-first)
        times = {"fp32": fp32_first["times"], **times}
        outputs["fp32"] = fp32_first["out"][0]
        variants = {"fp32": None, **variants}
    ref = outputs["fp32"]
    base = statistics.median(times["fp32"])
    cap = runtime.cpu_capability()
    native = [k for k in ("amx_tile", "avx512_bf16") if cap.get(k)] or ["no native bf16"]
    print(
        f"\nmachine: {dtype_choice._cpu_model()} ({cap['isa']}, {', '.join(native)}), torch {torch.__version__}, "
        f"threads {threads}, load average {os.getloadavg()[0]:.1f} (1 min) at the end, rounds {args.rounds}"
        + (", fp32 timed first, not interleaved (--fp32-first)" if fp32_first else "")
        + "\n"
    )
    print("| variant | s/step median | runs | speed-up vs fp32 | drift (rel. L2) |")
    print("|---|---|---|---|---|")
    for name in variants:
        med = statistics.median(times[name])
        drift = float((outputs[name] - ref).norm() / ref.norm())
        print(f"| {name} | {med:.2f} | {[round(t, 2) for t in times[name]]} | {base / med:.2f}× | {drift:.2%} |")
    for name, cost in compile_cost.items():
        print(
            f"\ncompile cost of {name} (first call − steady step), UNet+ControlNet: {cost:.0f} s "
            f"(inductor cache {cache_state} at the start: {cache_dir})"
        )
    if not args.no_vae:
        dec = {"vae": vae.decode}
        if not args.no_compile:
            vae_c = copy.copy(vae)
            vae_c.decoder = torch.compile(vae.decoder)
            dec["vae-compiled"] = vae_c.decode
        vt = {k: [] for k in dec}
        vfirst = {}
        for r in range(2):
            for name, fn in dec.items():
                t0 = time.perf_counter()
                with torch.inference_mode():
                    fn(x["z"])
                dt = time.perf_counter() - t0
                (vt[name].append(dt) if r else vfirst.__setitem__(name, dt))
        for name in dec:
            extra = f", first call {vfirst[name]:.1f} s" if name.endswith("compiled") else ""
            print(f"- {name}: decode 512² {statistics.median(vt[name]):.2f} s{extra}")
    print(f"\npeak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:.2f} GB")


if __name__ == "__main__":
    main()
