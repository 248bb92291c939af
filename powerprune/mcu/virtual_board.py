"""A virtual Pico on a pseudo-terminal: the device firmware in rp2040js, UART0 bridged to a pty.

``powerprune measure --port <pty>`` then talks to it exactly as to a real board on /dev/ttyACM0.
The marker pin's high times (in cycles, from the emulator) are collected so tests can compare them
with the cycle counts the firmware reports over UART. A flash image boots through its own boot2
(runner/device.mjs does the bootrom's CRC check and copy); ``xip`` then holds the serial read boot2
configured and its cost per XIP cache miss, and ``xip_misses`` the misses of each inference.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import threading
import tty
from base64 import b64encode
from pathlib import Path

from .emulator import EmulatorError, node_executable, runner_dir
from .uf2 import read_uf2


class VirtualBoard:
    """Context manager: ``with VirtualBoard("firmware.uf2") as board: board.port``."""

    def __init__(self, uf2_path: str | Path):
        blocks = read_uf2(Path(uf2_path).read_bytes())
        self._image = {"segments": [{"addr": b.address, "data": b64encode(b.data).decode()} for b in blocks]}
        self.marker_high_cycles: list[int] = []
        self.xip_misses: list[int] = []
        self.xip: dict = {}
        self.errors: list[str] = []

    def __enter__(self) -> VirtualBoard:
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.port = os.ttyname(self._slave)
        fd, self._image_path = tempfile.mkstemp(suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump(self._image, f)
        self._proc = subprocess.Popen([node_executable(), str(runner_dir() / "device.mjs"), self._image_path],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self._threads = [threading.Thread(target=f, daemon=True)
                         for f in (self._host_to_board, self._board_to_host, self._events)]
        for t in self._threads:
            t.start()
        return self

    def _host_to_board(self) -> None:
        while True:
            try:
                data = os.read(self._master, 4096)
            except OSError:
                return
            if not data:
                return
            try:
                self._proc.stdin.write(data)
                self._proc.stdin.flush()
            except (BrokenPipeError, ValueError):
                return

    def _board_to_host(self) -> None:
        while data := self._proc.stdout.read1(4096):
            os.write(self._master, data)

    def _events(self) -> None:
        for line in self._proc.stderr:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                self.errors.append(line.decode(errors="replace").strip())
                continue
            if "marker_high_cycles" in event:
                self.marker_high_cycles.append(int(event["marker_high_cycles"]))
                self.xip_misses.append(int(event.get("xip_misses", 0)))
            if "xip" in event:
                self.xip = event["xip"]
            if "error" in event:
                self.errors.append(event["error"])

    def check(self) -> None:
        """Raise EmulatorError if the board is dead: a core fault (reported by device.mjs) or the Node
        process gone for any other reason (killed, out of memory), so nobody talks to a dead board."""
        code = self._proc.poll()
        if code is None:
            return
        for t in self._threads[2:]:  # the events reader: let it collect the fault message
            t.join(timeout=1.0)
        why = self.errors[-1] if self.errors else f"the emulator process exited with code {code}"
        raise EmulatorError(f"virtual Pico stopped: {why}")

    def __exit__(self, *exc: object) -> None:
        self._proc.kill()
        self._proc.wait()
        for fd in (self._master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass
        os.unlink(self._image_path)
