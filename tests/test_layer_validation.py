"""Every layer checks its constructor arguments, its input's dtype and shape, and the shape of the
upstream gradient, with one-line messages naming the layer; Sequential says which child failed."""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import pytest

from tinygan.backend import make_rng, to_device, to_numpy
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
    MinibatchStd,
    ReLU,
    Reshape,
    Sequential,
    Sigmoid,
    SpectralConv2D,
    SpectralDense,
    Tanh,
    UpSampling2D,
)


def esc(value: object) -> str:
    return re.escape(str(value))


# (name, factory, a good input shape) for every layer class; the factory takes the device.
LAYERS: list[tuple[str, Callable[[str], Layer], tuple[int, ...]]] = [
    ("Dense", lambda d: Dense(4, 3, rng=np.random.default_rng(0)).to(d), (2, 4)),
    ("Conv2D", lambda d: Conv2D(3, 2, 3, rng=np.random.default_rng(0)).to(d), (2, 3, 5, 5)),
    (
        "ConvTranspose2D",
        lambda d: ConvTranspose2D(3, 2, 3, stride=2, rng=np.random.default_rng(0)).to(d),
        (2, 3, 4, 4),
    ),
    ("BatchNorm", lambda d: BatchNorm(3).to(d), (4, 3, 2, 2)),
    ("ReLU", lambda d: ReLU(), (2, 3, 4)),
    ("LeakyReLU", lambda d: LeakyReLU(0.2), (2, 3, 4)),
    ("Sigmoid", lambda d: Sigmoid(), (2, 3, 4)),
    ("Tanh", lambda d: Tanh(), (2, 3, 4)),
    ("Dropout", lambda d: Dropout(0.5, rng=make_rng(0, d)), (2, 3, 4)),
    ("MaxPool2D", lambda d: MaxPool2D(2), (2, 3, 4, 4)),
    ("UpSampling2D", lambda d: UpSampling2D(2), (2, 3, 2, 2)),
    ("Reshape", lambda d: Reshape((2, 6)), (2, 12)),
    ("Flatten", lambda d: Flatten(), (2, 3, 4)),
    ("Maxout", lambda d: Maxout(4, 3, 2, rng=np.random.default_rng(0)).to(d), (2, 4)),
    ("MinibatchStd", lambda d: MinibatchStd(), (4, 3, 2, 2)),
    ("SpectralDense", lambda d: SpectralDense(4, 3, rng=np.random.default_rng(0)).to(d), (2, 4)),
    (
        "SpectralConv2D",
        lambda d: SpectralConv2D(3, 2, 3, rng=np.random.default_rng(0)).to(d),
        (2, 3, 5, 5),
    ),
]
LAYER_IDS = [name for name, _, _ in LAYERS]


def inputs(shape: tuple[int, ...], dtype: object, device: str) -> object:
    values = np.random.default_rng(1).standard_normal(shape)
    return to_device(values.astype(dtype), device)


# -- dtypes ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, make, shape", LAYERS, ids=LAYER_IDS)
@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8, np.bool_, np.complex64])
def test_non_floating_input_raises_type_error_naming_the_layer(device, name, make, shape, dtype):
    layer = make(device)
    x = to_device(np.zeros(shape, dtype=dtype), device)
    got = np.dtype(dtype).name
    with pytest.raises(TypeError, match=rf"^{name} expects a floating-point array, got {got}$"):
        layer.forward(x)


@pytest.mark.parametrize("name, make, shape", LAYERS, ids=LAYER_IDS)
def test_non_array_input_raises_type_error(name, make, shape):
    with pytest.raises(TypeError, match=rf"^{name} expects a floating-point array, got list$"):
        make("cpu").forward(np.zeros(shape).tolist())


@pytest.mark.parametrize("name, make, shape", LAYERS, ids=LAYER_IDS)
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("training", [True, False])
def test_every_floating_dtype_is_accepted_and_kept(device, name, make, shape, dtype, training):
    layer = make(device)
    y, cache = layer.forward(inputs(shape, dtype, device), training=training)
    dx = layer.backward(y.copy(), cache)
    assert y.dtype == dx.dtype == dtype
    assert dx.shape == shape


