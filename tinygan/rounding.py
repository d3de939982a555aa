r"""Rounding bounds: how far two floating-point computations of the same math may be apart.

Two implementations of one formula (a Numba kernel and the NumPy function it replaces, CuPy on a
GPU, ONNX Runtime, PyTorch) add the same products in different orders: a BLAS library chooses its
blocking by CPU model and thread count, Numba splits a reduction among its threads, a GPU sums in a
tree. Floating-point addition is not associative, so the results differ, and by an amount that
changes from one machine to the next. A test comparing two implementations needs a bound that holds
for *every* order. This module derives it from the computation.

The bound
---------
Write :math:`u` for the unit roundoff of the dtype (:math:`2^{-24}` in float32, :math:`2^{-53}` in
float64): one correctly rounded operation returns :math:`(a \circ b)(1 + \delta)` with
:math:`|\delta| \le u`. A sum of :math:`n` terms (products or not), evaluated in *any* order
(left to right, pairwise, in SIMD lanes, in blocks per thread, with or without fused multiply-adds),
satisfies

.. math::
    |\hat s - s| \le \gamma_n \sum_i |t_i|, \qquad \gamma_n = \frac{n u}{1 - n u},

because in any summation tree each term passes through at most :math:`n` roundings (its own product
and at most :math:`n - 1` additions) on its way to the result (Higham, *Accuracy and Stability of
Numerical Algorithms*, 2nd ed., section 3.1). The bound scales with :math:`\sum |t_i|`, the
*magnitude* of the terms, and not with :math:`|s|`: a sum that cancels to almost nothing (a bias
gradient summed over a batch whose terms have both signs) keeps an absolute error of the size of
its terms. A tolerance relative to :math:`|s|` therefore fails on one CPU and passes on another.

The magnitude is the same computation on absolute values, with every subtraction made an addition:
a convolution's is ``conv(|x|, |W|) + |b|``, which :func:`assert_matches_plain` gets by calling the
plain function on absolute values. Results further along a computation (a layer after a layer)
carry the errors of their inputs too; :func:`forward_bound` propagates them through a network.
Library functions (exp, tanh) are not sums: each is allowed :data:`LIBRARY_ULPS`.

Comparing two implementations
-----------------------------
Each result is compared with the exact value: the plain function evaluated in float64 on the same
inputs, whose own error (:math:`\gamma_n` in float64, :math:`2^{29}` times smaller) is added to the
bound. Two float32 implementations that each pass agree with each other to twice the bound, on any
CPU, with any number of threads and any BLAS.

A correct kernel always passes; a wrong one (a sign, a missing term, a pixel off by one) is off by
at least one whole term, about :math:`\sum |t_i| / n`, which the bound rejects while
:math:`n^2 u \ll 1`: for float32 sums of up to a few hundred terms. The float64 runs, which every
kernel test also makes, reject it for any size.

A whole training step is checked call by call (:func:`recording_calls`): every overridable
function it calls, from the arguments it was given, against the plain function in float64. Two
runs' final values cannot be compared so tightly: rounding carried through many layers adds up,
and Adam's first step, ``lr * g / (|g| + eps)``, turns a gradient of rounding noise into a whole
step of either sign.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import inspect
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from tinygan import overrides
from tinygan.backend import to_numpy
from tinygan.nn import (
    BatchNorm,
    Conv2D,
    ConvTranspose2D,
    Dense,
    Dropout,
    LeakyReLU,
    Maxout,
    MaxPool2D,
    ReLU,
    Reshape,
    Sequential,
    Sigmoid,
    Tanh,
    UpSampling2D,
)
from tinygan.nn.batchnorm import per_channel, reduce_axes
from tinygan.nn.layer import Layer

#: The error allowed one call of a library's exp, log1p, tanh or logistic function, in ULP (one ULP
#: is eps = 2 u, two roundings). IEEE 754 does not require these to be correctly rounded: NumPy's
#: vectorised float32 ones, PyTorch's and CUDA's are within 1 to 4 ULP of the result, and ONNX
#: Runtime's vectorised tanh and logistic within about 3 ULP of the output's range (their error
#: does not shrink with a tiny output), so network layers are allowed 4 ULP of ``|y| + 1``.
LIBRARY_ULPS = 4


def unit_roundoff(dtype: Any) -> float:
    """``u = eps / 2``: the largest relative error of one correctly rounded operation in ``dtype``."""
    return float(np.finfo(dtype).eps) / 2


def gamma(operations: float, dtype: Any) -> float:
    r""":math:`\gamma_k = k u / (1 - k u)`: the largest relative error of a value that went through
    ``k = operations`` roundings in ``dtype``.

    Raises ``ValueError`` when :math:`k u \ge 1`, where no bound of this form holds.
    """
    return _gamma(operations, unit_roundoff(dtype))


def _gamma(operations: float, u: float) -> float:
    ku = operations * u
    if ku >= 1:
        raise ValueError(
            f"{operations} roundings of unit roundoff {u:.3g}: no rounding bound holds"
        )
    return ku / (1 - ku)


def rounding_bound(magnitude: Any, operations: float, dtype: Any) -> np.ndarray:
    r"""How far a result computed in ``dtype`` can be from the exact one, entry by entry:
    :math:`\gamma_k \cdot` ``magnitude`` plus ``k`` times the spacing of the subnormal numbers
    (where a result underflows its error is absolute, not relative).

    Parameters
    ----------
    magnitude : array
        The sum of the absolute values of the terms behind each entry (float64).
    operations : int
        The most roundings any one term passes through on its way to the result: the number of
        terms of a sum of products, plus the roundings after it (a bias, a scale, a stored
        intermediate that is used again).
    dtype : dtype
        The dtype the result was computed in.
    """
    tiny = float(np.finfo(dtype).smallest_subnormal)
    return gamma(operations, dtype) * np.asarray(magnitude, dtype=np.float64) + operations * tiny


def assert_within(got: Any, want: Any, bound: Any, what: str = "result") -> None:
    """Assert ``|got - want| <= bound`` entry by entry (``bound`` broadcasts to their shape).

    Where ``want`` is infinite or NaN, ``got`` must be the same. The message names the worst entry,
    its error, its bound and how many entries are out of bounds.
    """
    got64 = to_numpy(got).astype(np.float64)
    want64 = to_numpy(want).astype(np.float64)
    if got64.shape != want64.shape:
        raise AssertionError(f"{what}: shape {got64.shape}, expected {want64.shape}")
    limit = np.broadcast_to(np.asarray(bound, dtype=np.float64), want64.shape)
    finite = np.isfinite(want64)
    special_ok = (got64 == want64) | (np.isnan(got64) & np.isnan(want64))
    with np.errstate(invalid="ignore"):
        error = np.where(finite, np.abs(got64 - want64), 0.0)
        bad = ~(error <= limit) | (~finite & ~special_ok)  # NaN errors count as out of bounds
    if not bad.any():
        return
    with np.errstate(divide="ignore", invalid="ignore"):
        excess = np.where(bad, np.nan_to_num(error / limit, nan=np.inf, posinf=np.inf), -1.0)
    index = np.unravel_index(int(np.argmax(excess)), want64.shape) if want64.ndim else ()
    raise AssertionError(
        f"{what}: {int(bad.sum())} of {want64.size} entries beyond the rounding bound; worst at "
        f"{tuple(int(i) for i in index)}: got {got64[index]!r}, exact {want64[index]!r}, "
        f"error {error[index]:.3g} > bound {limit[index]:.3g}"
    )


def assert_within_rounding(
    got: Any, want: Any, magnitude: Any, operations: float, what: str = "result"
) -> None:
    """Assert that ``got`` and ``want``, the same sums computed in their own dtypes and any order,
    differ by no more than the sum of their two rounding bounds (:func:`rounding_bound`).

    With ``want`` in float64 this compares ``got`` with the (nearly) exact value; with both in
    float32 it allows each its own error.
    """
    bound = rounding_bound(magnitude, operations, to_numpy(got).dtype)
    bound = bound + rounding_bound(magnitude, operations, to_numpy(want).dtype)
    assert_within(got, want, bound, what)


# -- the overridable functions: each result against the plain function in float64 ---------------


def _windows(kernel: tuple[int, int], stride: tuple[int, int]) -> int:
    """How many windows of a pooling or convolution cover one input pixel, at most."""
    return math.ceil(kernel[0] / stride[0]) * math.ceil(kernel[1] / stride[1])


Rule = Callable[..., list[tuple[Any, float]]]


def _col2im(cols, x_shape, kh, kw, stride, padding, *, plain, u):
    return [(plain(abs(cols), x_shape, kh, kw, stride, padding), _windows((kh, kw), stride))]


def _conv2d_forward(x, W, b, stride, padding, *, plain, u):
    b = None if b is None else abs(b)
    return [(plain(abs(x), abs(W), b, stride, padding), W[0].size + 1)]


def _conv2d_backward(dy, x, W, stride, padding, param_grads, input_grad, *, plain, u):
    magnitudes = plain(abs(dy), abs(x), abs(W), stride, padding, param_grads, input_grad)
    per_filter = dy.shape[0] * dy.shape[2] * dy.shape[3]  # each weight meets every output pixel
    operations = (W.shape[0] * _windows(W.shape[2:], stride), per_filter, per_filter)
    return list(zip(magnitudes, operations, strict=True))


def _conv_transpose2d_forward(x, W, b, stride, padding, out_hw, *, plain, u):
    b = None if b is None else abs(b)
    terms = W.shape[0] * _windows(W.shape[2:], stride) + 1
    return [(plain(abs(x), abs(W), b, stride, padding, out_hw), terms)]


def _conv_transpose2d_backward(dy, x, W, stride, padding, param_grads, input_grad, *, plain, u):
    magnitudes = plain(abs(dy), abs(x), abs(W), stride, padding, param_grads, input_grad)
    operations = (W[0].size, x.shape[0] * x.shape[2] * x.shape[3], dy[:, 0].size)
    return list(zip(magnitudes, operations, strict=True))


def _dense_weight_grad(x, dy, *, plain, u):
    return [(plain(abs(x), abs(dy)), x.shape[0])]


def _maxout_input_grad(dy, argmax, W, pieces, *, plain, u):
    # one term per unit: its gradient times its winning piece's weight
    return [(plain(abs(dy), argmax, abs(W), pieces), dy.shape[1])]


def _maxpool_backward(dy, argmax, x_shape, size, stride, *, plain, u):
    return [(plain(abs(dy), argmax, x_shape, size, stride), _windows(size, stride))]


def _upsample_nearest_backward(dy, scale, *, plain, u):
    return [(plain(abs(dy), scale), scale[0] * scale[1])]


def _batchnorm_moments(x, *, plain, u):
    # Two passes. The mean is a sum of M terms and a division. The variance sums (x - mean)^2 with
    # the computed mean: an error d in the mean adds d * sum(x - mean) = 0 to first order and
    # M * d^2 in all, covered by the last term (d <= gamma_{M+1} mean|x|).
    axes, m = reduce_axes(x), x.size // x.shape[1]
    mean = x.mean(axis=axes)
    mean_error = _gamma(m + 1, u) * abs(x).mean(axis=axes)
    deviation = abs(x - per_channel(mean, x.ndim)) + per_channel(mean_error, x.ndim)
    spread = (deviation * deviation).mean(axis=axes) + _gamma(m + 1, u) * abs(x).mean(
        axis=axes
    ) ** 2
    return [(abs(x).mean(axis=axes), m + 1), (spread, m + 3)]


def _batchnorm_forward(x, mean, var, gamma_, beta, eps, *, plain, u):
    # inv_std: eps rounded to x's dtype, the addition, the square root (which halves the relative
    # error it is given, then rounds) and the division. xhat: the subtraction and the product.
    # y: the product with gamma and the addition of beta.
    y, xhat, inv_std = plain(x, mean, var, gamma_, beta, eps)
    magnitude_y = abs(xhat * per_channel(gamma_, x.ndim)) + per_channel(abs(beta), x.ndim)
    return [(magnitude_y, 8), (abs(xhat), 6), (abs(inv_std), 4)]


def _batchnorm_backward(dy, xhat, inv_std, gamma_, batch_stats, *, plain, u):
    axes, m = reduce_axes(dy), dy.size // dy.shape[1]
    total, weighted = abs(dy).sum(axis=axes), abs(dy * xhat).sum(axis=axes)
    scale = per_channel(abs(gamma_ * inv_std), dy.ndim)
    if batch_stats:
        # dx = scale / M * (M dy - sum dy - xhat sum(dy xhat)): the sums' roundings, then the
        # product with xhat, two subtractions, scale = gamma * inv_std, its division by M and the
        # final product.
        spread = (
            m * abs(dy) + per_channel(total, dy.ndim) + abs(xhat) * per_channel(weighted, dy.ndim)
        )
        dx = (scale / m * spread, m + 7)
    else:
        dx = (scale * abs(dy), 3)
    return [dx, (weighted, m + 1), (total, m)]


def _sigmoid(x, *, plain, u):
    # Whatever the formula (exp(-softplus(-x)), 1 / (1 + exp(-x)), ...) the library calls are off by
    # LIBRARY_ULPS each, relative to their results; an absolute error d in softplus(-x) = s becomes
    # a relative one d in exp(-s), and d grows with s: the relative error is about (1 + s) times
    # the library's, plus the roundings of the additions and the division.
    y = plain(x)
    s = np.logaddexp(0, -x)
    with np.errstate(invalid="ignore"):
        magnitude = np.where(y == 0, 0.0, y * (1 + s))
    return [(magnitude, 2 * LIBRARY_ULPS + 3)]


def _sigmoid_backward(dy, y, *, plain, u):
    return [(abs(dy) * abs(y) * (1 + abs(y)), 3)]


def _tanh_backward(dy, y, *, plain, u):
    return [(abs(dy) * (1 + y * y), 3)]


def _sgd_update(param, grad, velocity, lr, momentum, *, plain, u):
    # momentum and lr rounded to the parameter's dtype count as one rounding each
    if velocity is None:
        return [(abs(param) + lr * abs(grad), 3)]
    step = momentum * abs(velocity) + abs(grad)
    return [(abs(param) + lr * step, 6), (step, 3)]


def _adam_update(param, grad, m, v, lr, beta1, beta2, eps, step, *, plain, u):
    # m: two constants rounded, two products and a sum; v: one more product (g * g). The step
    # lr * m_hat / (sqrt(v_hat) + eps) takes m's absolute error relative to its own size, and
    # relative errors from the bias corrections, the square root, eps, the division and lr.
    c1, c2 = 1 - beta1**step, 1 - beta2**step
    moment = beta1 * abs(m) + (1 - beta1) * abs(grad)
    second = beta2 * v + (1 - beta2) * grad * grad
    magnitude = abs(param) + lr * moment / c1 / (np.sqrt(second / c2) + eps)
    return [(magnitude, 16), (moment, 4), (second, 5)]


def _rmsprop_update(param, grad, v, lr, rho, eps, *, plain, u):
    second = rho * v + (1 - rho) * grad * grad
    return [(abs(param) + lr * abs(grad) / (np.sqrt(second) + eps), 12), (second, 5)]


#: Per overridable function, the magnitude and the roundings of each array it returns or updates.
RULES: dict[str, Rule] = {
    "col2im": _col2im,
    "conv2d_forward": _conv2d_forward,
    "conv2d_backward": _conv2d_backward,
    "conv_transpose2d_forward": _conv_transpose2d_forward,
    "conv_transpose2d_backward": _conv_transpose2d_backward,
    "dense_weight_grad": _dense_weight_grad,
    "maxout_input_grad": _maxout_input_grad,
    "maxpool_backward": _maxpool_backward,
    "upsample_nearest_backward": _upsample_nearest_backward,
    "batchnorm_moments": _batchnorm_moments,
    "batchnorm_forward": _batchnorm_forward,
    "batchnorm_backward": _batchnorm_backward,
    "sigmoid": _sigmoid,
    "sigmoid_backward": _sigmoid_backward,
    "tanh_backward": _tanh_backward,
    "sgd_update": _sgd_update,
    "adam_update": _adam_update,
    "rmsprop_update": _rmsprop_update,
}

#: Functions that copy, select, or round once per entry (a product with a constant): any correct
#: implementation gives the plain function's result in the same dtype bit for bit.
EXACT = frozenset(
    {
        "im2col",
        "maxpool_forward",
        "maxout_forward",
        "maxout_backward",
        "upsample_nearest",
        "leaky_relu",
        "leaky_relu_backward",
        "dropout",
    }
)

#: Functions that update arrays in place, and the positions of those arrays among the arguments.
IN_PLACE: dict[str, tuple[int, ...]] = {
    "sgd_update": (0, 2),
    "adam_update": (0, 2, 3),
    "rmsprop_update": (0, 2),
}


def results_of(name: str, args: Sequence[Any], returned: Any) -> tuple[Any, ...]:
    """What the overridable function ``name`` computed: the arrays it updated in place (for the
    optimizer updates, from ``args`` after the call; ``None`` for an absent state) or what it
    returned, as a tuple."""
    if name in IN_PLACE:
        return tuple(args[i] for i in IN_PLACE[name])
    return returned if isinstance(returned, tuple) else (returned,)


def host_copy(value: Any) -> Any:
    """A NumPy copy of an array on any device, a copy of a random generator, anything else as is."""
    if isinstance(value, np.random.Generator):
        return copy.deepcopy(value)
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return np.array(to_numpy(value), copy=True)
    return value


def _call_plain(name: str, args: Sequence[Any]) -> tuple[Any, ...]:
    work = [host_copy(a) for a in args]  # the plain function may update its arguments
    return results_of(name, work, overrides.plain(name)(*work))


def _float64(value: Any) -> Any:
    if isinstance(value, np.ndarray) and value.dtype.kind == "f":
        return value.astype(np.float64)
    return value


def assert_matches_plain(name: str, args: Sequence[Any], results: Any, what: str = "") -> None:
    """Assert that ``results`` is what the overridable function ``name`` computes from ``args``.

    ``args`` are all the arguments, as they were before the call (the optimizer updates change
    theirs: pass copies); ``results`` is what the call computed, as :func:`results_of` lists it
    (a single array for a function that returns one). Copies and selections
    (:data:`EXACT`) must equal the plain function's result in the same dtype bit for bit. Every
    other result is compared with the plain function evaluated in float64 on the same inputs,
    within the rounding bound of its computation (:data:`RULES`), whatever order the
    implementation summed in.
    """
    what = what or name
    bound = inspect.signature(overrides.plain(name)).bind(*args)
    bound.apply_defaults()
    args = [host_copy(a) for a in bound.args]
    results = results if isinstance(results, tuple) else (results,)
    got = tuple(None if r is None else to_numpy(r) for r in results)
    if name in EXACT:
        expected = _call_plain(name, args)
    else:
        wide = [_float64(a) for a in args]
        expected = _call_plain(name, wide)
        plain = overrides.plain(name)
        dtype = next(a.dtype for a in args if isinstance(a, np.ndarray) and a.dtype.kind == "f")
        bounds = RULES[name](*wide, plain=plain, u=unit_roundoff(dtype))
    assert len(got) == len(expected), f"{what}: {len(got)} results, expected {len(expected)}"
    for k, (result, want) in enumerate(zip(got, expected, strict=True)):
        label = f"{what} result {k}"
        if want is None or result is None:
            assert result is None and want is None, f"{label}: computed where the other skipped"
        elif name in EXACT:
            assert result.dtype == want.dtype, f"{label}: dtype {result.dtype}, not {want.dtype}"
            np.testing.assert_array_equal(result, want, err_msg=label)
        else:
            assert result.dtype == dtype, f"{label}: dtype {result.dtype}, not {dtype}"
            magnitude, operations = bounds[k]
            assert_within_rounding(result, want, magnitude, operations, label)


@dataclasses.dataclass
class KernelCall:
    """One call of an overridable function: host copies of its arguments before the call and of
    what it computed (:func:`results_of`), and whether a kernel (not the plain function) ran."""

    name: str
    args: tuple[Any, ...]
    results: tuple[Any, ...]
    kernel: bool

    def check(self) -> None:
        """:func:`assert_matches_plain` for this call."""
        shapes = [a.shape for a in self.args if isinstance(a, np.ndarray)]
        assert_matches_plain(self.name, self.args, self.results, f"{self.name}{shapes}")

    def signature(self) -> tuple[Any, ...]:
        """The call without its numbers: the name, each array's shape and dtype, the settings."""
        return (self.name,) + tuple(
            (a.shape, a.dtype.name) if isinstance(a, np.ndarray) else _setting(a) for a in self.args
        )


