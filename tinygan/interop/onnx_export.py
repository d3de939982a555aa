"""Export a tinygan network to ONNX, built node by node with the ``onnx`` package's helpers.

Each layer kind has one small function in :data:`CONVERTERS` that appends its ONNX nodes and
weights; :func:`to_onnx` walks the network (:func:`tinygan.interop.trace_layers`) and chains them.
The graph computes tinygan's forward pass in evaluation mode:

* ``Dense`` -> ``Gemm`` (tinygan's ``W`` is already (in, out), so no transpose);
* ``Conv2D`` / ``ConvTranspose2D`` -> ``Conv`` / ``ConvTranspose`` with explicit
  ``[top, left, bottom, right]`` pads. Keras' ``"same"`` puts the odd row after, which ONNX pads
  express exactly (a transposed convolution's pads crop the full output, as tinygan does);
* ``BatchNorm`` -> ``BatchNormalization`` with the running mean and variance;
* ``UpSampling2D`` -> ``Resize`` nearest with ``asymmetric`` coordinates and ``floor`` rounding:
  output pixel ``i`` reads input ``i // scale``, tinygan's repeat;
* ``Dropout`` -> ``Identity`` (evaluation mode keeps every unit and does not rescale);
* ``Reshape`` -> ``Reshape`` with a leading 0 (keep the batch size), ``Flatten`` -> ``Flatten``.

The batch axis is dynamic (``batch``). The model's ``metadata_props`` say what the file holds:
preset, latent size, noise, output range (see :func:`tinygan.interop.export_metadata`).

Needs the ``onnx`` extra; importing this module imports ``onnx``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tinygan.atomic import write_atomically
from tinygan.backend import to_numpy
from tinygan.interop import NoCounterpartError, export_metadata, input_shape, trace_layers
from tinygan.models import Preset
from tinygan.nn import (
    BatchNorm,
    Conv2D,
    ConvTranspose2D,
    Dense,
    Dropout,
    Flatten,
    Layer,
    LeakyReLU,
    Maxout,
    MaxPool2D,
    ReLU,
    Reshape,
    Sigmoid,
    Tanh,
    UpSampling2D,
)

#: Opset 17 holds every operator used here in its current form and is read by ONNX Runtime >= 1.13.
OPSET = 17
#: The IR version that goes with opset 17; onnx's newest default would shut out older runtimes.
IR_VERSION = 8


class GraphBuilder:
    """Collects nodes and initializers; every tensor name is made unique from its layer's index."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []

    def weight(self, name: str, value: np.ndarray) -> str:
        """Store ``value`` as a float32 initializer called ``name``; returns the name."""
        array = np.ascontiguousarray(to_numpy(value), dtype=np.float32)
        self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def constant(self, name: str, value: np.ndarray) -> str:
        """Store ``value`` with its own dtype (shapes are int64, scales float32)."""
        self.initializers.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], output: str, **attributes: object) -> str:
        """Append one node with a single output; returns the output's name."""
        self.nodes.append(helper.make_node(op, inputs, [output], name=output, **attributes))
        return output


Shape = tuple[int, ...]

#: A converter gets the builder, the layer, its per-sample input and output shapes, the name of its
#: input tensor and a prefix for the names it creates; it returns the name of its output tensor.
Converter = Callable[[GraphBuilder, Layer, Shape, Shape, str, str], str]


def dense(
    g: GraphBuilder, layer: Dense, shape_in: Shape, shape_out: Shape, x: str, name: str
) -> str:
    inputs = [x, g.weight(f"{name}.W", layer.params["W"])]
    if "b" in layer.params:
        inputs.append(g.weight(f"{name}.b", layer.params["b"]))
    return g.node("Gemm", inputs, name)