def test_dropout_float16_keeps_about_the_right_fraction():
    layer = Dropout(0.25, rng=np.random.default_rng(0))
    y, mask = layer.forward(np.ones((200, 500), dtype=np.float16))
    assert y.dtype == mask.dtype == np.float16
    kept = to_numpy(mask) > 0
    assert abs(kept.mean() - 0.75) < 0.01
    np.testing.assert_allclose(to_numpy(y)[kept], 1 / 0.75, rtol=1e-3)


@pytest.mark.parametrize("name, make, shape", LAYERS, ids=LAYER_IDS)
def test_integer_upstream_gradient_raises_type_error(name, make, shape):
    layer = make("cpu")
    y, cache = layer.forward(inputs(shape, np.float32, "cpu"))
    dy = np.zeros(y.shape, dtype=np.int64)
    match = rf"^{name}\.backward expects a floating-point array, got int64$"
    with pytest.raises(TypeError, match=match):
        layer.backward(dy, cache)


# -- shapes ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, layer, bad, expected",
    [
        ("Dense", Dense(4, 3), (2, 5), "(N, 4)"),
        ("Dense", Dense(4, 3), (2, 4, 1), "(N, 4)"),
        ("Dense", Dense(4, 3), (4,), "(N, 4)"),
        ("Conv2D", Conv2D(3, 2, 3), (2, 4, 5, 5), "(N, 3, *, *)"),
        ("Conv2D", Conv2D(3, 2, 3), (3, 5, 5), "(N, 3, *, *)"),
        ("ConvTranspose2D", ConvTranspose2D(3, 2, 3), (2, 2, 4, 4), "(N, 3, *, *)"),
        ("ConvTranspose2D", ConvTranspose2D(3, 2, 3), (2, 3, 4, 4, 1), "(N, 3, *, *)"),
        ("BatchNorm", BatchNorm(3), (4, 2), "(N, 3) or (N, 3, H, W)"),
        ("BatchNorm", BatchNorm(3), (4, 3, 5), "(N, 3) or (N, 3, H, W)"),
        ("BatchNorm", BatchNorm(3), (4, 2, 2, 2), "(N, 3) or (N, 3, H, W)"),
        ("MaxPool2D", MaxPool2D(2), (2, 4, 4), "(N, *, *, *)"),
        ("UpSampling2D", UpSampling2D(2), (2, 3, 4), "(N, *, *, *)"),
        ("Maxout", Maxout(4, 3, 2), (2, 5), "(N, 4)"),
        ("SpectralDense", SpectralDense(4, 3), (2, 5), "(N, 4)"),
        ("SpectralConv2D", SpectralConv2D(3, 2, 3), (2, 4, 5, 5), "(N, 3, *, *)"),
        ("MinibatchStd", MinibatchStd(), (2, 3, 4), "(N, F) or (N, C, H, W)"),
    ],
)
def test_wrong_input_shape_names_layer_and_both_shapes(name, layer, bad, expected):
    match = rf"^{name} expects input of shape {esc(expected)}, got {esc(bad)}$"
    with pytest.raises(ValueError, match=match):
        layer.forward(np.zeros(bad, dtype=np.float32))


def test_reshape_checks_values_per_sample():
    with pytest.raises(
        ValueError, match=r"^Reshape to \(N, 2, 6\) expects .* 12 values .*\(2, 10\)$"
    ):
        Reshape((2, 6)).forward(np.zeros((2, 10), dtype=np.float32))
    with pytest.raises(ValueError, match=r"^Flatten expects a batch of shape \(N, \.\.\.\), got"):
        Flatten().forward(np.zeros((), dtype=np.float32))


@pytest.mark.parametrize("name, make, shape", LAYERS, ids=LAYER_IDS)
@pytest.mark.parametrize("training", [True, False])
def test_wrong_upstream_gradient_shape_names_layer_and_both_shapes(
    device, name, make, shape, training
):
    layer = make(device)
    y, cache = layer.forward(inputs(shape, np.float32, device), training=training)
    for bad in [(*y.shape[:-1], y.shape[-1] + 1), (y.shape[0] + 1, *y.shape[1:]), y.shape[:-1]]:
        dy = to_device(np.zeros(bad, dtype=np.float32), device)
        match = (
            rf"^{name}\.backward expects dy of the output's shape {esc(y.shape)}, got {esc(bad)}$"
        )
        with pytest.raises(ValueError, match=match):
            layer.backward(dy, cache)


