"""The Layer base class: parameters, their gradients, buffers, and the forward/backward contract.

Every layer in tinygan follows one contract::

    y, cache = layer.forward(x, training=True)
    dx = layer.backward(dy, cache)                     # also adds into layer.grads
    dx = layer.backward(dy, cache, param_grads=False)  # only dx: parameter gradients skipped

The cache is returned rather than stored on the layer because a GAN runs its discriminator twice (on a
real and on a fake batch) before either backward pass; each pass keeps its own cache.

``backward`` *adds* into ``layer.grads[name]`` so gradients from several passes accumulate, exactly as
the chain rule asks when a parameter is used twice. ``zero_grad`` resets them; the training step calls
it visibly before each update.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from tinygan.backend import get_array_module, move_rng, to_device, to_numpy


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
        Non-trainable state saved with the model (BatchNorm's running statistics).
    """

    def __init__(self) -> None:
        self.params: dict[str, Any] = {}
        self.grads: dict[str, Any] = {}
        self.buffers: dict[str, Any] = {}

    # -- the contract --------------------------------------------------------------------------------
    def forward(self, x: Any, training: bool = True) -> tuple[Any, Any]:
        """Compute the output and return ``(y, cache)``; ``cache`` holds what ``backward`` needs."""
        raise NotImplementedError(f"{type(self).__name__} must implement forward")

    def backward(self, dy: Any, cache: Any, param_grads: bool = True) -> Any:
        """Given ``dy = dL/dy`` and the forward's cache, return ``dL/dx`` and add ``dL/dparams``."""
        raise NotImplementedError(f"{type(self).__name__} must implement backward")

    def __call__(self, x: Any, training: bool = False) -> Any:
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

    def num_params(self) -> int:
        """Number of trainable scalars in this layer and its descendants."""
        return sum(int(p.size) for layer in self.walk() for p in layer.params.values())

    # -- device and dtype ----------------------------------------------------------------------------
    def to(self, device: str) -> Layer:
        """Move parameters, gradients, buffers and random generators (of descendants too) to
        ``"cpu"`` or ``"gpu"``."""
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
    def check_input(
        self, x: Any, ndim: int, axis: int | None = None, size: int | None = None
    ) -> None:
        """Raise ``ValueError`` naming this layer unless ``x`` is a floating array of ``ndim``
        dimensions whose ``axis`` has length ``size``."""
        name = type(self).__name__
        xp = get_array_module(x)
        if not hasattr(x, "dtype") or not xp.issubdtype(x.dtype, xp.floating):
            raise ValueError(
                f"{name} expects a floating-point array, got {getattr(x, 'dtype', type(x))}"
            )
        if x.ndim != ndim or (axis is not None and x.shape[axis] != size):
            wanted = ["N"] + ["*"] * (ndim - 1)
            if axis is not None:
                wanted[axis] = str(size)
            raise ValueError(
                f"{name} expects input of shape ({', '.join(wanted)}), got {tuple(x.shape)}"
            )

    def extra_repr(self) -> str:
        """Arguments shown by ``repr``."""
        return ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"
