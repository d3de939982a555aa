"""Batch normalisation over the batch (and spatial) axes, one mean and variance per channel."""

from __future__ import annotations

from typing import Any

import numpy as np

from tinygan.backend import Array, get_array_module
from tinygan.nn.layer import Cache, Layer, has_kind, number_in, positive_int
from tinygan.overrides import overridable


def reduce_axes(x: Array) -> tuple[int, ...]:
    """Every axis but the channel axis 1: ``(0,)`` for (N, C), ``(0, 2, 3)`` for (N, C, H, W)."""
    return (0, *range(2, x.ndim))


def per_channel(v: Array, ndim: int) -> Array:
    """View a (C,) vector as (1, C, 1, ...) so that it broadcasts along axis 1 of an ndim array."""
    return v.reshape((1, -1) + (1,) * (ndim - 2))


@overridable
def batchnorm_moments(x: Array) -> tuple[Array, Array]:
    """Per-channel mean and *biased* variance of ``x`` (N, C) or (N, C, H, W), each of shape (C,).

    Two passes (the mean first, then the mean squared deviation) rather than
    ``E[x^2] - E[x]^2``, which cancels catastrophically when ``|mean| >> std`` (a ReLU output, say).
    The sums run in x's dtype: with two passes float32 statistics stay within about ``1e-6``
    relative of float64 ones for the 10^4 to 10^5 values per channel of a DCGAN batch.
    """
    axes = reduce_axes(x)
    mean = x.mean(axis=axes)
    centered = x - per_channel(mean, x.ndim)
    return mean, (centered * centered).mean(axis=axes)


@overridable
def batchnorm_forward(
    x: Array, mean: Array, var: Array, gamma: Array, beta: Array, eps: float
) -> tuple[Array, Array, Array]:
    """Normalise ``x`` with the per-channel ``mean`` and ``var``, then scale by ``gamma`` and shift
    by ``beta`` (all (C,), in x's dtype).

    Returns ``y = gamma * xhat + beta`` and ``xhat = (x - mean) * inv_std`` (x's shape), and
    ``inv_std = 1 / sqrt(var + eps)`` (C,); ``xhat`` and ``inv_std`` are what the backward needs.
    """
    inv_std = 1 / get_array_module(x).sqrt(var + eps)
    xhat = (x - per_channel(mean, x.ndim)) * per_channel(inv_std, x.ndim)
    return xhat * per_channel(gamma, x.ndim) + per_channel(beta, x.ndim), xhat, inv_std


@overridable
def batchnorm_backward(
    dy: Array, xhat: Array, inv_std: Array, gamma: Array, batch_stats: bool = True
) -> tuple[Array, Array, Array]:
    """Gradients ``(dx, dgamma, dbeta)`` of batch normalisation, from :func:`batchnorm_forward`'s
    ``xhat`` and ``inv_std``.

    ``batch_stats`` is True when the forward pass used the batch's own statistics (training), so
    the gradient also flows through the mean and the variance. With ``M`` values per channel and
    ``dxhat = gamma * dy`` that gradient is
    ``dx = inv_std / M * (M * dxhat - sum(dxhat) - xhat * sum(dxhat * xhat))``; since
    ``sum(dxhat) = gamma * dbeta`` and ``sum(dxhat * xhat) = gamma * dgamma``, the two reductions
    the parameters need are the only ones ``dx`` needs. With fixed statistics ``dx = gamma *
    inv_std * dy``.
    """
    ndim = dy.ndim
    axes = reduce_axes(dy)
    dbeta = dy.sum(axis=axes)
    dgamma = (dy * xhat).sum(axis=axes)
    scale = per_channel(gamma * inv_std, ndim)
    if not batch_stats:
        return dy * scale, dgamma, dbeta
    m = dy.size // dy.shape[1]
    centered = m * dy - per_channel(dbeta, ndim) - xhat * per_channel(dgamma, ndim)
    return (scale / m) * centered, dgamma, dbeta