def test_dense_backward_rejects_a_transposed_gradient():
    # Before the check this failed inside NumPy's matmul, naming no layer.
    layer = Dense(4, 3)
    y, cache = layer.forward(np.zeros((2, 4), dtype=np.float32))
    with pytest.raises(ValueError, match=r"^Dense\.backward .* \(2, 3\), got \(3, 2\)$"):
        layer.backward(np.zeros((3, 2), dtype=np.float32), cache)
    assert not layer.grads["W"].any()  # nothing was accumulated before the check


def test_checks_read_no_values():
    # NaN passes: the checks look at dtype and shape only, never scan the array.
    x = np.full((2, 4), np.nan, dtype=np.float32)
    y, cache = Dense(4, 3).forward(x)
    assert np.isnan(y).all()


# -- caches ---------------------------------------------------------------------------------------

# Which kind of cache each layer's forward returns. A layer cannot tell a cache of its own kind made
# by another layer (two ReLU masks, or a Tanh's output and a Sigmoid's) from its own: the foreign
# caches tried below are of another kind.
CACHE_KIND = {
    "Dense": "float array",
    "Sigmoid": "float array",
    "Tanh": "float array",
    "Dropout": "float array",  # its mask; in evaluation mode the input's shape
    "ReLU": "mask",
    "LeakyReLU": "mask",
    "Conv2D": "convolution",
    "ConvTranspose2D": "convolution",
    "BatchNorm": "normalisation",
    "MaxPool2D": "pooling",
    "UpSampling2D": "shape",
    "Reshape": "two shapes",
    "Flatten": "two shapes",
    "Maxout": "maxout",
    "MinibatchStd": "float pair",  # dm/dx, of the input's shape, and the features' deviations
    "SpectralDense": "spectral dense",
    "SpectralConv2D": "spectral convolution",
}
MAKE_AND_SHAPE = {name: (make, shape) for name, make, shape in LAYERS}


def cache_kind(name: str, training: bool) -> str:
    return "shape" if name == "Dropout" and not training else CACHE_KIND[name]


def accepted_kinds(name: str) -> set[str]:
    """The kinds of cache ``name``'s backward takes (Dropout's in either mode)."""
    return {"float array", "shape"} if name == "Dropout" else {CACHE_KIND[name]}


def needs_its_cache(name: str, got: str = ".+") -> str:
    return (
        rf"^{name}\.backward needs the cache that this layer's forward returned \(.+\), got {got}$"
    )


def cache_of(name: str, training: bool) -> object:
    """The cache that layer ``name`` returns for its good input."""
    make, shape = MAKE_AND_SHAPE[name]
    return make("cpu").forward(inputs(shape, np.float32, "cpu"), training=training)[1]


@pytest.mark.parametrize("name, make, shape", LAYERS, ids=LAYER_IDS)
@pytest.mark.parametrize(
    "cache, got", [(None, "None"), ([], "a list of 0 entries"), (3, "int"), ("cache", "str")]
)
def test_backward_without_its_forward_cache_names_the_layer(device, name, make, shape, cache, got):
    layer = make(device)
    y, _ = layer.forward(inputs(shape, np.float32, device))
    with pytest.raises(TypeError, match=needs_its_cache(name, got)):
        layer.backward(y, cache)


FOREIGN = [
    (name, other, training)
    for name in LAYER_IDS
    for other in LAYER_IDS
    for training in (True, False)
    if cache_kind(other, training) not in accepted_kinds(name)
]


@pytest.mark.parametrize("name, other, training", FOREIGN, ids=str)
def test_backward_with_another_kind_of_layers_cache_names_the_layer(name, other, training):
    make, shape = MAKE_AND_SHAPE[name]
    layer = make("cpu")
    y, _ = layer.forward(inputs(shape, np.float32, "cpu"), training=training)
    with pytest.raises(TypeError, match=needs_its_cache(name)):
        layer.backward(np.ones_like(y), cache_of(other, training))
    assert not any(grad.any() for grad in layer.grads.values())  # refused before any work


