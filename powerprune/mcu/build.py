"""Firmware build: generated model + kernel library + start-up -> one RP2040 ELF per (model, kernels, layout).

Builds are cached by a hash of every input (sources, flags, toolchain), so profiling the same model
twice compiles once.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ..ir import Graph
from .codegen import GeneratedModel, generate
from .elf import read_elf

TOOLCHAIN = "arm-none-eabi-gcc"
DEFAULT_CFLAGS = ("-mcpu=cortex-m0plus", "-mthumb", "-O2", "-ffunction-sections", "-fdata-sections",
                  "-fno-common", "-Wall", "-Wno-unused-function")
LAYOUTS = ("flash", "sram")
# what the image is for: the virtual Pico's profiling harness (BKPT markers, main.c) or a real board
# (UART protocol, SysTick, marker pin: device_main.c; a RAM-only image for a UF2 download)
TARGETS = {"emu": ("main.c", "-DPP_TARGET_EMU=1"), "device": ("device_main.c", "-DPP_TARGET_DEVICE=1")}
FLASH_BYTES = 2 * 1024 * 1024
SRAM_BYTES = 264 * 1024
STACK_BYTES = 4096


class BuildError(RuntimeError):
    pass


@dataclass(frozen=True)
class Firmware:
    elf: Path
    layout: str
    kernels: str
    flash_bytes: int   # .text + .rodata + .data load image (0 for the SRAM layout)
    sram_bytes: int    # .data + .bss (arena, I/O buffers) + stack, plus code and weights for SRAM layout
    arena_bytes: int
    layer_kernels: tuple[str, ...] = ()   # implementation each layer got (auto's choices show here)


def _package_dir(sub: str) -> Path:
    return Path(str(resources.files("powerprune.mcu") / sub))


def toolchain() -> str:
    path = shutil.which(TOOLCHAIN)
    if path is None:
        raise BuildError(f"{TOOLCHAIN} not found; install Debian's gcc-arm-none-eabi (or run `make setup`)")
    return path


def cache_dir() -> Path:
    return Path(os.environ.get("POWERPRUNE_CACHE", Path.home() / ".cache" / "powerprune")) / "firmware"


def firmware_sources(graph: Graph, kernels: str, target: str = "emu") -> tuple[dict[str, str], GeneratedModel]:
    """Every file of one firmware: kernels, start-up, linker scripts, the target's main and the
    generated model (what ``deploy`` hands to pico-sdk users, too)."""
    main_c, _ = TARGETS[target]
    gen = generate(graph, kernels)
    kdir, fdir = _package_dir("kernels"), _package_dir("firmware")
    other_mains = {m for m, _ in TARGETS.values()} - {main_c}
    sources = {p.name: p.read_text() for d in (kdir, fdir) for p in sorted(d.iterdir())
               if p.suffix in (".c", ".h", ".ld") and p.name not in other_mains}
    sources["model.c"], sources["model.h"] = gen.model_c, gen.model_h
    return sources, gen


def build_firmware(graph: Graph, kernels: str = "tflm-ref", layout: str = "flash",
                   cflags: tuple[str, ...] = DEFAULT_CFLAGS, out_dir: Path | None = None,
                   target: str = "emu") -> Firmware:
    """``layout`` is flash or sram for the emulator target; the device target is always a RAM image."""
    if target not in TARGETS:
        raise BuildError(f"unknown target {target!r}")
    if target == "device":
        layout = "uf2"
    elif layout not in LAYOUTS:
        raise BuildError(f"unknown layout {layout!r}; use 'flash' or 'sram'")
    gcc = toolchain()
    sources, gen = firmware_sources(graph, kernels, target)
    key = hashlib.sha256(repr((sorted(sources.items()), cflags, layout, target, STACK_BYTES, gcc)).encode()
                         ).hexdigest()[:16]
    out_dir = Path(out_dir) if out_dir else cache_dir() / key
    elf = out_dir / "firmware.elf"
    if not elf.exists():
        _compile(gcc, sources, (*cflags, TARGETS[target][1]), layout, elf)
    return _footprint(elf, layout, kernels, gen.arena_bytes, gen.kernels)


def _compile(gcc: str, sources: dict[str, str], cflags: tuple[str, ...], layout: str, elf: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="powerprune-build-") as tmp:
        t = Path(tmp)
        for name, text in sources.items():
            (t / name).write_text(text)
        c_files = sorted(n for n in sources if n.endswith(".c"))
        cmd = [gcc, *cflags, "-I", str(t), "-nostdlib", "-nostartfiles",
               f"-Wl,--defsym=PP_STACK_SIZE={STACK_BYTES}", "-Wl,--gc-sections", "-L", str(t),
               "-T", str(t / f"link_{layout}.ld"), "-o", str(t / "firmware.elf"),
               *[str(t / c) for c in c_files], "-lgcc"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            msg = proc.stderr.strip()
            if "region `RAM' overflowed" in msg or "does not fit the RP2040" in msg:
                raise BuildError(f"model does not fit the RP2040 SRAM ({SRAM_BYTES // 1024} KB) with layout "
                                 f"'{layout}': {_overflow_detail(msg)}")
            if "region `FLASH' overflowed" in msg:
                raise BuildError(f"model does not fit the Pico's 2 MB flash: {_overflow_detail(msg)}")
            raise BuildError(f"firmware build failed:\n{msg}")
        elf.parent.mkdir(parents=True, exist_ok=True)
        tmp_elf = elf.with_suffix(".tmp")
        shutil.copyfile(t / "firmware.elf", tmp_elf)
        os.replace(tmp_elf, elf)


def _overflow_detail(msg: str) -> str:
    lines = [ln for ln in msg.splitlines() if "overflowed" in ln or "does not fit" in ln]
    return "; ".join(ln.split(": ", 1)[-1] for ln in lines) or msg


def _footprint(elf: Path, layout: str, kernels: str, arena: int, layer_kernels: tuple[str, ...]) -> Firmware:
    image = read_elf(elf)
    size = {s.name: s.size for s in image.sections}
    code_const = size.get(".text", 0) + size.get(".rodata", 0) + size.get(".boot2", 0)
    ram = size.get(".data", 0) + size.get(".bss", 0) + size.get(".stack", 0)
    if layout == "flash":
        flash, sram = code_const + size.get(".data", 0), ram
    else:
        flash, sram = 0, ram + code_const
    if flash > FLASH_BYTES or sram > SRAM_BYTES:
        raise BuildError(f"model needs {flash} B flash / {sram} B SRAM; the Pico has {FLASH_BYTES} / {SRAM_BYTES}")
    return Firmware(elf, layout, kernels, flash, sram, arena, layer_kernels)
