"""CPU speed options for one denoising step of full-size SD 1.5 + 65-channel ControlNet.

One process holds the full-size UNet and ControlNet (random weights, built from
../shared/reference/huiyanearth-sar configs). Each round times one step — ControlNet then
UNet with its residuals, batch 2 (classifier-free guidance), 64×64 latents (512² images),
77 text tokens — in every variant, interleaved, so the ratios hold on a busy machine:

  fp32            float32, NCHW, torch's default threads (the baseline)
  fp32-cl         float32, channels_last memory format
  fp32-1thread    float32 with one intra-op thread (is the second core used well?)
  bf16            bfloat16 weights and activations
  fp32-compiled   torch.compile (inductor) of the UNet and ControlNet; the first call's
                  extra time is the compile cost (inductor's FX-graph cache makes a second
                  process cheaper — see --cache-dir)
  vae / vae-compiled   the VAE decoder for one 512² image, eager vs compiled

For each: median s/step, the speed-up over fp32 and the noise-prediction drift (relative L2
against fp32 at equal inputs). Results: benchmarks/RESULTS_cpu_speed.md.

    python benchmarks/bench_cpu_speed.py [--rounds 3] [--no-compile] [--cache-dir DIR]
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
    cn_cfg = dict(ControlNetModel.load_config(str(REFERENCE / "controlnet_alphaearth_sar_lora_regray" / "checkpoint-7500")))
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


def step(unet, controlnet, x, dtype, memory_format=None):
    import torch

    lat = x["latents"].to(dtype)
    cond = x["cond"].to(dtype)
    if memory_format is not None:
        lat, cond = lat.contiguous(memory_format=memory_format), cond.contiguous(memory_format=memory_format)
    with torch.inference_mode():
        down, mid = controlnet(lat, x["t"], encoder_hidden_states=x["text"].to(dtype), controlnet_cond=cond,
                               conditioning_scale=1.1, return_dict=False)
        return unet(lat, x["t"], encoder_hidden_states=x["text"].to(dtype), down_block_additional_residuals=down,
                    mid_block_additional_residual=mid, return_dict=False)[0].float()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--no-vae", action="store_true")
    ap.add_argument("--cache-dir", help="TORCHINDUCTOR_CACHE_DIR (default: inductor's own)")
    args = ap.parse_args()
    if args.cache_dir:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = args.cache_dir
    import copy

    import torch

    threads = torch.get_num_threads()
    unet, controlnet, vae, x = build()
    unet_bf, cn_bf = copy.deepcopy(unet).to(torch.bfloat16), copy.deepcopy(controlnet).to(torch.bfloat16)
    cl = torch.channels_last

    def run_fp32():
        return step(unet, controlnet, x, torch.float32)

    def run_cl():
        unet.to(memory_format=cl), controlnet.to(memory_format=cl)
        try:
            return step(unet, controlnet, x, torch.float32, cl)
        finally:
            unet.to(memory_format=torch.contiguous_format), controlnet.to(memory_format=torch.contiguous_format)

    def run_1thread():
        torch.set_num_threads(1)
        try:
            return step(unet, controlnet, x, torch.float32)
        finally:
            torch.set_num_threads(threads)

    def run_bf16():
        return step(unet_bf, cn_bf, x, torch.bfloat16)

    variants = {"fp32": run_fp32, "fp32-cl": run_cl, "fp32-1thread": run_1thread, "bf16": run_bf16}
    compile_cost = {}
    if not args.no_compile:
        unet_c, cn_c = torch.compile(unet), torch.compile(controlnet)
        variants["fp32-compiled"] = lambda: step(unet_c, cn_c, x, torch.float32)
    times = {v: [] for v in variants}
    outputs = {}
    first = {}
    for r in range(args.rounds + 1):
        for name, fn in variants.items():
            t0 = time.perf_counter()
            out = fn()
            dt = time.perf_counter() - t0
            if r == 0:
                first[name] = dt
                outputs[name] = out
            else:
                times[name].append(dt)
            print(f"round {r} {name}: {dt:.2f} s", file=sys.stderr, flush=True)
    if "fp32-compiled" in first:
        compile_cost["unet+controlnet"] = first["fp32-compiled"] - statistics.median(times["fp32-compiled"])
    ref = outputs["fp32"]
    base = statistics.median(times["fp32"])
    print(f"\nthreads {threads}, load average {os.getloadavg()[0]:.1f}, rounds {args.rounds}\n")
    print("| variant | s/step median | runs | speed-up vs fp32 | drift (rel. L2) |")
    print("|---|---|---|---|---|")
    for name in variants:
        med = statistics.median(times[name])
        drift = float((outputs[name] - ref).norm() / ref.norm())
        print(f"| {name} | {med:.2f} | {[round(t, 2) for t in times[name]]} | {base / med:.2f}× | {drift:.2%} |")
    if compile_cost:
        print(f"\ncompile cost (first call − steady step), UNet+ControlNet: {compile_cost['unet+controlnet']:.0f} s")
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
