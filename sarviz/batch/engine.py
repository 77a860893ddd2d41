"""Run a batch on Ray: a fetch stage and a generation stage, each with its own actors, bounded.

* Ray runtime: an embedded local Ray (``ray.init(num_cpus=W)``, no dashboard, quiet) unless
  ``address`` names a cluster (``ray://…`` or ``auto``). One runtime a process: a second
  :func:`ray_runtime` reuses a running one (tests start Ray once a module).
* Fetch actors (I/O bound, 0 CPUs reserved, ``fetch_workers`` of them) and generation actors
  (``num_cpus=1``, ``num_gpus=gpus_per_worker``; the model is built once in each) run as
  two stages: a fetched item goes to the least-busy generation actor.
* Back-pressure: at most ``2 × fetch_workers`` fetches in flight, at most
  ``2 × workers`` fetched items waiting, and at most 2 tasks queued on a generation actor; a
  staged item is a few files on disk and the object store holds only small dicts, so memory
  stays flat however many points there are.
* Failures: a bad item comes back as a failed row (never an exception). A generation actor
  that dies (killed, OOM) is restarted by Ray (``max_restarts``) and its tasks retried
  (``max_task_retries``); when that is exhausted the item is recorded as failed and a new
  actor replaces the dead one.

``engine="inline"`` runs both stages in this process, one item after the other (the
benchmark's baseline and a debugging aid).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import logging
import os
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from sarviz.batch.items import ItemGenerator, SceneFetcher
from sarviz.batch.points import BatchPoint
from sarviz.errors import BatchError
from sarviz.formats.batch_folder import BatchConfig, BatchFolder

log = logging.getLogger("sarviz.batch")

MAX_RESTARTS = 3
MAX_TASK_RETRIES = 3
STARTUP_TIMEOUT_S = 900  # actor start-up includes loading the model (minutes for diffusion on a slow disk)


@dataclass
class BatchSummary:
    total: int
    skipped: int = 0
    done: int = 0
    failed: int = 0
    seconds: float = 0.0
    startup_s: float = 0.0  # Ray start-up and actor creation (models loaded), within ``seconds``
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def finished(self) -> int:
        return self.done + self.failed

    def line(self) -> str:
        rate = self.finished / self.seconds if self.seconds > 0 else 0.0
        return (
            f"{self.done} done, {self.failed} failed, {self.skipped} already done, of {self.total} "
            f"in {self.seconds:.1f} s ({rate:.2f} items/s)"
        )


class Ticker:
    """done/failed/total, throughput and ETA: a tqdm line on a terminal, a plain line every 10 s otherwise."""

    def __init__(self, total: int, already: int, enabled: bool = True) -> None:
        self.total, self.count, self.failed, self.already = total, already, 0, already
        self.enabled = enabled
        self.started = self.last = time.monotonic()
        self.bar = None
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(
                total=total,
                initial=already,
                unit="item",
                file=sys.stderr,
                dynamic_ncols=True,
                mininterval=0.5,
                desc="batch",
            )

    def update(self, row: dict[str, Any]) -> None:
        self.failed += row.get("status") == "failed"
        self.count += 1
        if self.bar is not None:
            self.bar.set_postfix_str(f"failed {self.failed}", refresh=False)
            self.bar.update(1)
        elif self.enabled and (time.monotonic() - self.last > 10 or self.count == self.total):
            self.last = time.monotonic()
            print(self.line(), file=sys.stderr, flush=True)

    def line(self) -> str:
        elapsed = time.monotonic() - self.started
        made = self.count - self.already
        rate = made / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.count) / rate if rate > 0 else float("nan")
        eta_s = "?" if eta != eta else time.strftime("%H:%M:%S", time.gmtime(eta))
        return f"batch: {self.count}/{self.total} ({self.failed} failed), {rate:.2f} items/s, ETA {eta_s}"

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


#: attempts at starting the local Ray: Ray gives its raylet a fixed 30 s to register with the GCS
#: (``ray/_private/node.py``, not configurable), which a busy 2-core machine can miss
LOCAL_RAY_STARTS = 3


def _init_local_ray(ray: Any, **kwargs: Any) -> None:
    """``ray.init`` for our own single-node Ray, started again when only its start-up timed out."""
    for attempt in range(1, LOCAL_RAY_STARTS + 1):
        try:
            ray.init(**kwargs)
            return
        except Exception as exc:  # Ray raises a bare Exception for this
            if "timed out during startup" not in str(exc) or attempt == LOCAL_RAY_STARTS:
                raise
            ray.shutdown()  # stop the half-started GCS/raylet before the next attempt


@contextlib.contextmanager
def ray_runtime(
    address: str | None = None, workers: int = 2, gpus: float | None = None, log_dir: Path | None = None
) -> Iterator[Any]:
    """Ray, started here (and shut down after) unless one is running already in this process."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no phoning home from batch runs
    import ray

    if ray.is_initialized():
        yield ray
        return
    # quiet: worker output stays in Ray's session logs (linked from the run folder), not on the terminal
    kwargs: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False, configure_logging=True)
    if address:
        ray.init(address=address, logging_level=logging.WARNING, **kwargs)
    else:  # our own single-node runtime: its start-up notices (token auth on, …) are not the user's concern
        _init_local_ray(ray, num_cpus=max(1, int(workers)), num_gpus=gpus, logging_level=logging.ERROR, **kwargs)
    if log_dir is not None:
        try:  # point the run folder at Ray's own worker logs
            session = Path(ray._private.worker._global_node.get_session_dir_path())  # noqa: SLF001
            link = log_dir / "ray-session"
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(session, target_is_directory=True)
        except Exception:  # noqa: BLE001 — a convenience link only
            pass
    try:
        yield ray
    finally:
        ray.shutdown()


