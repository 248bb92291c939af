"""TFLite Micro's own interpreter (the ``tflite-micro`` wheel) as the numerical oracle."""

from __future__ import annotations

import numpy as np


def tflm_run(model: bytes, inputs: np.ndarray, arena_size: int | None = None, stream: bool = False) -> np.ndarray:
    """Run int8 ``inputs`` (N, *input shape) one by one through TFLM; returns (N, *output shape).
    ``arena_size``: TFLM's tensor arena in bytes; the wheel's default (10x the model's size) is too small
    for a model with few weights and large activations. A stateful model (an LSTM's variable tensors)
    is reset before every row, so each row is an independent inference; ``stream``: reset once, then
    the state carries from row to row. Reset touches only variable tensors: a stateless model gives
    the same outputs either way."""
    from tflite_micro.python.tflite_micro import runtime

    interp = runtime.Interpreter.from_bytes(model, arena_size=arena_size)
    in_shape = tuple(interp.get_input_details(0)["shape"])
    outs = []
    interp.reset()
    for x in inputs:
        if not stream:
            interp.reset()
        interp.set_input(x.reshape(in_shape), 0)
        interp.invoke()
        out = interp.get_output(0)
        # drop TFLite's batch dimension of 1: the first axis, or the second of a time-major sequence
        # (time steps, batch 1, features), as the importer reads shapes
        outs.append((out[:, 0] if out.ndim == 3 and out.shape[0] > 1 and out.shape[1] == 1 else out[0]).copy())
    return np.stack(outs) if outs else np.zeros((0,), np.int8)