def test_cache_messages_say_what_was_expected_and_what_came():
    dy = np.ones((2, 3), dtype=np.float32)
    with pytest.raises(TypeError) as info:
        Dense(4, 3).backward(dy, None)
    assert str(info.value) == (
        "Dense.backward needs the cache that this layer's forward returned (its input x, a float "
        "array of shape (N, 4)), got None"
    )
    # Another Dense's input: a cache of the right kind but of the wrong layer.
    _, cache = Dense(5, 3).forward(np.ones((2, 5), dtype=np.float32))
    with pytest.raises(
        TypeError, match=needs_its_cache("Dense", r"a float32 array of shape \(2, 5\)")
    ):
        Dense(4, 3).backward(dy, cache)
    # A batch norm's cache, also a tuple of three, given to a convolution.
    conv = Conv2D(3, 2, 3)
    y, _ = conv.forward(np.ones((4, 3, 5, 5), dtype=np.float32))
    with pytest.raises(TypeError) as info:
        conv.backward(np.ones_like(y), cache_of("BatchNorm", True))
    assert str(info.value) == (
        "Conv2D.backward needs the cache that this layer's forward returned (the tuple (x, padding, "
        "output shape), x of shape (N, 3, H, W)), got a tuple of 3 entries"
    )


def test_sequential_needs_the_list_its_forward_returned():
    model = Sequential(Dense(4, 8), ReLU())
    x = np.zeros((5, 4), dtype=np.float32)
    y, cache = model.forward(x)
    for bad, got in [(None, "None"), (x, r"a float32 array of shape \(5, 4\)")]:
        with pytest.raises(TypeError) as info:
            model.backward(y, bad)
        assert re.match(needs_its_cache("Sequential", got), str(info.value))
        assert "(a list of its 2 children's caches)" in str(info.value)
    with pytest.raises(TypeError, match=needs_its_cache("Sequential", "a tuple of 2 entries")):
        model.backward(y, tuple(cache))


def test_sequential_given_another_networks_caches_names_the_child():
    # The caches of a network of the same length: the child that cannot use its entry says so.
    model = Sequential(Dense(4, 8), ReLU())
    _, other = Sequential(Dense(4, 8), Tanh()).forward(np.zeros((5, 4), dtype=np.float32))
    with pytest.raises(TypeError) as info:
        model.backward(np.zeros((5, 8), dtype=np.float32), other)
    assert str(info.value) == (
        "Sequential[1] (ReLU()): ReLU.backward needs the cache that this layer's forward returned "
        "(the boolean mask x > 0), got a float32 array of shape (5, 8)"
    )
    assert type(info.value.__cause__) is TypeError