class _RayStages:
    """The actors of both stages and the bounded scheduling between them."""

    def __init__(
        self, ray: Any, config: BatchConfig, out: str, workers: int, fetch_workers: int, gpus_per_worker: float
    ) -> None:
        self.ray = ray
        self.config, self.out = config, out
        self.gpus = gpus_per_worker
        fetch_cls = ray.remote(num_cpus=0, max_restarts=MAX_RESTARTS, max_task_retries=MAX_TASK_RETRIES)(SceneFetcher)
        self._gen_cls = ray.remote(
            num_cpus=1, num_gpus=gpus_per_worker or 0, max_restarts=MAX_RESTARTS, max_task_retries=MAX_TASK_RETRIES
        )(ItemGenerator)
        have = ray.cluster_resources()
        if have.get("CPU", 0) < workers:
            raise BatchError(
                f"{workers} generation workers need {workers} CPUs; the Ray cluster has "
                f"{have.get('CPU', 0):g} — use fewer --workers"
            )
        if gpus_per_worker and have.get("GPU", 0) < gpus_per_worker:
            raise BatchError(
                f"--gpus-per-worker {gpus_per_worker:g}, but the Ray cluster has {have.get('GPU', 0):g} GPUs"
            )
        self.fetchers = [fetch_cls.remote(config, out) for _ in range(max(1, fetch_workers))]
        self.generators = [self._gen_cls.remote(config, out) for _ in range(max(1, workers))]
        self.load = [0] * len(self.generators)
        # the process ids of the generation actors (models are loaded once in each)
        try:  # waits for the models to load; a worker that cannot be placed must not hang the run
            self.worker_pids = ray.get([g.pid.remote() for g in self.generators], timeout=STARTUP_TIMEOUT_S)
        except ray.exceptions.GetTimeoutError:
            raise BatchError(
                f"the generation workers did not start within {STARTUP_TIMEOUT_S} s "
                "(not enough free CPUs/GPUs in the Ray cluster?)"
            ) from None

    def replace_generator(self, index: int) -> None:
        self.generators[index] = self._gen_cls.remote(self.config, self.out)
        self.load[index] = 0


