"""Write a RhythmNet as a TFLite flatbuffer directly, with LiteRT's own schema bindings.

Why not a converter: the TFLite converters (TensorFlow, litert-torch, onnx2tf) pull in
TensorFlow or JAX plus pinned pydantic/typing versions, far too heavy for a dependency of
a 70k-parameter model. The network uses only ops that map one-to-one onto TFLite
builtins (PAD, CONV_2D with fused ReLU, ADD, MEAN, REDUCE_MAX, CONCATENATION,
FULLY_CONNECTED, SOFTMAX), so it is written here from the folded weights, using only
``ai_edge_litert.schema_py_generated`` and ``flatbuffers`` (both come with ai-edge-litert).
A unit test checks the result against the torch model and the ONNX export.

Layout: the input is (1, 1, W) like the ONNX model's, reshaped to NHWC (1, 1, W, 1);
a 1D convolution is a CONV_2D with H = 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import flatbuffers  # type: ignore[import-untyped]
import numpy as np
import torch
from ai_edge_litert import schema_py_generated as tfl  # type: ignore[import-untyped]
from numpy.typing import NDArray

from cardiogate.models.rhythm.net import ConvBN, ResBlock, RhythmNet

RELU = tfl.ActivationFunctionType.RELU
NONE = tfl.ActivationFunctionType.NONE


def fold(conv_bn: ConvBN) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Batch norm folded into the convolution: (weights O,I,K; bias O)."""
    conv, bn = conv_bn[0], conv_bn[1]
    assert isinstance(conv, torch.nn.Conv1d) and isinstance(bn, torch.nn.BatchNorm1d)
    assert bn.running_var is not None and bn.running_mean is not None
    gain = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach()
    weight = conv.weight.detach() * gain[:, None, None]
    bias = (bn.bias - bn.running_mean * gain).detach()
    if conv.bias is not None:
        bias = bias + conv.bias.detach() * gain
    return weight.numpy().astype(np.float32), bias.numpy().astype(np.float32)


class GraphBuilder:
    """Accumulates tensors, constant buffers and operators of one subgraph."""

    def __init__(self) -> None:
        self.tensors: list[Any] = []
        self.buffers: list[Any] = [tfl.BufferT()]
        self.codes: dict[int, int] = {}
        self.operators: list[Any] = []

    def tensor(self, name: str, shape: tuple[int, ...], data: NDArray[Any] | None = None,
               dtype: int = tfl.TensorType.FLOAT32) -> int:
        t = tfl.TensorT()
        t.name, t.shape, t.type, t.buffer = name, list(shape), dtype, 0
        if data is not None:
            buf = tfl.BufferT()
            buf.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), dtype=np.uint8)
            self.buffers.append(buf)
            t.buffer = len(self.buffers) - 1
        self.tensors.append(t)
        return len(self.tensors) - 1

    def const_i32(self, name: str, values: list[int] | list[list[int]]) -> int:
        arr = np.asarray(values, dtype=np.int32)
        return self.tensor(name, arr.shape, arr, tfl.TensorType.INT32)

    def op(self, code: int, inputs: list[int], outputs: list[int], options_type: int = 0,
           options: Any = None) -> None:
        if code not in self.codes:
            self.codes[code] = len(self.codes)
        o = tfl.OperatorT()
        o.opcodeIndex, o.inputs, o.outputs = self.codes[code], inputs, outputs
        if options is not None:
            o.builtinOptionsType, o.builtinOptions = options_type, options
        self.operators.append(o)

    def finish(self, inputs: list[int], outputs: list[int], description: str) -> bytes:
        graph = tfl.SubGraphT()
        graph.tensors, graph.inputs, graph.outputs, graph.operators = self.tensors, inputs, outputs, self.operators
        graph.name = "main"
        model = tfl.ModelT()
        model.version, model.description, model.subgraphs, model.buffers = 3, description, [graph], self.buffers
        model.operatorCodes = []
        for code in sorted(self.codes, key=self.codes.__getitem__):
            oc = tfl.OperatorCodeT()
            oc.builtinCode, oc.deprecatedBuiltinCode, oc.version = code, min(code, 127), 1
            model.operatorCodes.append(oc)
        builder = flatbuffers.Builder(1024)
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        return bytes(builder.Output())


