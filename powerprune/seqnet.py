"""Bring your own model: any PyTorch network made of supported layers becomes a ``SeqNet``.

A ``SeqNet`` is the float-side twin of the int8 ``Graph``: an ordered list of layers described by a
plain spec (so it saves without pickling code and loads with ``weights_only``), holding the user's own
weights. Each entry reads the entry before it unless it names what it reads (``"inputs"``: indices of
earlier entries, -1 for the network's input), so a chain is described exactly as before and a residual
network is a DAG whose ``add`` entries sum two earlier outputs. ``from_torch`` reads a model with
``torch.fx``, so a custom ``forward`` written with ``torch.relu``, ``x.view(x.size(0), -1)``,
``F.max_pool2d`` or ``out = out + identity`` works as well as an ``nn.Sequential``.

Supported: Conv2d (regular or depthwise, zero padding that TFLite's SAME or VALID can express, with or
without bias), BatchNorm2d right after a Conv2d (folded into that conv's weights and bias at conversion,
as TFLite's converter does: the int8 model has no batch norm either), ZeroPad2d / F.pad with zeros in
front of a conv (folded into the conv's padding when the int8 model is made), Linear, ReLU, ReLU6,
MaxPool2d, AvgPool2d (no padding), global average pooling (AdaptiveAvgPool2d(1), ``x.mean((2, 3))``),
Flatten/view/reshape to (N, features), the sum of two activations of one shape (``x + y``,
``torch.add``), and Dropout/Identity (dropped; they do nothing at inference). Anything else is
refused by name.
"""

from __future__ import annotations

import copy
import inspect
import numbers
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.fx.node import map_arg
from torch.nn import functional as F

from . import numerics

numerics.pin_torch()  # this module brings torch in: the same numbers on every machine

INPUT = -1  # the index by which an entry's "inputs" names the network's input


def pixels(shape: tuple[int, ...]) -> int:
    """Spatial positions of an activation (C, H, W) -> H x W; a feature vector has one."""
    return int(shape[1] * shape[2]) if len(shape) == 3 else 1


SUPPORTED = ("Conv2d, BatchNorm2d after a Conv2d, ZeroPad2d, Linear, ReLU, ReLU6, MaxPool2d, AvgPool2d, "
             "AdaptiveAvgPool2d(1), Flatten/view, add of two activations, Dropout, Identity")


class ConversionError(ValueError):
    """The model uses a layer, a padding or a topology powerprune cannot run on the MCU."""


def _pair(v: Any) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


class Add(nn.Module):
    """Elementwise sum of two activations of the same shape: the join of a residual connection."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a + b


# what every field of a spec entry must hold: sizes (>= 1), windows and strides (pairs >= 1), paddings
# (two or four numbers >= 0); a file written by hand or damaged gets one line naming the field, not torch's
_SIZES = ("in", "out", "groups")
_WINDOWS = ("kernel", "stride")


def _whole(v: Any) -> bool:
    """An integer of any kind (Python's, numpy's), but not a bool."""
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _check_entry(i: int, entry: Any) -> None:
    """One spec entry's fields, before torch sees them."""
    if not isinstance(entry, dict) or entry.get("type") not in _PREFIX:
        kind = entry.get("type") if isinstance(entry, dict) else type(entry).__name__
        raise ConversionError(f"model spec entry {i}: unknown layer type {kind!r}; known: {', '.join(_PREFIX)}")
    where = f"model spec entry {i} ({entry['type']})"

    def ints(name: str, n: tuple[int, ...], least: int) -> None:
        v = entry.get(name)
        seq = v if isinstance(v, list | tuple) else [v]
        if (len(seq) not in n or any(not _whole(x) or x < least for x in seq)):
            size = " or ".join(map(str, n))
            raise ConversionError(f"{where}: {name} is {v!r}; it must be {size} whole number(s) >= {least}")

    fields = {"conv": (*_SIZES, *_WINDOWS, "padding"), "linear": ("in", "out"), "maxpool": _WINDOWS,
              "avgpool": _WINDOWS, "pad": ("padding",)}.get(entry["type"], ())
    for name in fields:
        if name in _SIZES:
            ints(name, (1,), 1)
        elif name in _WINDOWS:
            ints(name, (2,), 1)
        else:
            ints(name, (2,) if entry["type"] == "conv" else (4,), 0)