def _log_to(folder: BatchFolder) -> logging.Handler:
    handler = logging.FileHandler(folder.log_file, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    # GDAL's and libtiff's messages (sarviz.gdal_messages) go into the run's log, not onto the terminal
    logging.getLogger("sarviz.gdal").addHandler(handler)
    return handler


def run_batch(
    points: list[BatchPoint],
    config: BatchConfig,
    out: str | os.PathLike,
    *,
    engine: str = "ray",
    ray_address: str | None = None,
    workers: int = 2,
    fetch_workers: int = 2,
    gpus_per_worker: float = 0.0,
    progress: bool = True,
    on_row: Callable[[dict[str, Any], Any], None] | None = None,
    manifest_every_s: float = 5.0,
    info: dict[str, Any] | None = None,
) -> BatchSummary:
    """Make every item of ``points`` not finished yet in ``out``; write manifest and catalog.

    ``on_row(row, stages)`` is called in this process after each finished item (``stages``
    is the Ray stage object with ``worker_pids``, or None inline).
    """
    import sarviz

    folder = BatchFolder(Path(out).resolve())  # absolute: Ray workers do not share this process's cwd
    lock = _lock(folder)
    try:
        folder.start(
            config,
            points,
            {
                "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "sarviz": sarviz.__version__,
                "points": len(points),
                **(info or {}),
            },
        )
    except BaseException:
        lock.close()
        raise
    handler = _log_to(folder)
    done = folder.done_ids()
    summary = BatchSummary(total=len(points))
    for point in points:
        if point.id in done:
            summary.rows[point.id] = folder.item_record(point.id)
            summary.skipped += 1
    todo = [p for p in points if p.id not in done]
    log.info(
        "batch %s: %d points, %d already done, %d to make (engine %s)",
        folder.root,
        len(points),
        summary.skipped,
        len(todo),
        engine,
    )
    ticker = Ticker(len(points), summary.skipped, enabled=progress)
    started = time.perf_counter()
    last_flush = [time.monotonic()]

    def finish(row: dict[str, Any], stages: Any) -> None:
        row.pop("staging", None)
        row["total_s"] = round(sum(float(row.get(k) or 0) for k in ("fetch_s", "generate_s", "write_s")), 4)
        summary.rows[row["id"]] = row
        if row.get("status") == "done":
            summary.done += 1
        else:
            summary.failed += 1
            log.info("item %s failed at %s: %s", row["id"], row.get("stage"), row.get("error"))
        ticker.update(row)
        if on_row:
            on_row(row, stages)
        if time.monotonic() - last_flush[0] > manifest_every_s:
            folder.write_manifest(summary.rows.values())
            last_flush[0] = time.monotonic()

    try:
        if engine == "inline":
            fetcher, generator = SceneFetcher(config, str(folder.root)), ItemGenerator(config, str(folder.root))
            for point in todo:
                row = fetcher.fetch(point)
                finish(generator.generate(row) if row["status"] == "fetched" else row, None)
        elif engine == "ray" and not todo:
            pass  # nothing to make: no runtime to start
        elif engine == "ray":
            with ray_runtime(ray_address, workers, log_dir=folder.log_dir) as ray:
                _schedule(
                    ray,
                    todo,
                    config,
                    str(folder.root),
                    workers,
                    fetch_workers,
                    gpus_per_worker,
                    finish,
                    lambda: setattr(summary, "startup_s", time.perf_counter() - started),
                )
        else:
            raise BatchError(f"unknown engine {engine!r}; use 'ray' or 'inline'")
    finally:
        ticker.close()
        summary.seconds = time.perf_counter() - started
        folder.write_manifest(summary.rows.values())
        from sarviz.formats.stac_catalog import write_catalog

        write_catalog(
            folder.root,
            folder.item_files(),
            title=f"sarviz batch {folder.root.name}",
            description=f"synthetic Sentinel-1 by model {config.model} with the real scene crops",
        )
        log.info("batch %s: %s", folder.root, summary.line())
        log.removeHandler(handler)
        logging.getLogger("sarviz.gdal").removeHandler(handler)
        handler.close()
        lock.close()
    return summary


def _lock(folder: BatchFolder):
    """An exclusive lock on OUT/.lock for the run: two runs on one folder would clear each other's staging."""
    import fcntl

    folder.root.mkdir(parents=True, exist_ok=True)
    fh = open(folder.lock_file, "a+")  # noqa: SIM115 — held for the whole run, closed by run_batch
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.close()
        raise BatchError(
            f"another sarviz batch is running on {folder.root}; wait for it or use another --out"
        ) from None
    return fh


def _schedule(
    ray: Any,
    todo: list[BatchPoint],
    config: BatchConfig,
    out: str,
    workers: int,
    fetch_workers: int,
    gpus_per_worker: float,
    finish: Callable[[dict[str, Any], Any], None],
    started: Callable[[], None] = lambda: None,
) -> None:
    stages = _RayStages(ray, config, out, workers, fetch_workers, gpus_per_worker)
    started()
    try:
        _drive(ray, stages, todo, finish)
    finally:  # free the CPUs/GPUs (and models) now, not when the handles are garbage-collected
        for actor in stages.fetchers + stages.generators:
            ray.kill(actor)


def _drive(ray: Any, stages: _RayStages, todo: list[BatchPoint], finish: Callable[[dict[str, Any], Any], None]) -> None:
    from ray.exceptions import RayActorError, RayTaskError

    pending = deque(todo)
    fetching: dict[Any, BatchPoint] = {}
    ready: deque[dict[str, Any]] = deque()
    generating: dict[Any, tuple[dict[str, Any], int]] = {}
    fetch_window, ready_cap, per_actor = 2 * len(stages.fetchers), 2 * len(stages.generators), 2
    turn = 0
    while pending or fetching or ready or generating:
        while pending and len(fetching) < fetch_window and len(ready) + len(fetching) < ready_cap + fetch_window:
            point = pending.popleft()
            fetching[stages.fetchers[turn % len(stages.fetchers)].fetch.remote(point)] = point
            turn += 1
        while ready:
            idx = min(range(len(stages.generators)), key=lambda i: stages.load[i])
            if stages.load[idx] >= per_actor:
                break
            row = ready.popleft()
            generating[stages.generators[idx].generate.remote(row)] = (row, idx)
            stages.load[idx] += 1
        waiting = list(fetching) + list(generating)
        if not waiting:
            continue
        finished, _ = ray.wait(waiting, num_returns=1, timeout=1.0)
        for ref in finished:
            if ref in fetching:
                point = fetching.pop(ref)
                try:
                    row = ray.get(ref)
                except (RayActorError, RayTaskError) as exc:
                    row = {
                        "id": point.id,
                        "lat": point.lat,
                        "lon": point.lon,
                        "class": point.cls,
                        "region": point.region,
                        "status": "failed",
                        "stage": "fetch",
                        "error": f"fetch worker failed: {str(exc).splitlines()[0][:300]}",
                    }
                if row["status"] == "fetched":
                    ready.append(row)
                else:
                    finish(row, stages)
            else:
                row, idx = generating.pop(ref)
                stages.load[idx] -= 1
                try:
                    result = ray.get(ref)
                except (RayActorError, RayTaskError) as exc:
                    result = {
                        **row,
                        "status": "failed",
                        "stage": "generate",
                        "error": f"generation worker died after {MAX_TASK_RETRIES} retries: "
                        f"{str(exc).splitlines()[0][:300]}",
                    }
                    if isinstance(exc, RayActorError):
                        stages.replace_generator(idx)
                finish(result, stages)
