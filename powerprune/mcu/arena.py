"""The arena planner: where every layer output lives in the one static activation buffer (``pp_arena``).

The role of TFLM's ``memory_planner/``, done once at generation time: a chain keeps consecutive
tensors at opposite ends of the arena (the plan every published cycle count ran), any other graph
gets a liveness plan placed first fit by decreasing size (TFLM's greedy planner). A reshape is a view
of its input's buffer, never a copy inside the arena. Kernel scratch (padded copies, im2col columns)
lies after the tensors and is not planned here.
"""

from __future__ import annotations

from ..ir import Graph
from .cgen import align4

Plan = tuple[list[int | None], int]   # each layer output's byte offset (None: the model output), arena size


def plan_arena(graph: Graph) -> Plan:
    """Byte offsets of every layer output in one arena (None: the model output buffer; reshapes alias
    their input), and the arena's size. A tensor's memory is reused only after its last reader ran.

    A chain keeps its two-ended plan (``_plan_chain``); any other graph gets the liveness plan
    (``_plan_dag``), which for a residual block keeps the skip tensor alive across the branch."""
    return _plan_chain(graph) if graph.is_chain else _plan_dag(graph)


def _is_view(graph: Graph, i: int) -> bool:
    """Whether layer i's output is a view of the buffer it reads (a reshape of a layer output; a
    reshape of the model input copies, since the input buffer is the caller's)."""
    return graph.layers[i].op == "RESHAPE" and graph.reads[i][0] > 0


def _plan_chain(graph: Graph) -> Plan:
    """Consecutive tensors sit at opposite ends, so the arena needs only the largest input+output
    pair: what TFLM's greedy planner finds for a chain (and what every published cycle count ran)."""
    n = len(graph.layers)
    sizes = [layer.output.nbytes for layer in graph.layers]
    # a reshape shares its input's buffer, so it does not start a new tensor
    owner = list(range(n))
    for i in range(n):
        if _is_view(graph, i):
            owner[i] = owner[i - 1]
    intermediates = [i for i in range(n - 1) if owner[i] == i and not _feeds_output_only(graph, i, owner)]
    arena = 0
    for a, b in zip(intermediates, intermediates[1:], strict=False):
        arena = max(arena, align4(sizes[a]) + align4(sizes[b]))
    for a in intermediates:
        arena = max(arena, align4(sizes[a]))
    offsets: list[int | None] = [None] * n
    for k, i in enumerate(intermediates):
        offsets[i] = 0 if k % 2 == 0 else arena - align4(sizes[i])
    for i in range(n):
        if owner[i] != i:
            offsets[i] = offsets[owner[i]]
    return offsets, arena


def _feeds_output_only(graph: Graph, i: int, owner: list[int]) -> bool:
    """True when layer i's output is the model output (possibly through trailing reshapes)."""
    return all(owner[j] == i for j in range(i, len(graph.layers)))


def _plan_dag(graph: Graph) -> Plan:
    """Liveness plan for any DAG. Each buffer (a layer output; a reshape of a layer output is a view of
    it) lives from the layer that writes it to the last layer that reads it or any view of it, both
    included: a kernel never writes over one of its own inputs. Buffers are placed largest first,
    each at the lowest offset where it overlaps no placed buffer alive at the same time (first fit by
    decreasing size, the strategy of TFLM's greedy planner). The buffer holding the model output is
    the caller's output buffer and takes no arena space."""
    n = len(graph.layers)
    last = graph.last_reads()
    owner = list(range(n))
    for i in range(n):
        if _is_view(graph, i):  # a view of the buffer of the tensor it reads
            owner[i] = owner[graph.reads[i][0] - 1]
    death = {b: b for b in set(owner)}
    for i in range(n):
        death[owner[i]] = max(death[owner[i]], last[i + 1])
    output_owner = owner[n - 1] if n else None
    buffers = sorted((b for b in death if b != output_owner),
                     key=lambda b: (-align4(graph.layers[b].output.nbytes), b))
    placed: list[tuple[int, int, int, int]] = []  # (offset, size, birth, death)
    where: dict[int, int] = {}
    for b in buffers:
        size = align4(graph.layers[b].output.nbytes)
        offset = 0
        for o, sz, born, dies in sorted(placed):
            if born <= death[b] and b <= dies:  # alive at the same time
                if offset + size <= o:
                    break
                offset = max(offset, o + sz)
        where[b] = offset
        placed.append((offset, size, b, death[b]))
    arena = max((o + sz for o, sz, _, _ in placed), default=0)
    return [where.get(owner[i]) for i in range(n)], arena