def _setting(value: Any) -> Any:
    """Numbers, flags and shapes as they are; anything else (a random generator) by its type."""
    plain = value is None or isinstance(value, (bool, int, float, str, tuple))
    return value if plain else type(value).__name__


def step_signature(calls: Sequence[KernelCall]) -> list[tuple[Any, ...]]:
    """The recorded calls of a training step without their numbers (:meth:`KernelCall.signature`),
    with each run of consecutive optimizer updates (:data:`IN_PLACE`) of one rule and settings
    made one entry: the rule, its settings and how many entries of each dtype it updated.

    Two steps that compute the same things have the same signature whether the optimizers update
    one parameter at a time (the plain path) or many at once over flat buffers (the fast path of
    :mod:`tinygan.kernels.flat`).
    """
    out: list[tuple[Any, ...]] = []
    for call in calls:
        if call.name not in IN_PLACE:
            out.append(call.signature())
            continue
        settings = tuple(_setting(a) for a in call.args if not isinstance(a, np.ndarray))
        param = call.args[0]
        if out and out[-1][:2] == (call.name, settings):
            sizes = dict(out.pop()[2])
        else:
            sizes = {}
        sizes[param.dtype.name] = sizes.get(param.dtype.name, 0) + param.size
        out.append((call.name, settings, tuple(sorted(sizes.items()))))
    return out


