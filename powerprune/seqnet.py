"""Bring your own model: any PyTorch network that is a chain of supported layers becomes a ``SeqNet``.

A ``SeqNet`` is the float-side twin of the int8 ``Graph``: an ordered list of layers described by a
plain spec (so it saves without pickling code and loads with ``weights_only``), holding the user's own
weights. ``from_torch`` reads a model with ``torch.fx``, so a custom ``forward`` written with
``torch.relu``, ``x.view(x.size(0), -1)`` or ``F.max_pool2d`` works as well as an ``nn.Sequential``.

Supported: Conv2d (regular or depthwise, zero padding that TFLite's SAME or VALID can express),
Linear, ReLU, ReLU6, MaxPool2d, AvgPool2d (no padding), Flatten/view/reshape to (N, features), and
Dropout/Identity (dropped; they do nothing at inference). Anything else is refused by name.
"""

from __future__ import annotations

import copy
import inspect
import operator
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


def pixels(shape: tuple[int, ...]) -> int:
    """Spatial positions of an activation (C, H, W) -> H x W; a feature vector has one."""
    return int(shape[1] * shape[2]) if len(shape) == 3 else 1


SUPPORTED = "Conv2d, Linear, ReLU, ReLU6, MaxPool2d, AvgPool2d, Flatten/view, Dropout, Identity"


class ConversionError(ValueError):
    """The model uses a layer, a padding or a topology powerprune cannot run on the MCU."""


def _pair(v: Any) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


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
    raise ConversionError(f"unknown layer type {t!r} in a model spec")


_PREFIX = {"conv": "conv", "linear": "fc", "relu": "relu", "relu6": "relu", "maxpool": "pool",
           "avgpool": "pool", "flatten": "flatten"}


