"""Just enough of ELF32 (little-endian ARM) to load an image and find symbols, without extra packages."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path


class ELFError(ValueError):
    pass


@dataclass(frozen=True)
class Section:
    name: str
    addr: int
    size: int


@dataclass(frozen=True)
class Segment:
    paddr: int     # where the loader (bootrom, UF2, our emulator runner) puts the bytes
    data: bytes


@dataclass(frozen=True)
class ElfImage:
    entry: int
    segments: list[Segment]
    sections: list[Section]
    symbols: dict[str, int]

    def symbol(self, name: str) -> int:
        if name not in self.symbols:
            raise ELFError(f"symbol {name} not found in the firmware")
        return self.symbols[name]


def read_elf(path: str | Path) -> ElfImage:
    raw = Path(path).read_bytes()
    if raw[:4] != b"\x7fELF" or raw[4] != 1 or raw[5] != 1:
        raise ELFError(f"{path} is not a 32-bit little-endian ELF file")
    (entry, phoff, shoff) = struct.unpack_from("<III", raw, 24)
    phentsize, phnum, shentsize, shnum, shstrndx = struct.unpack_from("<HHHHH", raw, 42)
    segments = []
    for i in range(phnum):
        p_type, p_offset, _vaddr, p_paddr, p_filesz = struct.unpack_from("<IIIII", raw, phoff + i * phentsize)
        if p_type == 1 and p_filesz:  # PT_LOAD with bytes in the file
            segments.append(Segment(p_paddr, raw[p_offset:p_offset + p_filesz]))
    headers = [struct.unpack_from("<IIIIIIIIII", raw, shoff + i * shentsize) for i in range(shnum)]
    shstr = headers[shstrndx]

    def name_at(table_off: int, off: int) -> str:
        end = raw.index(b"\0", table_off + off)
        return raw[table_off + off:end].decode()

    sections, symbols = [], {}
    for h in headers:
        name = name_at(shstr[4], h[0])
        sections.append(Section(name, h[3], h[5]))
        if h[1] == 2:  # SHT_SYMTAB
            strtab = headers[h[6]]
            for off in range(h[4], h[4] + h[5], 16):
                st_name, st_value = struct.unpack_from("<II", raw, off)
                if st_name:
                    symbols[name_at(strtab[4], st_name)] = st_value
    return ElfImage(entry, segments, sections, symbols)