def _build(entry: dict) -> nn.Module:
    t = entry["type"]
    if t == "conv":
        return nn.Conv2d(entry["in"], entry["out"], tuple(entry["kernel"]), tuple(entry["stride"]),
                         tuple(entry["padding"]), groups=entry["groups"])
    if t == "linear":
        return nn.Linear(entry["in"], entry["out"])
    if t == "relu":
        return nn.ReLU()
    if t == "relu6":
        return nn.ReLU6()
    if t == "maxpool":
        return nn.MaxPool2d(tuple(entry["kernel"]), tuple(entry["stride"]))
    if t == "avgpool":
        return nn.AvgPool2d(tuple(entry["kernel"]), tuple(entry["stride"]))
    if t == "flatten":
        return nn.Flatten()
    if t == "pad":
        return nn.ZeroPad2d(tuple(entry["padding"]))
    if t == "add":
        return Add()
    raise ConversionError(f"unknown layer type {t!r} in a model spec")


_PREFIX = {"conv": "conv", "linear": "fc", "relu": "relu", "relu6": "relu", "maxpool": "pool",
           "avgpool": "pool", "flatten": "flatten", "pad": "pad", "add": "add"}


def entry_sources(spec: list[dict]) -> list[tuple[int, ...]]:
    """What each entry reads (indices of earlier entries, ``INPUT`` for the network input), checked:
    an ``add`` reads two earlier tensors, every other entry one, and every output but the last is read
    by some later entry (a result nobody reads would be computed on the MCU for nothing)."""
    sources: list[tuple[int, ...]] = []
    for i, e in enumerate(spec):
        src = tuple(int(j) for j in e.get("inputs", [i - 1]))
        want = 2 if e["type"] == "add" else 1
        if len(src) != want or any(not INPUT <= j < i for j in src):
            raise ConversionError(f"model spec entry {i} ({e['type']}) must read {want} earlier "
                                  f"tensor{'s' if want > 1 else ''}, not {list(src)}")
        sources.append(src)
    read = {j for src in sources for j in src}
    unread = [i for i in range(len(spec) - 1) if i not in read]
    if unread or (spec and INPUT not in read):
        raise ConversionError(f"model spec entries {unread or 'input'} are never read by a later entry")
    return sources


class SeqNet(nn.Module):
    """The float model: layers named ``conv0``, ``relu1``, ``pool2``, ``fc5``, ``add7``... after their
    position, run in spec order; each reads the layer before it or the earlier outputs its spec entry
    names, and the last one's output is the network's. ``layer_names`` are its weight layers
    (conv/linear) in execution order; ``masks`` (name -> 0/1 tensor) keep unstructured-pruned weights
    at exactly zero."""

    def __init__(self, spec: list[dict], input_shape: tuple[int, int, int]):
        super().__init__()
        for i, e in enumerate(spec):
            _check_entry(i, e)
        if len(input_shape) != 3 or any(not _whole(v) or v < 1 for v in input_shape):
            raise ConversionError(f"input_shape is {list(input_shape)}; it must be (channels, height, width), "
                                  "three whole numbers >= 1")
        self.spec = [{k: list(v) if isinstance(v, list) else v for k, v in e.items()} for e in spec]
        self._input_shape = tuple(int(v) for v in input_shape)
        self.sources = tuple(entry_sources(self.spec))
        # after which entry each value (and the input) is read for the last time: forward drops it there
        self._last_read = {j: i for i, src in enumerate(self.sources) for j in src}
        self.names = [f"{_PREFIX[e['type']]}{i}" for i, e in enumerate(self.spec)]
        for name, entry in zip(self.names, self.spec, strict=True):
            self.add_module(name, _build(entry))
        self.layer_names = tuple(n for n, e in zip(self.names, self.spec, strict=True)
                                 if e["type"] in ("conv", "linear"))
        self.masks: dict[str, torch.Tensor] = {}

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of one input image."""
        return self._input_shape

    @property
    def is_chain(self) -> bool:
        """Every entry reads the one before it (no residual connections)."""
        return all(src == (i - 1,) for i, src in enumerate(self.sources))

    def apply_masks(self) -> None:
        """Re-zero masked weights; called after every optimizer step so zeros stay exact."""
        with torch.no_grad():
            for name, mask in self.masks.items():
                getattr(self, name).weight.mul_(mask)

    def forward(self, x: torch.Tensor, outputs: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """``outputs``, when given, receives every layer's output by name (for calibration)."""
        values = {INPUT: x}
        for i, (name, src) in enumerate(zip(self.names, self.sources, strict=True)):
            x = getattr(self, name)(*(values[j] for j in src))
            for j in src:
                if self._last_read[j] == i:
                    values.pop(j, None)
            values[i] = x
            if outputs is not None:
                outputs[name] = x
        return x


# --- conversion -----------------------------------------------------------------------------------

_RELU_FUNCS = {torch.relu, F.relu, torch.nn.functional.relu}
_FLATTEN_METHODS = {"view", "reshape", "flatten"}
_SKIP_FUNCS = {F.dropout, torch.dropout}
_ADD_FUNCS = {operator.add, operator.iadd, torch.add}


