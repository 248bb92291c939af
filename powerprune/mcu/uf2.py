"""UF2 files for the RP2040 bootrom's USB drive (format: github.com/microsoft/uf2).

Each 512-byte block carries 256 bytes for one target address, tagged with the RP2040 family id.
The bootrom decides by the first block's address whether the file is a flash image
(0x10000000...) or a RAM-only image (0x20000000...); for a RAM image it starts executing at the
lowest address it loaded.
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
    """UF2 bytes for (address, data) segments, cut into 256-byte blocks."""
    blocks = []
    for addr, data in sorted(segments):
        for off in range(0, len(data), PAYLOAD):
            chunk = data[off:off + PAYLOAD]
            blocks.append(Block(addr + off, chunk + bytes(PAYLOAD - len(chunk))))
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
