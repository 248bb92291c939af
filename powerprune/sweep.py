"""The paper's experiment as a resumable sweep: train -> prune (method x rate) -> int8 -> virtual Pico.

Every stage's artifact is stored under ``RUN/cache`` keyed by a hash of everything that determines it
(config values and the upstream artifact's key). A stage is finished exactly when its JSON record
exists; artifacts are written atomically before that record, so after an interrupt (even kill -9) a
rerun redoes only unfinished stages and loses nothing. Independent models run in parallel processes.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
import time
import tomllib
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, fields, replace
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import torch
from threadpoolctl import threadpool_limits

from .api import int8_accuracy
from .atomic import write_bytes, write_json
from .board import DEFAULT_BOARD, Board, load_board
from .data import load_fashion_mnist
from .ir import DTYPES
from .mcu.build import LAYOUTS
from .mcu.codegen import ADAPTED_KERNELS, FLOAT_KERNEL_SETS, KERNEL_SETS
from .mcu.costmodel import auto_cycles
from .mcu.emulator import DEFAULT_XIP_MISS_CYCLES
from .mcu.profile import profile
from .metrics import model_stats, reference_params, widths
from .model import ARCHS, DEFAULT_ARCH, ModelInfo, build_arch, load_model, save_model
from .progress import Progress, format_seconds
from .prune import CollapseError, prune
from .prune.api import DEFAULT_FINETUNE, DEFAULT_SCHEDULE, DEFAULT_SCOPE, SCHEDULES, SCOPES
from .quantize import DEFAULT_CALIBRATION, float32_graph, quantize, quantize_images
from .results import (
    CMSIS_KERNELS,
    METHOD_ORDER,
    METHODS,
    STOCK_KERNELS,
    Measurement,
    Refusal,
    Row,
    chance_accuracy,
    model_label,
)
from .schema import COUNT, NON_NEGATIVE, POSITIVE, Limits, check_fields, toml_repr
from .tflite import load_tflite, save_tflite
from .train import DEFAULT_TRAINING, OPTIMIZERS, Recipe, accuracy, fit, seed_everything

PAPER_RATES = (2.0, 4.0, 8.0, 16.0, 32.0, 64.0)
# The kernel sets a run profiles unless its config names others: every set but the paper's adapted
# runtime (tflm-skip), which the paper-exact config runs; a default run stays what it was.
DEFAULT_KERNELS = tuple(k for k in KERNEL_SETS if k != ADAPTED_KERNELS)


class ConfigError(ValueError):
    pass




@dataclass(frozen=True)
class SweepConfig:
    """Everything a run depends on; the defaults are the paper's experiment."""

    rates: Annotated[tuple[float, ...], Limits(at_least=1)] = PAPER_RATES
    methods: Annotated[tuple[str, ...], Limits(one_of=METHODS)] = METHODS
    # The energy method is asked for energy, not size: rate R = 1/R of the dense model's predicted
    # kernel cycles (auto kernels). The paper's rates span about 1.5x to 10x less energy on them.
    energy_rates: Annotated[tuple[float, ...], Limits(above=1)] = (2.0, 3.0, 4.0, 6.0, 8.0, 12.0)
    seeds: Annotated[tuple[int, ...], Limits(at_least=0, non_empty=True)] = (0,)
    epochs: Annotated[int, COUNT] = DEFAULT_TRAINING.epochs
    lr: Annotated[float, POSITIVE] = DEFAULT_TRAINING.lr
    # training and fine-tuning; "rmsprop" (Keras's defaults) with lr 1e-3 is the paper's recipe
    optimizer: Annotated[str, Limits(one_of=OPTIMIZERS)] = DEFAULT_TRAINING.optimizer
    batch_size: Annotated[int, COUNT] = DEFAULT_TRAINING.batch_size
    finetune_epochs: Annotated[int, NON_NEGATIVE] = DEFAULT_FINETUNE.epochs
    finetune_lr: Annotated[float, POSITIVE] = DEFAULT_FINETUNE.lr
    magnitude_schedule: Annotated[str, Limits(one_of=SCHEDULES)] = DEFAULT_SCHEDULE
    magnitude_scope: Annotated[str, Limits(one_of=SCOPES)] = DEFAULT_SCOPE
    kernels: Annotated[tuple[str, ...], Limits(non_empty=True, one_of=KERNEL_SETS)] = DEFAULT_KERNELS
    layout: Annotated[str, Limits(one_of=LAYOUTS)] = "flash"
    board: str = DEFAULT_BOARD
    calibration: Annotated[int, COUNT] = DEFAULT_CALIBRATION
    profile_images: Annotated[int, COUNT] = 3
    xip_miss_cycles: Annotated[int, NON_NEGATIVE] = DEFAULT_XIP_MISS_CYCLES
    train_limit: Annotated[int | None, COUNT] = None
    test_limit: Annotated[int | None, COUNT] = None
    jobs: Annotated[int, COUNT] = 2
    dataset: str = "fashion-mnist"
    arch: Annotated[str, Limits(one_of=tuple(ARCHS))] = DEFAULT_ARCH  # the network trained as the baseline
    # what is deployed: int8 (quantized), or float32 as the paper did (then ending in the SOFTMAX its Keras
    # model had, on the float kernel sets tflm-ref and tflm-skip)
    dtype: Annotated[str, Limits(one_of=tuple(DTYPES))] = "int8"

    @classmethod
    def quick(cls) -> SweepConfig:
        """A few minutes on 2 cores: two rates, short training on a slice, two kernel sets."""
        return cls(rates=(4.0, 16.0), energy_rates=(4.0,), epochs=5, finetune_epochs=3, train_limit=30000,
                   test_limit=2000,
                   kernels=("tflm-ref", "auto"), profile_images=1)

    def validate(self) -> SweepConfig:
        check_fields(self, ConfigError)
        if self.dataset != "fashion-mnist":
            raise ConfigError(f"dataset {self.dataset!r} is not supported by `run`; use 'fashion-mnist'")
        if self.dtype == "float32":
            if set(self.kernels) - set(FLOAT_KERNEL_SETS):
                raise ConfigError(f"kernels = {toml_repr(self.kernels)}: a float32 run profiles only "
                                  f"{' and '.join(FLOAT_KERNEL_SETS)}")
            if "energy" in self.methods:
                raise ConfigError("methods: the energy method plans with the int8 kernels' cost model; leave it out "
                                  "of a float32 run")
        return self


