"""The ray engine against the local one (issue 16): `.venv/bin/python bench/bench_ray.py [--json]`.

On one folder of small images made here (default 120 images of 128x96), in one run:
1. images/s of the local engine (one process, one model session of --threads threads);
2. the Ray start-up cost: ray.init of a local Ray, and each run's time to its first result
   (actors started, one model session each);
3. images/s of the ray engine with 1 and 2 workers (--threads threads each), overall and steady
   (after the first result), and the scaling efficiency of 2 workers over 1;
4. an estimate for N nodes like this one: N x workers-per-node x the measured steady rate per
   worker x that efficiency, plus the fixed start-up; and the time for 100k images.
Other load on the machine (training runs) slows every figure alike; the load average is printed.
A Ray worker can beat the local engine per image with the same threads: measured here, the same
transform takes ~1.0 s/image in a process's main thread and ~0.75 s in any other thread (a Ray
actor or a plain threading.Thread); MALLOC_ARENA_MAX=1 takes the difference away (glibc's main arena).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

TASK_OPTIONS = {"sr": {"model": "srresnet"}, "bicubic": {}}


class Arrivals:
    """A Progress that notes when each file's result reached the driver."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def batch_started(self, jobs) -> None: ...
    def file_started(self, job, unit=None) -> None: ...
    def file_advanced(self, done: int, total: int) -> None: ...
    def warned(self, message: str) -> None: ...

    def file_finished(self, job, status: str, message: str | None = None) -> None:
        self.times.append(time.perf_counter())


def make_images(folder: Path, count: int, width: int, height: int) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width]
    for i in range(count):
        base = np.stack([x / width, y / height, 0.5 + 0.5 * np.sin(x / (3 + i % 7) + y / 5)], axis=-1) * 200
        rgb = np.clip(base + rng.integers(0, 50, size=base.shape), 0, 255).astype(np.uint8)
        Image.fromarray(rgb).save(folder / f"img{i:04d}.png")


def timed_run(task: str, folder: Path, out: Path, threads: int, **engine) -> dict:
    import imgan
    from imgan.pipeline import RunOptions

    arrivals = Arrivals()
    began = time.perf_counter()
    report = imgan.run(task, [folder], options=RunOptions(output=out), progress=arrivals, threads=threads,
                       **TASK_OPTIONS[task], **engine)
    seconds = time.perf_counter() - began
    assert report.ok and len(report.done) == report.total, report.failures
    first, last = arrivals.times[0], arrivals.times[-1]
    steady = (len(arrivals.times) - 1) / (last - first) if last > first else float("nan")
    shutil.rmtree(out)
    return {"images": report.total, "seconds": round(seconds, 2), "images_per_s": round(report.total / seconds, 2),
            "first_result_s": round(first - began, 2), "steady_images_per_s": round(steady, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=120)
    parser.add_argument("--size", default="128x96", help="WIDTHxHEIGHT of each image")
    parser.add_argument("--task", default="sr", choices=sorted(TASK_OPTIONS), help="sr: srresnet x4; bicubic: x2")
    parser.add_argument("--threads", type=int, default=1, help="model threads per worker (and of the local engine)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    width, height = map(int, args.size.split("x"))
    cores = os.cpu_count() or 1
    figures: dict = {"task": args.task, "image": args.size, "threads": args.threads, "cores": cores,
                     "load_average_before": round(os.getloadavg()[0], 2)}
    with tempfile.TemporaryDirectory(prefix="bench_ray_") as temp:
        folder = Path(temp) / "photos"
        folder.mkdir()
        make_images(folder, args.images, width, height)
        figures["local"] = timed_run(args.task, folder, Path(temp) / "local", args.threads)

        import ray

        from imgan.engines.ray_engine import ray_runtime

        began = time.perf_counter()
        with ray_runtime(None):  # the engine's own start-up of a local Ray; the runs below reuse it
            figures["ray_init_s"] = round(time.perf_counter() - began, 2)
            for workers in (1, 2):
                figures[f"ray_{workers}_workers"] = timed_run(args.task, folder, Path(temp) / "ray", args.threads,
                                                              engine="ray", workers=workers)
            began = time.perf_counter()
        figures["ray_shutdown_s"] = round(time.perf_counter() - began, 2)
        assert not ray.is_initialized()
    figures["load_average_after"] = round(os.getloadavg()[0], 2)
    figures["estimate"] = estimate(figures, cores, args.threads)
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    report(figures)


def estimate(figures: dict, cores: int, threads: int) -> dict:
    one, two = figures["ray_1_workers"], figures["ray_2_workers"]
    per_worker = one["steady_images_per_s"]
    efficiency = min(1.0, two["steady_images_per_s"] / (2 * per_worker)) if per_worker else float("nan")
    per_node = max(1, cores // threads)
    startup = figures["ray_init_s"] + two["first_result_s"]
    nodes = {}
    for n in (1, 2, 4, 8, 16, 32):
        rate = n * per_node * per_worker * efficiency
        nodes[n] = {"workers": n * per_node, "images_per_s": round(rate, 1),
                    "hours_per_100k_images": round((startup + 100_000 / rate) / 3600, 2)}
    return {"per_worker_images_per_s": per_worker, "efficiency_2_workers": round(efficiency, 2),
            "workers_per_node": per_node, "startup_s": round(startup, 1), "nodes": nodes}


def report(figures: dict) -> None:
    print(f"{figures['task']} on {figures['image']} images, {figures['threads']} thread(s) per model session, "
          f"{figures['cores']} cores; load average {figures['load_average_before']} before, "
          f"{figures['load_average_after']} after (other work on the machine slows every figure)")
    print(f"{'engine':<18}{'images':>7}{'seconds':>9}{'images/s':>10}{'first result s':>16}{'steady images/s':>18}")
    for key, label in (("local", "local"), ("ray_1_workers", "ray, 1 worker"), ("ray_2_workers", "ray, 2 workers")):
        row = figures[key]
        print(f"{label:<18}{row['images']:>7}{row['seconds']:>9}{row['images_per_s']:>10}"
              f"{row['first_result_s']:>16}{row['steady_images_per_s']:>18}")
    est = figures["estimate"]
    print(f"Ray start-up: ray.init {figures['ray_init_s']} s, then {figures['ray_2_workers']['first_result_s']} s "
          f"to the first result (actors and their model sessions); shutdown {figures['ray_shutdown_s']} s")
    print(f"scaling estimate: {est['per_worker_images_per_s']} images/s per worker, 2-worker efficiency "
          f"{est['efficiency_2_workers']}, {est['workers_per_node']} workers per node like this one, "
          f"{est['startup_s']} s fixed start-up")
    for n, row in est["nodes"].items():
        print(f"  {n:>3} nodes: {row['workers']:>4} workers  {row['images_per_s']:>8} images/s  "
              f"100k images in {row['hours_per_100k_images']} h")


if __name__ == "__main__":
    main()