@contextlib.contextmanager
def recording_calls(kind: str = "cpu") -> Iterator[list[KernelCall]]:
    """Record every call of an overridable function on arrays of ``kind`` inside the block.

    Each call runs what would have run (the registered kernel, else the plain function) and is
    appended to the yielded list. Calls made from inside a recorded call (the plain convolution
    calling ``im2col``) are not recorded: a kernel need not make them. The kernel set active
    before the block is registered again after it.
    """
    calls: list[KernelCall] = []
    depth = [0]
    kernels = overrides.active_kernels()

    def recorder(name: str, kernel: Callable[..., Any] | None) -> Callable[..., Any]:
        signature = inspect.signature(overrides.plain(name))
        function = kernel or overrides.plain(name)

        def record(*args: Any, **kwargs: Any) -> Any:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            before = tuple(host_copy(a) for a in bound.args)
            depth[0] += 1
            try:
                returned = function(*bound.args)
            finally:
                depth[0] -= 1
            if depth[0] == 0:
                results = results_of(name, bound.args, returned)
                after = tuple(host_copy(r) for r in results)
                calls.append(KernelCall(name, before, after, kernel is not None))
            return returned

        return record

    for name in overrides.overridable_names():
        overrides.register(name, kind, recorder(name, overrides.replacement(name, kind)))
    try:
        yield calls
    finally:
        overrides.set_kernels(kernels)


