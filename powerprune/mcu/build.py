"""Firmware build: generated model + kernel library + start-up -> one RP2040 ELF per (model, kernels, layout).

Builds are cached by a hash of every input (sources, flags, toolchain), so profiling the same model
twice compiles once.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ..ir import Graph
from .boot2 import assemble, boot2_c_source
from .boot2 import source as boot2_source
from .codegen import GeneratedModel, generate
from .elf import read_elf

TOOLCHAIN = "arm-none-eabi-gcc"
DEFAULT_CFLAGS = ("-mcpu=cortex-m0plus", "-mthumb", "-O2", "-ffunction-sections", "-fdata-sections",
                  "-fno-common", "-Wall", "-Wno-unused-function")
LAYOUTS = ("flash", "sram")
# what the image is for: the virtual Pico's profiling harness (BKPT markers, main.c) or a real board
# (UART protocol, SysTick, marker pin: device_main.c)
TARGETS = {"emu": ("main.c", "-DPP_TARGET_EMU=1"), "device": ("device_main.c", "-DPP_TARGET_DEVICE=1")}
# a real board's images: "flash" boots from flash through our boot2 and executes in place (code and
# weights read through XIP, .data/.bss/arena/stack in SRAM); "ram" is a RAM-only UF2 the bootrom loads
# into SRAM and starts at its lowest address (everything in SRAM, gone after a power cycle)
IMAGES = ("flash", "ram")
# the profiling harness starts at the reset handler (no boot2: its .boot2 is 256 zero bytes), so its
# 'flash' layout and the device's flash image share one linker script
LINKER_SCRIPTS = {("emu", "flash"): "link_flash.ld", ("emu", "sram"): "link_sram.ld",
                  ("device", "flash"): "link_flash.ld", ("device", "ram"): "link_uf2.ld"}
# linker region -> (our name, what it is); FitError and the linker's messages use these
MEMORY = {"FLASH": ("flash", "the Pico's 2 MB flash"), "RAM": ("SRAM", "the RP2040's 264 KB SRAM")}
FLASH_BYTES = 2 * 1024 * 1024
SRAM_BYTES = 264 * 1024
STACK_BYTES = 4096


class BuildError(RuntimeError):
    pass


class FitError(BuildError):
    """The image does not fit: ``over`` maps "flash" / "SRAM" to how many bytes too many (from the
    linker, so code, weights, .data, .bss, arena, I/O buffers and the stack reservation all count)."""

    def __init__(self, layout: str, over: dict[str, int], target: str = "emu"):
        self.layout, self.over = layout, over
        what = f"with layout '{layout}'" if target == "emu" else f"as a {layout} image"
        capacity = {"flash": FLASH_BYTES, "SRAM": SRAM_BYTES}
        stack = {"flash": "", "SRAM": f" (its {STACK_BYTES}-byte stack included)"}
        parts = [f"{capacity[m] + n} bytes of {m}{stack[m]}, {n} more than {text}"
                 for m, text in MEMORY.values() if (n := over.get(m)) is not None]
        super().__init__(f"model does not fit {what}: it needs " + "; and ".join(parts))


@dataclass(frozen=True)
class Firmware:
    elf: Path
    layout: str
    kernels: str
    flash_bytes: int   # .boot2 + .text + .rodata + .data load image (0 for the sram layout and ram image)
    sram_bytes: int    # .data + .bss (arena, I/O buffers) + stack, plus code and weights for SRAM layout
    arena_bytes: int
    layer_kernels: tuple[str, ...] = ()   # implementation each layer got (auto's choices show here)
    layer_offsets: tuple[int | None, ...] = ()  # each layer output's byte offset in pp_arena (None: pp_output)


def _package_dir(sub: str) -> Path:
    return Path(str(resources.files("powerprune.mcu") / sub))


def toolchain() -> str:
    path = shutil.which(TOOLCHAIN)
    if path is None:
        raise BuildError(f"{TOOLCHAIN} not found; install Debian's gcc-arm-none-eabi (or run `make setup`)")
    return path


def cache_dir() -> Path:
    return Path(os.environ.get("POWERPRUNE_CACHE", Path.home() / ".cache" / "powerprune")) / "firmware"


def firmware_sources(graph: Graph, kernels: str, target: str = "emu", plan: Sequence[str] | None = None
                     ) -> tuple[dict[str, str], GeneratedModel]:
    """Every file of one firmware: kernels, start-up, linker scripts, the target's main and the
    generated model (what ``deploy`` hands to pico-sdk users, too). ``plan``: auto's per-layer choice."""
    gen = generate(graph, kernels, plan)
    sources = _library_sources(target)
    sources["model.c"], sources["model.h"] = gen.model_c, gen.model_h
    return sources, gen


