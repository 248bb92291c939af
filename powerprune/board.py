"""Board profiles, and the energy per inference they give: E = cycles / f x V x I (+ misses x E_miss).

Board profiles are TOML files: the ones shipped in ``powerprune/boards/`` and user profiles written by
``powerprune calibrate`` into ``~/.config/powerprune/boards/`` (or any path given directly). Every
constant is printed in the report, so a reader can redo the arithmetic.
"""

from __future__ import annotations

import math
import os
import tomllib
from dataclasses import asdict, dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Annotated

from .atomic import write_text
from .schema import NON_NEGATIVE, POSITIVE, check_fields

DEFAULT_BOARD = "pico"  # the Raspberry Pi Pico's profile (boards/pico.toml): what a run and calibrate start from


class BoardError(ValueError):
    pass


@dataclass(frozen=True)
class Board:
    name: str
    description: str
    clock_hz: Annotated[float, POSITIVE]
    supply_voltage_v: Annotated[float, POSITIVE]
    active_current_ma: Annotated[float, POSITIVE]
    flash_miss_energy_nj: Annotated[float, NON_NEGATIVE] = 0.0
    sources: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        """Every profile, loaded or calibrated, is checked: a NaN or negative constant would turn every
        energy in a report into nonsense without an error."""
        check_fields(self, BoardError)

    @property
    def active_power_mw(self) -> float:
        return self.supply_voltage_v * self.active_current_ma

    def latency_ms(self, cycles: float) -> float:
        return cycles / self.clock_hz * 1e3

    def energy_mj(self, cycles: float, xip_misses: float = 0.0) -> float:
        """Energy of one inference in millijoules."""
        return (self.latency_ms(cycles) * 1e-3 * self.active_power_mw
                + xip_misses * self.flash_miss_energy_nj * 1e-6)

    def to_toml(self) -> str:
        lines = []
        for k, v in asdict(self).items():
            if isinstance(v, str):
                lines.append(f"{k} = {v!r}".replace("'", '"'))
            elif isinstance(v, list):
                lines.append(f"{k} = [" + ", ".join('"' + s.replace('"', "'") + '"' for s in v) + "]")
            else:
                lines.append(f"{k} = {v}")
        return "\n".join(lines) + "\n"


def user_dir() -> Path:
    return Path(os.environ.get("POWERPRUNE_BOARDS", Path.home() / ".config" / "powerprune" / "boards"))


def _builtin(name: str) -> Path:
    return Path(str(resources.files("powerprune") / "boards" / f"{name}.toml"))


def load_board(name_or_path: str) -> Board:
    """A profile by name (user profiles first, then shipped ones) or by path to a TOML file."""
    candidates = [Path(name_or_path)] if name_or_path.endswith(".toml") else [
        user_dir() / f"{name_or_path}.toml", _builtin(name_or_path)]
    for path in candidates:
        if path.is_file():
            try:
                data = tomllib.loads(path.read_text())
                return Board(**data)
            except (tomllib.TOMLDecodeError, TypeError, BoardError) as exc:
                raise BoardError(f"board profile {path} is invalid: {exc}") from exc
    shipped = sorted(p.stem for p in Path(str(resources.files("powerprune") / "boards")).glob("*.toml"))
    raise BoardError(f"no board profile {name_or_path!r}; shipped profiles: {', '.join(shipped)}")


def calibrate(board: Board, measured_mj: float, cycles: float, name: str | None = None) -> Board:
    """A profile whose active current reproduces a hardware measurement of one inference."""
    if not (0 < measured_mj < math.inf and 0 < cycles < math.inf):  # also refuses NaN
        raise BoardError("--measured-mj and --cycles must be finite numbers > 0")
    seconds = cycles / board.clock_hz
    current_ma = measured_mj / seconds / board.supply_voltage_v
    return replace(board, name=name or f"{board.name}-calibrated", active_current_ma=current_ma,
                   description=f"{board.description}; calibrated: {measured_mj} mJ for {cycles:.0f} cycles",
                   sources=[*board.sources,
                            f"calibrated from a measurement: {measured_mj} mJ over {cycles:.0f} cycles"])


def save_board(board: Board, path: Path | None = None) -> Path:
    path = path or user_dir() / f"{board.name}.toml"
    write_text(path, board.to_toml())
    return path
