"""UF2 files for the RP2040 bootrom's USB drive (format: github.com/microsoft/uf2).

Each 512-byte block carries 256 bytes for one target address, tagged with the RP2040 family id.
The bootrom decides by the first block's address whether the file is a flash image
(0x10000000...) or a RAM-only image (0x20000000...); for a RAM image it starts executing at the
lowest address it loaded, a flash image it writes to flash and boots through its boot2.

Flash is programmed in 256-byte pages, so every block covers one whole page at a 256-byte aligned
address: ELF segments (.text, then the .data load image right after .rodata, at any alignment) are
merged into pages first, never cut where each segment happens to start; two blocks for one page
would make the second erase what the first wrote.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

MAGIC_START0 = 0x0A324655
MAGIC_START1 = 0x9E5D5157
MAGIC_END = 0x0AB16F30
FLAG_FAMILY_ID = 0x00002000
RP2040_FAMILY_ID = 0xE48BFF56
PAYLOAD = 256


class UF2Error(ValueError):
    pass


@dataclass(frozen=True)
class Block:
    address: int
    data: bytes


def write_uf2(segments: list[tuple[int, bytes]], family_id: int = RP2040_FAMILY_ID) -> bytes:
    """UF2 bytes for (address, data) segments: one block per 256-byte page they touch, in address
    order, bytes no segment covers zero. Overlapping segments are an error (one would be lost)."""
    pages: dict[int, bytearray] = {}
    end = 0
    for addr, data in sorted(segments):
        if addr < end:
            raise UF2Error(f"segment at 0x{addr:08x} overlaps the one before it (ends at 0x{end:08x})")
        end = addr + len(data)
        off = 0
        while off < len(data):
            page, at = divmod(addr + off, PAYLOAD)
            n = min(PAYLOAD - at, len(data) - off)
            pages.setdefault(page * PAYLOAD, bytearray(PAYLOAD))[at:at + n] = data[off:off + n]
            off += n
    blocks = [Block(a, bytes(pages[a])) for a in sorted(pages)]
    out = bytearray()
    for n, b in enumerate(blocks):
        head = struct.pack("<8I", MAGIC_START0, MAGIC_START1, FLAG_FAMILY_ID, b.address, PAYLOAD, n,
                           len(blocks), family_id)
        out += head + b.data + bytes(476 - PAYLOAD) + struct.pack("<I", MAGIC_END)
    return bytes(out)


def read_uf2(data: bytes, family_id: int = RP2040_FAMILY_ID) -> list[Block]:
    """Blocks of a UF2 file, checked the way the bootrom checks them."""
    if len(data) % 512 or not data:
        raise UF2Error("a UF2 file is a whole number of 512-byte blocks")
    blocks = []
    total = None
    for i in range(0, len(data), 512):
        m0, m1, flags, addr, size, n, count, fam = struct.unpack_from("<8I", data, i)
        (end,) = struct.unpack_from("<I", data, i + 508)
        if (m0, m1, end) != (MAGIC_START0, MAGIC_START1, MAGIC_END):
            raise UF2Error(f"block {i // 512}: bad magic")
        if not flags & FLAG_FAMILY_ID or fam != family_id:
            raise UF2Error(f"block {i // 512}: not for the RP2040 (family 0x{fam:08x})")
        if size != PAYLOAD or n != i // 512 or (total is not None and count != total):
            raise UF2Error(f"block {i // 512}: inconsistent size or numbering")
        total = count
        blocks.append(Block(addr, data[i + 32:i + 32 + size]))
    if len(blocks) != total:
        raise UF2Error(f"file has {len(blocks)} blocks, its header says {total}")
    return blocks
