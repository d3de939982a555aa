"""A chain of layers that is itself a layer."""

from __future__ import annotations

from tinygan.backend import Array
from tinygan.nn.layer import Cache, Layer, describe


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

    Second pass (:meth:`Layer.second_pass`). The backward pass of the chain is
    :math:`dh_{k-1} = B_k(dh_k, h_{k-1})` for :math:`k = K .. 1`, and :meth:`input_gradient` keeps
    every :math:`dh_k`. Reverse mode over *that* computation visits the children in the opposite
    order, i.e. forward order: the vector :math:`v` on :math:`dh_0` goes through
    ``children[0].second_pass``, which adds its parameter gradients and hands a vector on
    :math:`dh_1` to ``children[1]``, and so on up to the vector on :math:`dh_K`, returned as
    ``v_dy``. Each child also returns a vector ``v_x`` on its input :math:`h_{k-1}` (through its
    cache): :math:`h_{k-1}` was computed by the children below it, so these vectors are gradients
    to send back through the forward pass, an ordinary backward pass run from the top, to which
    each child's vector is added at its input as the pass goes by. That backward pass adds the
    remaining parameter gradients, and what reaches :math:`h_0` is the chain's ``v_x``. Where no
    child returns a vector (affine layers and ReLUs only) it is not run at all.

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
        self._check_caches(cache)
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

    def input_gradient(self, dy: Array, cache: list[Cache]) -> tuple[Array, list[Cache]]:
        """The backward pass without parameter gradients, keeping every child's ``kept``."""
        self._check_caches(cache)
        kept: list[Cache] = [None] * len(self.layers)
        for index in reversed(range(len(self.layers))):
            try:
                dy, kept[index] = self.layers[index].input_gradient(dy, cache[index])
            except Exception as error:
                raise self._locate(error, index)  # noqa: B904 (_locate sets the cause)
        return dy, kept

    def second_pass(
        self, v: Array, cache: list[Cache], kept: list[Cache], input_grad: bool = True
    ) -> tuple[Array, Array | None]:
        self._check_caches(cache)
        if not (isinstance(kept, list) and len(kept) == len(self.layers)):
            raise TypeError(
                f"{type(self).__name__}.second_pass needs what its input_gradient kept, a list of "
                f"{len(self.layers)} entries, got {describe(kept)}"
            )
        on_inputs: list[Array | None] = []
        for index, layer in enumerate(self.layers):  # forward order: v travels towards the output
            try:
                v, v_x = layer.second_pass(v, cache[index], kept[index], input_grad or index > 0)
            except Exception as error:
                raise self._locate(error, index)  # noqa: B904 (_locate sets the cause)
            on_inputs.append(v_x)
        # The vectors on the children's inputs, sent back through the forward pass.
        back = None
        for index in reversed(range(len(self.layers))):
            if back is not None:
                try:
                    back = self.layers[index].backward(
                        back, cache[index], input_grad=input_grad or index > 0
                    )
                except Exception as error:
                    raise self._locate(error, index)  # noqa: B904 (_locate sets the cause)
            if on_inputs[index] is not None:
                back = on_inputs[index] if back is None else back + on_inputs[index]
        return v, back

    def _check_caches(self, cache: list[Cache]) -> None:
        """Raise unless ``cache`` is a list of one cache per child, as ``forward`` returns."""
        if not isinstance(cache, list):
            raise self.foreign_cache(cache, f"a list of its {len(self.layers)} children's caches")
        if len(cache) != len(self.layers):
            raise ValueError(
                f"{type(self).__name__}.backward expects the cache of its forward pass, one entry "
                f"per layer ({len(self.layers)}), got {len(cache)} entries"
            )

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