def maxout(
    g: GraphBuilder, layer: Maxout, shape_in: Shape, shape_out: Shape, x: str, name: str
) -> str:
    """The affine map to units * pieces features, viewed as (units, pieces), maxed over pieces."""
    z = g.node("Gemm", _kernel_inputs(g, layer, x, name), f"{name}.affine")
    shape = g.constant(f"{name}.shape", np.array([0, layer.units, layer.pieces], dtype=np.int64))
    grouped = g.node("Reshape", [z, shape], f"{name}.pieces")
    return g.node("ReduceMax", [grouped], name, axes=[2], keepdims=0)


def _kernel_inputs(g: GraphBuilder, layer: Layer, x: str, name: str) -> list[str]:
    # tinygan and ONNX share both weight layouts: Conv (out, in, kh, kw), ConvTranspose (in, out, ...)
    inputs = [x, g.weight(f"{name}.W", layer.params["W"])]
    if "b" in layer.params:
        inputs.append(g.weight(f"{name}.b", layer.params["b"]))
    return inputs


def conv(
    g: GraphBuilder, layer: Conv2D, shape_in: Shape, shape_out: Shape, x: str, name: str
) -> str:
    top, bottom, left, right = layer.padding_for(shape_in[1:])
    return g.node(
        "Conv",
        _kernel_inputs(g, layer, x, name),
        name,
        kernel_shape=list(layer.kernel_size),
        strides=list(layer.stride),
        pads=[top, left, bottom, right],
    )


def conv_transpose(
    g: GraphBuilder, layer: ConvTranspose2D, shape_in: Shape, shape_out: Shape, x: str, name: str
) -> str:
    out, (top, _, left, _) = layer.output_geometry(shape_in[1:])
    # Every input pixel stamps the whole kernel onto a "full" output; tinygan keeps the window of
    # size `out` starting at (top, left). ONNX crops pads_begin / pads_end from the full output and
    # appends output_padding rows at the end, which covers an output reaching past the full one.
    full = [
        (n - 1) * s + k
        for n, s, k in zip(shape_in[1:], layer.stride, layer.kernel_size, strict=True)
    ]
    ends = [f - begin - o for f, begin, o in zip(full, (top, left), out, strict=True)]
    return g.node(
        "ConvTranspose",
        _kernel_inputs(g, layer, x, name),
        name,
        kernel_shape=list(layer.kernel_size),
        strides=list(layer.stride),
        pads=[top, left, max(ends[0], 0), max(ends[1], 0)],
        output_padding=[max(-ends[0], 0), max(-ends[1], 0)],
    )


def batchnorm(
    g: GraphBuilder, layer: BatchNorm, shape_in: Shape, shape_out: Shape, x: str, name: str
) -> str:
    inputs = [
        x,
        g.weight(f"{name}.gamma", layer.params["gamma"]),
        g.weight(f"{name}.beta", layer.params["beta"]),
        g.weight(f"{name}.mean", layer.buffers["mean"]),
        g.weight(f"{name}.var", layer.buffers["var"]),
    ]
    return g.node("BatchNormalization", inputs, name, epsilon=float(layer.eps))


def maxpool(
    g: GraphBuilder, layer: MaxPool2D, shape_in: Shape, shape_out: Shape, x: str, name: str
) -> str:
    return g.node("MaxPool", [x], name, kernel_shape=list(layer.size), strides=list(layer.stride))


def upsampling(
    g: GraphBuilder, layer: UpSampling2D, shape_in: Shape, shape_out: Shape, x: str, name: str
) -> str:
    scales = g.constant(f"{name}.scales", np.array([1, 1, *layer.scale], dtype=np.float32))
    return g.node(
        "Resize",
        [x, "", scales],  # no region of interest
        name,
        mode="nearest",
        coordinate_transformation_mode="asymmetric",
        nearest_mode="floor",
    )


def reshape(
    g: GraphBuilder, layer: Reshape, shape_in: Shape, shape_out: Shape, x: str, name: str
) -> str:
    if isinstance(layer, Flatten):
        return g.node("Flatten", [x], name, axis=1)
    # 0 copies the batch size from the input; the sample shape is the one tinygan computed
    shape = g.constant(f"{name}.shape", np.array([0, *shape_out], dtype=np.int64))
    return g.node("Reshape", [x, shape], name)