def _library_sources(target: str) -> dict[str, str]:
    """Kernels, start-up, linker scripts and the target's main: everything but the model."""
    main_c, _ = TARGETS[target]
    kdir, fdir = _package_dir("kernels"), _package_dir("firmware")
    other_mains = {m for m, _ in TARGETS.values()} - {main_c}
    return {p.name: p.read_text() for d in (kdir, fdir) for p in sorted(d.iterdir())
            if p.suffix in (".c", ".h", ".ld") and p.name not in other_mains}


def build_firmware(graph: Graph, kernels: str = "tflm-ref", layout: str = "flash",
                   cflags: tuple[str, ...] = DEFAULT_CFLAGS, out_dir: Path | None = None,
                   target: str = "emu", plan: Sequence[str] | None = None) -> Firmware:
    """``layout`` is one of LAYOUTS for the emulator target, one of IMAGES for the device target.
    ``plan`` fixes the ``auto`` set's implementation per layer (``mcu.autotune`` measures it)."""
    if target not in TARGETS:
        raise BuildError(f"unknown target {target!r}")
    if (target, layout) not in LINKER_SCRIPTS:
        choices = LAYOUTS if target == "emu" else IMAGES
        raise BuildError(f"unknown layout {layout!r} for target {target!r}; use {' or '.join(map(repr, choices))}")
    sources, gen = firmware_sources(graph, kernels, target, plan)
    if (target, layout) == ("device", "flash"):
        sources["pp_boot2.c"] = boot2_c_source(assemble(toolchain(), boot2_source()))
    elf = _cached_build(sources, cflags, layout, target, out_dir)
    return _footprint(elf, layout, target, kernels, gen.arena_bytes, gen.kernels, gen.offsets)


def _cached_build(sources: dict[str, str], cflags: tuple[str, ...], layout: str, target: str,
                  out_dir: Path | None) -> Path:
    gcc = toolchain()
    key = hashlib.sha256(repr((sorted(sources.items()), cflags, layout, target, STACK_BYTES, gcc)).encode()
                         ).hexdigest()[:16]
    out_dir = Path(out_dir) if out_dir else cache_dir() / key
    elf = out_dir / "firmware.elf"
    if not elf.exists():
        _compile(gcc, sources, (*cflags, TARGETS[target][1]), layout, target, elf)
    return elf


# The model of the expf firmware: newlib's expf on every input, nothing else. Like a model's, its
# input and output buffers are bytes (4 per float, word-aligned by main.c).
_EXPF_MODEL_C = """/* Generated by powerprune: newlib's expf applied to each input (see build.build_expf_firmware). */
#include <math.h>

#include "model.h"

void pp_model_run(const int8_t *in, int8_t *out) {
    const float *x = (const float *)in;
    float *y = (float *)out;
    for (int k = 0; k < PP_INPUT_SIZE / 4; ++k) y[k] = expf(x[k]);
}
"""


def build_expf_firmware(size: int) -> Firmware:
    """A firmware that applies newlib's expf to ``size`` float32 inputs: what a float32 SOFTMAX on the
    Pico gets from expf, which rounds some results one bit apart from the host C library's expf. Same
    start-up, flags and libraries as a model's firmware."""
    sources = _library_sources("emu")
    sources["model.c"] = _EXPF_MODEL_C
    sources["model.h"] = (f"#ifndef PP_MODEL_H\n#define PP_MODEL_H\n#include <stdint.h>\n"
                          f"#define PP_INPUT_SIZE {4 * size}\n#define PP_OUTPUT_SIZE {4 * size}\n"
                          "void pp_model_run(const int8_t *in, int8_t *out);\n#endif\n")
    elf = _cached_build(sources, DEFAULT_CFLAGS, "sram", "emu", None)
    return _footprint(elf, "sram", "emu", "expf", 0, (), ())


