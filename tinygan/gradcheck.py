"""Finite-difference gradient checking.

A hand-written backward pass is only trustworthy once it agrees with the definition of the derivative.
For a scalar function :math:`f`, the *central difference*

.. math:: \\frac{f(x + \\epsilon e_i) - f(x - \\epsilon e_i)}{2\\epsilon}
          = \\frac{\\partial f}{\\partial x_i} + O(\\epsilon^2)

is accurate to second order. In float64 with :math:`\\epsilon = 10^{-6}` the truncation error is about
:math:`10^{-12}` and the rounding error about :math:`10^{-16}/\\epsilon = 10^{-10}`, so a correct backward
agrees to a relative error well below :math:`10^{-7}`; a wrong one is off by order 1.

To check a layer :math:`y = f(x)` whose output is an array, reduce it to a scalar with a *random*
upstream gradient :math:`g`: :math:`L = \\sum y \\odot g`, so that :math:`\\partial L/\\partial y = g`.
(An all-ones :math:`g` would hide bugs: BatchNorm's input gradient is exactly zero for it.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from tinygan.backend import get_array_module, to_numpy
from tinygan.nn.layer import Layer


def rel_error(analytic: Any, numeric: Any) -> float:
    """Relative error ``max|a - n| / max(1e-12, max|a| + max|n|)`` between two arrays.

    Normalising by the scale of the whole gradient (rather than entry by entry) keeps entries that are
    tiny in both from dominating the measure.
    """
    a = to_numpy(analytic).astype(np.float64)
    n = to_numpy(numeric).astype(np.float64)
    if a.shape != n.shape:
        raise ValueError(f"shape mismatch: analytic {a.shape} vs numeric {n.shape}")
    scale = max(1e-12, float(np.abs(a).max(initial=0.0) + np.abs(n).max(initial=0.0)))
    return float(np.abs(a - n).max(initial=0.0)) / scale


def numerical_gradient(f: Callable[[], float], x: Any, eps: float = 1e-6) -> Any:
    """Central-difference gradient of the scalar ``f()`` with respect to the array ``x``.

    ``x`` is perturbed *in place*, one entry at a time, and restored; ``f`` must read ``x`` (for
    example a closure over a layer's parameter). Costs ``2 * x.size`` evaluations of ``f``.

    Parameters
    ----------
    f : callable
        Takes no arguments and returns a scalar that depends on the current contents of ``x``.
    x : array, float64
        The variable; must be writable.
    eps : float
        Step size.

    Returns
    -------
    array of ``x``'s shape and dtype
    """
    xp = get_array_module(x)
    if not x.flags.c_contiguous:
        raise ValueError("numerical_gradient perturbs x in place and needs a C-contiguous array")
    grad = xp.zeros_like(x)
    flat_x, flat_grad = x.reshape(-1), grad.reshape(-1)  # views, so writes reach x
    for i in range(flat_x.size):
        original = flat_x[i].copy()
        flat_x[i] = original + eps
        f_plus = float(f())
        flat_x[i] = original - eps
        f_minus = float(f())
        flat_x[i] = original
        flat_grad[i] = (f_plus - f_minus) / (2 * eps)
    return grad


def repeatable_forward(
    layer: Layer, x: Any, training: bool, before_forward: Callable[[], None] | None
) -> tuple[Any, Callable[[], Any]]:
    """A float64 copy of ``x`` to perturb, and ``forward()``: ``layer.forward`` of that copy, after
    ``before_forward()`` (which re-seeds what the forward pass draws) where one is given."""
    x = get_array_module(x).array(x, dtype=np.float64, copy=True)

    def forward() -> Any:
        if before_forward is not None:
            before_forward()
        return layer.forward(x, training=training)

    return x, forward


def check_layer(
    layer: Layer,
    x: Any,
    rng: np.random.Generator | None = None,
    training: bool = True,
    eps: float = 1e-6,
    params: bool = True,
    before_forward: Callable[[], None] | None = None,
) -> dict[str, float]:
    """Compare a layer's backward pass with central differences; return relative errors.

    Parameters
    ----------
    layer : Layer
        The layer to check; its parameters should be float64 (``layer.astype(np.float64)``).
    x : array, float64
        Input batch. Keep it away from kinks (ReLU at 0, max-pool ties).
    rng : numpy.random.Generator, optional
        Draws the random upstream gradient.
    training : bool
        Mode passed to ``forward``.
    eps : float
        Finite-difference step.
    params : bool
        Also check every parameter's gradient.
    before_forward : callable, optional
        Called before every forward pass, e.g. to re-seed a Dropout layer so that each evaluation
        uses the same mask.

    Returns
    -------
    dict
        ``{"x": err, "<param name>": err, ...}``, with parameter names as dotted paths
        (``"0.W"``) for containers.
    """
    rng = np.random.default_rng(0) if rng is None else rng
    xp = get_array_module(x)
    x, forward = repeatable_forward(layer, x, training, before_forward)
    y, cache = forward()
    upstream = xp.asarray(rng.standard_normal(y.shape))

    def loss() -> float:
        return float((forward()[0] * upstream).sum())

    layer.zero_grad()
    dx = layer.backward(upstream, cache, param_grads=params)
    errors = {"x": rel_error(dx, numerical_gradient(loss, x, eps))}
    if params:
        for path, sub in layer.named_layers():
            for name, value in sub.params.items():
                numeric = numerical_gradient(loss, value, eps)
                errors[f"{path}{name}"] = rel_error(sub.grads[name], numeric)
    return errors


def check_second_pass(
    layer: Layer,
    x: Any,
    rng: np.random.Generator | None = None,
    training: bool = True,
    eps: float = 1e-6,
    before_forward: Callable[[], None] | None = None,
) -> dict[str, float]:
    """Compare a layer's second pass with central differences; return relative errors.

    With random ``dy`` (on the output) and ``v`` (on the input) the scalar
    :math:`\\Phi(x, \\theta, dy) = \\langle v, B(dy, x, \\theta) \\rangle`, where ``B`` is the
    layer's backward pass, is differentiated numerically with respect to ``x``, ``dy`` and every
    parameter, and compared with what :meth:`~tinygan.nn.layer.Layer.second_pass` returns (``v_x``,
    ``v_dy``) and adds into the gradients. A ``v_x`` of ``None`` stands for zeros: the numerical
    derivative must then be zero too.

    Parameters are as in :func:`check_layer`; ``before_forward`` re-seeds a Dropout layer so that
    every evaluation draws the same mask.

    Returns
    -------
    dict
        ``{"x": err, "dy": err, "<param path>": err, ...}``.
    """
    rng = np.random.default_rng(0) if rng is None else rng
    xp = get_array_module(x)
    x, forward = repeatable_forward(layer, x, training, before_forward)
    y, cache = forward()
    dy = xp.asarray(rng.standard_normal(y.shape))
    v = xp.asarray(rng.standard_normal(x.shape))

    def phi() -> float:
        dx = layer.backward(dy, forward()[1], param_grads=False)
        return float((dx * v).sum())

    layer.zero_grad()
    _, kept = layer.input_gradient(dy, cache)
    v_dy, v_x = layer.second_pass(v, cache, kept)
    v_x = xp.zeros_like(x) if v_x is None else v_x
    errors = {
        "x": rel_error(v_x, numerical_gradient(phi, x, eps)),
        "dy": rel_error(v_dy, numerical_gradient(phi, dy, eps)),
    }
    for path, sub in layer.named_layers():
        for name, value in sub.params.items():
            errors[f"{path}{name}"] = rel_error(
                sub.grads[name], numerical_gradient(phi, value, eps)
            )
    return errors