def _entry_for_module(mod: nn.Module, where: str, in_shape: Callable[[], tuple[int, ...]]) -> list[dict]:
    if isinstance(mod, nn.Conv2d):
        if mod.padding_mode != "zeros" or _pair(mod.dilation) != (1, 1) or isinstance(mod.padding, str):
            if isinstance(mod.padding, str) and mod.padding in ("same", "valid"):
                pad = (0, 0) if mod.padding == "valid" else tuple(k // 2 for k in mod.kernel_size)
            else:
                raise ConversionError(f"{where}: only zero-padded, undilated Conv2d is supported")
        else:
            pad = _pair(mod.padding)
        if mod.groups not in (1, mod.in_channels):
            raise ConversionError(f"{where}: grouped convolution (groups={mod.groups}) is not supported; "
                                  "use groups=1 or depthwise (groups=in_channels)")
        return [{"type": "conv", "in": mod.in_channels, "out": mod.out_channels,
                 "kernel": list(_pair(mod.kernel_size)), "stride": list(_pair(mod.stride)),
                 "padding": list(pad), "groups": mod.groups, "module": mod}]
    if isinstance(mod, nn.Linear):
        return [{"type": "linear", "in": mod.in_features, "out": mod.out_features, "module": mod}]
    if isinstance(mod, nn.ReLU):
        return [{"type": "relu"}]
    if isinstance(mod, nn.ReLU6):
        return [{"type": "relu6"}]
    if isinstance(mod, nn.MaxPool2d | nn.AvgPool2d):
        kind = "maxpool" if isinstance(mod, nn.MaxPool2d) else "avgpool"
        stride = mod.stride if mod.stride is not None else mod.kernel_size
        dil = getattr(mod, "dilation", 1)
        if _pair(mod.padding) != (0, 0) or mod.ceil_mode or _pair(dil) != (1, 1):
            raise ConversionError(f"{where}: pooling with padding, dilation or ceil_mode is not supported")
        return [{"type": kind, "kernel": list(_pair(mod.kernel_size)), "stride": list(_pair(stride))}]
    if isinstance(mod, nn.AdaptiveAvgPool2d):
        return _global_pool(mod.output_size, where, in_shape())
    if isinstance(mod, nn.ZeroPad2d | nn.ConstantPad2d):
        if float(getattr(mod, "value", 0.0)) != 0.0:
            raise ConversionError(f"{where}: only zero padding is supported (value={mod.value})")
        return [_pad_entry(mod.padding, where)]
    if isinstance(mod, nn.Flatten):
        return [{"type": "flatten"}]
    if isinstance(mod, nn.Dropout | nn.Identity):
        return []
    raise ConversionError(f"{where}: layer {type(mod).__name__} is not supported (supported: {SUPPORTED})")


def _global_pool(size: Any, where: str, in_shape: tuple[int, ...]) -> list[dict]:
    """Average pooling down to 1x1 is an AVERAGE_POOL_2D whose window is the whole feature map."""
    if _pair(size if size is not None else 0) != (1, 1) or len(in_shape) != 3:
        raise ConversionError(f"{where}: adaptive average pooling is supported only to output size 1 "
                              "(global average pooling) of a (C, H, W) activation")
    hw = [int(in_shape[1]), int(in_shape[2])]
    return [{"type": "avgpool", "kernel": hw, "stride": hw}]


def _pad_entry(padding: Any, where: str) -> dict:
    pad = [int(padding)] * 4 if isinstance(padding, int) else [int(p) for p in padding]
    if len(pad) != 4 or min(pad) < 0:
        raise ConversionError(f"{where}: padding {padding} is not a (left, right, top, bottom) zero padding "
                              "of the two spatial axes")
    return {"type": "pad", "padding": pad}


def _entry_for_function(node: torch.fx.Node, where: str, in_shape: Callable[[], tuple[int, ...]]) -> list[dict]:
    fn = node.target
    if fn in _RELU_FUNCS:
        return [{"type": "relu"}]
    if fn is F.relu6:
        return [{"type": "relu6"}]
    if fn in (F.max_pool2d, F.avg_pool2d):
        args = list(node.args[1:]) + [None] * 2
        k = node.kwargs.get("kernel_size", args[0])
        s = node.kwargs.get("stride", args[1]) or k
        return [{"type": "maxpool" if fn is F.max_pool2d else "avgpool", "kernel": list(_pair(k)),
                 "stride": list(_pair(s))}]
    if fn is F.adaptive_avg_pool2d:
        return _global_pool(node.kwargs.get("output_size", node.args[1] if len(node.args) > 1 else None),
                            where, in_shape())
    if fn is F.pad:
        args = list(node.args[1:]) + [None] * 3
        mode, value = node.kwargs.get("mode", args[1] or "constant"), node.kwargs.get("value", args[2])
        if mode != "constant" or value not in (None, 0, 0.0):
            raise ConversionError(f"{where}: only zero padding is supported (mode={mode!r}, value={value})")
        return [_pad_entry(node.kwargs.get("pad", args[0]), where)]
    if fn is torch.mean:
        return _mean(node, where, in_shape)
    if fn is torch.flatten:
        return [{"type": "flatten"}]
    if fn in _SKIP_FUNCS:
        return []
    raise ConversionError(f"{where}: function {getattr(fn, '__name__', fn)} is not supported "
                          f"(supported: {SUPPORTED})")


def _mean(node: torch.fx.Node, where: str, in_shape: Callable[[], tuple[int, ...]]) -> list[dict]:
    """``x.mean((2, 3))``: global average pooling, then a flatten unless ``keepdim``."""
    dims = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else None)
    keep = node.kwargs.get("keepdim", node.args[2] if len(node.args) > 2 else False)
    dims = (dims,) if isinstance(dims, int) else tuple(dims or ())
    shape = in_shape()
    if sorted(d % 4 for d in dims) != [2, 3] or len(shape) != 3:
        raise ConversionError(f"{where}: mean is supported only over the spatial axes (2, 3) of an NCHW "
                              f"activation (global average pooling), not over {dims}")
    return _global_pool(1, where, shape) + ([] if keep else [{"type": "flatten"}])


