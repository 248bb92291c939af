"""UNIDIRECTIONAL_SEQUENCE_LSTM: one LSTM layer over a sequence, as TFLM's integer kernel computes it.

int8 input, weights and hidden state; int16 gates and cell state. Per time step t, with h and c the
hidden and cell state carried from step t - 1 (the gates in the file's order input, forget, cell, output):

    gate_g = act_g(FC(x_t, W_g) + FC(h, R_g))     two int8 x int8 -> int16 fully connected products
                                                  rescaled to Q3.12, summed with int16 saturation;
                                                  act is the int16 sigmoid, tanh for the cell gate
    c = clip(f * c + i * g)                       Q0.15 x Q0.15 products rescaled to the cell scale
    h = o * tanh(c)                               rescaled to the hidden state's int8 quantization

and the step's output is h. TFLM derives every multiplier from the scales at Prepare time: the FCs'
input x weight / 2^-12, the products' 2^-15 x 2^-15 (or x cell scale) / cell or hidden scale, the cell
clip as clip / cell scale truncated to int16. The cell scale must be a power of two (the tanh of the
cell state is a shift). Batch-major and time-major files are read and written (batch 1: one sequence
per inference, so both hold the values in the same order). Only the forms the converter writes for
a Keras LSTM are supported: no CIFG, no peephole, no projection, no layer norm; the importer refuses
the others naming the feature.

TFLM keeps h and c in variable tensors that persist across Invokes until the interpreter is reset; the
reset state is h = hidden zero point, c = 0. ``run`` is one sequence per row from the reset state;
``run_stateful`` continues from a given state (streaming).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

from ..fixedpoint import multiply_by_quantized_multiplier, quantize_multiplier, sigmoid_int16, tanh_int16
from .base import INT_RANGES, Builtin, Op, Site, TensorInfo
from .tflite_io import (
    TYPE_NAMES,
    Subgraph,
    TFLiteError,
    Writer,
    quant_scales,
    quant_zero_points,
)

GATES = ("input", "forget", "cell", "output")  # the file's order of the weights and biases
GATE_INPUT_POWER = -12    # every gate's pre-activation is int16 Q3.12
GATE_OUTPUT_POWER = -15   # sigmoid and tanh write int16 Q0.15
INT16_MIN, INT16_MAX = INT_RANGES["int16"]

# the operator's 24 inputs (TFLite's schema); -1 marks an absent optional one
INPUT, INPUT_WEIGHTS, RECURRENT_WEIGHTS, PEEPHOLE, BIAS = 0, 1, 5, 9, 12
PROJECTION_WEIGHTS, PROJECTION_BIAS, HIDDEN_STATE, CELL_STATE, LAYER_NORM = 16, 17, 18, 19, 20
N_INPUTS = 24


@dataclass(eq=False)
class UnidirectionalSequenceLSTM:
    """One LSTM layer over a (time steps, features) sequence, writing the hidden state of every step
    (time steps, units). The hidden state is int8 with the output's quantization (TFLM copies it to the
    output); the cell state is int16, symmetric, with scale ``cell_scale`` (a power of two)."""

    input_weights: np.ndarray      # int8 (4, H, I), gates input, forget, cell, output
    recurrent_weights: np.ndarray  # int8 (4, H, H)
    bias: np.ndarray               # int32 (4, H)
    input_scales: np.ndarray       # float32 (4,): one scale per gate matrix (TFLM's LSTM is per tensor)
    recurrent_scales: np.ndarray   # float32 (4,)
    cell_scale: float
    cell_clip: float               # 0: no clip
    output: TensorInfo
    # the file's layout: (time steps, batch 1, features) rather than (batch 1, time steps, features);
    # with one sequence per inference the values lie in the same order, so only the shapes differ
    time_major: bool = False
    op: str = field(default="UNIDIRECTIONAL_SEQUENCE_LSTM", init=False)

    @property
    def units(self) -> int:
        return self.input_weights.shape[1]

    @property
    def cell_state(self) -> TensorInfo:
        """The int16 cell state of one sequence, as TFLM's variable tensor holds it."""
        return TensorInfo((self.units,), self.cell_scale, 0, "int16")