class RhythmWriter:
    """Emits the ops of a RhythmNet layer by layer, tracking the (length, channels) of the signal."""

    def __init__(self, window: int) -> None:
        self.g = GraphBuilder()
        self.input = self.g.tensor("ecg", (1, 1, window))
        self.x = self.g.tensor("ecg_nhwc", (1, 1, window, 1))
        shape = self.g.const_i32("ecg_nhwc_shape", [1, 1, window, 1])
        opts = tfl.ReshapeOptionsT()
        opts.newShape = [1, 1, window, 1]
        self.g.op(tfl.BuiltinOperator.RESHAPE, [self.input, shape], [self.x], tfl.BuiltinOptions.ReshapeOptions, opts)
        self.length, self.channels = window, 1
        self.count = 0

    def conv(self, layer: ConvBN, activation: int, src: int | None = None,
             src_shape: tuple[int, int] | None = None) -> tuple[int, tuple[int, int]]:
        """CONV_2D (after an explicit PAD, so strided outputs align with torch's symmetric padding)."""
        conv = layer[0]
        assert isinstance(conv, torch.nn.Conv1d)
        x = self.x if src is None else src
        length, channels = (self.length, self.channels) if src_shape is None else src_shape
        k, s, d, p = conv.kernel_size[0], conv.stride[0], conv.dilation[0], int(conv.padding[0])
        self.count += 1
        name = f"conv{self.count}"
        if p:
            padded = self.g.tensor(f"{name}_pad", (1, 1, length + 2 * p, channels))
            pads = self.g.const_i32(f"{name}_pads", [[0, 0], [0, 0], [p, p], [0, 0]])
            self.g.op(tfl.BuiltinOperator.PAD, [x, pads], [padded], tfl.BuiltinOptions.PadOptions, tfl.PadOptionsT())
            x, length = padded, length + 2 * p
        weight, bias = fold(layer)
        out_len = (length - d * (k - 1) - 1) // s + 1
        w = self.g.tensor(f"{name}_w", (weight.shape[0], 1, k, channels), weight.transpose(0, 2, 1)[:, None, :, :])
        b = self.g.tensor(f"{name}_b", (weight.shape[0],), bias)
        y = self.g.tensor(name, (1, 1, out_len, weight.shape[0]))
        opts = tfl.Conv2DOptionsT()
        opts.padding, opts.strideW, opts.strideH = tfl.Padding.VALID, s, 1
        opts.dilationWFactor, opts.dilationHFactor, opts.fusedActivationFunction = d, 1, activation
        self.g.op(tfl.BuiltinOperator.CONV_2D, [x, w, b], [y], tfl.BuiltinOptions.Conv2DOptions, opts)
        return y, (out_len, weight.shape[0])

    def block(self, block: ResBlock) -> None:
        src, src_shape = self.x, (self.length, self.channels)
        y, shape = self.conv(block.conv1, RELU)
        y, shape = self.conv(block.conv2, NONE, y, shape)
        skip, skip_shape = self.conv(block.skip, NONE, src, src_shape)
        assert skip_shape == shape, (skip_shape, shape)
        out = self.g.tensor(f"add{self.count}", (1, 1, *shape))
        opts = tfl.AddOptionsT()
        opts.fusedActivationFunction = RELU
        self.g.op(tfl.BuiltinOperator.ADD, [y, skip], [out], tfl.BuiltinOptions.AddOptions, opts)
        self.x, (self.length, self.channels) = out, shape

    def head(self, linear: torch.nn.Linear) -> int:
        axes = self.g.const_i32("pool_axes", [1, 2])
        pooled = []
        for code, tag in ((tfl.BuiltinOperator.MEAN, "avg"), (tfl.BuiltinOperator.REDUCE_MAX, "max")):
            t = self.g.tensor(f"pool_{tag}", (1, self.channels))
            opts = tfl.ReducerOptionsT()
            opts.keepDims = False
            self.g.op(code, [self.x, axes], [t], tfl.BuiltinOptions.ReducerOptions, opts)
            pooled.append(t)
        cat = self.g.tensor("pooled", (1, 2 * self.channels))
        copts = tfl.ConcatenationOptionsT()
        copts.axis, copts.fusedActivationFunction = 1, NONE
        self.g.op(tfl.BuiltinOperator.CONCATENATION, pooled, [cat], tfl.BuiltinOptions.ConcatenationOptions, copts)
        n_out = linear.out_features
        w = self.g.tensor("fc_w", (n_out, 2 * self.channels), linear.weight.detach().numpy().astype(np.float32))
        b = self.g.tensor("fc_b", (n_out,), linear.bias.detach().numpy().astype(np.float32))
        logits = self.g.tensor("logits", (1, n_out))
        fopts = tfl.FullyConnectedOptionsT()
        fopts.fusedActivationFunction = NONE
        self.g.op(tfl.BuiltinOperator.FULLY_CONNECTED, [cat, w, b], [logits],
                  tfl.BuiltinOptions.FullyConnectedOptions, fopts)
        probs = self.g.tensor("probabilities", (1, n_out))
        sopts = tfl.SoftmaxOptionsT()
        sopts.beta = 1.0
        self.g.op(tfl.BuiltinOperator.SOFTMAX, [logits], [probs], tfl.BuiltinOptions.SoftmaxOptions, sopts)
        return probs


def rhythm_tflite(net: RhythmNet, window: int, description: str = "cardiogate rhythm") -> bytes:
    """The TFLite flatbuffer of ``net`` (in eval mode) for one (1, 1, window) input."""
    net = net.eval()
    writer = RhythmWriter(window)
    stem = net.stem[0]
    assert isinstance(stem, ConvBN)
    writer.x, (writer.length, writer.channels) = writer.conv(stem, RELU)
    for block in net.blocks:
        assert isinstance(block, ResBlock)
        writer.block(block)
    probs = writer.head(net.head)
    return writer.g.finish([writer.input], [probs], description)


def write_rhythm_tflite(net: RhythmNet, window: int, path: Path) -> Path:
    path.write_bytes(rhythm_tflite(net, window))
    return path
