"""Layers that change the shape of each sample but not its values: Reshape and Flatten."""

from __future__ import annotations

import math

from tinygan.backend import Array
from tinygan.nn.layer import Cache, Layer, is_int, is_shape


class Reshape(Layer):
    r"""Reshape every sample, keeping the batch axis: (N, ...) -> (N, \*shape).

    Parameters
    ----------
    shape : tuple of int
        Target shape of one sample, without the batch axis (as Keras' ``Reshape``). One entry may
        be -1: it is inferred from the number of values per sample. Images are NCHW, so Keras'
        ``Reshape((7, 7, 128))`` for a generator becomes ``Reshape((128, 7, 7))``.

    Shapes
    ------
    x: (N, d1, ..., dk) -> y: (N, \*shape), with ``prod(shape) == d1 * ... * dk``.

    Notes
    -----
    Forward: read in row-major (C) order, the values are unchanged; only their indices change. In
    that order the Jacobian is the identity matrix.

    Backward: the transpose of the identity is the identity, so :math:`\partial L/\partial x` is
    :math:`\partial L/\partial y` read in the same order, i.e. reshaped back to the input shape.
    The cache is the input shape, and the output shape that ``dy`` must have. The backward pass
    :math:`dx = \operatorname{reshape}(dy)` is linear and reads no input values, so its second
    pass (:meth:`Layer.second_pass`) sends ``v`` on in the output's shape and nothing to ``x``.
    Non-contiguous inputs
    (a transposed view, say) are copied into row-major order by ``reshape``; the result is the same
    as for a contiguous copy of the input.
    """

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        sizes = tuple(shape) if isinstance(shape, (tuple, list)) else None
        if (
            sizes is None
            or sizes.count(-1) > 1
            or not all(is_int(s) and (s >= 1 or s == -1) for s in sizes)
        ):
            raise ValueError(
                f"{type(self).__name__}: shape must be a tuple of positive ints, with at most one "
                f"-1 for a size to infer, got {shape!r}"
            )
        self.shape = tuple(int(s) for s in sizes)

    def forward(self, x: Array, training: bool = True) -> tuple[Array, Cache]:
        self.check_input(x)
        sample_shape = self._sample_shape(x)
        y = x.reshape((x.shape[0], *sample_shape))
        return y, (x.shape, y.shape)

    def backward(
        self, dy: Array, cache: Cache, param_grads: bool = True, input_grad: bool = True
    ) -> Array | None:
        x_shape, y_shape = self.cached_shapes(cache)
        self.check_dy(dy, y_shape)
        if not input_grad:  # without parameters there is nothing else to compute
            return None
        return dy.reshape(x_shape)

    def second_pass(
        self, v: Array, cache: Cache, kept: Cache, input_grad: bool = True
    ) -> tuple[Array, Array | None]:
        x_shape, y_shape = self.cached_shapes(cache)
        self.check_second_pass(v, kept, x_shape, y_shape)
        return v.reshape(y_shape), None

    def cached_shapes(self, cache: Cache) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """``(input shape, output shape)`` from ``cache``, once checked to be that pair."""
        if not (
            isinstance(cache, tuple)
            and len(cache) == 2
            and is_shape(cache[0])
            and is_shape(cache[1])
        ):
            raise self.foreign_cache(cache, "the tuple (input shape, output shape)")
        return cache

    def _sample_shape(self, x: Array) -> tuple[int, ...]:
        """``self.shape`` with its -1 resolved for ``x``; ValueError when the sizes disagree.

        Resolving -1 here rather than in ``reshape`` keeps an empty batch (N = 0) working.
        """
        name = type(self).__name__
        if getattr(x, "ndim", 0) < 1:
            raise ValueError(
                f"{name} expects a batch of shape (N, ...), got {getattr(x, 'shape', x)}"
            )
        per_sample = math.prod(x.shape[1:])
        known = math.prod(s for s in self.shape if s != -1)
        inferred = per_sample // known if -1 in self.shape else 1
        shape = tuple(inferred if s == -1 else s for s in self.shape)
        if math.prod(shape) != per_sample:
            wanted = f"a multiple of {known}" if -1 in self.shape else str(known)
            raise ValueError(
                f"{name} to (N, {', '.join(map(str, self.shape))}) expects input of shape "
                f"(N, ...) with {wanted} values per sample, got {tuple(x.shape)}"
            )
        return shape

    def extra_repr(self) -> str:
        return f"{self.shape}"


class Flatten(Reshape):
    r"""Flatten every sample to a vector: (N, d1, ..., dk) -> (N, d1 * ... * dk).

    The special case ``Reshape((-1,))``; see :class:`Reshape` for the (trivial) backward pass. For
    NCHW images the vector is ordered channel by channel, unlike Keras' NHWC ``Flatten``.
    """

    def __init__(self) -> None:
        super().__init__((-1,))

    def extra_repr(self) -> str:
        return ""
