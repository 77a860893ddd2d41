"""The training loop both trainers run: accumulate, step, log, checkpoint — on accelerate.

A trainer subclasses :class:`TrainLoop` and provides the models and the data (``setup``),
the loss of one micro-batch (``micro_loss``), the weights of a checkpoint
(``write_components``) and optionally hooks (``before_step``, ``after_step``,
``on_step_end``, ``finish``). The loop owns what must be the same for both recipes:
per-micro-batch seeding (resume = uninterrupted run), out-of-memory and non-finite-loss
errors, the loss log, and atomic checkpoint folders written by the main process.
"""

from __future__ import annotations

import math
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from sarviz.formats.training_run import ACCELERATE_STATE, checkpoint_dir
from sarviz.training import common
from sarviz.training.common import TrainError


class TrainLoop:
    """Base of :class:`~sarviz.training.geo.GeoTrainer` and :class:`~sarviz.training.text.TextTrainer`."""

    name = "?"  # "geo" / "text": messages and the TensorBoard project
    config: Any
    work: Path  # where checkpoints, logs and run.json go
    accelerator: Any = None
    resume: Path | None = None
    start_step: int = 0
    max_steps: int = 0
    # set by the subclass's setup(); torch objects are typed Any (torch is not analysed)
    sampler: common.ShardedEpochSampler
    loader: Any  # torch.utils.data.DataLoader
    optimizer: Any  # torch.optim.Optimizer, prepared by accelerate
    lr_scheduler: Any  # its LR scheduler, prepared by accelerate

    # -- to provide ----------------------------------------------------------------------------
    def setup(self) -> None:
        raise NotImplementedError

    def micro_loss(self, batch):
        raise NotImplementedError

    def trained_modules(self) -> list:
        raise NotImplementedError

    def write_components(self, folder: Path, step: int) -> None:
        raise NotImplementedError

    def describe(self) -> str:
        """What ran out of memory (for the one-line OOM message)."""
        return ""

    def before_step(self) -> None:
        """After backward, before the optimizer step (gradients are final here)."""

    def after_step(self) -> None:
        """After each optimizer.step()."""

    def on_step_end(self, step: int) -> None:
        """After step ``step`` was logged, before its checkpoint."""

    def finish(self, step: int) -> Path | None:
        """After the last step of the run (not of a stopped session); may save a final model."""
        return None

    # -- shared setup pieces ---------------------------------------------------------------------
    def start_accelerator(self, read_step) -> None:
        """The accelerator, stale temp folders removed, the checkpoint to resume (and its step)."""
        c = self.config
        self.work.mkdir(parents=True, exist_ok=True)
        c.mixed_precision = common.resolve_mixed_precision(c.mixed_precision)  # "auto": this machine's choice
        acc = self.accelerator = common.make_accelerator(self.work, c.mixed_precision, c.grad_accum)
        if acc.is_main_process:
            common.clean_stale_temp(self.work)
        self.resume = common.resolve_resume(self.work, c.resume_from)
        self.start_step = int(read_step(self.resume)) if self.resume is not None else 0

    def start_log(self, kind: str, **info: Any) -> None:
        acc = self.accelerator
        self.log = common.RunLog(self.work, kind, common.config_dict(self.config))
        self.log.load_losses(self.start_step if self.resume is not None else None)
        if acc.is_main_process:
            acc.init_trackers(f"sarviz-{self.name}")
            self.log.write(
                start_step=self.start_step,
                resumed_from=str(self.resume) if self.resume else None,
                num_processes=acc.num_processes,
                device=str(acc.device),
                steps_per_epoch=self.sampler.steps_per_epoch,
                max_steps=self.max_steps,
                **info,
            )

    # -- the loop -----------------------------------------------------------------------------------
    def train(self) -> Path | None:
        import torch

        if self.accelerator is None:
            self.setup()
        c, acc = self.config, self.accelerator
        step, last = self.start_step, self.resume
        end = self.max_steps if not c.stop_after_steps else min(self.max_steps, step + c.stop_after_steps)
        batches = iter(self.loader)
        modules = self.trained_modules()
        t0 = time.perf_counter()
        try:
            while step < end:
                losses = []
                for micro in range(c.grad_accum):
                    batch = next(batches)
                    # every random number of this micro-batch (noise, t, VAE sample, dropout)
                    torch.manual_seed(common.seed_for(c.seed, step, micro, acc.process_index))
                    with acc.accumulate(*modules):
                        try:
                            loss = self.micro_loss(batch)
                            acc.backward(loss)
                        except (RuntimeError, MemoryError) as exc:
                            if isinstance(exc, MemoryError) or common.is_oom(exc):
                                raise TrainError(common.oom_message(step - self.start_step, self.describe())) from None
                            raise
                        if acc.sync_gradients:
                            self.before_step()
                            if c.max_grad_norm:
                                acc.clip_grad_norm_(
                                    [p for m in modules for p in m.parameters() if p.requires_grad], c.max_grad_norm
                                )
                        self.optimizer.step()
                        self.lr_scheduler.step()
                        self.optimizer.zero_grad(set_to_none=True)
                        self.after_step()
                    losses.append(loss.detach())
                step += 1
                value = float(acc.gather(torch.stack(losses).mean()[None]).mean())
                if not math.isfinite(value):
                    raise TrainError(
                        f"the loss became {value} at step {step}; lower the learning rate(s) or use "
                        "--mixed-precision bf16 instead of fp16"
                    )
                self._log_step(step, value, t0, end)
                self.on_step_end(step)
                if step % c.checkpoint_every == 0 or step == end:
                    last = self.save_checkpoint(step)
            if step >= self.max_steps:
                last = self.finish(step) or last
        except (KeyboardInterrupt, TrainError) as exc:
            if acc.is_main_process:
                self.log.status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
                self.log.flush_losses()
                self.log.write(
                    step=step,
                    last_checkpoint=str(last) if last else None,
                    **({"error": str(exc)} if isinstance(exc, TrainError) else {}),
                )
            raise
        if acc.is_main_process:
            self.log.status = "finished" if step >= self.max_steps else "stopped"
            self.log.flush_losses()
            self.log.write(step=step, last_checkpoint=str(last) if last else None)
        acc.end_training()
        return last

    def run(self) -> Path | None:
        self.setup()
        return self.train()

    def _log_step(self, step: int, value: float, t0: float, end: int) -> None:
        acc = self.accelerator
        if not acc.is_main_process:
            return
        rate = (time.perf_counter() - t0) / (step - self.start_step)
        lr = self.lr_scheduler.get_last_lr()[0]
        self.log.add_loss(
            {
                "step": step,
                "epoch": self.sampler.position(step - 1)[0],
                "loss": value,
                "lr": lr,
                "seconds_per_step": round(rate, 4),
                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
        )
        acc.log({"train/loss": value, "train/lr": lr}, step=step)
        if step % self.config.log_every == 0 or step == end:
            self.log.flush_losses()
            print(
                f"[train {self.name}] {common.progress_line(step, self.max_steps, value, t0, self.start_step)}",
                file=sys.stderr,
                flush=True,
            )

    # -- checkpoints -------------------------------------------------------------------------------------
    def save_checkpoint(self, step: int, final_to: Path | None = None) -> Path:
        """``work/checkpoint-N`` (with ``accelerate_state/``) written into a temp folder and renamed when
        complete; or, with ``final_to``, the final model's parts moved into that folder (no state)."""
        from accelerate.utils import DistributedType

        acc = self.accelerator
        acc.wait_for_everyone()
        tmp = common.temp_checkpoint_dir(self.work, step if final_to is None else -1)
        sharded = acc.distributed_type in (DistributedType.DEEPSPEED, DistributedType.FSDP)
        if acc.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            self.write_components(tmp, step)
        acc.wait_for_everyone()
        if final_to is None and (acc.is_main_process or sharded):
            common.save_accelerate_state(acc, tmp / ACCELERATE_STATE)
        acc.wait_for_everyone()
        target = final_to if final_to is not None else checkpoint_dir(self.work, step)
        if acc.is_main_process:
            if final_to is not None:
                common.publish_final(tmp, final_to)
            else:
                common.publish_checkpoint(tmp, self.work, step, self.config.checkpoints_total_limit)
            print(f"[train {self.name}] saved {target}", file=sys.stderr, flush=True)
        acc.wait_for_everyone()
        return target


def command_main(name: str, doc: str, add_arguments, config_from_args, train, argv: list[str] | None = None) -> int:
    """The ``python -m sarviz.training.<name>`` entry point (what ``accelerate launch -m`` runs):
    the same options as ``sarviz train <name>``, one-line errors, exit codes 2 / 130."""
    import argparse

    parser = argparse.ArgumentParser(prog=f"python -m sarviz.training.{name}", description=doc.split("\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        train(config_from_args(args))
    except TrainError as exc:
        print(f"sarviz train {name}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"sarviz train {name}: interrupted (the last complete checkpoint is kept)", file=sys.stderr)
        return 130
    return 0
