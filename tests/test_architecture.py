"""The flow is one-way: a module imports only modules of its own or an earlier stage."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "powerprune"
# A module may use what comes before it: utilities (atomic writes, progress, config checks, the MAC count,
# the result rows and the names in them, which prune, sweep and report share) -> data -> model -> train
# -> prune -> the IR -> quantize (which builds IR graphs) and tflite_to_seqnet (which reads them back into
# SeqNets) -> the IR's consumers -> api -> sweep -> report
# -> the ``cli`` package, which only uses them (the device commands live there, not in mcu).
STAGES = [{"atomic", "progress", "schema", "counts", "results", "numerics"}, {"data"},
          {"model", "seqnet", "metrics"}, {"train"}, {"prune"}, {"fixedpoint", "ops", "ir"},
          {"quantize", "tflite_to_seqnet"}, {"reference", "tflite", "oracle", "mcu", "board"}, {"api"}, {"sweep"},
          {"report"}, {"cli", "__init__"}]
RANK = {name: i for i, names in enumerate(STAGES) for name in names}


def stage(module: str) -> int:
    """A module by its top-level name (a package is one stage)."""
    return RANK.get(module.split(".")[0], RANK["__init__"])  # `from . import __version__`, `__main__`


def imports(path: Path) -> set[str]:
    """Every powerprune module ``path`` imports, at top level or inside functions."""
    package = path.relative_to(ROOT).parts[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:  # relative: resolve against the package
            base = ".".join(package[:len(package) - node.level + 1])
            names = [node.module] if node.module else [a.name for a in node.names]
            found |= {f"{base}.{n}".lstrip(".") for n in names}
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names = [node.module] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            found |= {n.removeprefix("powerprune.") for n in names if n.startswith("powerprune.")}
    return found


def test_no_module_imports_a_later_stage():
    backwards = []
    for path in sorted(ROOT.rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        backwards += [f"{module} -> {m}" for m in sorted(imports(path)) if stage(m) > stage(module)]
    assert not backwards


def test_the_mcu_package_never_imports_the_cli():
    """Issue 13: the MCU flow once reached back into the command line for its data options."""
    reach_back = [f"{path.relative_to(ROOT)} -> {m}" for path in sorted((ROOT / "mcu").rglob("*.py"))
                  for m in sorted(imports(path)) if m.split(".")[0] == "cli"]
    assert not reach_back


def test_no_module_imports_another_modules_private_names():
    private = [f"{path.relative_to(ROOT)}: {alias.name}" for path in sorted(ROOT.rglob("*.py"))
               for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.ImportFrom)
               for alias in node.names if alias.name.startswith("_") and not alias.name.startswith("__")]
    assert not private
