"""Kernel C compiled for the host, so tests call exactly the code the firmware runs."""

from __future__ import annotations

import ctypes
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from powerprune.mcu.build import _package_dir


def int32_library(directory: Path, source: str, functions: dict[str, int]) -> ctypes.CDLL:
    """Compile ``source`` (which includes kernel files from ``kernels/``) into a shared library and
    declare each of ``functions`` (name -> number of int32 arguments) as returning int32."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no host C compiler")
    (directory / "shim.c").write_text(source)
    subprocess.run([cc, "-O2", "-shared", "-fPIC", "-I", str(_package_dir("kernels")), "-o",
                    str(directory / "shim.so"), str(directory / "shim.c")], check=True)
    lib = ctypes.CDLL(str(directory / "shim.so"))
    for name, arity in functions.items():
        f = getattr(lib, name)
        f.restype = ctypes.c_int32
        f.argtypes = [ctypes.c_int32] * arity
    return lib


def c_structs(path: Path) -> dict[str, tuple[tuple[str, str], ...]]:
    """Every ``typedef struct {...} name;`` of a C file: its fields in order with their types ("*":
    a pointer), as ``cgen.Struct`` declares them."""
    text = re.sub(r"/\*.*?\*/", "", path.read_text(), flags=re.S)
    structs = {}
    for body, name in re.findall(r"typedef struct \{(.*?)\} (\w+);", text, flags=re.S):
        found = []
        for decl in filter(None, (d.strip() for d in body.split(";"))):
            ctype, _, names = decl.replace("const ", "").partition(" ")
            found += [(n.strip(" *"), "*" if "*" in n else ctype) for n in names.split(",")]
        structs[name] = tuple(found)
    return structs
