"""The UART protocol of the device firmware (firmware/device_main.c documents the same frames).

request  A5 | cmd u8 | len u16 | payload | crc u16;  response 5A | status u8 | len u16 | payload | crc u16
Little endian; CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF) over cmd/status, len and payload.
"""

from __future__ import annotations

import struct
import time
from typing import Protocol

SYNC_REQUEST = 0xA5
SYNC_RESPONSE = 0x5A
CMD_INFER = 1
CMD_INFO = 2
MAX_PAYLOAD = 0xFFFF  # the u16 length field
INFER_TAIL = 4  # an infer response carries the cycle count (u32) after the output tensor
STATUS = {0: "ok", 1: "bad crc", 2: "bad length", 3: "unknown command", 4: "frame timeout"}


class ProtocolError(RuntimeError):
    pass


class Port(Protocol):
    def write(self, data: bytes) -> int | None: ...
    def read(self, size: int = 1) -> bytes: ...


def check_frame_sizes(input_size: int, output_size: int) -> None:
    """A model whose input, or output plus cycle count, does not fit the u16 length field could be
    flashed but never called: refuse it before building firmware for it."""
    if input_size > MAX_PAYLOAD or output_size + INFER_TAIL > MAX_PAYLOAD:
        raise ProtocolError(f"the model's input ({input_size} bytes) or output ({output_size} bytes + "
                            f"{INFER_TAIL} for the cycle count) exceeds the serial protocol's {MAX_PAYLOAD}-byte "
                            "frame; deploy supports models whose input and output fit one frame")


def crc16(data: bytes, crc: int = 0xFFFF) -> int:
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def request(cmd: int, payload: bytes = b"") -> bytes:
    body = struct.pack("<BH", cmd, len(payload)) + payload
    return bytes([SYNC_REQUEST]) + body + struct.pack("<H", crc16(body))


def _read_exact(port: Port, n: int, deadline: float) -> bytes:
    buf = b""
    while len(buf) < n:
        if time.monotonic() > deadline:
            raise ProtocolError(f"no complete response from the board (got {len(buf)} of {n} bytes)")
        buf += port.read(n - len(buf))
    return buf


def read_response(port: Port, timeout: float = 10.0) -> tuple[int, bytes]:
    """(status, payload) of the next response; skips bytes until the sync byte."""
    deadline = time.monotonic() + timeout
    while _read_exact(port, 1, deadline)[0] != SYNC_RESPONSE:
        pass
    head = _read_exact(port, 3, deadline)
    status, length = struct.unpack("<BH", head)
    payload = _read_exact(port, length, deadline)
    (crc,) = struct.unpack("<H", _read_exact(port, 2, deadline))
    if crc != crc16(head + payload):
        raise ProtocolError("response failed its CRC check (noisy line or wrong baud rate?)")
    return status, payload


def call(port: Port, cmd: int, payload: bytes = b"", timeout: float = 10.0) -> bytes:
    port.write(request(cmd, payload))
    status, body = read_response(port, timeout)
    if status != 0:
        raise ProtocolError(f"board answered '{STATUS.get(status, status)}'")
    return body
