"""engines.ray: a run's photos processed on a Ray cluster (`facedist run --engine ray`).

The driver (this process) does what the local engine does around the photos: it lists them,
decides which need work (pipeline._run_stages), stores every result (store.save_chunk) and then
compares and groups the faces. In between, Ray Data's `map_batches` hands batches of file
paths to a pool of `PhotoWorker` actors; each builds the models once (compute.FacePipeline,
the same compute object as the local engine) and reads, hashes, decodes, detects, aligns and embeds
its photos, on its GPU where the node has one. Nothing Ray-specific is in the stages.

- Resume: results are stored as they come back, a batch in one transaction; a run killed
  part-way keeps them and the next run only does the photos still missing.
- A worker process that dies costs a retry: Ray restarts the actor and resubmits its batch
  (Ray Data's actor pools: max_restarts and max_task_retries -1). Storing is idempotent per photo, so a batch that
  comes back twice is not stored twice.
- Byte-identical copies are processed once per actor, not once per run (the local engine
  hashes every file in one process; here the driver never reads the photos).

Photos and the output folder must be on storage every node sees, at the same path.
"""
from __future__ import annotations

import dataclasses
import logging
import pickle
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..compute import FacePipeline, Work, read_and_decode
from ..config import Settings
from ..discover import ImageFile
from ..errors import SettingError
from ..memory import release_memory
from ..monitor import Monitor

log = logging.getLogger("facedist")


class PhotoWorker:
    """A Ray actor's work: photos (as paths) in, pickled pipeline results (store.ImageResult)
    out. Built once per actor, so the models load once.

    >>> worker = PhotoWorker(Settings(weights="synthetic", model="facenet-vggface2"), threads=1)  # doctest: +SKIP
    >>> out = worker({"path": np.array(["a.jpg"]), "size": np.array([123]),
    ...               "mtime_ns": np.array([0]), "image_id": np.array([1])})  # doctest: +SKIP
    """

    def __init__(self, settings: Settings, threads: int) -> None:
        import torch

        torch.set_num_threads(threads)  # this actor's process is ours: one thread per CPU given
        self.settings = settings
        self.threads = threads
        self.pipeline = FacePipeline(settings)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        work = [Work(ImageFile(Path(p), int(size), int(mtime)), int(image_id))
                for p, size, mtime, image_id in zip(batch["path"], batch["size"],
                                                     batch["mtime_ns"], batch["image_id"])]

        def decoded(w):
            return read_and_decode(w, self.settings.max_pixels, self.settings.detect.decode_max_side)

        with ThreadPoolExecutor(self.threads) as pool:
            work = list(pool.map(decoded, work))
        results = self.pipeline.process(work, Monitor(enabled=False))
        del work
        release_memory()
        return {"faces": np.array([len(r.probs) for r in results], np.int64),
                "result": np.array([pickle.dumps(r) for r in results], dtype=object)}


def connect(settings: Settings) -> bool:
    """Join the Ray cluster of RAY_ADDRESS, or start a local Ray instance (no dashboard) when
    there is none and Ray is not initialised yet. Returns whether this call started Ray."""
    try:
        import ray
    except ImportError:
        raise SettingError("--engine ray needs Ray: pip install 'facedist[ray]'") from None
    if ray.is_initialized():
        return False
    ray.init(include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False,
             configure_logging=False)
    # Ray started here is ours: its dataset messages ("execution finished" …) would drown our
    # progress and summary; its errors still show
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    return True


def actor_plan(settings: Settings, resources: dict[str, float]) -> tuple[int, int, int]:
    """(actors, CPUs per actor, GPUs per actor) for the cluster's resources: one actor per GPU
    when the cluster has GPUs and the device allows them, else one per ray_actor_cpus CPUs.

    >>> actor_plan(Settings(), {"CPU": 16.0})
    (16, 1, 0)
    >>> actor_plan(Settings(ray_actor_cpus=4), {"CPU": 32.0, "GPU": 2.0})
    (2, 4, 1)
    """
    cpus = settings.ray_actor_cpus
    gpus = int(resources.get("GPU", 0)) if settings.device != "cpu" else 0
    actors = settings.ray_actors or (gpus or max(1, int(resources.get("CPU", 1)) // cpus))
    return actors, cpus, 1 if gpus else 0


class RayEngine:
    """A Ray cluster's actors (PhotoWorker): the driver builds no models of its own."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def close(self) -> None:
        pass

    def process(self, todo: list[Work], store, run_id: int, key: str, monitor: Monitor,
                summary) -> None:
        """Process the photos of `todo` (not decoded) on Ray actors and store their results
        here as they come back; `summary` (pipeline.RunSummary) counts them."""
        process_files(todo, store, run_id, key, self.settings, monitor, summary)


def process_files(todo: list, store, run_id: int, key: str, settings: Settings, monitor,
                  summary) -> None:
    from tqdm import tqdm

    started = connect(settings)  # first: says how to install Ray where it is missing
    import ray.data
    import torch

    from ..backend import Backend
    ctx = ray.data.DataContext.get_current()
    before = ctx.enable_progress_bars, ctx.print_on_execution_start  # the caller's, restored
    try:
        if not todo:
            return
        ctx.enable_progress_bars = ctx.print_on_execution_start = False  # one bar: ours
        actors, cpus, gpus = actor_plan(settings, ray.cluster_resources())
        # photos per actor call: the actors' backend's chunk, unless set (256 on a GPU)
        chunk = settings.chunk_images or Backend(torch.device("cuda" if gpus else "cpu")).chunk_images
        # workers may start elsewhere: paths absolute, the weights file the driver resolved
        worker_settings = dataclasses.replace(settings, photos=Path(settings.photos).resolve(),
                                              out=Path(settings.out).resolve(), progress=False)
        if settings.weights not in (None, "synthetic"):
            worker_settings.weights = str(Path(settings.weights).resolve())
        items = [{"path": str(Path(w.file.path).resolve()), "size": w.file.size,
                  "mtime_ns": w.file.mtime_ns, "image_id": w.image_id} for w in todo]
        results = ray.data.from_items(items).map_batches(
            PhotoWorker, fn_constructor_args=(worker_settings, cpus),
            batch_size=chunk, batch_format="numpy", concurrency=actors,
            num_cpus=cpus, num_gpus=gpus)  # Ray Data restarts dead actors and retries by default
        bar = tqdm(total=len(todo), unit="img", desc=f"faces ({actors} Ray actors)",
                   disable=not settings.progress or None, file=sys.stderr)
        batches = iter(results.iter_batches(batch_size=None, batch_format="numpy"))
        while True:
            with monitor.stage("process"):  # waiting for the actors
                batch = next(batches, None)
            if batch is None:
                break
            done = [pickle.loads(b) for b in batch["result"]]
            monitor.count("process", images=len(done), faces=int(batch["faces"].sum()))
            with monitor.stage("store"):
                store.save_chunk(run_id, key, settings.model, done)
            summary.processed += sum(r.reason is None for r in done)
            bar.update(len(done))
        bar.close()
    finally:
        ctx.enable_progress_bars, ctx.print_on_execution_start = before
        if started:
            ray.shutdown()

