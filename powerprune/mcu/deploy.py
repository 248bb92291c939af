"""``powerprune deploy``: everything needed to run a model on a physical Raspberry Pi Pico.

Writes a RAM-only UF2 (drag it onto the RPI-RP2 drive), the ELF, and the C sources with a
CMakeLists.txt for pico-sdk users. Why RAM-only: a flash image needs a second-stage bootloader
that programs the board's QSPI flash chip, and we cannot test one without hardware; a RAM image
needs none (the bootrom loads it and jumps to its lowest address), and it runs with weights in
SRAM, the faster `sram` layout. The price: it is gone after a power cycle, so drag it again.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ..atomic import write_bytes, write_text
from ..ir import Graph
from .build import build_firmware, firmware_sources
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


def deploy(graph: Graph, out_dir: str | Path, kernels: str = "auto", board: str = "pico") -> dict:
    if board != "pico":
        raise ValueError(f"deploy supports --board pico (RP2040); got {board!r}")
    if graph.dtype != "int8":
        raise ValueError(f"deploy builds int8 models (the board protocol carries int8 tensors); this one is "
                         f"{graph.dtype}: profile it on the virtual Pico instead")
    check_frame_sizes(graph.input.size, graph.output.size)
    out = Path(out_dir)
    fw = build_firmware(graph, kernels, target="device")
    image = read_elf(fw.elf)
    uf2 = write_uf2([(s.paddr, s.data) for s in image.segments])
    write_bytes(out / "firmware.uf2", uf2)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(fw.elf, out / "firmware.elf")
    sources, _ = firmware_sources(graph, kernels, target="device")
    src = out / "src"
    for name, text in sources.items():
        write_text(src / name, text)
    c_files = sorted(n for n in sources if n.endswith(".c") and n != "startup.c")  # the SDK has its crt0
    name = "".join(ch if ch.isalnum() else "_" for ch in graph.name)
    write_text(src / "CMakeLists.txt", CMAKE.format(name=name, sources=" ".join(c_files)))
    return {"uf2": str(out / "firmware.uf2"), "elf": str(out / "firmware.elf"), "sources": str(src),
            "sram_bytes": fw.sram_bytes, "uf2_bytes": len(uf2)}
