r"""The Layer base class: parameters, their gradients, buffers, and the forward/backward contract.

Every layer in tinygan follows one contract::

    y, cache = layer.forward(x, training=True)
    dx = layer.backward(dy, cache)                     # also adds into layer.grads
    dx = layer.backward(dy, cache, param_grads=False)  # only dx: parameter gradients skipped
    layer.backward(dy, cache, input_grad=False)        # only layer.grads; returns None

Each flag says who needs a result. The generator step needs only ``dx`` through the discriminator
(``param_grads=False``). Nobody needs the gradient with respect to a network's *input* -- data or
noise -- so a network's first layer skips it (``input_grad=False``): a Dense layer saves the product
``dy @ W.T``, a convolution its product and col2im. Whatever the flags, the gradients that are
computed are the same numbers.

The cache is returned rather than stored on the layer because a GAN runs its discriminator twice (on a
real and on a fake batch) before either backward pass; each pass keeps its own cache.

``backward`` *adds* into ``layer.grads[name]`` so gradients from several passes accumulate, exactly as
the chain rule asks when a parameter is used twice. ``zero_grad`` resets them; the training step calls
it visibly before each update.

A gradient penalty (:mod:`tinygan.penalties`) differentiates the backward pass itself. Write a
layer's backward pass as :math:`dx = B(dy, x, \theta)`, linear in :math:`dy`. Given a vector
:math:`v` on :math:`dx` (the gradient of some scalar :math:`P` with respect to it), the *second
pass* is reverse mode run over the backward pass: it returns the gradient of
:math:`\langle v, B(dy, x, \theta) \rangle` with respect to each of B's three inputs::

    dx, kept = layer.input_gradient(dy, cache)     # backward without parameter gradients; keeps dy
    v_dy, v_x = layer.second_pass(v, cache, kept)  # adds d<v, B>/dtheta into layer.grads

* :math:`\partial \langle v, B \rangle / \partial \theta` is added into ``layer.grads``;
* ``v_dy`` :math:`= \partial \langle v, B \rangle / \partial\, dy` goes to the layer *after*
  this one in forward order, whose backward pass made ``dy``. As :math:`B = J^\top dy` is linear in
  :math:`dy`, it is :math:`J v`: the layer's forward pass linearised at ``x``, applied to ``v``;
* ``v_x`` :math:`= \partial \langle v, B \rangle / \partial x`, through what the cache holds,
  goes into an ordinary backward pass through the layers *before* this one. It is ``None`` where
  :math:`B` does not depend on :math:`x`: a Dense layer's or a convolution's backward pass never
  reads :math:`x`, a ReLU's mask is constant almost everywhere; that spares the backward pass.

A layer's module derives its second pass beside its backward pass; a layer without one (BatchNorm)
keeps the base class's, and :attr:`Layer.has_second_pass` says so.

Layers check what they are given, in one line each through the helpers below: constructor arguments
(:func:`positive_int`, :func:`int_pair`, :func:`number_in`), the input's dtype and shape
(:meth:`Layer.check_input`), the upstream gradient's shape (:meth:`Layer.check_dy`) and the kind of
cache ``backward`` was given (:meth:`Layer.foreign_cache`). A mistake then fails at the layer that
received it, with a message naming that layer, rather than as a broadcasting error three calls later
or as integer "activations" that train nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from numbers import Integral, Real
from typing import Any, TypeAlias

import numpy as np

from tinygan.backend import Array, get_array_module, move_rng, to_device, to_numpy

#: What a forward pass keeps for its backward pass (an array, a tuple of them, or a Sequential's list
#: of its children's caches): opaque to all but the layer that made it.
Cache: TypeAlias = Any


class Layer:
    """Base class of all layers.

    Attributes
    ----------
    params : dict[str, array]
        Trainable parameters, by name.
    grads : dict[str, array]
        Gradients of the loss with respect to ``params`` (same keys and shapes), accumulated by
        ``backward``.
    buffers : dict[str, array]
        Non-trainable state saved with the model (BatchNorm's running statistics, spectral
        normalisation's power-iteration vectors).
    mixes_batch : bool
        Whether one sample's output depends on the other samples of its batch in training mode
        (BatchNorm's batch statistics do, and MinibatchStd's spread of the batch). When no layer of
        a network mixes the batch, one pass over two batches stacked together is the same math as
        a pass over each.
    """

    mixes_batch: bool = False

    def __init__(self) -> None:
        self.params: dict[str, Any] = {}
        self.grads: dict[str, Any] = {}
        self.buffers: dict[str, Any] = {}

    # -- the contract --------------------------------------------------------------------------------
    def forward(self, x: Array, training: bool = True) -> tuple[Array, Cache]:
        """Compute the output and return ``(y, cache)``; ``cache`` holds what ``backward`` needs."""
        raise NotImplementedError(f"{type(self).__name__} must implement forward")

    def backward(
        self, dy: Array, cache: Cache, param_grads: bool = True, input_grad: bool = True
    ) -> Array | None:
        """Given ``dy = dL/dy`` and the forward's cache, return ``dL/dx`` and add ``dL/dparams``.

        ``param_grads=False`` leaves ``grads`` untouched; ``input_grad=False`` returns ``None``
        instead of ``dL/dx`` and need not compute it.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement backward")

    # -- the second pass (gradient penalties; the module docstring derives it) ---------------------
    def input_gradient(self, dy: Array, cache: Cache) -> tuple[Array, Cache]:
        """The backward pass for ``dL/dx`` alone, and what :meth:`second_pass` needs from it.

        Returns ``(dx, kept)``: ``dx`` as ``backward(dy, cache, param_grads=False)`` gives it (no
        parameter gradient is added) and ``kept``, for one layer the upstream gradient ``dy``
        itself; a container keeps its children's.
        """
        return self.backward(dy, cache, param_grads=False), dy

    def second_pass(
        self, v: Array, cache: Cache, kept: Cache, input_grad: bool = True
    ) -> tuple[Array, Array | None]:
        r"""Differentiate this layer's backward pass ``dx = B(dy, x, params)`` along ``v``.

        Parameters
        ----------
        v : array, the input's shape
            A vector on ``dx``: the gradient of some scalar with respect to the backward pass's
            result.
        cache : Cache
            What this layer's forward pass returned.
        kept : Cache
            What :meth:`input_gradient` kept (``dy``) from the backward pass being differentiated.
        input_grad : bool
            Whether ``v_x`` is wanted; without it ``None`` is returned and need not be computed.

        Returns
        -------
        v_dy : array, the output's shape
            :math:`\partial \langle v, B \rangle / \partial\, dy`, i.e. the forward pass
            linearised at ``x``, applied to ``v``.
        v_x : array of the input's shape, or None
            :math:`\partial \langle v, B \rangle / \partial x` through the cache; ``None`` when
            it is zero (``B`` does not depend on ``x``) or not wanted.

        :math:`\partial \langle v, B \rangle / \partial \theta` is *added* into ``grads``, as
        ``backward`` adds.
        """
        raise NotImplementedError(
            f"{type(self).__name__} has no second pass (the derivative of its backward pass)"
        )

    @property
    def has_second_pass(self) -> bool:
        """Whether this layer's class implements :meth:`second_pass`."""
        return type(self).second_pass is not Layer.second_pass

    def __call__(self, x: Array, training: bool = False) -> Array:
        """Inference convenience: the forward output alone, in evaluation mode by default."""
        return self.forward(x, training=training)[0]

    # -- parameters ----------------------------------------------------------------------------------
    def add_param(self, name: str, value: np.ndarray) -> None:
        """Register a trainable parameter and a zero gradient of the same shape."""
        self.params[name] = value
        self.grads[name] = get_array_module(value).zeros_like(value)

    def sublayers(self) -> list[Layer]:
        """Direct children (containers override this)."""
        return []

    def walk(self) -> Iterator[Layer]:
        """This layer and all its descendants, depth first."""
        yield self
        for child in self.sublayers():
            yield from child.walk()

    def named_layers(self, prefix: str = "") -> Iterator[tuple[str, Layer]]:
        """``(dotted path, layer)`` for this layer and its descendants; the root's path is ``prefix``."""
        yield prefix, self
        for index, child in enumerate(self.sublayers()):
            yield from child.named_layers(f"{prefix}{index}.")

    def zero_grad(self) -> None:
        """Set every gradient of this layer and its descendants to zero, in place."""
        for layer in self.walk():
            for grad in layer.grads.values():
                grad[...] = 0

    def add_grads(self, **grads: Array) -> None:
        """Add each computed gradient into ``self.grads[name]`` in place.

        Adding, not assigning, is the contract: a layer used on a real and a fake batch accumulates
        both passes. A gradient for a parameter the layer does not have (``b`` of a layer built with
        ``bias=False``) is ignored.
        """
        for name, grad in grads.items():
            if name in self.grads:
                self.grads[name] += grad

    def param_as(self, name: str, dtype: Any) -> Array | None:
        """``params[name]`` in ``dtype`` (no copy when it already is), ``None`` if there is none.

        A layer computes in its input's dtype: float32 parameters serve a float64 gradient check.
        """
        param = self.params.get(name)
        return None if param is None else param.astype(dtype, copy=False)

    # -- device and dtype ----------------------------------------------------------------------------
    def to(self, device: str) -> Layer:
        """Move parameters, gradients, buffers and random generators (of descendants too) to
        ``"cpu"``, ``"gpu"`` or ``"emulated"``."""
        for layer in self.walk():
            for store in (layer.params, layer.grads, layer.buffers):
                for name, value in store.items():
                    store[name] = to_device(value, device)
            if (
                getattr(layer, "rng", None) is not None
            ):  # Dropout draws its masks on the data's device
                layer.rng = move_rng(layer.rng, device)
        return self

    def astype(self, dtype: Any) -> Layer:
        """Cast parameters, gradients and buffers to ``dtype`` (float64 for gradient checks)."""
        for layer in self.walk():
            for store in (layer.params, layer.grads, layer.buffers):
                for name, value in store.items():
                    store[name] = value.astype(dtype)
        return self

    # -- saving --------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """Parameters and buffers of the whole tree as NumPy copies, keyed ``"<path>.<name>"``."""
        state = {}
        for path, layer in self.named_layers():
            for store in (layer.params, layer.buffers):
                for name, value in store.items():
                    state[f"{path}{name}"] = to_numpy(value).copy()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Copy values from ``state`` (as made by :meth:`state_dict`) into this tree, in place.

        Raises ``KeyError`` for missing or unexpected keys and ``ValueError`` for a shape mismatch, so a
        checkpoint of another architecture is never half-loaded silently.
        """
        expected = set(self.state_dict())
        missing, unexpected = expected - set(state), set(state) - expected
        if missing or unexpected:
            raise KeyError(
                f"state does not match {type(self).__name__}: missing {sorted(missing)}, "
                f"unexpected {sorted(unexpected)}"
            )
        for path, layer in self.named_layers():
            for store in (layer.params, layer.buffers):
                for name, value in store.items():
                    new = state[f"{path}{name}"]
                    if tuple(new.shape) != tuple(value.shape):
                        raise ValueError(
                            f"{path}{name}: checkpoint shape {tuple(new.shape)} does not match the "
                            f"layer's {tuple(value.shape)}"
                        )
                    xp = get_array_module(value)
                    value[...] = xp.asarray(new, dtype=value.dtype)

    # -- input checks --------------------------------------------------------------------------------
    def check_input(self, x: Array, *shapes: tuple[int | str, ...]) -> None:
        """Raise, naming this layer, unless ``x`` is a floating-point array of one of ``shapes``.

        A shape lists the sizes ``x`` must have: an int is a required size, a string (``"N"``,
        ``"H"``) is any size, named for the message. With no shapes only the dtype is checked. A
        wrong dtype raises ``TypeError`` (integer input would otherwise give integer outputs, or
        fail deep inside NumPy without saying where); a wrong shape raises ``ValueError``. Only the
        dtype and shape are read, never the values, so the cost does not grow with the batch.
        """
        check_floating(x, type(self).__name__)
        if not shapes:
            return
        got = x.shape
        for shape in shapes:  # a plain loop: any() over a generator costs twice as much
            if shape_matches(got, shape):
                return
        expected = " or ".join(format_shape(shape) for shape in shapes)
        raise ValueError(f"{type(self).__name__} expects input of shape {expected}, got {got}")

    def check_dy(self, dy: Array, shape: tuple[int, ...]) -> None:
        """Raise unless ``dy`` is a floating-point array of ``shape``, the forward output's shape.

        Without this a wrongly shaped ``dy`` broadcasts silently or fails inside a matrix product
        with a message that does not say which layer received it.
        """
        check_floating(dy, f"{type(self).__name__}.backward")
        if dy.shape != shape:
            raise ValueError(
                f"{type(self).__name__}.backward expects dy of the output's shape {tuple(shape)}, "
                f"got {tuple(dy.shape)}"
            )

    def check_second_pass(
        self, v: Array, dy: Array, x_shape: tuple[int, ...], y_shape: tuple[int, ...]
    ) -> None:
        """Raise, naming this layer, unless ``v`` (on the input) and ``dy`` (on the output) are
        floating-point arrays of the forward pass's input shape ``x_shape`` and output shape
        ``y_shape``."""
        where = f"{type(self).__name__}.second_pass"
        for name, array, shape, side in (("v", v, x_shape, "input"), ("dy", dy, y_shape, "output")):
            check_floating(array, where)
            if tuple(array.shape) != tuple(shape):
                raise ValueError(
                    f"{where} expects {name} of the {side}'s shape {tuple(shape)}, "
                    f"got {tuple(array.shape)}"
                )

    def foreign_cache(self, cache: Cache, expected: str) -> TypeError:
        """The error for a ``cache`` this layer's forward cannot have made, naming the layer.

        Each ``backward`` checks its cache's type and layout (``expected`` describes them) before
        using it, and raises this when they do not fit: ``None``, or another layer's cache, would
        otherwise fail as an ``AttributeError`` or an unpacking error that names no layer. Only
        types, lengths and shapes are read, never values: a fraction of a microsecond per call. A
        cache of the same kind made by another layer (two ReLU masks, a Tanh's output and a
        Sigmoid's) cannot be told apart; a wrong shape then fails in :meth:`check_dy`.
        """
        name = type(self).__name__
        return TypeError(
            f"{name}.backward needs the cache that this layer's forward returned ({expected}), "
            f"got {describe(cache)}"
        )

    def extra_repr(self) -> str:
        """Arguments shown by ``repr``."""
        return ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"


def check_floating(x: Array, name: str) -> None:
    """Raise ``TypeError`` naming ``name`` unless ``x`` is a floating-point array (float16/32/64).

    Reads ``x.dtype`` only, which NumPy and CuPy arrays share.
    """
    if not has_kind(x, "f"):
        got = x.dtype if hasattr(x, "dtype") else type(x).__name__
        raise TypeError(f"{name} expects a floating-point array, got {got}")


def has_kind(value: Any, kind: str) -> bool:
    """Whether ``value`` is an array whose dtype is of ``kind``: ``"f"`` floating, ``"b"`` boolean,
    ``"i"`` signed integer (NumPy's ``dtype.kind``, which CuPy shares)."""
    return getattr(getattr(value, "dtype", None), "kind", None) == kind


def is_shape(value: Any) -> bool:
    """Whether ``value`` is an array shape, a tuple of ints (on NumPy and CuPy alike)."""
    if not isinstance(value, tuple):
        return False
    for size in value:  # a plain loop: all() over a generator costs twice as much
        if not isinstance(size, int):
            return False
    return True


def describe(value: Any) -> str:
    """A few words for what a caller passed: ``None``, ``a float32 array of shape (2, 4)``,
    ``a tuple of 3 entries``, or the type's name, never the (possibly huge) values."""
    if value is None:
        return "None"
    if hasattr(value, "dtype") and hasattr(value, "shape"):
        return f"a {value.dtype} array of shape {tuple(value.shape)}"
    if isinstance(value, (tuple, list)):
        entries = "entry" if len(value) == 1 else "entries"
        return f"a {type(value).__name__} of {len(value)} {entries}"
    return type(value).__name__


def shape_matches(shape: tuple[int, ...], expected: tuple[int | str, ...]) -> bool:
    """Whether ``shape`` has ``expected``'s length and its sizes where ``expected`` gives ints."""
    if len(shape) != len(expected):
        return False
    for want, got in zip(expected, shape, strict=False):  # lengths checked: strict costs time
        if want != got and not isinstance(want, str):
            return False
    return True


def format_shape(shape: tuple[int | str, ...]) -> str:
    """``("N", 3, "H", "W")`` as ``"(N, 3, H, W)"``; one entry keeps its comma, as in Python."""
    inner = ", ".join(str(size) for size in shape)
    return f"({inner},)" if len(shape) == 1 else f"({inner})"


# -- constructor arguments -------------------------------------------------------------------------
def is_int(value: Array) -> bool:
    """An integer, NumPy's included; not a bool (``kernel_size=True`` is a bug, not a size)."""
    return isinstance(value, Integral) and not isinstance(value, bool)


def positive_int(value: Array, name: str, layer: str) -> int:
    """``value`` as an int; ``ValueError`` naming ``layer`` and ``name`` unless an int >= 1."""
    if not is_int(value) or value < 1:
        raise ValueError(f"{layer}: {name} must be a positive int, got {value!r}")
    return int(value)


def int_pair(value: Array, name: str, layer: str, minimum: int) -> tuple[int, int]:
    """``(value, value)`` for an int, the pair itself for a pair of ints.

    Raises ``ValueError`` (naming ``layer`` and ``name``) for anything else or an entry below
    ``minimum``.
    """
    pair = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(pair) != 2 or not all(is_int(v) for v in pair):
        raise ValueError(f"{layer}: {name} must be an int or a pair of ints, got {value!r}")
    if min(pair) < minimum:
        raise ValueError(f"{layer}: {name} must be >= {minimum}, got {value!r}")
    return int(pair[0]), int(pair[1])


def number_in(value: Array, interval: str, name: str, layer: str) -> float:
    """``value`` as a float; ``ValueError`` naming ``layer`` and ``name`` unless in ``interval``.

    ``interval`` is written as in mathematics, ``"[0, 1)"`` or ``"(0, inf)"``: a bracket includes
    its end, a parenthesis excludes it, so ``"(-inf, inf)"`` means any finite number. NaN lies in
    no interval.
    """
    low, high = (float(end) for end in interval[1:-1].split(","))
    ok = isinstance(value, Real) and not isinstance(value, bool)
    if ok:
        value = float(value)
        ok = (low <= value if interval[0] == "[" else low < value) and (
            value <= high if interval[-1] == "]" else value < high
        )
    if not ok:
        raise ValueError(f"{layer}: {name} must be a number in {interval}, got {value!r}")
    return value
