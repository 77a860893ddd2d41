"""``sarviz doctor``: what this machine can run, and the dtype sarviz measured and chose.

Prints the devices, the CPU's bf16/AMX features, torch's version and thread counts, and
for each device the dtype decision (measured on first use and cached in the sarviz home
folder, with the timings), and whether ``torch.compile`` pays back for one image by the step times
earlier generations recorded. ``--measure`` re-measures; ``--json`` prints one object.
"""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "doctor",
        help="devices, CPU features and the measured dtype choice for diffusion",
        description="Show the compute devices, CPU features and, per device, the dtype sarviz chose for diffusion "
        "(measured once per machine and torch version, cached in the sarviz home folder).",
    )
    parser.add_argument("--device", default="auto", help="only this device (auto, cpu, cuda, cuda:1, mps)")
    parser.add_argument("--measure", action="store_true", help="measure again instead of using the cache")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from sarviz.generators import dtype_choice, runtime

    devices = runtime.available_devices() if args.device == "auto" else [runtime.choose_device(args.device)]
    out = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "cpu": {**runtime.cpu_capability(), "model": dtype_choice._cpu_model()},
        "cache": str(dtype_choice.cache_path()),
        "devices": {},
    }
    for device in devices:
        if args.measure and device.split(":", 1)[0] != "mps":
            decision = dtype_choice.measured_choice(device, refresh=True)
        else:
            decision = runtime.dtype_decision(device)
        out["devices"][device] = decision.to_dict()
        if device.split(":", 1)[0] != "mps":
            out["devices"][device]["compile"] = _compile_choices(device, decision.dtype)
    if args.json:
        print(json.dumps(out, indent=1, default=str))
        return 0
    cpu = out["cpu"]
    native = [k for k in ("amx_tile", "amx_fp16", "avx512_bf16") if cpu.get(k)]
    bf16 = (
        (", ".join(native) + " (native)")
        if native
        else ("none native (oneDNN emulates bf16)" if cpu.get("mkldnn_bf16") else "none")
    )
    print(f"torch {out['torch']}, {out['threads']} intra-op / {out['interop_threads']} inter-op threads")
    print(f"CPU: {cpu['model']} — ISA {cpu['isa']}, bf16 hardware: {bf16}")
    for device, d in out["devices"].items():
        print(f"\n{device}: diffusion dtype {d['dtype']} ({d['method']}) — {d['reason']}")
        for m in d["measurements"]:
            if m["error"]:
                print(f"  {m['dtype']:9s} unavailable: {m['error']}")
            else:
                print(
                    f"  {m['dtype']:9s} {m['seconds'] * 1000:8.1f} ms per UNet block (median of {len(m['runs'])}), "
                    f"drift {m['drift']:.2%}"
                )
        if d.get("speed_options"):
            opts = ", ".join(f"{k}={v}" for k, v in d["speed_options"].items())
            print(f"  speed options for {d['dtype']}: {opts} — {d.get('options_reason', '')}")
            for m in d.get("option_measurements", []):
                if not m["error"]:
                    piece = "SD 1.5 encoder" if m.get("probe") == "encoder" else "UNet block"
                    print(f"    {m['option']:18s} {m['seconds'] * 1000:8.1f} ms per {piece}, drift {m['drift']:.2%}")
        for c in d.get("compile", []):
            t = c["timings"]
            what = f" of {c['workload']}" if c["workload"] else ""
            print(f"  torch.compile for {c['dtype']} (one {c['image_steps']}-step image{what}): {c['why']}")
            if t["eager_step_s"] or t["compiled_step_s"]:
                print(
                    f"    measured by generations here: eager {t['eager_step_s']:.2f} s/step, compiled "
                    f"{t['compiled_step_s']:.2f} s/step, compile {t['compile_cold_s']:.0f} s cold / "
                    f"{t['compile_warm_s']:.0f} s with the kernel cache warm ({c['cache']})"
                )
        if d["measured_at"]:
            print(f"  measured {d['measured_at']}; cached in {out['cache']}")
    print(
        "\n--dtype on generate overrides the choice; `sarviz doctor --measure` measures again; "
        "SARVIZ_COMPILE=on|off overrides the compile choice."
    )
    return 0


def _compile_choices(device: str, dtype: str) -> list[dict]:
    """What ``SARVIZ_COMPILE=auto`` decides for one image of the default step count, and the numbers,
    for each dtype and workload (model and image size) generations and renders here recorded; one
    line for the chosen dtype when none did."""
    from dataclasses import asdict

    from sarviz.generators import dtype_choice, runtime

    steps = 25  # the shipped cards' default step count
    out = []
    # the chosen dtype's records first, then the others' (renders run float32 whatever was chosen)
    dtypes = [dtype, *(d for d in ("float32", "bfloat16", "float16") if d != dtype)]
    pairs = [(d, w) for d in dtypes for w in dtype_choice.compile_records(device, d)] or [(dtype, "")]
    for dtype, workload in pairs:
        plan = runtime.speed_plan(device, dtype, steps=steps, workload=workload)
        out.append(
            {
                "dtype": dtype,
                "workload": workload,
                "compile": plan["compile"],
                "why": plan.get("compile_why", ""),
                "image_steps": steps,
                "cache": plan.get("compile_cache", "cold"),
                "timings": asdict(dtype_choice.compile_timings(device, dtype, workload=workload)),
            }
        )
    return out