# -- whole networks: the terms of a backward pass, the error of a forward pass --------------------


def backward_magnitudes(network: Layer, cache: Any, dy: Any) -> tuple[Any, dict[str, np.ndarray]]:
    """The magnitude of the terms behind each entry of ``network``'s backward pass for the forward
    ``cache`` and the upstream magnitudes ``dy``: the backward pass, in float64, of a copy of the
    network with absolute weights, on the absolute values of what the cache holds.

    A backward pass through Dense, Maxout and convolution layers, activations, Dropout, pooling and
    reshapes only multiplies and adds the upstream gradient, the weights and what the forward pass
    cached (inputs, masks, the activations' outputs with non-negative slopes), so the same pass on
    absolute values sums the absolute values of all its terms. BatchNorm's subtracts, and is
    refused.

    Returns
    -------
    dx, grads : the input gradient's magnitude (``None`` where the network gives none) and the
        parameter gradients' magnitudes, keyed ``"<path><name>"`` as ``network.named_layers()``
        names the layers (``"0.W"``).
    """
    if any(isinstance(layer, BatchNorm) for layer in network.walk()):
        raise TypeError("backward_magnitudes: BatchNorm's backward pass subtracts")
    copied = copy.deepcopy(network)
    copied.to("cpu")
    copied.astype(np.float64)
    for layer in copied.walk():
        for name, value in layer.params.items():
            layer.params[name] = abs(value)
    copied.zero_grad()
    dx = copied.backward(abs(to_numpy(dy).astype(np.float64)), _absolute(cache))
    grads = {
        f"{path}{name}": grad
        for path, layer in copied.named_layers()
        for name, grad in layer.grads.items()
    }
    return dx, grads


