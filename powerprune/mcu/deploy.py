"""``powerprune deploy``: everything needed to run a model on a physical Raspberry Pi Pico.

Writes a UF2 (drag it onto the RPI-RP2 drive), the ELF, and the C sources with a CMakeLists.txt for
pico-sdk users. Two kinds of image (``build.IMAGES``):

- ``flash``: our boot2 (``firmware/boot2.S``, standard 03h serial reads) in the first 256 bytes, then
  code and weights executed and read in place through the XIP cache; .data, .bss, the arena and the
  stack in SRAM. Any model up to the 2 MB flash (and 264 KB of RAM for its arena) deploys, and it
  survives a power cycle; every XIP cache miss costs a serial flash read.
- ``ram``: a RAM-only UF2; the bootrom loads it into SRAM and jumps to its lowest address. Everything
  runs from SRAM (the profiler's ``sram`` layout, no XIP misses), but it must fit 264 KB and is gone
  after a power cycle.

``auto`` (the default) takes ``ram`` when the whole image fits the SRAM, else ``flash``: models that
deployed before deploy exactly as before (same image, same cycles on the board), bigger ones boot
from flash.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ..atomic import write_bytes, write_text
from ..ir import Graph
from .autotune import auto_plan
from .build import IMAGES, Firmware, FitError, build_firmware, firmware_sources
from .elf import read_elf
from .protocol import check_frame_sizes
from .uf2 import write_uf2

CMAKE = """# pico-sdk build of a powerprune model (generated). Needs PICO_SDK_PATH.
cmake_minimum_required(VERSION 3.13)
include($ENV{{PICO_SDK_PATH}}/external/pico_sdk_import.cmake)
project(powerprune_{name} C CXX ASM)
pico_sdk_init()
add_executable(powerprune_{name} {sources})
# the SDK brings clocks (125 MHz), crt0 and vectors: our device_main.c then skips its own clock set-up
target_compile_definitions(powerprune_{name} PRIVATE PP_TARGET_DEVICE=1 PP_WITH_PICO_SDK=1)
target_compile_options(powerprune_{name} PRIVATE -O2)
target_link_libraries(powerprune_{name} pico_stdlib)
pico_add_extra_outputs(powerprune_{name})
"""


IMAGE_CHOICES = ("auto", *IMAGES)


# the virtual Pico's layout that runs like each image (where auto's plan is measured)
PROFILED_AS = {"ram": "sram", "flash": "flash"}


def _plan(graph: Graph, kernels: str, image: str) -> tuple[str, ...] | None:
    """auto's measured plan for ``image``; None for other sets, and when the profiling layout itself
    does not fit (the image then cannot either, and building it says so in the image's own words)."""
    if kernels != "auto":
        return None
    try:
        return auto_plan(graph, PROFILED_AS[image])
    except FitError:
        return None


def _build(graph: Graph, kernels: str, image: str) -> Firmware:
    return build_firmware(graph, kernels, image, target="device", plan=_plan(graph, kernels, image))


def build_image(graph: Graph, kernels: str, image: str = "auto") -> Firmware:
    """The device firmware as a ``flash`` or ``ram`` image; ``auto``: ram if it fits, else flash. The
    ``auto`` kernel set gets the plan measured on the layout that runs like the image."""
    if image not in IMAGE_CHOICES:
        raise ValueError(f"unknown image kind {image!r}; use {', '.join(IMAGE_CHOICES)}")
    if image != "auto":
        return _build(graph, kernels, image)
    try:
        return _build(graph, kernels, "ram")
    except FitError:
        return _build(graph, kernels, "flash")


def deploy(graph: Graph, out_dir: str | Path, kernels: str = "auto", board: str = "pico",
           image: str = "auto") -> dict:
    if board != "pico":
        raise ValueError(f"deploy supports --board pico (RP2040); got {board!r}")
    if graph.dtype != "int8":
        raise ValueError("deploy builds int8 models (float32 only at their boundary); this one is float32 "
                         "throughout: profile it on the virtual Pico instead")
    check_frame_sizes(graph.input.nbytes, graph.output.nbytes)
    out = Path(out_dir)
    fw = build_image(graph, kernels, image)
    uf2 = write_uf2([(s.paddr, s.data) for s in read_elf(fw.elf).segments])
    write_bytes(out / "firmware.uf2", uf2)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(fw.elf, out / "firmware.elf")
    sources, _ = firmware_sources(graph, kernels, target="device", plan=_plan(graph, kernels, fw.layout))
    src = out / "src"
    for name, text in sources.items():
        write_text(src / name, text)
    c_files = sorted(n for n in sources if n.endswith(".c") and n != "startup.c")  # the SDK has its crt0
    name = "".join(ch if ch.isalnum() else "_" for ch in graph.name)
    write_text(src / "CMakeLists.txt", CMAKE.format(name=name, sources=" ".join(c_files)))
    return {"uf2": str(out / "firmware.uf2"), "elf": str(out / "firmware.elf"), "sources": str(src),
            "image": fw.layout, "flash_bytes": fw.flash_bytes, "sram_bytes": fw.sram_bytes, "uf2_bytes": len(uf2)}
