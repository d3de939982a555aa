"""Flat storage: many parameters, their gradients and optimizer state in one buffer each.

A network's parameters are small arrays of very different sizes; an update rule applied to each one
in turn pays a Python call, a dispatch and its temporaries per parameter. Homed in one contiguous
buffer per dtype (and device), all of them are updated by a single call over the whole buffer and
zeroed by a single fill, with the same numbers: the update rules are elementwise.

The layers do not notice. :func:`flatten_parameters` copies each parameter (and its gradient) into
its stretch of the buffer and puts a *view* of that stretch, of the parameter's shape, back into
``layer.params[name]`` (and ``layer.grads[name]``). Everything that works in place -- ``grads[name]
+= ...``, the optimizer's update, ``load_state_dict`` -- then reads and writes the buffer. Code that
*rebinds* ``layer.params[name]`` to a new array (``Layer.to``, ``Layer.astype``) detaches that
parameter from the buffer; :meth:`FlatGroup.is_current` notices and the optimizer flattens again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tinygan.backend import Array, device_of, get_array_module
from tinygan.nn.layer import Layer


@dataclass
class FlatGroup:
    """Parameters of one dtype on one device, homed in flat buffers.

    Attributes
    ----------
    slots : list of (Layer, str)
        Where each parameter lives: ``layer.params[name]``, in buffer order.
    spans : list of slice
        Each parameter's stretch of the buffers.
    params, grads : 1-D arrays
        The buffers; ``layer.params[name]`` is ``params[span].reshape(shape)``, likewise the grads.
    views : list of (array, array)
        The parameter and gradient views handed to the layers, to recognise them later.
    state : dict[str, 1-D array]
        An optimizer's state buffers of the same layout (its moments), filled by the optimizer.
    """

    slots: list[tuple[Layer, str]]
    spans: list[slice]
    params: Array
    grads: Array
    views: list[tuple[Array, Array]]
    state: dict[str, Array] = field(default_factory=dict)

    def view(self, flat: Array, index: int) -> Array:
        """The stretch of ``flat`` (a buffer of this layout) for parameter ``index``, in its shape."""
        layer, name = self.slots[index]
        return flat[self.spans[index]].reshape(layer.params[name].shape)

    def is_current(self) -> bool:
        """Whether every layer still holds this group's views (nothing rebound them since)."""
        for (layer, name), (param, grad) in zip(self.slots, self.views, strict=False):
            if layer.params.get(name) is not param or layer.grads.get(name) is not grad:
                return False
        return True


def flatten_parameters(slots: list[tuple[Layer, str]]) -> list[FlatGroup]:
    """Home the parameters ``layer.params[name]`` of ``slots`` (and their gradients) in flat buffers.

    One group per (device, dtype), slots in the given order within each. Values are copied; the
    layers are given views of the buffers in place of their arrays.
    """
    by_kind: dict[tuple[str, str], list[tuple[Layer, str]]] = {}
    for layer, name in slots:
        param = layer.params[name]
        by_kind.setdefault((device_of(param), param.dtype.str), []).append((layer, name))
    groups = []
    for members in by_kind.values():
        first = members[0][0].params[members[0][1]]
        xp = get_array_module(first)
        sizes = [int(layer.params[name].size) for layer, name in members]
        params = xp.empty(sum(sizes), dtype=first.dtype)
        grads = xp.empty(sum(sizes), dtype=first.dtype)
        spans, views, offset = [], [], 0
        for (layer, name), size in zip(members, sizes, strict=True):
            spans.append(slice(offset, offset + size))
            offset += size
            shape = layer.params[name].shape
            param, grad = params[spans[-1]].reshape(shape), grads[spans[-1]].reshape(shape)
            param[...] = layer.params[name]
            grad[...] = layer.grads[name]
            layer.params[name], layer.grads[name] = param, grad
            views.append((param, grad))
        groups.append(FlatGroup(members, spans, params, grads, views))
    return groups


def all_distinct(arrays: list[Any]) -> bool:
    """Whether no array object appears twice (a tied weight cannot be given two homes)."""
    return len({id(array) for array in arrays}) == len(arrays)
