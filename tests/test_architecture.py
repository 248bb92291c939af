"""The flow is one-way: a module imports only modules of its own or an earlier stage."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "powerprune"
# A module may use what comes before it: utilities (atomic writes, progress, config checks, the MAC count,
# the result rows and the names in them, which prune, sweep and report share) -> data -> model -> train
# -> prune -> the IR -> quantize (which builds IR graphs) and tflite_to_seqnet (which reads them back into
# SeqNets) -> the IR's consumers -> api -> sweep -> report
# -> the ``cli`` package, which only uses them (the device commands live there, not in mcu). Every module
# must be listed: a new one is placed on purpose, not waved through.
STAGES = [{"atomic", "progress", "schema", "counts", "results", "numerics"}, {"data"},
          {"model", "seqnet", "metrics"}, {"train"}, {"prune"}, {"fixedpoint", "ops", "ir"},
          {"quantize", "tflite_to_seqnet"}, {"reference", "tflite", "oracle", "mcu", "board"}, {"api"}, {"sweep"},
          {"report"}, {"cli", "__init__", "__main__"}]
RANK = {name: i for i, names in enumerate(STAGES) for name in names}


def stage(module: str) -> int:
    """A module by its top-level name (a package is one stage); an unlisted one fails the check."""
    top = module.split(".")[0]
    assert top in RANK, f"powerprune.{top} has no stage: add it to STAGES in {Path(__file__).name}"
    return RANK[top]


def imports(path: Path) -> set[str]:
    """Every powerprune module ``path`` imports, at top level or inside functions."""
    package = path.relative_to(ROOT).parts[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:  # relative: resolve against the package
            base = ".".join(package[:len(package) - node.level + 1])
            names = [node.module] if node.module else [a.name for a in node.names]
            # `from . import __version__` at the top imports a name of the package itself, not a module
            found |= {f"{base}.{n}".lstrip(".") if base or _is_module(n.split(".")[0]) else "__init__" for n in names}
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names = [node.module] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            found |= {n.removeprefix("powerprune.") for n in names if n.startswith("powerprune.")}
    return found


def _is_module(name: str) -> bool:
    return (ROOT / f"{name}.py").is_file() or (ROOT / name).is_dir()


def test_no_module_imports_a_later_stage():
    """Also what keeps the device flow (mcu) from reaching back into the command line for its options."""
    backwards = []
    for path in sorted(ROOT.rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        rank = stage(module)  # every module, also one that imports nothing of the package
        backwards += [f"{module} -> {m}" for m in sorted(imports(path)) if stage(m) > rank]
    assert not backwards


def test_a_module_missing_from_the_stages_fails_the_check():
    """stage() used to rank an unknown module as the top stage, so a new module escaped the check."""
    with pytest.raises(AssertionError, match="add it to STAGES"):
        stage("newmodule.part")


def test_no_module_imports_another_modules_private_names():
    private = [f"{path.relative_to(ROOT)}: {alias.name}" for path in sorted(ROOT.rglob("*.py"))
               for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.ImportFrom)
               for alias in node.names if alias.name.startswith("_") and not alias.name.startswith("__")]
    assert not private