def bundled_configs() -> dict[str, Path]:
    """The run configs shipped in the package (powerprune/configs/NAME.toml), by NAME."""
    root = Path(str(resources.files("powerprune") / "configs"))
    return {p.stem: p for p in sorted(root.glob("*.toml"))}


def load_config(path: str | Path | None, quick: bool = False, **overrides: Any) -> SweepConfig:
    """Defaults (or the --quick preset), then the TOML file (a path, or the name of a bundled config such
    as ``paper-exact``), then command-line overrides."""
    cfg = SweepConfig.quick() if quick else SweepConfig()
    if path is not None:
        bundled = bundled_configs()
        if not Path(path).exists() and str(path) in bundled:
            path = bundled[str(path)]
        try:
            data = tomllib.loads(Path(path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config {path}: {exc}") from exc
        data = data.get("run", data)
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: [run] must be a table of settings, got {toml_repr(data)}")
        known = {f.name for f in fields(SweepConfig)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"{path}: unknown key(s) {sorted(unknown)}; known: {sorted(known)}")
        cfg = replace(cfg, **{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})
    cfg = replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
    return cfg.validate()


# --- cache ----------------------------------------------------------------------------------------

def stage_key(stage: str, **inputs: Any) -> str:
    blob = json.dumps({"stage": stage, **inputs}, sort_keys=True, default=str)
    return f"{stage}-{hashlib.sha256(blob.encode()).hexdigest()[:16]}"


def cached(cache: Path, key: str, compute: Callable[[Path], dict]) -> dict:
    """Return the stage's record, computing it (artifacts under ``cache/key.*``) only if missing."""
    record = cache / f"{key}.json"
    if record.exists():
        return json.loads(record.read_text())
    start = time.monotonic()
    result = compute(cache / key)
    write_json(record, {**result, STAGE_SECONDS: round(time.monotonic() - start, 2)})
    return result


def recipe_inputs(recipe: Recipe) -> dict[str, Any]:
    """A recipe as a stage key sees it. The optimizer appears only when it is not the default (Adam):
    keys made before recipes had a choice of optimizer, and the results cached under them, stay valid."""
    inputs = asdict(recipe)
    if inputs["optimizer"] == DEFAULT_TRAINING.optimizer:
        del inputs["optimizer"]
    return inputs


STAGE_SECONDS = "stage_seconds"  # compute time kept in each stage record: where a run's time went


def stage_times(cache: Path) -> dict[str, float]:
    """Seconds spent computing each stage kind (train, prune, int8, profile), summed over the cache."""
    totals: dict[str, float] = defaultdict(float)
    for record in cache.glob("*.json"):
        seconds = json.loads(record.read_text()).get(STAGE_SECONDS)
        if seconds is not None:
            totals[record.stem.rsplit("-", 1)[0]] += seconds
    return dict(totals)


# --- stages ---------------------------------------------------------------------------------------

def _datasets(cfg: SweepConfig):
    return load_fashion_mnist("train", cfg.train_limit), load_fashion_mnist("test", cfg.test_limit)


def train_key(cfg: SweepConfig, recipe: Recipe) -> str:
    """The baseline's stage key. The arch joins it only when it is not the default, so every LeNet run
    keeps the key (and the cached model) it had before there was a choice."""
    by_arch = {"arch": cfg.arch} if cfg.arch != DEFAULT_ARCH else {}
    return stage_key("train", recipe=recipe_inputs(recipe), train_limit=cfg.train_limit,
                     test_limit=cfg.test_limit, **by_arch)


def train_stage(cfg: SweepConfig, seed: int, cache: Path, progress: bool = True) -> tuple[str, dict]:
    recipe = Recipe(epochs=cfg.epochs, lr=cfg.lr, batch_size=cfg.batch_size, seed=seed, optimizer=cfg.optimizer)
    key = train_key(cfg, recipe)

    def compute(stem: Path) -> dict:
        train, test = _datasets(cfg)
        seed_everything(seed)
        model = build_arch(cfg.arch)
        fit(model, train, recipe, desc=f"train baseline (seed {seed})", progress=progress)
        acc = accuracy(model, test)
        save_model(model, stem.with_suffix(".pt"), ModelInfo(history=[{"step": "train", "accuracy": acc}]))
        return {"model": str(stem.with_suffix(".pt")), "accuracy": acc}

    return key, cached(cache, key, compute)


def model_job(cfg: SweepConfig, seed: int, base_key: str, method: str, rate: float,
              cache: str) -> list[Measurement] | list[Refusal]:
    """Prune (unless dense), quantize, export, evaluate int8, and profile every kernel set: one
    independent unit of work, run in a worker process."""
    # One torch thread per job, as every cached result was computed with (thread count changes the
    # order of float sums in training). numpy's BLAS gets this job's share of the cores: forked
    # workers inherit a pool sized for the whole machine, so parallel jobs would oversubscribe it.
    torch.set_num_threads(1)
    threadpool_limits(max(1, (os.cpu_count() or 1) // cfg.jobs))
    cache_dir = Path(cache)
    train, test = _datasets(cfg)
    base_record = json.loads((cache_dir / f"{base_key}.json").read_text())
    if method == "dense":
        model_key, model_rec = base_key, base_record
    else:
        recipe = Recipe(epochs=cfg.finetune_epochs, lr=cfg.finetune_lr, batch_size=cfg.batch_size, seed=seed,
                        optimizer=cfg.optimizer)
        by_energy = {"target": "energy"} if method == "energy" else {}
        model_key = stage_key("prune", base=base_key, method=method, rate=rate, recipe=recipe_inputs(recipe),
                              schedule=cfg.magnitude_schedule, scope=cfg.magnitude_scope, **by_energy)

        def do_prune(stem: Path) -> dict:
            base, _ = load_model(base_record["model"])
            compression, budget = (None, 1 / rate) if method == "energy" else (rate, None)
            try:
                res = prune(base, method, compression, train, None, finetune=recipe, schedule=cfg.magnitude_schedule,
                            scope=cfg.magnitude_scope, energy_budget=budget, cycles=auto_cycles, progress=False)
            except CollapseError as exc:  # cached too: a resumed run does not search again
                return {"refused": str(exc)}
            save_model(res.model, stem.with_suffix(".pt"), res.info)
            return {"model": str(stem.with_suffix(".pt")), "accuracy": accuracy(res.model, test)}

        model_rec = cached(cache_dir, model_key, do_prune)
        if "refused" in model_rec:  # no model to measure: a problem of this budget, never a finding
            print(f"{model_label(method, rate)}: refused: {model_rec['refused']}", file=sys.stderr, flush=True)
            return [Refusal(seed, method, rate, model_rec["refused"])]

    # the deployed graph: int8 (calibrated), or float32 as the paper deployed it, ending in its SOFTMAX
    if cfg.dtype == "int8":
        int8_key = stage_key("int8", model=model_key, calibration=cfg.calibration, test_limit=cfg.test_limit)
    else:
        int8_key = stage_key("float32", model=model_key, softmax=True, test_limit=cfg.test_limit)

    def do_int8(stem: Path) -> dict:
        model, info = load_model(model_rec["model"])
        name = f"{method}-{rate:g}x"
        graph = (quantize(model, train.take(cfg.calibration), name=name) if cfg.dtype == "int8"
                 else float32_graph(model, name=name, softmax=True))
        save_tflite(graph, stem.with_suffix(".tflite"))
        s = model_stats(model)
        return {"tflite": str(stem.with_suffix(".tflite")), "int8_accuracy": int8_accuracy(graph, test),
                "compression": s.compression(reference_params(model, info.reference_params)),
                "params": s.params, "nonzero_params": s.nonzero_params, "macs": s.macs,
                "nonzero_macs": s.nonzero_macs, "widths": widths(model)}

    int8_rec = cached(cache_dir, int8_key, do_int8)
    graph = load_tflite(int8_rec["tflite"])
    rows = []
    for kernels in cfg.kernels:
        prof_key = stage_key("profile", int8=int8_key, kernels=kernels, layout=cfg.layout,
                             images=cfg.profile_images, xip=cfg.xip_miss_cycles, kernel_src=_kernel_digest())

        def do_profile(stem: Path, kernels: str = kernels) -> dict:
            x = quantize_images(graph, test.images[:cfg.profile_images])
            prof = profile(graph, x, kernels, cfg.layout, cfg.xip_miss_cycles)
            elf = stem.with_suffix(".elf")
            write_bytes(elf, Path(prof.elf).read_bytes())  # the run directory keeps every firmware
            return {**prof.summary(), "elf": str(elf)}

        prof = cached(cache_dir, prof_key, do_profile)
        rows.append(Measurement(
            seed=seed, method=method, rate=rate, kernels=kernels, compression=int8_rec["compression"],
            params=int8_rec["params"], nonzero_params=int8_rec["nonzero_params"], macs=int8_rec["macs"],
            nonzero_macs=int8_rec["nonzero_macs"], widths=tuple(int8_rec["widths"]),
            float_accuracy=model_rec["accuracy"], int8_accuracy=int8_rec["int8_accuracy"],
            cycles=prof["cycles_mean"], cycles_per_layer=tuple(prof["cycles_per_layer"]),
            layer_ops=tuple(la.op for la in graph.layers), flash_bytes=prof["flash_bytes"],
            sram_bytes=prof["sram_bytes"], xip_misses=prof["xip_misses"] / cfg.profile_images,
            bit_exact=prof["bit_exact"], tflite=int8_rec["tflite"], elf=prof.get("elf", ""),
            chance_accuracy=chance_accuracy(test.labels)))
    return rows


def _kernel_digest() -> str:
    """Kernels, firmware and the code generator (every module of ``mcu``: the lowering, streams and
    staging decide the code as much as the kernels do) take part in profile keys: editing any of them
    invalidates cycles."""
    h = hashlib.sha256()
    root = Path(str(resources.files("powerprune.mcu")))
    for p in sorted([*root.glob("kernels/*"), *root.glob("firmware/*"), *root.glob("*.py")]):
        h.update(p.read_bytes())
    return h.hexdigest()[:12]


BACKENDS = ("local", "ray")
# Relative wall time of a model job by method (fine-tuning epochs and searches), for scheduling only.
JOB_WEIGHT = {"energy": 4, "hybrid": 3, "apoz": 2, "magnitude": 2, "dense": 0}


def die_with_parent(parent: int) -> None:
    """Pool initializer: a worker must not outlive `run`. Killing only the main process (kill -9, an
    OOM kill) would otherwise leave the workers idle forever, holding most of a GB each. On Linux the
    kernel kills the worker when its parent dies (PR_SET_PDEATHSIG); elsewhere a daemon thread polls."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    else:
        import threading

        def watch() -> None:
            while os.getppid() == parent:
                time.sleep(1.0)
            os._exit(1)

        threading.Thread(target=watch, daemon=True).start()
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)


def run_sweep(cfg: SweepConfig, run_dir: Path, progress: bool = True, backend: str = "local",
              address: str | None = None) -> list[Row]:
    """Run (or resume) the sweep; returns one row per (seed, model, kernel set).

    ``backend`` 'local' runs the independent model jobs in ``cfg.jobs`` processes; 'ray' submits them
    to a Ray cluster (``address``, or a local one with ``cfg.jobs`` CPUs). Either way the jobs read
    and write the same cache, so results are identical and a run can resume on the other backend.
    """
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; choose from {list(BACKENDS)}")
    board = load_board(cfg.board)
    cache = (run_dir / "cache").resolve()
    cache.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / "config.json", asdict(cfg))
    jobs = []
    for seed in cfg.seeds:
        base_key, _ = train_stage(cfg, seed, cache, progress)
        jobs.append((seed, base_key, "dense", 1.0))
        jobs += [(seed, base_key, m, float(r)) for m in cfg.methods
                 for r in (cfg.energy_rates if m == "energy" else cfg.rates)]
    # longest jobs first, so that no worker is left alone with an energy search at the end
    jobs.sort(key=lambda job: -JOB_WEIGHT.get(job[2], 1))
    rows: list[Measurement] = []
    bar = Progress(len(jobs), "prune, quantize, profile", "model", enabled=progress)

    refused: list[Refusal] = []

    def collect(result: list[Measurement] | list[Refusal], label: tuple[str, float]) -> None:
        for item in result:
            (refused if isinstance(item, Refusal) else rows).append(item)
        bar.update(note=f"{model_label(*label)} done")

    if backend == "ray":
        _run_on_ray(cfg, jobs, cache, address, collect)
    elif cfg.jobs > 1:
        with ProcessPoolExecutor(max_workers=cfg.jobs, initializer=die_with_parent, initargs=(os.getpid(),)) as pool:
            futures = {pool.submit(model_job, cfg, s, k, m, r, str(cache)): (m, r) for s, k, m, r in jobs}
            for fut in as_completed(futures):
                collect(fut.result(), futures[fut])
    else:
        for s, k, m, r in jobs:
            collect(model_job(cfg, s, k, m, r, str(cache)), (m, r))
    bar.close()
    if progress:
        spent = ", ".join(f"{stage} {format_seconds(t)}" for stage, t in sorted(stage_times(cache).items()))
        print(f"compute time by stage (all processes, this cache): {spent}", file=sys.stderr, flush=True)
    write_json(run_dir / REFUSED, [asdict(r) for r in sorted(refused, key=lambda r: (r.seed, r.method, r.rate))])
    return add_energy_and_deltas(rows, board)


REFUSED = "refused.json"  # the run's refused models, beside results.json


def refusals(run_dir: Path) -> list[Refusal]:
    """The models the last ``run_sweep`` into ``run_dir`` refused to make (none for a run before it
    wrote them)."""
    path = run_dir / REFUSED
    return [Refusal(**r) for r in json.loads(path.read_text())] if path.exists() else []


def _run_on_ray(cfg: SweepConfig, jobs: list, cache: Path, address: str | None,
                collect: Callable[[list[Measurement], tuple[str, float]], None]) -> None:
    """One Ray task per model job, one CPU each. The cache directory must be visible to every node
    under the same path (a shared filesystem); on one machine it simply is."""
    try:
        import ray
    except ImportError as exc:
        raise ConfigError("--backend ray needs Ray: pip install 'powerprune[ray]'") from exc
    started = not ray.is_initialized()
    if started:
        try:
            ray.init(address=address, num_cpus=None if address else cfg.jobs, include_dashboard=False,
                     log_to_driver=False, configure_logging=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ConfigError(f"cannot connect to the Ray cluster at {address}: {exc}") from exc
    try:
        task = ray.remote(num_cpus=1, max_retries=2)(model_job)
        refs = {task.remote(cfg, s, k, m, r, str(cache)): (m, r) for s, k, m, r in jobs}
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            collect(ray.get(done[0]), refs[done[0]])
    finally:
        if started:
            ray.shutdown()


def add_energy_and_deltas(measured: list[Measurement], board: Board) -> list[Row]:
    """Latency, energy, and deltas against the same seed's dense model on tflm-ref (the paper's
    stock-TFLM baseline; the first kernel set run when tflm-ref was not) and on cmsis-nn, in report
    order."""
    measured = sorted(measured, key=lambda m: (m.seed, METHOD_ORDER.index(m.method), m.rate,
                                               KERNEL_SETS.index(m.kernels)))
    baseline, cmsis = {}, {}
    for m in measured:
        if m.method == "dense" and (m.seed not in baseline or m.kernels == STOCK_KERNELS):
            baseline[m.seed] = m
        if m.method == "dense" and m.kernels == CMSIS_KERNELS:
            cmsis[m.seed] = m
    rows = []
    for m in measured:
        base = baseline[m.seed]
        energy = board.energy_mj(m.cycles, m.xip_misses)
        delta = {}
        if m.seed in cmsis:
            c = cmsis[m.seed]
            delta["energy_delta_cmsis_pct"] = 100 * (energy / board.energy_mj(c.cycles, c.xip_misses) - 1)
        rows.append(Row(**{f.name: getattr(m, f.name) for f in fields(Measurement)},
                        latency_ms=board.latency_ms(m.cycles), energy_mj=energy,
                        energy_delta_pct=100 * (energy / board.energy_mj(base.cycles, base.xip_misses) - 1),
                        accuracy_delta_pp=100 * (m.int8_accuracy - base.int8_accuracy), **delta))
    return rows