def _fold_batchnorm(conv: nn.Conv2d, bn: nn.BatchNorm2d, where: str) -> None:
    """conv followed by an inference-mode batch norm is one conv with scaled weights and a shifted bias
    (the TFLite converter folds it the same way); ``conv`` is our own copy and is changed in place."""
    if bn.running_mean is None or bn.running_var is None:
        raise ConversionError(f"{where}: BatchNorm2d without running statistics (track_running_stats=False) "
                              "cannot be folded into the conv; use track_running_stats=True")
    if bn.num_features != conv.out_channels:
        raise ConversionError(f"{where}: BatchNorm2d over {bn.num_features} channels after a conv with "
                              f"{conv.out_channels}")
    with torch.no_grad():
        scale = torch.rsqrt(bn.running_var.double() + bn.eps)
        if bn.weight is not None:
            scale = scale * bn.weight.double()
        bias = conv.bias.double() if conv.bias is not None else torch.zeros(conv.out_channels, dtype=torch.float64)
        bias = (bias - bn.running_mean.double()) * scale
        if bn.bias is not None:
            bias = bias + bn.bias.double()
        conv.weight.copy_((conv.weight.double() * scale.view(-1, 1, 1, 1)).float())
        conv.bias = nn.Parameter(bias.float())


def _tensor_shape(node: Any) -> tuple[int, ...] | None:
    return node.meta.get(_SHAPE) if isinstance(node, torch.fx.Node) else None


_SHAPE = "powerprune_shape"


class _ShapeRecorder(torch.fx.Interpreter):
    """Runs the traced graph once and notes every tensor node's output shape (batch included), naming
    the node that fails when the model cannot take the input."""

    def run_node(self, n: torch.fx.Node) -> Any:
        try:
            result = super().run_node(n)
        except Exception as exc:  # whatever the model raises for a wrong input shape
            raise ConversionError(f"node {n.name!r}: {exc}") from exc
        if isinstance(result, torch.Tensor):
            n.meta[_SHAPE] = tuple(int(v) for v in result.shape)
        return result


def _trace(model: nn.Module, input_shape: tuple[int, int, int]) -> tuple[torch.fx.GraphModule, ConversionError | None]:
    """The model's fx graph with every node's output shape (for global pooling, adds and flattens), or
    with the error the model raised on such an input: reported only after every layer has been checked
    by name, so an unsupported layer is named rather than blamed on the shape."""
    concrete = {name: p.default for i, (name, p) in enumerate(inspect.signature(model.forward).parameters.items())
                if i > 0 and p.default is not inspect.Parameter.empty}
    try:
        gm = torch.fx.symbolic_trace(model, concrete_args=concrete or None)
    except Exception as exc:  # fx raises many types for data-dependent control flow
        raise ConversionError(f"cannot trace {type(model).__name__}.forward with torch.fx ({exc}); "
                              "write forward without data-dependent control flow") from exc
    was, error = model.training, None
    try:
        model.eval()  # batch norms must not update their statistics here
        with torch.no_grad():
            _ShapeRecorder(gm).run(torch.rand(2, *input_shape))
    except ConversionError as exc:
        error = ConversionError(f"the model does not accept inputs of shape {tuple(input_shape)}: {exc}")
        error.__cause__ = exc.__cause__
    finally:
        model.train(was)
    return gm, error