def cell_scale_power(scale: float) -> int | None:
    """log2 of a power-of-two scale, None for any other scale."""
    frac, exponent = np.frexp(np.float32(scale))
    return int(exponent) - 1 if frac == 0.5 else None


def check(layer: UnidirectionalSequenceLSTM, inputs: tuple[TensorInfo, ...], site: Site) -> None:
    (inp,) = inputs
    out = layer.output
    if site.float_graph:
        raise site.error("a float32 LSTM is not supported; quantize it to int8")
    if len(inp.shape) != 2 or len(out.shape) != 2:
        raise site.error(f"expects (time steps, features) tensors, got {inp.shape} -> {out.shape}")
    steps, features = inp.shape
    units = layer.input_weights.shape[1] if layer.input_weights.ndim == 3 else -1
    if out.shape != (steps, units):
        raise site.error(f"output {out.shape}, but {steps} steps of {units} units give {(steps, units)}", "output")
    if layer.input_weights.shape != (4, units, features) or layer.recurrent_weights.shape != (4, units, units):
        raise site.error(f"weights {layer.input_weights.shape} and {layer.recurrent_weights.shape} do not fit "
                         f"{features} features -> {units} units (4 gates)")
    if layer.bias.shape != (4, units):
        raise site.error(f"bias shape {layer.bias.shape}, expected {(4, units)}")
    if layer.input_weights.dtype != np.int8 or layer.recurrent_weights.dtype != np.int8 \
            or layer.bias.dtype != np.int32:
        raise site.error("weights must be int8 and bias int32")
    for scales in (layer.input_scales, layer.recurrent_scales):
        if scales.shape != (4,) or not (np.isfinite(scales).all() and (scales > 0).all()):
            raise site.error("each of the 8 weight matrices needs one finite scale > 0")
    if cell_scale_power(layer.cell_scale) is None:
        raise site.error(f"cell state scale {layer.cell_scale:g} is not a power of two, which TFLM's integer "
                         "LSTM needs (it applies tanh to the cell state by shifting)")
    if not (np.isfinite(layer.cell_clip) and layer.cell_clip >= 0):
        raise site.error(f"cell clip must be finite and >= 0, got {layer.cell_clip}")


# --- the integer parameters TFLM derives at Prepare time ---------------------------------------------


@dataclass(frozen=True)
class LSTMParams:
    """What TFLM's integer LSTM derives from the scales: per gate the (multiplier, shift) of its input
    and recurrent FCs (to Q3.12), the three elementwise products' (multiplier, shift), the cell state's
    power of two and the clip as an int16 bound."""

    input_offset: int                       # -input zero point
    hidden_offset: int                      # -hidden state zero point (the recurrent FCs' input)
    input_fc: tuple[tuple[int, int], ...]   # per gate (multiplier, shift)
    recurrent_fc: tuple[tuple[int, int], ...]
    forget_times_cell: tuple[int, int]      # f x c -> cell scale
    input_times_cell_gate: tuple[int, int]  # i x g -> cell scale
    output_times_tanh: tuple[int, int]      # o x tanh(c) -> hidden scale
    hidden_zero_point: int
    cell_power: int
    cell_clip: int                          # 0: no clip


def _fc_multiplier(activation_scale: float, weight_scale: float) -> tuple[int, int]:
    """activation x weight / 2^-12, each float32 scale widened to double first (TFLM's FC Prepare)."""
    return quantize_multiplier(float(np.float32(activation_scale)) * float(np.float32(weight_scale))
                               / 2.0**GATE_INPUT_POWER)


def _product_multiplier(scale1: float, scale2: float, output_scale: float) -> tuple[int, int]:
    return quantize_multiplier(float(np.float32(scale1)) * float(np.float32(scale2))
                               / float(np.float32(output_scale)))