class BatchNorm(Layer):
    r"""Batch normalisation: standardise each channel over the batch, then scale and shift.

    Parameters
    ----------
    num_features : int
        Number of channels ``C`` (axis 1 of the input).
    momentum : float
        Weight of the current batch in the running statistics, PyTorch's convention:
        ``running = (1 - momentum) * running + momentum * batch``.
    eps : float
        Added to the variance before the square root.
    dtype : dtype
        Dtype of the parameters and buffers.

    Shapes
    ------
    x: (N, C) -> y: (N, C), statistics over N; x: (N, C, H, W) -> y: (N, C, H, W), statistics over
    N, H and W. ``params["gamma"]`` (ones) and ``params["beta"]`` (zeros): (C,).
    ``buffers["mean"]`` (zeros) and ``buffers["var"]`` (ones): (C,).

    Notes
    -----
    Write :math:`M` for the number of values per channel (``N`` or ``N*H*W``) and let sums run over
    them. In training mode, with the batch's own statistics,

    .. math::
        \mu = \frac{1}{M}\sum_i x_i, \quad \sigma^2 = \frac{1}{M}\sum_i (x_i - \mu)^2, \quad
        \hat x_i = \frac{x_i - \mu}{\sqrt{\sigma^2 + \epsilon}}, \quad y_i = \gamma \hat x_i + \beta.

    Backward, with :math:`\delta_i = \partial L/\partial y_i`: :math:`\partial L/\partial \beta =
    \sum_i \delta_i`, :math:`\partial L/\partial \gamma = \sum_i \delta_i \hat x_i`, and with
    :math:`d\hat x_i = \gamma \delta_i` and :math:`s = \sqrt{\sigma^2 + \epsilon}`

    .. math::
        \frac{\partial L}{\partial x_i} = \frac{1}{M s}
        \Big(M\, d\hat x_i - \sum_j d\hat x_j - \hat x_i \sum_j d\hat x_j \hat x_j\Big).

    Each :math:`x_i` reaches the loss directly and through :math:`\mu` and :math:`\sigma^2`, which
    depend on every sample; the two sums are those two indirect paths. They remove from
    :math:`d\hat x` its mean and its component along :math:`\hat x`: shifting or scaling a whole
    channel of the input leaves :math:`\hat x` unchanged, so the gradient has no such component. The
    full derivation is in ``docs/batchnorm_backward.md``.

    The running statistics are updated in place on every training forward pass; the running
    variance uses the *unbiased* batch variance :math:`\sigma^2 M / (M - 1)` (as PyTorch) while the
    normalisation uses the biased :math:`\sigma^2`. Training needs :math:`M \ge 2`.

    In evaluation mode :math:`\mu, \sigma^2` are the running statistics, constants as far as
    :math:`x` is concerned, so the layer is affine per channel and
    :math:`\partial L/\partial x_i = \gamma\, \delta_i / s`.

    Statistics and gradients are computed in the input's dtype (float32 stays float32): the
    variance is a two-pass mean of squared deviations, which keeps float32 within about ``1e-6``
    relative of float64 for DCGAN-sized batches; see :func:`batchnorm_moments`.

    Keras' ``BatchNormalization()`` defaults (``momentum=0.99``, ``epsilon=1e-3``) weight the *old*
    running value by ``momentum``; the same layer here is ``BatchNorm(C, momentum=0.01, eps=1e-3)``.
    Keras also normalises the last axis (NHWC) where tinygan uses axis 1 (NCHW).
    """

    mixes_batch = True  # the batch mean and variance make every output depend on the batch

    def __init__(
        self,
        num_features: int,
        momentum: float = 0.1,
        eps: float = 1e-5,
        dtype: Any = np.float32,
    ) -> None:
        super().__init__()
        self.num_features = positive_int(num_features, "num_features", "BatchNorm")
        self.momentum = number_in(momentum, "[0, 1]", "momentum", "BatchNorm")
        self.eps = number_in(eps, "(0, inf)", "eps", "BatchNorm")
        self.add_param("gamma", np.ones(self.num_features, dtype=dtype))
        self.add_param("beta", np.zeros(self.num_features, dtype=dtype))
        self.buffers["mean"] = np.zeros(self.num_features, dtype=dtype)
        self.buffers["var"] = np.ones(self.num_features, dtype=dtype)

    def forward(self, x: Array, training: bool = True) -> tuple[Array, Cache]:
        self.check_input(x, ("N", self.num_features), ("N", self.num_features, "H", "W"))
        gamma = self.params["gamma"].astype(x.dtype, copy=False)
        beta = self.params["beta"].astype(x.dtype, copy=False)
        if training:
            m = x.size // x.shape[1]
            if m < 2:
                raise ValueError(
                    f"BatchNorm needs more than one value per channel in training mode (the "
                    f"variance of one value is 0), got input of shape {tuple(x.shape)}"
                )
            mean, var = batchnorm_moments(x)
            self._update_running(mean, var * (m / (m - 1)))
        else:
            mean = self.buffers["mean"].astype(x.dtype, copy=False)
            var = self.buffers["var"].astype(x.dtype, copy=False)
        y, xhat, inv_std = batchnorm_forward(x, mean, var, gamma, beta, self.eps)
        return y, (xhat, inv_std, training)

    def backward(
        self, dy: Array, cache: Cache, param_grads: bool = True, input_grad: bool = True
    ) -> Array | None:
        if not (
            isinstance(cache, tuple)
            and len(cache) == 3
            and has_kind(cache[0], "f")
            and has_kind(cache[1], "f")
            and cache[1].shape == (self.num_features,)
        ):
            raise self.foreign_cache(
                cache, f"the tuple (x_hat, 1/std, training), 1/std of shape ({self.num_features},)"
            )
        xhat, inv_std, batch_stats = cache
        self.check_dy(dy, xhat.shape)
        gamma = self.params["gamma"].astype(dy.dtype, copy=False)
        dx, dgamma, dbeta = batchnorm_backward(dy, xhat, inv_std, gamma, batch_stats)
        if param_grads:
            self.add_grads(gamma=dgamma, beta=dbeta)
        # dx comes out of the same pass as dgamma and dbeta; a first layer is rarely a BatchNorm,
        # so the flag only drops it rather than splitting the kernel.
        return dx if input_grad else None

    def _update_running(self, batch_mean: Any, batch_var_unbiased: Any) -> None:
        """``running = (1 - m) * running + m * batch``, in place so that references stay valid."""
        for name, batch in (("mean", batch_mean), ("var", batch_var_unbiased)):
            running = self.buffers[name]
            running *= 1 - self.momentum
            running += self.momentum * batch

    def extra_repr(self) -> str:
        return f"{self.num_features}, momentum={self.momentum}, eps={self.eps}"