class _Reader:
    """Walks an fx graph and writes the spec: which entry produces each node's value, and which module
    each weight entry copies its weights from."""

    def __init__(self, model: nn.Module, gm: torch.fx.GraphModule, shape_error: ConversionError | None):
        self.model_name = type(model).__name__
        self.shape_error = shape_error
        self.modules = dict(gm.named_modules())
        self.spec: list[dict] = []
        self.origin: list[str] = []                      # fx node each entry came from
        self.produced: dict[torch.fx.Node, int] = {}     # node -> index of the entry holding its value
        self.ignored: set[torch.fx.Node] = set()         # shape arithmetic such as x.size(0)
        self.weight_modules: set[str] = set()

    def shape(self, node: Any) -> tuple[int, ...]:
        """Output shape of ``node`` with the batch, as ShapeProp found it."""
        if self.shape_error is not None:
            raise self.shape_error
        shape = _tensor_shape(node)
        if shape is None:
            raise ConversionError(f"{self.model_name}: no shape known for {node}")
        return shape

    def where(self, node: torch.fx.Node) -> str:
        return f"{self.model_name} node {node.name!r}"

    def tensors(self, node: torch.fx.Node) -> list[torch.fx.Node]:
        found: list[torch.fx.Node] = []
        map_arg((node.args, node.kwargs), lambda n: found.append(n) if n not in self.ignored else None)
        return found

    def append(self, entry: dict, source: int, node: torch.fx.Node) -> None:
        if entry["type"] != "add" and source != len(self.spec) - 1:
            entry["inputs"] = [source]
        self.spec.append(entry)
        self.origin.append(node.name)
        self.produced[node] = len(self.spec) - 1

    def source(self, arg: Any, node: torch.fx.Node) -> int:
        if arg not in self.produced:
            raise ConversionError(f"{self.where(node)}: reads {arg}, which is not an activation of the network "
                                  "(a second model input, a parameter or a constant tensor)")
        return self.produced[arg]

    def read(self, node: torch.fx.Node) -> None:
        where = self.where(node)
        if node.op == "placeholder":
            if INPUT not in self.produced.values():
                self.produced[node] = INPUT
            return
        if node.op == "get_attr":
            raise ConversionError(f"{where}: direct parameter use is not supported; use nn layers")
        if node.op == "call_function" and getattr(node.target, "__name__", "") == "_assert_is_none":
            return  # fx's guard for an optional argument we fixed to its default
        if (node.op == "call_method" and node.target == "size") or (
                node.op == "call_function" and node.target is getattr and node.args[1:] == ("shape",)):
            self.ignored.add(node)  # feeds x.view(x.size(0), -1)
            return
        if node.op == "call_function" and node.target is operator.getitem and node.args[0] in self.ignored:
            self.ignored.add(node)
            return
        if (node.op == "call_function" and node.target in _ADD_FUNCS) or (
                node.op == "call_method" and node.target in ("add", "add_", "__add__", "__iadd__")):
            self.read_add(node, where)
            return
        tensors = self.tensors(node)
        def in_shape() -> tuple[int, ...]:
            return self.shape(node.args[0])[1:]

        if node.op == "call_module":
            mod = self.modules[node.target]
            if isinstance(mod, nn.BatchNorm2d):
                self.read_batchnorm(node, mod, tensors, f"{where} ({node.target})")
                return
            if isinstance(mod, nn.Conv2d | nn.Linear):
                if node.target in self.weight_modules:
                    raise ConversionError(f"{where}: layer {node.target} is called twice; shared weights are not "
                                          "supported (use one layer per call)")
                self.weight_modules.add(node.target)
            entries = _entry_for_module(mod, f"{where} ({node.target})", in_shape)
            for e in entries:  # our own copy: folding a batch norm must not touch the user's model
                if "module" in e:
                    e["module"] = copy.deepcopy(e["module"])
        elif node.op == "call_function":
            entries = _entry_for_function(node, where, in_shape)
        elif node.op == "call_method" and node.target in _FLATTEN_METHODS:
            entries = [{"type": "flatten"}]
        elif node.op == "call_method" and node.target == "relu":
            entries = [{"type": "relu"}]
        elif node.op == "call_method" and node.target == "mean":
            entries = _mean(node, where, in_shape)
        else:
            raise ConversionError(f"{where}: {node.op} {node.target} is not supported (supported: {SUPPORTED})")
        if len(tensors) != 1 or node.args[0] is not tensors[0]:
            raise ConversionError(f"{where}: {node.target} reads {len(tensors)} activations; only an add "
                                  "(a residual connection) may combine two")
        src = self.source(tensors[0], node)
        if entries and entries[-1]["type"] == "flatten":
            if len(self.shape(node)) != 2:
                raise ConversionError(f"{node.name}: a view/reshape is only supported as a flatten to (N, features)")
        if not entries:  # dropout, identity: the value passes through
            self.produced[node] = src
        for e in entries:
            self.append(e, src, node)
            src = len(self.spec) - 1

    def read_add(self, node: torch.fx.Node, where: str) -> None:
        args = [node.args[0] if node.args else None, node.args[1] if len(node.args) > 1 else node.kwargs.get("other")]
        if node.kwargs.get("alpha", 1) != 1 or len(node.args) > 2:
            raise ConversionError(f"{where}: add with alpha is not supported; write x + y")
        if not all(isinstance(a, torch.fx.Node) and a not in self.ignored for a in args):
            raise ConversionError(f"{where}: adding a constant ({args[1]!r}) is not supported; only the sum of "
                                  "two activations (a residual connection) is")
        a, b = (self.source(x, node) for x in args)
        sa, sb = self.shape(args[0]), self.shape(args[1])
        if sa != sb:
            raise ConversionError(f"{where}: add of activations shaped {sa} and {sb}; both sides of a residual "
                                  "connection must have the same shape (no broadcasting)")
        self.append({"type": "add", "inputs": [a, b]}, a, node)

    def read_batchnorm(self, node: torch.fx.Node, mod: nn.BatchNorm2d, tensors: list, where: str) -> None:
        arg = node.args[0]
        idx = self.produced.get(arg)
        sole = len(tensors) == 1 and tensors[0] is arg and len(arg.users) == 1
        if idx is None or idx == INPUT or self.spec[idx]["type"] != "conv" or self.origin[idx] != arg.name \
                or not sole:
            raise ConversionError(f"{where}: BatchNorm2d is supported only right after a Conv2d whose output "
                                  "nothing else reads (it is folded into that conv)")
        conv = self.spec[idx]["module"]
        _fold_batchnorm(conv, mod, where)
        self.produced[node] = idx
        self.origin[idx] = node.name  # a batch norm right after this one folds into the conv as well