def lstm_parameters(layer: UnidirectionalSequenceLSTM, inp: TensorInfo) -> LSTMParams:
    hidden = layer.output
    gate_out = 2.0**GATE_OUTPUT_POWER
    cell = float(np.float32(layer.cell_scale))
    # TFLM: static_cast<int16_t>(min(max(clip / scale, -32768), 32767)), a truncation toward zero
    clip = int(min(max(float(np.float32(layer.cell_clip)) / cell, -32768.0), 32767.0))
    return LSTMParams(
        -inp.zero_point, -hidden.zero_point,
        tuple(_fc_multiplier(inp.scale, float(s)) for s in layer.input_scales),
        tuple(_fc_multiplier(hidden.scale, float(s)) for s in layer.recurrent_scales),
        _product_multiplier(gate_out, cell, cell), _product_multiplier(gate_out, gate_out, cell),
        _product_multiplier(gate_out, gate_out, hidden.scale), hidden.zero_point,
        cell_scale_power(cell), clip)


# --- the reference kernel ----------------------------------------------------------------------------


def _requantize16(acc: np.ndarray, mult_shift: tuple[int, int]) -> np.ndarray:
    """An int32 accumulator rescaled and saturated to int16 (TFLM's int8 -> int16 FC and int16 MUL)."""
    return np.clip(multiply_by_quantized_multiplier(acc, *mult_shift), INT16_MIN, INT16_MAX)


def constants(layer: UnidirectionalSequenceLSTM) -> tuple[np.ndarray, ...]:
    """The eight weight matrices and four biases, for the parameter count."""
    return layer.input_weights, layer.recurrent_weights, layer.bias


def reset_state(layer: UnidirectionalSequenceLSTM) -> list[np.ndarray]:
    """What TFLM's ResetVariableTensors leaves: the int8 hidden state at its zero point, the cell at 0."""
    return [np.full(layer.units, layer.output.zero_point, np.int8), np.zeros(layer.units, np.int16)]