# -- constructor arguments ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: Dense(0, 5), r"^Dense: in_features must be a positive int, got 0$"),
        (lambda: Dense(5, -1), r"^Dense: out_features must be a positive int, got -1$"),
        (lambda: Dense(2.5, 3), r"^Dense: in_features must be a positive int, got 2\.5$"),
        (lambda: Dense(True, 3), r"^Dense: in_features must be a positive int, got True$"),
        (lambda: Dense("4", 3), r"^Dense: in_features must be a positive int, got '4'$"),
        (lambda: Conv2D(0, 2, 3), r"^Conv2D: in_channels must be a positive int, got 0$"),
        (lambda: Conv2D(3, 0, 3), r"^Conv2D: out_channels must be a positive int, got 0$"),
        (lambda: Conv2D(3, 2, 0), r"^Conv2D: kernel_size must be >= 1, got 0$"),
        (lambda: Conv2D(3, 2, 3, stride=0), r"^Conv2D: stride must be >= 1, got 0$"),
        (lambda: Conv2D(3, 2, 3, padding=-1), r"^Conv2D: padding must be >= 0, got -1$"),
        (lambda: Conv2D(3, 2, 3, padding="full"), r"^Conv2D: padding must be an int, a pair"),
        (lambda: ConvTranspose2D(0, 2, 3), r"^ConvTranspose2D: in_channels must be a positive"),
        (lambda: ConvTranspose2D(3, 2, (3, 0)), r"^ConvTranspose2D: kernel_size must be >= 1"),
        (lambda: ConvTranspose2D(3, 2, 3, stride=-2), r"^ConvTranspose2D: stride must be >= 1"),
        (lambda: ConvTranspose2D(3, 2, 3, padding=-1), r"^ConvTranspose2D: padding must be >= 0"),
        (lambda: BatchNorm(0), r"^BatchNorm: num_features must be a positive int, got 0$"),
        (lambda: BatchNorm(2.5), r"^BatchNorm: num_features must be a positive int, got 2\.5$"),
        (lambda: BatchNorm(3, momentum=-0.1), r"^BatchNorm: momentum must be a number in \[0, 1\]"),
        (lambda: BatchNorm(3, momentum=1.5), r"^BatchNorm: momentum must be a number in \[0, 1\]"),
        (lambda: BatchNorm(3, momentum=np.nan), r"^BatchNorm: momentum must be .*, got nan$"),
        (
            lambda: BatchNorm(3, eps=0.0),
            r"^BatchNorm: eps must be a number in \(0, inf\), got 0\.0$",
        ),
        (lambda: BatchNorm(3, eps=np.inf), r"^BatchNorm: eps must be a number in \(0, inf\)"),
        (lambda: BatchNorm(3, eps="1e-5"), r"^BatchNorm: eps must be a number in \(0, inf\)"),
        (lambda: LeakyReLU(np.nan), r"^LeakyReLU: alpha must be a number in \(-inf, inf\)"),
        (lambda: LeakyReLU(np.inf), r"^LeakyReLU: alpha must be a number in \(-inf, inf\)"),
        (lambda: LeakyReLU(None), r"^LeakyReLU: alpha must be a number in \(-inf, inf\)"),
        (
            lambda: Dropout(-0.1, make_rng(0)),
            r"^Dropout: rate must be a number in \[0, 1\), got -0\.1$",
        ),
        (
            lambda: Dropout(1.0, make_rng(0)),
            r"^Dropout: rate must be a number in \[0, 1\), got 1\.0$",
        ),
        (
            lambda: Dropout(np.nan, make_rng(0)),
            r"^Dropout: rate must be a number in \[0, 1\), got nan$",
        ),
        (lambda: MaxPool2D(0), r"^MaxPool2D: size must be >= 1, got 0$"),
        (lambda: MaxPool2D((2, 0)), r"^MaxPool2D: size must be >= 1, got \(2, 0\)$"),
        (lambda: MaxPool2D(1.5), r"^MaxPool2D: size must be an int or a pair of ints, got 1\.5$"),
        (lambda: MaxPool2D(2, stride=0), r"^MaxPool2D: stride must be >= 1, got 0$"),
        (lambda: UpSampling2D(0), r"^UpSampling2D: scale must be >= 1, got 0$"),
        (lambda: UpSampling2D((2, 2, 2)), r"^UpSampling2D: scale must be an int or a pair"),
        (lambda: Reshape((0, 4)), r"^Reshape: shape must be a tuple of positive ints"),
        (
            lambda: Reshape((-1, -1)),
            r"^Reshape: shape must be .* at most one -1 .*, got \(-1, -1\)$",
        ),
        (lambda: Reshape((7.5,)), r"^Reshape: shape must be a tuple of positive ints"),
        (lambda: Reshape(7), r"^Reshape: shape must be a tuple of positive ints, .*, got 7$"),
        (lambda: Maxout(0, 3, 2), r"^Maxout: in_features must be a positive int, got 0$"),
        (lambda: Maxout(4, 0, 2), r"^Maxout: units must be a positive int, got 0$"),
        (lambda: Maxout(4, 3, 2.0), r"^Maxout: pieces must be a positive int, got 2\.0$"),
        (lambda: MinibatchStd(-1e-8), r"^MinibatchStd: eps must be a number in \(0, inf\)"),
        (lambda: SpectralDense(0, 3), r"^SpectralDense: in_features must be a positive int"),
        (lambda: SpectralDense(4, 3, eps=0), r"^SpectralDense: eps must be a number in \(0, inf"),
        (lambda: SpectralConv2D(3, 2, 0), r"^SpectralConv2D: kernel_size must be >= 1, got 0$"),
        (lambda: SpectralConv2D(3, 2, 3, eps=-1.0), r"^SpectralConv2D: eps must be a number"),
    ],
)
def test_bad_constructor_arguments_raise_naming_layer_and_argument(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_sequential_takes_only_layers():
    with pytest.raises(TypeError, match=r"^Sequential takes Layer objects, got int at position 1$"):
        Sequential(ReLU(), 3)


def test_valid_edge_arguments_are_accepted():
    assert Dense(np.int64(3), 1).in_features == 3
    assert Dropout(0, make_rng(0)).rate == 0.0
    assert BatchNorm(2, momentum=0).momentum == 0.0
    assert BatchNorm(2, momentum=1, eps=1e-12).momentum == 1.0
    assert LeakyReLU(0).alpha == 0.0
    assert LeakyReLU(-0.5).alpha == -0.5
    assert MaxPool2D([2, 3], stride=(1, 2)).stride == (1, 2)
    assert Reshape([4, -1]).shape == (4, -1)
    assert Conv2D(1, 1, 3, padding="VALID").padding == (0, 0)


# -- Sequential ----------------------------------------------------------------------------------


def mlp() -> Sequential:
    rng = np.random.default_rng(0)
    return Sequential(Dense(10, 128, rng=rng), ReLU(), Reshape((128,)), Dense(100, 784, rng=rng))


def test_sequential_names_the_failing_child_in_forward():
    x = np.zeros((64, 10), dtype=np.float32)
    with pytest.raises(ValueError) as info:
        mlp().forward(x)
    assert str(info.value) == (
        "Sequential[3] (Dense(100, 784, bias=True)): "
        "Dense expects input of shape (N, 100), got (64, 128)"
    )
    cause = info.value.__cause__
    assert type(cause) is ValueError
    assert str(cause) == "Dense expects input of shape (N, 100), got (64, 128)"


def test_sequential_keeps_the_exception_type():
    x = np.zeros((64, 10), dtype=np.int64)
    with pytest.raises(TypeError, match=r"^Sequential\[0\] \(Dense\(10, 128, bias=True\)\): Dense"):
        mlp().forward(x)


def test_sequential_names_the_failing_child_in_backward():
    model = Sequential(Dense(4, 8), ReLU(), Dense(8, 2))
    y, cache = model.forward(np.zeros((5, 4), dtype=np.float32))
    match = (
        r"^Sequential\[2\] \(Dense\(8, 2, bias=True\)\): "
        r"Dense\.backward expects dy of the output's shape \(5, 2\), got \(5, 3\)$"
    )
    with pytest.raises(ValueError, match=match):
        model.backward(np.zeros((5, 3), dtype=np.float32), cache)
    # A child further down: a corrupted cache entry for the ReLU (index 1).
    cache[1] = cache[1][:, :4]
    with pytest.raises(
        ValueError, match=r"^Sequential\[1\] \(ReLU\(\)\): ReLU\.backward .*\(5, 4\)"
    ):
        model.backward(np.zeros((5, 2), dtype=np.float32), cache)


def test_sequential_backward_checks_the_cache_length():
    model = Sequential(Dense(4, 8), ReLU())
    y, cache = model.forward(np.zeros((5, 4), dtype=np.float32))
    with pytest.raises(ValueError, match=r"one entry per layer \(2\), got 1 entries"):
        model.backward(y, cache[:1])


def test_nested_sequentials_compose_the_path():
    inner = Sequential(ReLU(), Sequential(Tanh(), Dense(5, 2)))
    model = Sequential(Dense(4, 8), inner)
    with pytest.raises(ValueError) as info:
        model.forward(np.zeros((2, 4), dtype=np.float32))
    assert str(info.value) == (
        "Sequential[1][1][1] (Dense(5, 2, bias=True)): "
        "Dense expects input of shape (N, 5), got (2, 8)"
    )
    # The cause is the layer's own error, not one wrapper per level.
    assert str(info.value.__cause__) == "Dense expects input of shape (N, 5), got (2, 8)"
    assert info.value.__cause__.__cause__ is None

    model = Sequential(Dense(4, 5), inner)
    y, cache = model.forward(np.zeros((2, 4), dtype=np.float32))
    with pytest.raises(
        ValueError, match=r"^Sequential\[1\]\[1\]\[1\] \(Dense\(5, 2, bias=True\)\)"
    ):
        model.backward(np.zeros((2, 3), dtype=np.float32), cache)


def test_sequential_subclass_uses_its_own_name():
    class Generator(Sequential):
        pass

    with pytest.raises(ValueError, match=r"^Generator\[0\] \(Dense\(3, 2, bias=True\)\): "):
        Generator(Dense(3, 2)).forward(np.zeros((1, 4), dtype=np.float32))


class TwoArgumentError(Exception):
    def __init__(self, code: int, detail: str) -> None:
        super().__init__(code, detail)


class Failing(Layer):
    def forward(self, x: object, training: bool = True) -> tuple[object, object]:
        raise TwoArgumentError(7, "broken")


def test_an_exception_that_takes_no_message_is_kept_and_noted():
    with pytest.raises(TwoArgumentError) as info:
        Sequential(ReLU(), Failing()).forward(np.zeros(3))
    assert info.value.args == (7, "broken")
    if hasattr(info.value, "add_note"):  # Python >= 3.11
        assert info.value.__notes__ == ["raised in Sequential[1] (Failing())"]