def from_torch(model: nn.Module, input_shape: tuple[int, int, int]) -> SeqNet:
    """Read ``model`` (any nn.Module built from supported layers; a chain or a DAG with residual adds)
    into a SeqNet that holds copies of its weights. ``input_shape`` is one image as (channels, height,
    width). Batch norms are folded into the convs before them with their running statistics."""
    if isinstance(model, SeqNet):
        return model
    gm, shape_error = _trace(model, input_shape)
    reader = _Reader(model, gm, shape_error)
    for node in gm.graph.nodes:
        if node.op == "output":
            result = node.args[0]
            if not isinstance(result, torch.fx.Node) or not reader.spec \
                    or reader.produced.get(result) != len(reader.spec) - 1:
                raise ConversionError(f"{reader.where(node)}: the model must return one tensor, the output of "
                                      "its last layer")
            break
        reader.read(node)
    if shape_error is not None:
        raise shape_error
    read = {j for i, e in enumerate(reader.spec) for j in e.get("inputs", [i - 1])}
    for i in range(len(reader.spec) - 1):
        if i not in read:
            raise ConversionError(f"{type(model).__name__} node {reader.origin[i]!r}: its result is never used; "
                                  "remove it from forward")
    spec = reader.spec
    weights = [e.pop("module", None) for e in spec]
    net = SeqNet(spec, input_shape)
    with torch.no_grad():
        for name, mod in zip(net.names, weights, strict=True):
            if mod is not None:
                layer = getattr(net, name)
                layer.weight.copy_(mod.weight)
                layer.bias.copy_(mod.bias if mod.bias is not None else torch.zeros_like(layer.bias))
    _check_function(net, model)
    return net


def _check_function(net: SeqNet, original: nn.Module) -> None:
    """Run both networks on one random image: a conversion that changed the function shows up here
    rather than as wrong int8 numbers later."""
    x = torch.rand(2, *net.input_shape)
    with torch.no_grad():
        y = net(x)
        was = original.training
        original.eval()
        ref = original(x)
        original.train(was)
    tol = 1e-5 + 1e-5 * float(ref.abs().max()) if ref.numel() else 1e-5
    if ref.shape != y.shape or not torch.allclose(ref, y, atol=tol, rtol=1e-4):
        raise ConversionError("the converted network computes something else than the original "
                              "(a layer is used in a way powerprune does not recognise)")


def spec_for_saving(net: SeqNet) -> dict:
    return {"layers": net.spec, "input_shape": list(net.input_shape)}


def from_spec(saved: dict) -> SeqNet:
    return SeqNet(saved["layers"], tuple(saved["input_shape"]))


# --- structured pruning: channels, coupled where they meet at an add ------------------------------

@dataclass(frozen=True)
class ChannelGroup:
    """Output channels that structured pruning keeps or drops together.

    ``producers`` are the conv/linear layers whose outputs are summed by ``add`` entries into one
    tensor (a residual stream): channel c of each is channel c of the sum, so removing it from one
    means removing it from all (Torch-Pruning's dependency groups). In a chain every group is a single
    layer. ``taps`` are the ReLU outputs of this channel space that APoZ reads (a ReLU right after a
    producer or after an add of the group), averaged per channel."""

    producers: tuple[str, ...]
    taps: tuple[str, ...]


