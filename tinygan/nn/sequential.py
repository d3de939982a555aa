"""A chain of layers that is itself a layer."""

from __future__ import annotations

from typing import Any

from tinygan.nn.layer import Layer


class Sequential(Layer):
    r"""Compose layers: :math:`y = f_K(\dots f_2(f_1(x)))`.

    Notes
    -----
    The forward pass runs the children in order and keeps each child's cache in a list. The backward
    pass is the chain rule applied right to left: with :math:`h_k = f_k(h_{k-1})`,
    :math:`\partial L/\partial h_{k-1} = (\partial h_k/\partial h_{k-1})^T \partial L/\partial h_k`,
    which is exactly ``child.backward(dh, cache_k)`` for ``k = K .. 1``. ``param_grads`` is passed
    down, so ``param_grads=False`` skips every child's parameter gradients.
    """

    def __init__(self, *layers: Layer) -> None:
        super().__init__()
        for layer in layers:
            if not isinstance(layer, Layer):
                raise TypeError(f"Sequential takes Layer objects, got {type(layer).__name__}")
        self.layers = list(layers)

    def sublayers(self) -> list[Layer]:
        return self.layers

    def forward(self, x: Any, training: bool = True) -> tuple[Any, list[Any]]:
        caches = []
        for layer in self.layers:
            x, cache = layer.forward(x, training=training)
            caches.append(cache)
        return x, caches

    def backward(self, dy: Any, cache: list[Any], param_grads: bool = True) -> Any:
        for layer, layer_cache in zip(reversed(self.layers), reversed(cache), strict=True):
            dy = layer.backward(dy, layer_cache, param_grads=param_grads)
        return dy

    def __getitem__(self, index: int) -> Layer:
        return self.layers[index]

    def __len__(self) -> int:
        return len(self.layers)

    def __repr__(self) -> str:
        inner = "\n".join(f"  ({i}): {layer!r}" for i, layer in enumerate(self.layers))
        return f"Sequential(\n{inner}\n)"