def _simple(op: str, **attributes: Callable[[Layer], object]) -> Converter:
    """A converter for a one-input operator whose attributes come from the layer."""

    def convert(
        g: GraphBuilder, layer: Layer, shape_in: Shape, shape_out: Shape, x: str, name: str
    ) -> str:
        return g.node(op, [x], name, **{key: get(layer) for key, get in attributes.items()})

    return convert


#: Layer kind -> converter, looked up with isinstance in this order (Flatten is a Reshape).
CONVERTERS: dict[type, Converter] = {
    Dense: dense,
    Maxout: maxout,
    Conv2D: conv,
    ConvTranspose2D: conv_transpose,
    BatchNorm: batchnorm,
    MaxPool2D: maxpool,
    UpSampling2D: upsampling,
    Reshape: reshape,
    ReLU: _simple("Relu"),
    LeakyReLU: _simple("LeakyRelu", alpha=lambda layer: float(layer.alpha)),
    Sigmoid: _simple("Sigmoid"),
    Tanh: _simple("Tanh"),
    Dropout: _simple("Identity"),
}


def to_onnx(
    network: Layer,
    sample_shape: tuple[int, ...],
    input_name: str = "x",
    output_name: str = "y",
    metadata: dict[str, str] | None = None,
    graph_name: str = "tinygan",
) -> onnx.ModelProto:
    """An ONNX model computing ``network``'s evaluation-mode forward pass, batch axis dynamic.

    Parameters
    ----------
    network : Layer
        A leaf layer or a (nested) Sequential of the layers in :data:`CONVERTERS`.
    sample_shape : tuple of int
        Shape of one input sample.
    input_name, output_name : str
        Names of the graph's input and output.
    metadata : dict of str to str, optional
        Stored as the model's ``metadata_props``.

    Raises
    ------
    NoCounterpartError
        A layer kind without an ONNX counterpart here.
    """
    g = GraphBuilder()
    x = input_name
    traced = trace_layers(network, sample_shape)
    for index, item in enumerate(traced):
        layer = item.layer
        convert = next((c for kind, c in CONVERTERS.items() if isinstance(layer, kind)), None)
        if convert is None:
            raise NoCounterpartError(f"no ONNX export for {type(layer).__name__}")
        name = f"{index}.{type(layer).__name__.lower()}"
        x = convert(g, layer, item.input_shape, item.output_shape, x, name)
    # the last node writes the graph's output (a network of no layers would be an Identity)
    if g.nodes:
        g.nodes[-1].output[0] = output_name
    else:
        g.node("Identity", [x], output_name)
    out_shape = traced[-1].output_shape if traced else tuple(sample_shape)
    graph = helper.make_graph(
        g.nodes,
        graph_name,
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["batch", *sample_shape])],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, ["batch", *out_shape])],
        initializer=g.initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="tinygan",
        ir_version=IR_VERSION,
    )
    if metadata:
        helper.set_model_props(model, metadata)
    onnx.checker.check_model(model, full_check=True)
    return model


def export_onnx(
    network: Layer, preset: Preset, network_kind: str, path: str | os.PathLike
) -> onnx.ModelProto:
    """Write a preset's ``generator`` (input ``z``, output ``images``) or ``discriminator`` (input
    ``x``, output ``logits``) to ``path`` as ONNX, with the preset's facts as metadata.

    The file is written atomically: an existing file at ``path`` is replaced only once the new one
    is complete.
    """
    names = ("z", "images") if network_kind == "generator" else ("x", "logits")
    model = to_onnx(
        network,
        input_shape(preset, network_kind),
        *names,
        metadata=export_metadata(preset, network_kind),
        graph_name=f"tinygan {preset.name} {network_kind}",
    )
    data = model.SerializeToString()
    write_atomically(Path(path), lambda file: file.write(data))
    return model
