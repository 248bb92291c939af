"""The report as text: report.md (tables, findings, plot links) and the one-screen terminal summary.

Every number comes from ``analysis``; the HTML page is rendered from this Markdown (``html.py``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from ..board import Board
from ..results import PAPER_METHODS, STOCK_KERNELS, Refusal, model_label
from .analysis import (
    COMPARE_KERNELS,
    equal_energy_comparison,
    findings,
    label,
    paper_comparison,
    paper_side_by_side,
    pareto,
    problems,
)


def _pm(v: float, s: float, fmt: str) -> str:
    return format(v, fmt) + (f" ± {format(s, fmt)}" if s else "")


def _pct(v: float | None, fmt: str) -> str:
    """A signed percentage, or n/a when the baseline was not in the run."""
    return "n/a" if v is None else f"{format(v, '+' + fmt)}%"


def _new_methods_section(agg: list[dict]) -> list[str]:
    rows = equal_energy_comparison(agg)
    if not rows:
        return []
    lines = [f"## Beyond the paper: hybrid and energy-aware pruning (all on the `{COMPARE_KERNELS}` kernels)", "",
             "*hybrid*: APoZ channel removal to the square root of the rate, then magnitude sparsity for the rest. "
             "*energy E/R*: greedy energy-aware pruning asked for 1/R of the dense model's predicted kernel cycles; it "
             "removes channels or weights by least loss per predicted cycle saved (cost model fitted on the virtual "
             "Pico). Each row puts a model of ours beside the best "
             "accuracy each paper method reaches at the same or lower energy (interpolated along its sweep; "
             "n/a: it has no model that cheap), and the least energy each paper method needs for our accuracy "
             "(in brackets: how much less we use).", "",
             "| ours | energy mJ | Δ energy vs stock dense | our int8 acc | magnitude at that energy "
             "| APoZ at that energy | magnitude's energy for that accuracy | APoZ's energy for that accuracy |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ref = [("n/a" if r["paper"].get(pm) is None else
                f"{100 * r['paper'][pm]:.2f}% ({100 * (r['int8_accuracy'] - r['paper'][pm]):+.2f} pp)")
               for pm in PAPER_METHODS]
        cost = [("not reached" if r["paper_energy"].get(pm) is None else
                 f"{r['paper_energy'][pm]:.3f} mJ ({100 * (r['energy_mj'] / r['paper_energy'][pm] - 1):+.0f}%)")
                for pm in PAPER_METHODS]
        lines.append(f"| {label(r)} | {r['energy_mj']:.3f} | {r['energy_delta_pct']:+.1f}% "
                     f"| {100 * r['int8_accuracy']:.2f}% | {ref[0]} | {ref[1]} | {cost[0]} | {cost[1]} |")
    return lines + [""]


def _paper_measured_section(agg: list[dict], board: Board, dtype: str) -> list[str]:
    """The paper's own per-rate measurements beside our emulated numbers, with the ratios and what they mean."""
    rows = paper_side_by_side(agg)
    paper_power = [r["energy_mj"] / r["latency_ms"] * 1000 for r in rows]
    lines = [f"## The paper's measurements beside ours (its network, {dtype})", "",
             "Paper: measured on a physical Raspberry Pi Pico by Widmann et al. (*Pruning for Power*, EANN 2023; "
             "their repository widmannthomas/convolutional_neural_network_energy_improvement, copied into "
             "powerprune/report/widmann2023_results.csv): their float32 network on TFLM's stock reference kernels "
             "(`stock`) and on their runtime that skips multiplications by zero weights (`adapted`). Ours: the same "
             f"network retrained here, its cycles counted on the virtual Pico ({board.clock_hz / 1e6:g} MHz) on "
             "`tflm-ref` and `tflm-skip`, energy = cycles x the board profile's power. Ratio = ours / paper. Nothing "
             "is tuned to make the ratios look good.", "",
             f"Power: the paper's rows imply {min(paper_power):.0f} to {max(paper_power):.0f} mW (energy / latency); "
             f"our board profile `{board.name}` assumes {board.active_power_mw:g} mW. Latency ratios compare cycles "
             "and clock only; energy ratios also carry that difference in power. Where our cycles differ, the usual "
             "suspects: the soft-float library (we link libgcc's; pico-sdk links the RP2040 bootrom's faster float "
             "routines), the XIP flash cache model, the clock set-up of their board, and everything outside the "
             "kernels that their firmware ran between its GPIO markers.", "",
             "| method | runtime | rate | paper acc | our acc | paper s | our s | latency ratio | paper mJ | our mJ "
             "| energy ratio | paper Δ energy vs its unpruned | our Δ energy vs our unpruned |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        o = r["ours"]
        rate = "unpruned" if r["rate"] == 1.0 else f"{r['rate']:g}x"
        head = f"| {r['paper_method']} | {r['runtime']} ({r['kernels']}) | {rate} | {100 * r['accuracy']:.2f}% "
        if o is None:
            lines.append(head + f"| n/a | {r['latency_ms'] / 1000:.3f} | n/a | n/a | {r['energy_mj']:.1f} | n/a | n/a "
                                f"| {r['paper_delta_pct']:+.1f}% | n/a |")
            continue
        ours_delta = "n/a" if r["our_delta_pct"] is None else f"{r['our_delta_pct']:+.1f}%"
        lines.append(head + f"| {100 * o['int8_accuracy']:.2f}% | {r['latency_ms'] / 1000:.3f} "
                            f"| {o['latency_ms'] / 1000:.3f} | {r['latency_ratio']:.2f} | {r['energy_mj']:.1f} "
                            f"| {o['energy_mj']:.1f} | {r['energy_ratio']:.2f} | {r['paper_delta_pct']:+.1f}% "
                            f"| {ours_delta} |")
    return lines + [""]


def markdown(agg: list[dict], board: Board, plots: dict[str, str], title: str, seeds: int,
             arch: str | None = None, dtype: str = "int8", refused: Sequence[Refusal] = ()) -> str:
    """report.md, findings first: the energy formula with every constant, the paper beside us, beyond the
    paper, the Pareto front, the problems (rows that cannot be right and models refused, never findings),
    the plots (``plots``: caption -> file name in the run directory), and last the table of all models.
    A run of the paper's own network (``arch`` "paper") also gets the paper's measured table beside ours."""
    everything, agg = agg, findings(agg)
    lines = [f"# {title}", ""]
    lines += ["Energy per inference = cycles / f x V x I" + (" + XIP misses x E_miss" if board.flash_miss_energy_nj
                                                             else ""),
              f"with board profile `{board.name}`: f = {board.clock_hz / 1e6:g} MHz, V = {board.supply_voltage_v} V, "
              f"I = {board.active_current_ma:g} mA (P = {board.active_power_mw:g} mW), "
              f"E_miss = {board.flash_miss_energy_nj:g} nJ.",
              "Cycles are counted on the virtual Pico (rp2040js, Cortex-M0+, our XIP cache model), not measured "
              "on hardware. Relative savings do not depend on V and I.", ""]
    lines += ["## The paper's findings beside ours (4x compression, vs the dense model on stock kernels)", "",
              "Savings are quoted against both stock runtimes: TFLM's reference kernels (`tflm-ref`, the "
              "paper's baseline) and CMSIS-NN (`cmsis-nn`, what pico-tflmicro runs on the Pico). In the "
              "cmsis-nn column a stock-kernel finding is rerun on cmsis-nn; a finding on our kernels is "
              "compared with the dense model on cmsis-nn.", "",
              "| finding | paper energy | paper accuracy | ours: method, kernels | our energy vs dense on tflm-ref "
              "| our energy vs dense on cmsis-nn | our int8 accuracy |",
              "|---|---|---|---|---|---|---|"]
    for c in paper_comparison(agg):
        e = _pct(c["ours_energy"], ".2f")
        a = "n/a" if c["ours_accuracy"] is None else f"{c['ours_accuracy']:+.2f} pp"
        lines.append(f"| {c['finding']} | {c['energy']} | {c['accuracy']} | {c['method']} 4x, {c['kernels']} "
                     f"| {e} | {_pct(c['ours_energy_cmsis'], '.2f')} | {a} |")
    lines += ["", "Paper: Widmann et al., *Pruning for Power*, EANN 2023 (abstract).", ""]
    if arch == "paper":
        lines += _paper_measured_section(agg, board, dtype)
    lines += _new_methods_section(agg)
    lines += ["## Sweet spots (Pareto front: no other model is both cheaper and more accurate)", ""]
    merged: dict[tuple, list[dict]] = defaultdict(list)  # kernel sets that tie exactly share a line
    for p in pareto(agg):
        merged[(label(p), p["int8_accuracy"], p["energy_mj"])].append(p)
    lines += [f"- {name}, {' = '.join(q['kernels'] for q in ps)}: {100 * acc:.2f}% at {e:.3f} mJ "
              f"({ps[0]['energy_delta_pct']:+.1f}% energy)" for (name, acc, e), ps in merged.items()]
    lines.append("")
    lines += _problems_section(everything, refused)
    for caption, path in plots.items():
        lines += [f"### {caption}", "", f"![{caption}]({path})", ""]
    lines += [f"## All models ({seeds} seed{'s' if seeds > 1 else ''}; mean ± std where several)", "",
              "Δ energy: vs the dense model on `tflm-ref`; vs cmsis-nn: vs the dense model on `cmsis-nn`.", "",
              f"| model | kernels | compression | {dtype} acc | Δ acc | cycles | ms | energy mJ | Δ energy "
              "| Δ energy vs cmsis-nn | flash B | SRAM B | bit-exact |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for a in everything:
        lines.append(
            f"| {label(a)} | {a['kernels']} | {a['compression']:.2f}x "
            f"| {_pm(100 * a['int8_accuracy'], 100 * a['int8_accuracy_std'], '.2f')}% "
            f"| {_pm(a['accuracy_delta_pp'], a['accuracy_delta_pp_std'], '+.2f')} | {a['cycles']:,.0f} "
            f"| {a['latency_ms']:.2f} | {_pm(a['energy_mj'], a['energy_mj_std'], '.3f')} "
            f"| {_pm(a['energy_delta_pct'], a['energy_delta_pct_std'], '+.1f')}% "
            f"| {_pct(a['energy_delta_cmsis_pct'], '.1f')} | {a['flash_bytes']:,.0f} "
            f"| {a['sram_bytes']:,.0f} | {a['bit_exact']} |")
    lines.append("")
    return "\n".join(lines)


def _problems_section(agg: list[dict], refused: Sequence[Refusal]) -> list[str]:
    """Rows that cannot be right and models the sweep refused to make: listed, never findings."""
    flagged = problems(agg)
    if not flagged and not refused:
        return ["## Problems", "", "None: every model is above chance, no cheaper than nothing, and bit-exact.", ""]
    lines = ["## Problems (left out of the findings, the front and the plots)", ""]
    lines += [f"- {label(p)}, {p['kernels']}: {p['problem']}" for p in flagged]
    lines += [f"- {model_label(r.method, r.rate)} (seed {r.seed}): refused: {r.reason}" for r in refused]
    return [*lines, ""]


def terminal_summary(agg: list[dict], dtype: str = "int8", refused: Sequence[Refusal] = ()) -> str:
    """One screen: per model, the stock kernels and the cheapest other kernel set (report.md has all),
    then the problems, which are not findings."""
    head = (f"{'model':<16} {'kernels':<9} {'comp':>6} {dtype + ' acc':>11} {'Δacc pp':>8} {'ms':>8} {'mJ':>8} "
            f"{'Δenergy':>8}")
    lines = [head, "-" * len(head)]
    models: dict[tuple, list[dict]] = defaultdict(list)
    for a in findings(agg):
        models[(a["method"], a["rate"])].append(a)
    for rows in models.values():
        stock = [a for a in rows if a["kernels"] == STOCK_KERNELS]
        best = sorted((a for a in rows if a["kernels"] != STOCK_KERNELS), key=lambda a: a["energy_mj"])[:1]
        for a in stock + best:
            lines.append(f"{label(a):<16} {a['kernels']:<9} {a['compression']:>5.1f}x "
                         f"{100 * a['int8_accuracy']:>10.2f}% {a['accuracy_delta_pp']:>+8.2f} {a['latency_ms']:>8.2f} "
                         f"{a['energy_mj']:>8.3f} {a['energy_delta_pct']:>+7.1f}%")
    flagged = [line for line in _problems_section(agg, refused)[2:] if line.startswith("- ")]
    if flagged:
        lines += ["", "problems (not findings; report.md lists them):", *flagged]
    return "\n".join(lines)