def _compile(gcc: str, sources: dict[str, str], cflags: tuple[str, ...], layout: str, target: str,
             elf: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="powerprune-build-") as tmp:
        t = Path(tmp)
        for name, text in sources.items():
            (t / name).write_text(text)
        c_files = sorted(n for n in sources if n.endswith(".c"))
        units = [_library_object(gcc, sources, c, cflags, t) or t / c for c in c_files]
        cmd = [gcc, *cflags, "-I", str(t), "-nostdlib", "-nostartfiles",
               f"-Wl,--defsym=PP_STACK_SIZE={STACK_BYTES}", "-Wl,--gc-sections", "-L", str(t),
               "-T", str(t / LINKER_SCRIPTS[target, layout]), "-o", str(t / "firmware.elf"),
               *map(str, units), "-lm", "-lgcc"]  # newlib's libm: expf of a float32 SOFTMAX
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            msg = proc.stderr.strip()
            over = {MEMORY[region][0]: int(n) for region, n in
                    re.findall(r"region `(FLASH|RAM)' overflowed by (\d+) bytes", msg)}
            if over:
                raise FitError(layout, over, target)
            if "does not fit the RP2040" in msg:  # the stack assertion alone (ld reports the region too)
                raise BuildError(f"model does not fit the RP2040's 264 KB SRAM with layout '{layout}'")
            raise BuildError(f"firmware build failed:\n{msg}")
        elf.parent.mkdir(parents=True, exist_ok=True)
        tmp_elf = elf.with_suffix(".tmp")
        shutil.copyfile(t / "firmware.elf", tmp_elf)
        os.replace(tmp_elf, elf)


def _library_object(gcc: str, sources: dict[str, str], c_file: str, cflags: tuple[str, ...], tmp: Path
                    ) -> Path | None:
    """The compiled object of one C file that does not depend on the model (a kernel, the start-up
    code), from a cache keyed by its text, every header but model.h, the flags and the compiler;
    None for the model and for files that include model.h, which are compiled with each firmware.
    Compiling a translation unit alone gives the same object as compiling it with the others (no
    LTO), and the link keeps the file order, so the firmware is the same; only the build gets faster
    (a model's build recompiled some twenty unchanged files before)."""
    text = sources[c_file]
    if c_file == "model.c" or '"model.h"' in text:
        return None
    headers = sorted((n, t) for n, t in sources.items() if n.endswith(".h") and n != "model.h")
    key = hashlib.sha256(repr((c_file, text, headers, cflags, gcc)).encode()).hexdigest()[:16]
    obj = cache_dir().parent / "objects" / f"{Path(c_file).stem}-{key}.o"
    if not obj.exists():
        out = tmp / f"{Path(c_file).stem}.o"
        proc = subprocess.run([gcc, *cflags, "-I", str(tmp), "-c", str(tmp / c_file), "-o", str(out)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise BuildError(f"firmware build failed:\n{proc.stderr.strip()}")
        obj.parent.mkdir(parents=True, exist_ok=True)
        part = obj.with_suffix(f".{os.getpid()}.tmp")
        shutil.copyfile(out, part)
        os.replace(part, obj)  # atomic: parallel builds may race to write the same object
    return obj


def _footprint(elf: Path, layout: str, target: str, kernels: str, arena: int,
               layer_kernels: tuple[str, ...], layer_offsets: tuple[int | None, ...]) -> Firmware:
    image = read_elf(elf)
    size = {s.name: s.size for s in image.sections}
    code_const = size.get(".text", 0) + size.get(".rodata", 0) + size.get(".boot2", 0)
    ram = size.get(".data", 0) + size.get(".bss", 0) + size.get(".stack", 0)
    if layout == "flash":
        flash, sram = code_const + size.get(".data", 0), ram
    else:
        flash, sram = 0, ram + code_const
    over = {m: n - cap for m, n, cap in (("flash", flash, FLASH_BYTES), ("SRAM", sram, SRAM_BYTES)) if n > cap}
    if over:  # the linker checks first; this guards a linker script that forgot a region
        raise FitError(layout, over, target)
    return Firmware(elf, layout, kernels, flash, sram, arena, layer_kernels, layer_offsets)