def _absolute(cache: Any) -> Any:
    """``cache`` with every float array replaced by its absolute values in float64."""
    if isinstance(cache, (list, tuple)):
        return type(cache)(_absolute(item) for item in cache)
    if hasattr(cache, "dtype") and cache.dtype.kind == "f":
        return abs(to_numpy(cache).astype(np.float64))
    return cache


def forward_bound(
    network: Layer, x: Any, training: bool = False, dtype: Any = np.float32
) -> tuple[np.ndarray, np.ndarray]:
    """The exact output of ``network`` for ``x`` and how far a forward pass in ``dtype`` may be
    from it, entry by entry, in any summation order.

    The exact output is the forward pass in float64 of a copy of the network (parameters and
    input as given, so float32 values are taken exactly). The bound is a first-order running error
    bound: after each layer, the error the layer's input carried, carried through the layer (its
    weights in absolute value for a linear layer, its slope for an activation), plus the layer's
    own rounding (:func:`rounding_bound` of its sums). The float64 pass's own error is included.

    For one layer the bound is tight (a few times the error a float32 pass shows). Through many
    layers it is the worst case, every rounding of every layer adding up with the same sign and
    carried by the absolute weights, which real errors never approach: for a DCGAN it can exceed
    the output itself. Compare deep networks layer by layer, each layer from the same input.

    Parameters
    ----------
    network : Layer
        A :class:`~tinygan.nn.Sequential` (nested or not) of Dense, Maxout, Conv2D,
        ConvTranspose2D, BatchNorm, ReLU, LeakyReLU, Sigmoid, Tanh, MaxPool2D, UpSampling2D,
        Reshape, Flatten and (in evaluation mode) Dropout layers.
    x : array
        The input, on any device.
    training : bool
        Training mode: BatchNorm normalises with the batch's statistics (the network is copied,
        so its running statistics are left alone). Dropout is refused in training mode.
    dtype : dtype
        The dtype the compared forward passes computed in.

    Returns
    -------
    exact, bound : float64 arrays of the output's shape
    """
    copied = copy.deepcopy(network)
    copied.to("cpu")
    copied.astype(np.float64)
    h = to_numpy(x).astype(np.float64)
    u = unit_roundoff(dtype) + unit_roundoff(np.float64)
    return _propagate(copied, h, np.zeros_like(h), u, training)


