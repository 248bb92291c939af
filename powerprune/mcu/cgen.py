"""C emitters: exact literals, const arrays and descriptor initializers, the text every generated
model.c is made of. Nothing here knows a layer; the lowering modules decide what to write.

A descriptor struct is declared once, as a ``Struct`` (its fields in the order of
``kernels/pp_kernels.h``, with their C types), and a test reads the header back against every
``Struct`` the generator knows, so the two cannot drift apart silently.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..ops.base import CFields, c_fields


class CodegenError(ValueError):
    """A graph, plan or value the generator cannot write as C (one clear line for the user)."""


# the RP2040's ILP32 ABI: every field type's size, which is also its alignment ("*": any pointer)
C_SIZE = {"int16_t": 2, "int32_t": 4, "uint32_t": 4, "float": 4, "*": 4}

# a struct's (field name, C type) pairs in declaration order, and the shorthand for several of one type:
# the op modules declare their descriptors with the same two, so they live with the ops
Fields = CFields
fields = c_fields


@dataclass(frozen=True)
class Struct:
    """One descriptor struct of ``kernels/pp_kernels.h``: ``initializer`` fills exactly these fields.

    >>> s = Struct("pp_demo_t", (("size", "int16_t"), ("data", "*")))
    >>> s.size
    8
    >>> print(s.initializer("layer0", {"size": 3, "data": "layer0_d"}), end="")
    static const pp_demo_t layer0 = {
        .size = 3,
        .data = layer0_d,
    };
    """

    name: str
    fields: Fields

    @property
    def size(self) -> int:
        """sizeof() on the RP2040: each field aligned to its size, the whole to its largest field."""
        end = align = 0
        for _, ctype in self.fields:
            size = C_SIZE[ctype]
            end = -(-end // size) * size + size
            align = max(align, size)
        return -(-end // align) * align if align else 0

    @property
    def offsets(self) -> dict[str, int]:
        """Each field's byte offset (what assembly reading the struct through a pointer uses).

        >>> Struct("pp_demo_t", (("n", "int16_t"), ("data", "*"))).offsets
        {'n': 0, 'data': 4}
        """
        at, where = 0, {}
        for field, ctype in self.fields:
            size = C_SIZE[ctype]
            at = -(-at // size) * size
            where[field] = at
            at += size
        return where

    def words(self, values: dict[str, int | str]) -> list[int | str]:
        """A record of 32-bit fields as the list of words a stream holds, in declaration order; the
        values must name every field, in that order.

        >>> Struct("pp_pair_t", (("a", "int32_t"), ("b", "int32_t"))).words({"a": 1, "b": "x"})
        [1, 'x']
        """
        declared = [f for f, _ in self.fields]
        if list(values) != declared or any(C_SIZE[t] != 4 for _, t in self.fields):
            raise CodegenError(f"{self.name} words are {declared}, got {list(values)}")
        return list(values.values())

    def initializer(self, var: str, values: dict[str, int | str]) -> str:
        """A const descriptor as a C99 designated initializer, one named field a line, in the header's
        order; the values must name every field, in that order (a missing or extra one is an error,
        not a silently zeroed field).

        >>> Struct("pp_demo_t", (("size", "int16_t"),)).initializer("layer0", {"n": 1})
        Traceback (most recent call last):
        ...
        powerprune.mcu.cgen.CodegenError: layer0: pp_demo_t fields are ['size'], got ['n']
        """
        declared = [f for f, _ in self.fields]
        if list(values) != declared:
            raise CodegenError(f"{var}: {self.name} fields are {declared}, got {list(values)}")
        body = "".join(f"    .{field} = {value},\n" for field, value in values.items())
        return f"static const {self.name} {var} = {{\n{body}}};\n"


def c_float(value: float) -> str:
    """A float32 value as an exact C literal: hexadecimal, so no decimal rounding can creep in.

    >>> c_float(0.1), c_float(1.0), c_float(-0.0), c_float(3)
    ('0x1.99999ap-4f', '0x1p+0f', '-0.0f', '0x1.8p+1f')
    >>> c_float(float("inf"))
    Traceback (most recent call last):
    ...
    powerprune.mcu.cgen.CodegenError: cannot write inf as a C constant
    """
    v = float(np.float32(value))
    if not math.isfinite(v):
        raise CodegenError(f"cannot write {v} as a C constant")
    if v == 0:
        return "-0.0f" if math.copysign(1.0, v) < 0 else "0.0f"
    mantissa, exponent = v.hex().split("p")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}p{exponent}f"


def c_array(ctype: str, name: str, values: np.ndarray | list, per_line: int = 24, sram: bool = False,
            used: bool = False) -> str:
    """A const array, in flash with the flash layout unless ``sram``: then in a .data section, which the
    start-up code copies to SRAM at boot (see ``staging.staging_plan``). A list may hold C expressions
    (str); float values become exact float literals (``c_float``). ``used``: kept although only
    assembly refers to it. An empty array is written as one 0 (C has no empty arrays).

    >>> print(c_array("int8_t", "w", np.array([1, -2, 3])), end="")
    static const int8_t w[3] __attribute__((aligned(4))) = {
        1, -2, 3
    };
    >>> print(c_array("int32_t", "d", [7, "(int32_t)(t + 1)"], sram=True), end="")
    static const int32_t d[2] __attribute__((aligned(4), section(".data.d"))) = {
        7, (int32_t)(t + 1)
    };
    >>> c_array("float", "b", np.zeros(0, np.float32)).splitlines()[0]
    'static const float b[1] __attribute__((aligned(4))) = {'
    """
    if isinstance(values, list):
        flat = [v if isinstance(v, str) else str(int(v)) for v in values]
    elif np.asarray(values).dtype.kind == "f":
        flat = [c_float(v) for v in np.asarray(values).ravel()]
        per_line = min(per_line, 8)
    else:
        flat = [str(int(v)) for v in np.asarray(values).ravel()]
    if not flat:
        flat = ["0"]
    lines = [", ".join(flat[i:i + per_line]) for i in range(0, len(flat), per_line)]
    body = ",\n    ".join(lines)
    where = (f', section(".data.{name}")' if sram else "") + (", used" if used else "")
    return f"static const {ctype} {name}[{len(flat)}] __attribute__((aligned(4){where})) = {{\n    {body}\n}};\n"


def c_string(line: str) -> str:
    """One assembly line as a C string literal with its newline.

    >>> print(c_string('ldr r0, =label "x"'))
    "ldr r0, =label \\"x\\"\\n"
    """
    return '"' + line.replace("\\", "\\\\").replace('"', '\\"') + '\\n"'


def align4(n: int) -> int:
    """``n`` rounded up to a whole number of 32-bit words (what every arena buffer is aligned to).

    >>> [align4(n) for n in (0, 1, 4, 5)]
    [0, 4, 4, 8]
    """
    return (n + 3) & ~3