class SeqNet(nn.Module):
    """The float model: a chain of layers named ``conv0``, ``relu1``, ``pool2``, ``fc5``... after their
    position. ``layer_names`` are its weight layers (conv/linear) in execution order; ``masks`` (name ->
    0/1 tensor) keep unstructured-pruned weights at exactly zero."""

    def __init__(self, spec: list[dict], input_shape: tuple[int, int, int]):
        super().__init__()
        self.spec = [dict(e) for e in spec]
        self._input_shape = tuple(int(v) for v in input_shape)
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

    def apply_masks(self) -> None:
        """Re-zero masked weights; called after every optimizer step so zeros stay exact."""
        with torch.no_grad():
            for name, mask in self.masks.items():
                getattr(self, name).weight.mul_(mask)

    def forward(self, x: torch.Tensor, outputs: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """``outputs``, when given, receives every layer's output by name (for calibration)."""
        for name in self.names:
            x = getattr(self, name)(x)
            if outputs is not None:
                outputs[name] = x
        return x


# --- conversion -----------------------------------------------------------------------------------

_RELU_FUNCS = {torch.relu, F.relu, torch.nn.functional.relu}
_FLATTEN_METHODS = {"view", "reshape", "flatten"}
_SKIP_FUNCS = {F.dropout, torch.dropout}


def _entry_for_module(mod: nn.Module, where: str) -> dict | None:
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
        if mod.bias is None:
            raise ConversionError(f"{where}: Conv2d without bias is not supported (use bias=True)")
        return {"type": "conv", "in": mod.in_channels, "out": mod.out_channels,
                "kernel": list(_pair(mod.kernel_size)), "stride": list(_pair(mod.stride)),
                "padding": list(pad), "groups": mod.groups, "module": mod}
    if isinstance(mod, nn.Linear):
        if mod.bias is None:
            raise ConversionError(f"{where}: Linear without bias is not supported (use bias=True)")
        return {"type": "linear", "in": mod.in_features, "out": mod.out_features, "module": mod}
    if isinstance(mod, nn.ReLU):
        return {"type": "relu"}
    if isinstance(mod, nn.ReLU6):
        return {"type": "relu6"}
    if isinstance(mod, nn.MaxPool2d | nn.AvgPool2d):
        kind = "maxpool" if isinstance(mod, nn.MaxPool2d) else "avgpool"
        stride = mod.stride if mod.stride is not None else mod.kernel_size
        dil = getattr(mod, "dilation", 1)
        if _pair(mod.padding) != (0, 0) or mod.ceil_mode or _pair(dil) != (1, 1):
            raise ConversionError(f"{where}: pooling with padding, dilation or ceil_mode is not supported")
        return {"type": kind, "kernel": list(_pair(mod.kernel_size)), "stride": list(_pair(stride))}
    if isinstance(mod, nn.Flatten):
        return {"type": "flatten"}
    if isinstance(mod, nn.Dropout | nn.Identity):
        return None
    raise ConversionError(f"{where}: layer {type(mod).__name__} is not supported (supported: {SUPPORTED})")


def _entry_for_function(node: torch.fx.Node, where: str) -> dict | None:
    fn = node.target
    if fn in _RELU_FUNCS:
        return {"type": "relu"}
    if fn is F.relu6:
        return {"type": "relu6"}
    if fn in (F.max_pool2d, F.avg_pool2d):
        args = list(node.args[1:]) + [None] * 2
        k = node.kwargs.get("kernel_size", args[0])
        s = node.kwargs.get("stride", args[1]) or k
        return {"type": "maxpool" if fn is F.max_pool2d else "avgpool", "kernel": list(_pair(k)),
                "stride": list(_pair(s))}
    if fn is torch.flatten:
        return {"type": "flatten"}
    if fn in _SKIP_FUNCS:
        return None
    raise ConversionError(f"{where}: function {getattr(fn, '__name__', fn)} is not supported "
                          f"(supported: {SUPPORTED})")


def from_torch(model: nn.Module, input_shape: tuple[int, int, int]) -> SeqNet:
    """Read ``model`` (any nn.Module whose forward is a chain of supported layers) into a SeqNet that
    holds copies of its weights. ``input_shape`` is one image as (channels, height, width)."""
    if isinstance(model, SeqNet):
        return model
    concrete = {name: p.default for i, (name, p) in enumerate(inspect.signature(model.forward).parameters.items())
                if i > 0 and p.default is not inspect.Parameter.empty}
    try:
        gm = torch.fx.symbolic_trace(model, concrete_args=concrete or None)
    except Exception as exc:  # fx raises many types for data-dependent control flow
        raise ConversionError(f"cannot trace {type(model).__name__}.forward with torch.fx ({exc}); "
                              "write forward as a plain chain of layers") from exc
    modules = dict(gm.named_modules())
    spec: list[dict] = []
    current: torch.fx.Node | None = None
    ignored: set[torch.fx.Node] = set()
    for node in gm.graph.nodes:
        where = f"{type(model).__name__} node {node.name!r}"
        if node.op == "placeholder":
            if current is None:
                current = node
            continue
        if node.op == "output":
            if node.args[0] is not current:
                raise ConversionError(f"{where}: the model must return the last layer's output")
            break
        if node.op == "get_attr":
            raise ConversionError(f"{where}: direct parameter use is not supported; use nn layers")
        if node.op == "call_function" and getattr(node.target, "__name__", "") == "_assert_is_none":
            continue  # fx's guard for an optional argument we fixed to its default
        if node.op == "call_method" and node.target == "size":
            ignored.add(node)  # feeds x.view(x.size(0), -1)
            continue
        if node.op == "call_function" and node.target is operator.getitem and node.args[0] in ignored:
            ignored.add(node)
            continue
        others = [a for a in (*node.args[1:], *node.kwargs.values()) if isinstance(a, torch.fx.Node)]
        if not node.args or node.args[0] is not current or any(a not in ignored for a in others):
            raise ConversionError(f"{where}: the network must be a single chain of layers "
                                  "(branches and residual connections are not supported)")
        if node.op == "call_module":
            entry = _entry_for_module(modules[node.target], f"{where} ({node.target})")
        elif node.op == "call_function":
            entry = _entry_for_function(node, where)
        elif node.op == "call_method" and node.target in _FLATTEN_METHODS:
            entry = {"type": "flatten", "check": node}
        elif node.op == "call_method" and node.target == "relu":
            entry = {"type": "relu"}
        else:
            raise ConversionError(f"{where}: {node.op} {node.target} is not supported (supported: {SUPPORTED})")
        current = node
        if entry is not None:
            spec.append(entry)
    weights = [e.pop("module", None) for e in spec]
    checks = [e.pop("check", None) for e in spec]
    net = SeqNet(spec, input_shape)
    with torch.no_grad():
        for name, mod in zip(net.names, weights, strict=True):
            if mod is not None:
                getattr(net, name).load_state_dict(copy.deepcopy(mod.state_dict()))
    _check_shapes(net, model, checks)
    return net


def _check_shapes(net: SeqNet, original: nn.Module, checks: list) -> None:
    """Run both networks on one random image: a view that is not a flatten, or a conversion that
    changed the function, shows up here rather than as wrong int8 numbers later."""
    x = torch.rand(2, *net.input_shape)
    outputs: dict[str, torch.Tensor] = {}
    try:
        with torch.no_grad():
            y = net(x, outputs)
            was = original.training
            original.eval()
            ref = original(x)
            original.train(was)
    except RuntimeError as exc:
        raise ConversionError(f"the model does not accept inputs of shape {tuple(net.input_shape)}: {exc}") from exc
    for name, check in zip(net.names, checks, strict=True):
        if check is not None and outputs[name].dim() != 2:
            raise ConversionError(f"{check.name}: a view/reshape is only supported as a flatten to (N, features)")
    if ref.shape != y.shape or not torch.allclose(ref, y, atol=1e-5, rtol=1e-4):
        raise ConversionError("the converted network computes something else than the original "
                              "(a layer is used in a way powerprune does not recognise)")


def spec_for_saving(net: SeqNet) -> dict:
    return {"layers": net.spec, "input_shape": list(net.input_shape)}


def from_spec(saved: dict) -> SeqNet:
    return SeqNet(saved["layers"], tuple(saved["input_shape"]))


# --- structured pruning: channels of a chain ------------------------------------------------------

def channel_layers(net: SeqNet) -> dict[str, str]:
    """Weight layers whose output channels can be removed, each with the activation APoZ reads.

    A layer qualifies when a ReLU/ReLU6 follows it and its channels reach the next conv/linear
    layer only through pools, flattens, activations and depthwise convs (which lose the same
    channels). The last weight layer (the classifier) never qualifies."""
    out: dict[str, str] = {}
    weight_idx = [i for i, e in enumerate(net.spec) if e["type"] in ("conv", "linear")]
    for i in weight_idx[:-1]:
        e = net.spec[i]
        if e["type"] == "conv" and e["groups"] > 1:
            continue  # depthwise: its channels are its input's
        if i + 1 >= len(net.spec) or net.spec[i + 1]["type"] not in ("relu", "relu6"):
            continue
        ok = True
        for later in net.spec[i + 2:]:
            if later["type"] == "linear" or (later["type"] == "conv" and later["groups"] == 1):
                break
            if later["type"] == "conv" and later["out"] != later["in"]:
                ok = False  # depthwise with a channel multiplier
                break
        if ok:
            out[net.names[i]] = net.names[i + 1]
    return out


def _flatten_sizes(net: SeqNet) -> dict[str, int]:
    """Pixels per channel at each flatten (1 when it flattens features)."""
    outputs: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        net(torch.zeros(1, *net.input_shape), outputs)
    sizes, prev = {}, tuple(net.input_shape)
    for name, entry in zip(net.names, net.spec, strict=True):
        if entry["type"] == "flatten":
            sizes[name] = pixels(prev)
        prev = tuple(outputs[name].shape[1:])
    return sizes


def _slices(net: SeqNet, keep: dict[str, torch.Tensor]) -> tuple[list[dict], dict[str, tuple]]:
    """The resized spec and, per weight layer, the (rows, cols) of its old weight that stay."""
    flat = _flatten_sizes(net)
    spec, cut = [], {}
    channels: torch.Tensor | None = None  # kept channels (old indices) of the running tensor; None = all
    for name, entry in zip(net.names, net.spec, strict=True):
        e = dict(entry)
        kind = e["type"]
        if kind == "conv" and e["groups"] > 1:
            ch = channels if channels is not None else torch.arange(e["in"])
            e["in"] = e["out"] = e["groups"] = len(ch)
            cut[name] = (ch, slice(None))
        elif kind in ("conv", "linear"):
            cols = channels if channels is not None else torch.arange(e["in"])
            rows = keep.get(name, torch.arange(e["out"]))
            e["in"], e["out"] = len(cols), len(rows)
            cut[name] = (rows, cols)
            channels = keep.get(name)
        elif kind == "flatten" and channels is not None:
            hw = flat[name]
            channels = (channels[:, None] * hw + torch.arange(hw)[None, :]).flatten()
        spec.append(e)
    return spec, cut


def widths_param_count(net: SeqNet, widths: dict[str, Any]) -> Any:
    """Parameters of ``net`` with the given output widths (no weights are touched). Plain arithmetic
    along the chain, as ``_slices`` resizes it, so widths may be numpy arrays: a whole grid of width
    combinations is counted at once."""
    flat = _flatten_sizes(net)
    total: Any = 0
    channels: Any = None  # channels (or features) of the running tensor when a layer upstream was resized
    for name, e in zip(net.names, net.spec, strict=True):
        if e["type"] == "conv":
            taps = e["kernel"][0] * e["kernel"][1]
            if e["groups"] > 1:  # depthwise: keeps its input's channels
                total = total + (e["in"] if channels is None else channels) * (taps + 1)
                continue
            out = widths.get(name, e["out"])
            total = total + out * ((e["in"] if channels is None else channels) * taps + 1)
            channels = widths.get(name)
        elif e["type"] == "linear":
            out = widths.get(name, e["out"])
            total = total + out * ((e["in"] if channels is None else channels) + 1)
            channels = widths.get(name)
        elif e["type"] == "flatten" and channels is not None:
            channels = channels * flat[name]
    return total


@torch.no_grad()
def rebuild_seqnet(net: SeqNet, keep: dict[str, np.ndarray]) -> SeqNet:
    """A smaller SeqNet with only the kept output channels of the layers in ``keep`` (old indices)
    and every downstream input, depthwise channel and flatten column sliced to match."""
    k = {n: torch.as_tensor(np.asarray(v), dtype=torch.long) for n, v in keep.items()}
    spec, cut = _slices(net, k)
    new = SeqNet(spec, net.input_shape)
    for name, (rows, cols) in cut.items():
        src, dst = getattr(net, name), getattr(new, name)
        dst.weight.copy_(src.weight[rows][:, cols])
        dst.bias.copy_(src.bias[rows])
        if name in net.masks:
            new.masks[name] = net.masks[name][rows][:, cols].clone()
    return new