def assert_forward_within_rounding(
    network: Layer, x: Any, outputs: Sequence[Any], training: bool = False, what: str = "output"
) -> None:
    """Assert that every array of ``outputs``, a forward pass of ``network`` on ``x`` by some
    implementation, is within :func:`forward_bound` of the exact output."""
    dtype = to_numpy(outputs[0]).dtype
    exact, bound = forward_bound(network, x, training, dtype)
    for k, output in enumerate(outputs):
        assert_within(output, exact, bound, f"{what} {k}")


def assert_layers_within_rounding(
    network: Layer, x: Any, layer_outputs: Sequence[Any], training: bool = False, what: str = ""
) -> None:
    """Assert that ``layer_outputs``, another implementation's output of each leaf layer of
    ``network`` (nested Sequentials flattened) for the input ``x``, are each tinygan's layer
    applied to that implementation's own input for it (``x``, then the previous output), within
    the rounding bound of that one layer: tight, as each layer starts from the same input."""
    leaves = _leaves(network)
    assert len(layer_outputs) == len(leaves), f"{what}: {len(layer_outputs)} layer outputs"
    for k, (layer, given, output) in enumerate(
        zip(leaves, [x, *layer_outputs[:-1]], layer_outputs, strict=True)
    ):
        label = f"{what}, layer {k} ({type(layer).__name__})"
        assert_forward_within_rounding(layer, given, [output], training, what=label)