def run_stateful(layer: UnidirectionalSequenceLSTM, args: list[np.ndarray], inputs: tuple[TensorInfo, ...],
                 state: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Every row of the batch is one sequence, started from its row of ``state`` ([hidden (N, H) int8,
    cell (N, H) int16]); returns the hidden state of every step (N, T, H) and the state after the last.
    The FCs accumulate in float64 (exact: every partial sum stays far below 2^53)."""
    (x,), (inp,) = args, inputs
    p = lstm_parameters(layer, inp)
    n, steps, features = x.shape
    units = layer.units
    hidden = np.asarray(state[0], np.int64).copy()
    cell = np.asarray(state[1], np.int64).copy()
    # the input FCs of every step at once: (N x T, I) x (I, 4H), rescaled to int16 per gate; the four
    # gates side by side on axis -2 with their (multiplier, shift) broadcast along it
    in_mult, in_shift = (np.array(v, np.int64)[:, None] for v in zip(*p.input_fc, strict=True))
    rec_mult, rec_shift = (np.array(v, np.int64)[:, None] for v in zip(*p.recurrent_fc, strict=True))
    xs = x.reshape(n * steps, features).astype(np.float64) + p.input_offset
    weights = layer.input_weights.reshape(4 * units, features).T.astype(np.float64)
    acc = (xs @ weights).astype(np.int64).reshape(n, steps, 4, units) + layer.bias.astype(np.int64)
    from_input = _requantize16(acc, (in_mult, in_shift))
    recurrent = layer.recurrent_weights.reshape(4 * units, units).T.astype(np.float64)
    out = np.empty((n, steps, units), np.int8)
    for t in range(steps):
        hs = hidden.astype(np.float64) + p.hidden_offset
        from_hidden = _requantize16((hs @ recurrent).astype(np.int64).reshape(n, 4, units), (rec_mult, rec_shift))
        pre = np.clip(from_input[:, t] + from_hidden, INT16_MIN, INT16_MAX)
        gates = sigmoid_int16(pre).astype(np.int64)   # the cell gate's is replaced by its tanh below
        i_gate, f_gate, o_gate = gates[:, 0], gates[:, 1], gates[:, 3]
        g_gate = tanh_int16(pre[:, 2], GATE_INPUT_POWER).astype(np.int64)
        cell = np.clip(_requantize16(f_gate * cell, p.forget_times_cell)
                       + _requantize16(i_gate * g_gate, p.input_times_cell_gate), INT16_MIN, INT16_MAX)
        if p.cell_clip > 0:
            cell = np.clip(cell, -p.cell_clip, p.cell_clip)
        squashed = tanh_int16(cell, p.cell_power).astype(np.int64)
        hidden = np.clip(multiply_by_quantized_multiplier(squashed * o_gate, *p.output_times_tanh)
                         + p.hidden_zero_point, -128, 127)
        out[:, t] = hidden
    return out, [hidden.astype(np.int8), cell.astype(np.int16)]


def run(layer: UnidirectionalSequenceLSTM, args: list[np.ndarray], inputs: tuple[TensorInfo, ...]) -> np.ndarray:
    """One independent sequence per row: each starts from the reset state."""
    n = len(args[0])
    state = [np.broadcast_to(s, (n, *s.shape)) for s in reset_state(layer)]
    return run_stateful(layer, args, inputs, state)[0]


def macs(layer: UnidirectionalSequenceLSTM, inputs: tuple[TensorInfo, ...]) -> int:
    """Every input and recurrent weight once per time step."""
    return inputs[0].shape[0] * (layer.input_weights.size + layer.recurrent_weights.size)


# --- .tflite -----------------------------------------------------------------------------------------


def export(layer: UnidirectionalSequenceLSTM, w: Writer, i: int, reads: list[int], inputs: tuple[TensorInfo, ...],
           out: int) -> None:
    """The 24 inputs the converter writes for a Keras LSTM: the 8 weight matrices, the 4 biases (scale
    input x weight scale), the hidden and cell state as variable tensors; the optional ones absent."""
    (inp,) = inputs
    ids = [-1] * N_INPUTS
    ids[INPUT] = reads[0]
    for g, name in enumerate(GATES):
        for base, weights, scales, what in ((INPUT_WEIGHTS, layer.input_weights, layer.input_scales, "input"),
                                            (RECURRENT_WEIGHTS, layer.recurrent_weights, layer.recurrent_scales,
                                             "recurrent")):
            ids[base + g] = w.tensor(f"layer{i}/{what}_to_{name}_weights", weights[g].shape, fb.TensorType.INT8,
                                     weights[g], scales[g:g + 1].astype(np.float32), np.zeros(1, np.int64))
        bias_scale = np.float64(np.float32(inp.scale)) * np.float64(np.float32(layer.input_scales[g]))
        ids[BIAS + g] = w.tensor(f"layer{i}/{name}_gate_bias", (layer.units,), fb.TensorType.INT32,
                                 layer.bias[g].astype("<i4"), np.array([bias_scale]), np.zeros(1, np.int64))
    hidden = layer.output
    ids[HIDDEN_STATE] = w.tensor(f"layer{i}/hidden_state", (1, layer.units), fb.TensorType.INT8,
                                 scale=np.array([hidden.scale]), zero_point=np.array([hidden.zero_point]),
                                 variable=True)
    ids[CELL_STATE] = w.tensor(f"layer{i}/cell_state", (1, layer.units), fb.TensorType.INT16,
                               scale=np.array([layer.cell_scale]), zero_point=np.zeros(1, np.int64), variable=True)
    opt = fb.UnidirectionalSequenceLSTMOptionsT()
    opt.fusedActivationFunction = fb.ActivationFunctionType.TANH
    opt.cellClip = float(layer.cell_clip)
    opt.projClip = 0.0
    opt.timeMajor = layer.time_major
    if layer.time_major:  # the sequence tensors as (time steps, batch 1, features)
        for t, info in ((reads[0], inp), (out, layer.output)):
            w.tensors[t].shape = [info.shape[0], 1, info.shape[1]]
    w.op(fb.BuiltinOperator.UNIDIRECTIONAL_SEQUENCE_LSTM, ids, [out],
         fb.BuiltinOptions.UnidirectionalSequenceLSTMOptions, opt)


def _present(op: fb.OperatorT, k: int) -> bool:
    return op.inputs[k] >= 0


def _refuse_unsupported(op: fb.OperatorT, where: str) -> None:
    """The LSTM variants TFLM's kernel or this IR does not run, each named in one line."""
    opt = op.builtinOptions
    if len(op.inputs) != N_INPUTS:
        raise TFLiteError(f"{where}: has {len(op.inputs)} inputs; TFLM's LSTM takes exactly {N_INPUTS}")
    if not _present(op, INPUT_WEIGHTS) or not _present(op, RECURRENT_WEIGHTS):
        raise TFLiteError(f"{where}: CIFG (coupled input and forget gate, no input gate weights) is not supported")
    if any(_present(op, PEEPHOLE + k) for k in range(3)):
        raise TFLiteError(f"{where}: peephole connections (cell-to-gate weights) are not supported")
    if _present(op, PROJECTION_WEIGHTS) or _present(op, PROJECTION_BIAS):
        raise TFLiteError(f"{where}: a projection layer is not supported")
    if any(_present(op, LAYER_NORM + k) for k in range(4)):
        raise TFLiteError(f"{where}: layer normalization is not supported")
    if opt.asymmetricQuantizeInputs:
        raise TFLiteError(f"{where}: a hybrid LSTM (float activations, quantized weights) is not supported")
    if getattr(opt, "diagonalRecurrentTensors", False):
        raise TFLiteError(f"{where}: diagonal recurrent weights are not supported")
    if opt.fusedActivationFunction != fb.ActivationFunctionType.TANH:
        names = {v: k for k, v in vars(fb.ActivationFunctionType).items() if not k.startswith("_")}
        kind = names.get(opt.fusedActivationFunction, opt.fusedActivationFunction)
        raise TFLiteError(f"{where}: cell activation {kind} is not supported; TFLM's integer LSTM applies TANH")


def _weights(g: Subgraph, op: fb.OperatorT, k: int, shape: tuple[int, int], role: str,
             where: str) -> tuple[np.ndarray, float]:
    t, label = g.tensor(op.inputs[k], role, where)
    if t.type != fb.TensorType.INT8:
        raise TFLiteError(f"{where}: {label} are {TYPE_NAMES.get(t.type, t.type)}, expected INT8")
    if tuple(t.shape) != shape:
        raise TFLiteError(f"{where}: {label} have shape {tuple(t.shape)}, expected {shape}")
    scales = quant_scales(t.quantization, label, where)
    if scales.size != 1:
        raise TFLiteError(f"{where}: {label} have {scales.size} scales; TFLM's LSTM takes one per matrix")
    if (quant_zero_points(t.quantization, 1, label, where) != 0).any():
        raise TFLiteError(f"{where}: {label} must be symmetrically quantized (zero point 0)")
    return g.constant(t, label, "i1", where), float(np.float32(scales[0]))


def _state(g: Subgraph, op: fb.OperatorT, k: int, ttype: int, units: int, role: str,
           where: str) -> tuple[float, int]:
    """(scale, zero point) of a state tensor: a variable tensor of ``ttype`` holding ``units`` values."""
    t, label = g.tensor(op.inputs[k], role, where)
    if t.type != ttype:
        raise TFLiteError(f"{where}: {label} is {TYPE_NAMES.get(t.type, t.type)}, expected {TYPE_NAMES[ttype]}")
    if not t.isVariable:
        raise TFLiteError(f"{where}: {label} must be a variable tensor (TFLM keeps the LSTM's state in it)")
    if int(np.prod(t.shape)) != units:
        raise TFLiteError(f"{where}: {label} holds {int(np.prod(t.shape))} values for {units} units (batch 1)")
    scales = quant_scales(t.quantization, label, where)
    zero_point = quant_zero_points(t.quantization, scales.size, label, where)
    if scales.size != 1:
        raise TFLiteError(f"{where}: {label} needs per-tensor quantization (one scale), has {scales.size}")
    return float(np.float32(scales[0])), int(zero_point[0])


def import_(g: Subgraph, code: int, op: fb.OperatorT, out: TensorInfo, where: str) -> UnidirectionalSequenceLSTM:
    _refuse_unsupported(op, where)
    opt = op.builtinOptions
    x, label = g.tensor(op.inputs[INPUT], "input", where)
    batch_axis = 1 if opt.timeMajor else 0
    layout = "(time steps, 1, features)" if opt.timeMajor else "(1, time steps, features)"
    if len(x.shape) != 3 or x.shape[batch_axis] != 1:
        raise TFLiteError(f"{where}: {label} has shape {tuple(x.shape)}; expected {layout} (batch 1)")
    y, out_label = g.tensor(op.outputs[0], "output", where)
    if len(y.shape) != 3 or y.shape[batch_axis] != 1:
        raise TFLiteError(f"{where}: {out_label} has shape {tuple(y.shape)}; expected {layout} (batch 1)")
    features = int(x.shape[2])
    units = out.shape[-1]
    pairs = [_weights(g, op, INPUT_WEIGHTS + k, (units, features), f"input-to-{GATES[k]} weights", where)
             for k in range(4)]
    pairs += [_weights(g, op, RECURRENT_WEIGHTS + k, (units, units), f"recurrent-to-{GATES[k]} weights", where)
              for k in range(4)]
    biases = []
    for k in range(4):
        t, label = g.tensor(op.inputs[BIAS + k], f"{GATES[k]} gate bias", where)
        if t.type != fb.TensorType.INT32 or tuple(t.shape) != (units,):
            raise TFLiteError(f"{where}: {label} is {TYPE_NAMES.get(t.type, t.type)} {tuple(t.shape)}, expected "
                              f"INT32 ({units},)")
        biases.append(g.constant(t, label, "<i4", where).astype(np.int32))
    hidden = _state(g, op, HIDDEN_STATE, fb.TensorType.INT8, units, "hidden state", where)
    cell_scale, cell_zero = _state(g, op, CELL_STATE, fb.TensorType.INT16, units, "cell state", where)
    if hidden != (out.scale, out.zero_point):
        raise TFLiteError(f"{where}: hidden state quantization {hidden} differs from the output's "
                          f"{(out.scale, out.zero_point)}; TFLM copies the hidden state to the output")
    if cell_zero != 0:
        raise TFLiteError(f"{where}: cell state zero point {cell_zero}; TFLM's integer LSTM needs 0")
    if not np.isfinite(opt.cellClip) or opt.cellClip < 0:
        raise TFLiteError(f"{where}: cell clip {opt.cellClip} must be finite and >= 0")
    return UnidirectionalSequenceLSTM(
        np.stack([w for w, _ in pairs[:4]]), np.stack([w for w, _ in pairs[4:]]), np.stack(biases),
        np.array([s for _, s in pairs[:4]], np.float32), np.array([s for _, s in pairs[4:]], np.float32),
        cell_scale, float(np.float32(opt.cellClip)), out, bool(opt.timeMajor))


OP = Op(UnidirectionalSequenceLSTM,
        (Builtin(fb.BuiltinOperator.UNIDIRECTIONAL_SEQUENCE_LSTM,
                 fb.BuiltinOptions.UnidirectionalSequenceLSTMOptions, N_INPUTS),),
        arity=1, weighted=False, check=check, run=run, run_f32=None, macs=macs, export=export, import_=import_,
        constants=constants, reset_state=reset_state, run_stateful=run_stateful)