def _structure(net: SeqNet, key: str, compute: Callable[[SeqNet], Any]) -> Any:
    """``compute(net)`` once per network: shapes and channel spaces depend only on the spec, which a
    SeqNet never changes (pruning builds a new one), and the width planner asks thousands of times."""
    cache = net.__dict__.setdefault("_structure_cache", {})
    if key not in cache:
        cache[key] = compute(net)
    return cache[key]


def _output_shapes(net: SeqNet) -> dict[int, tuple[int, ...]]:
    """Shape (without batch) of every entry's output, and of the input at ``INPUT``."""
    return _structure(net, "shapes", _compute_output_shapes)


def _compute_output_shapes(net: SeqNet) -> dict[int, tuple[int, ...]]:
    outputs: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        net(torch.zeros(1, *net.input_shape), outputs)
    shapes = {INPUT: tuple(net.input_shape)}
    shapes.update({i: tuple(outputs[n].shape[1:]) for i, n in enumerate(net.names)})
    return shapes


def output_shapes(net: SeqNet) -> dict[str, tuple[int, ...]]:
    """Output shape (without batch) of every layer by name; computed once per network."""
    shapes = _output_shapes(net)
    return {n: shapes[i] for i, n in enumerate(net.names)}


def _is_producer(entry: dict) -> bool:
    """A weight layer that makes a new channel space (a depthwise conv keeps its input's)."""
    return entry["type"] == "linear" or (entry["type"] == "conv" and entry["groups"] == 1)


def _channel_spaces(net: SeqNet) -> tuple[list[int], dict[int, int], set[int]]:
    return _structure(net, "spaces", _compute_channel_spaces)


def _compute_channel_spaces(net: SeqNet) -> tuple[list[int], dict[int, int], set[int]]:
    """Per entry, the channel space of its output (the index of a producer that made it, ``INPUT`` for
    the network's own channels), union-find roots of spaces joined by adds, and the spaces whose
    channels may not be removed: the input's, the output's, and any a depthwise conv with a channel
    multiplier or an add of differently flattened tensors reads."""
    parent: dict[int, int] = {INPUT: INPUT}

    def root(s: int) -> int:
        while parent[s] != s:
            parent[s] = parent[parent[s]]
            s = parent[s]
        return s

    shapes = _output_shapes(net)
    space: list[int] = []
    factor: list[int] = []  # flattened positions per channel (1 until a flatten)
    fixed: set[int] = {INPUT}
    for i, (e, src) in enumerate(zip(net.spec, net.sources, strict=True)):
        s0 = space[src[0]] if src[0] != INPUT else INPUT
        f0 = factor[src[0]] if src[0] != INPUT else 1
        if _is_producer(e):
            parent[i] = i
            space.append(i)
            factor.append(1)
            continue
        if e["type"] == "conv" and e["out"] != e["in"]:
            fixed.add(s0)  # depthwise with a channel multiplier: its channels are not its input's
        if e["type"] == "flatten":
            f0 *= pixels(shapes[src[0]])
        if e["type"] == "add":
            s1 = space[src[1]] if src[1] != INPUT else INPUT
            f1 = factor[src[1]] if src[1] != INPUT else 1
            if f0 != f1:
                fixed.update((s0, s1))
            parent[root(s1)] = root(s0)
        space.append(s0)
        factor.append(f0)
    fixed.add(space[-1])  # the network's outputs (the classes) stay
    roots = {s: root(s) for s in parent}
    return space, roots, {roots[s] for s in fixed}


def channel_groups(net: SeqNet) -> dict[str, ChannelGroup]:
    """The channel groups structured pruning may shrink, by the name of their first producer, in
    execution order. A group qualifies when APoZ has a ReLU to read in it and its channels are neither
    the network's input nor its output nor read by a depthwise conv with a channel multiplier. In a
    chain this is every conv/linear layer followed by a ReLU but the classifier."""
    space, roots, fixed = _channel_spaces(net)
    producers: dict[int, list[str]] = {}
    taps: dict[int, list[str]] = {}
    for i, (e, src) in enumerate(zip(net.spec, net.sources, strict=True)):
        r = roots[space[i]]
        if _is_producer(e):
            producers.setdefault(r, []).append(net.names[i])
        elif e["type"] in ("relu", "relu6") and src[0] != INPUT and (
                _is_producer(net.spec[src[0]]) or net.spec[src[0]]["type"] == "add"):
            taps.setdefault(r, []).append(net.names[i])
    return {p[0]: ChannelGroup(tuple(p), tuple(taps[r])) for r, p in producers.items()
            if r not in fixed and r in taps}