def _leaves(layer: Layer) -> list[Layer]:
    if isinstance(layer, Sequential):
        return [leaf for child in layer.layers for leaf in _leaves(child)]
    return [layer]


def _propagate(
    layer: Layer, h: np.ndarray, e: np.ndarray, u: float, training: bool
) -> tuple[np.ndarray, np.ndarray]:
    """``(output, error bound)`` of ``layer`` for the exact input ``h`` known to within ``e``."""
    if isinstance(layer, Sequential):
        for child in layer.layers:
            h, e = _propagate(child, h, e, u, training)
        return h, e
    if isinstance(layer, Dropout) and training:
        raise ValueError("forward_bound cannot follow Dropout's random masks in training mode")
    y = layer.forward(h, training=training)[0]
    if isinstance(layer, (Dense, Maxout, Conv2D, ConvTranspose2D)):
        # a maximum of affine pieces moves by at most the most any piece moves: Maxout's forward
        # on the absolute weights takes that maximum of the pieces' bounds
        return y, _linear_error(layer, h, e, u, training)
    if isinstance(layer, BatchNorm):
        return y, _batchnorm_error(layer, h, e, u, training)
    if isinstance(layer, (ReLU, LeakyReLU)):
        slope = max(1.0, abs(getattr(layer, "alpha", 0.0)))
        return y, slope * e + _gamma(2, u) * abs(y)  # alpha rounded, then one product
    if isinstance(layer, Tanh):  # slope at most 1; the library's error (see LIBRARY_ULPS)
        return y, e + _gamma(2 * LIBRARY_ULPS, u) * (abs(y) + 1)
    if isinstance(layer, Sigmoid):  # slope at most 1/4; see _sigmoid for the relative error
        magnitude = _sigmoid(h, plain=lambda v: y, u=u)[0][0]
        return y, e / 4 + _gamma(2 * LIBRARY_ULPS + 3, u) * (magnitude + 1)
    if isinstance(layer, (MaxPool2D, UpSampling2D)):
        # A maximum moves by at most the largest change of its window; copies carry their errors.
        return y, layer.forward(e, training=training)[0]
    if isinstance(layer, (Reshape, Dropout)):  # Dropout in evaluation mode is the identity
        return y, e.reshape(y.shape)
    raise TypeError(f"forward_bound has no rule for {type(layer).__name__}")


