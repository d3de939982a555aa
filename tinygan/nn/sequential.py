"""A chain of layers that is itself a layer."""

from __future__ import annotations

from tinygan.backend import Array
from tinygan.nn.layer import Cache, Layer


class Sequential(Layer):
    r"""Compose layers: :math:`y = f_K(\dots f_2(f_1(x)))`.

    Notes
    -----
    The forward pass runs the children in order and keeps each child's cache in a list. The backward
    pass is the chain rule applied right to left: with :math:`h_k = f_k(h_{k-1})`,
    :math:`\partial L/\partial h_{k-1} = (\partial h_k/\partial h_{k-1})^T \partial L/\partial h_k`,
    which is exactly ``child.backward(dh, cache_k)`` for ``k = K .. 1``. ``param_grads`` is passed
    down, so ``param_grads=False`` skips every child's parameter gradients.

    ``input_grad=False`` (nobody needs :math:`\partial L/\partial h_0`) stops the chain early: the
    children below the first one with parameters only pass a gradient on towards the input, so
    they are not run at all, and that first child is asked for its parameter gradients alone.

    An error raised by a child is raised again, of the same type, with the child's position in
    front of its message: ``Sequential[3] (Dense(128, 784, bias=True)): ...``; in nested
    Sequentials the path grows, ``Sequential[1][3]``, the way one would index the child. The
    original error is kept as the cause.
    """

    def __init__(self, *layers: Layer) -> None:
        super().__init__()
        for index, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                name = type(layer).__name__
                raise TypeError(f"Sequential takes Layer objects, got {name} at position {index}")
        self.layers = list(layers)

    def sublayers(self) -> list[Layer]:
        return self.layers

    def forward(self, x: Array, training: bool = True) -> tuple[Array, list[Cache]]:
        caches = []
        for index, layer in enumerate(self.layers):
            try:
                x, cache = layer.forward(x, training=training)
            except Exception as error:
                raise self._locate(error, index)  # noqa: B904 (_locate sets the cause)
            caches.append(cache)
        return x, caches

    def backward(
        self,
        dy: Array,
        cache: list[Cache],
        param_grads: bool = True,
        input_grad: bool = True,
    ) -> Array | None:
        if not isinstance(cache, list):
            raise self.foreign_cache(cache, f"a list of its {len(self.layers)} children's caches")
        if len(cache) != len(self.layers):
            raise ValueError(
                f"{type(self).__name__}.backward expects the cache of its forward pass, one entry "
                f"per layer ({len(self.layers)}), got {len(cache)} entries"
            )
        first = 0 if input_grad else self._lowest_needing_gradient(param_grads)
        for index in reversed(range(first, len(self.layers))):
            child_input_grad = input_grad or index > first
            try:
                dy = self.layers[index].backward(
                    dy, cache[index], param_grads=param_grads, input_grad=child_input_grad
                )
            except Exception as error:
                raise self._locate(error, index)  # noqa: B904 (_locate sets the cause)
        return dy if input_grad else None

    def _lowest_needing_gradient(self, param_grads: bool) -> int:
        """Index of the first child with parameters to differentiate (``len`` when none)."""
        if param_grads:
            for index, layer in enumerate(self.layers):
                if any(sub.params for sub in layer.walk()):
                    return index
        return len(self.layers)

    def _locate(self, error: Exception, index: int) -> Exception:
        """``error`` made again with the path to the failing child in front of its message.

        An error that already passed through a nested Sequential carries its path; this one puts
        its own index in front and keeps the original error as the cause, so a traceback shows
        the failure once rather than once per level. An exception type that does not take a
        single message keeps its identity and gets the path as a note instead.
        """
        path = (index, *getattr(error, "_layer_path", ()))
        leaf = getattr(error, "_layer_name", None) or _one_line_name(self.layers[index])
        message = getattr(error, "_layer_message", str(error))
        where = f"{type(self).__name__}{''.join(f'[{i}]' for i in path)} ({leaf})"
        try:
            located = type(error)(f"{where}: {message}")
        except Exception:
            if hasattr(error, "add_note"):  # Python >= 3.11
                error.add_note(f"raised in {where}")
            return error
        located._layer_path, located._layer_name, located._layer_message = path, leaf, message
        located.__cause__ = error.__cause__ if hasattr(error, "_layer_path") else error
        located.__suppress_context__ = True
        return located

    def __getitem__(self, index: int) -> Layer:
        return self.layers[index]

    def __len__(self) -> int:
        return len(self.layers)

    def __repr__(self) -> str:
        inner = "\n".join(f"  ({i}): {layer!r}" for i, layer in enumerate(self.layers))
        return f"Sequential(\n{inner}\n)"


def _one_line_name(layer: Layer) -> str:
    """The layer's repr, or its class name where the repr spans lines (a container's)."""
    text = repr(layer)
    return type(layer).__name__ if "\n" in text else text