def _space_of_names(net: SeqNet, names: Any) -> dict[str, int]:
    """Each given producer name -> the root of its channel space, checked."""
    space, roots, _ = _channel_spaces(net)
    index = {n: i for i, n in enumerate(net.names)}
    out = {}
    for n in names:
        if n not in index or not _is_producer(net.spec[index[n]]):
            raise ValueError(f"{n} is not a conv/linear layer that makes output channels")
        out[n] = roots[space[index[n]]]
    if len(set(out.values())) != len(out):
        raise ValueError(f"{sorted(out)}: two of these layers' channels are coupled by an add; name each group once")
    return out


def _by_space(net: SeqNet, values: dict[str, Any]) -> tuple[list[int], dict[int, int], dict[int, Any]]:
    space, roots, _ = _channel_spaces(net)
    spaces = _space_of_names(net, values)
    return space, roots, {spaces[n]: v for n, v in values.items()}


def widths_param_count(net: SeqNet, widths: dict[str, Any]) -> Any:
    """Parameters of ``net`` with the given output widths (no weights are touched), keyed by a layer
    of each channel group (every producer of the group gets that width). Plain arithmetic along the
    graph, as ``rebuild_seqnet`` resizes it, so widths may be numpy arrays: a whole grid of width
    combinations is counted at once."""
    space, roots, width = _by_space(net, widths)
    shapes = _output_shapes(net)
    total: Any = 0
    channels: dict[int, Any] = {INPUT: None}  # per entry: its channels (or features) when resized, else None
    for i, (e, src) in enumerate(zip(net.spec, net.sources, strict=True)):
        c_in = channels[src[0]]
        if e["type"] == "conv" and e["groups"] > 1:  # depthwise: keeps its input's channels
            taps = e["kernel"][0] * e["kernel"][1]
            total = total + (e["in"] if c_in is None else c_in) * (taps + 1)
            channels[i] = c_in
        elif _is_producer(e):
            taps = e["kernel"][0] * e["kernel"][1] if e["type"] == "conv" else 1
            w = width.get(roots[space[i]])
            total = total + (e["out"] if w is None else w) * ((e["in"] if c_in is None else c_in) * taps + 1)
            channels[i] = w
        elif e["type"] == "flatten" and c_in is not None:
            channels[i] = c_in * pixels(shapes[src[0]])
        else:
            channels[i] = c_in
    return total


@torch.no_grad()
def rebuild_seqnet(net: SeqNet, keep: dict[str, np.ndarray]) -> SeqNet:
    """A smaller SeqNet with only the kept output channels (old indices) of the channel groups named in
    ``keep`` (by any of their layers): every producer of a group keeps the same channels, and every
    downstream input, depthwise channel, add and flatten column is sliced to match."""
    space, roots, kept_of = _by_space(net, {n: torch.as_tensor(np.asarray(v), dtype=torch.long)
                                            for n, v in keep.items()})
    shapes = _output_shapes(net)
    spec, cut = [], {}
    channels: dict[int, torch.Tensor | None] = {INPUT: None}  # kept channels (old indices); None = all
    for i, (name, entry, src) in enumerate(zip(net.names, net.spec, net.sources, strict=True)):
        e = {k: list(v) if isinstance(v, list) else v for k, v in entry.items()}
        c_in = channels[src[0]]
        if e["type"] == "conv" and e["groups"] > 1:
            ch = c_in if c_in is not None else torch.arange(e["in"])
            e["in"] = e["out"] = e["groups"] = len(ch)
            cut[name] = (ch, slice(None))
            channels[i] = c_in
        elif _is_producer(e):
            cols = c_in if c_in is not None else torch.arange(e["in"])
            kept = kept_of.get(roots[space[i]])
            rows = kept if kept is not None else torch.arange(e["out"])
            e["in"], e["out"] = len(cols), len(rows)
            cut[name] = (rows, cols)
            channels[i] = kept
        elif e["type"] == "flatten" and c_in is not None:
            hw = pixels(shapes[src[0]])
            channels[i] = (c_in[:, None] * hw + torch.arange(hw)[None, :]).flatten()
        elif e["type"] == "add" and (c_in is None) != (channels[src[1]] is None):
            raise ValueError(f"{name}: the channels kept on one side of this add cannot be removed on the other "
                             "(the network input's or output's channels)")
        else:
            channels[i] = c_in
        spec.append(e)
    new = SeqNet(spec, net.input_shape)
    for name, (rows, cols) in cut.items():
        src_layer, dst = getattr(net, name), getattr(new, name)
        dst.weight.copy_(src_layer.weight[rows][:, cols])
        dst.bias.copy_(src_layer.bias[rows])
        if name in net.masks:
            new.masks[name] = net.masks[name][rows][:, cols].clone()
    return new