def _linear_error(layer: Layer, h: np.ndarray, e: np.ndarray, u: float, training: bool) -> Any:
    """``|A| e + gamma_k (|A| |h| + |b|)`` for the linear map ``A`` and bias ``b`` of ``layer``."""
    absolute = copy.deepcopy(layer)
    for name, value in absolute.params.items():
        absolute.params[name] = abs(value)
    magnitude = absolute.forward(abs(h), training=training)[0]
    carried = np.zeros_like(magnitude)
    if e.any():  # an exact input (the network's own) carries nothing
        if "b" in absolute.params:
            absolute.params["b"] = np.zeros_like(absolute.params["b"])
        carried = absolute.forward(e, training=training)[0]
    W = layer.params["W"]
    if isinstance(layer, (Dense, Maxout)):
        terms = W.shape[0]
    elif isinstance(layer, Conv2D):
        terms = W[0].size
    else:
        terms = W.shape[0] * _windows(W.shape[2:], layer.stride)
    # the bias, and one more rounding per product for a scale an optimising runtime folds into
    # the weights (a BatchNorm after the layer)
    return carried + _gamma(terms + 2, u) * magnitude


def _batchnorm_error(
    layer: BatchNorm, h: np.ndarray, e: np.ndarray, u: float, training: bool
) -> Any:
    ndim = h.ndim
    gamma_, beta = (per_channel(layer.params[k], ndim) for k in ("gamma", "beta"))
    if not training:
        # y = (x - mean) * s + beta with s = gamma / sqrt(var + eps): carried by |s|; rounded in
        # whichever form the runtime takes (x * s + (beta - mean * s) when it folds the constants)
        mean, var = (per_channel(layer.buffers[k], ndim) for k in ("mean", "var"))
        s = abs(gamma_) / np.sqrt(var + layer.eps)
        return s * e + _gamma(8, u) * ((abs(h) + abs(mean)) * s + abs(beta))
    axes, m = reduce_axes(h), h.size // h.shape[1]
    mean = h.mean(axis=axes)
    deviation = abs(h - per_channel(mean, ndim))
    var = (deviation * deviation).mean(axis=axes)
    mean_error = e.mean(axis=axes) + _gamma(m + 1, u) * abs(h).mean(axis=axes)
    # d var = 2 mean((x - mean) dx) to first order (the shift of the mean cancels), plus the
    # rounding of the two-pass sum (see _batchnorm_moments)
    spread = deviation + per_channel(mean_error, ndim)
    var_error = 2 * (deviation * e).mean(axis=axes) + _gamma(m + 3, u) * (spread * spread).mean(
        axis=axes
    )
    var_error += _gamma(m + 1, u) * abs(h).mean(axis=axes) ** 2
    std = np.sqrt(var + layer.eps)
    relative_std = var_error / (2 * (var + layer.eps)) + _gamma(4, u)
    xhat = deviation / per_channel(std, ndim)
    xhat_error = (e + per_channel(mean_error, ndim)) / per_channel(std, ndim)
    xhat_error += xhat * (per_channel(relative_std, ndim) + _gamma(2, u))
    return abs(gamma_) * xhat_error + _gamma(2, u) * (abs(gamma_) * xhat + abs(beta))
