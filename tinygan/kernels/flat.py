"""The optimizers' fast path: parameters, gradients and optimizer state in one flat buffer each.

:func:`tinygan.optim.update_parameters` applies an optimizer's rule to one parameter after another.
A network's parameters are small arrays of very different sizes, and a rule applied to each one in
turn pays a Python call, a dispatch and its temporaries per parameter. Homed in one contiguous
buffer per dtype (and device), all of them are updated by a single call of the rule over the whole
buffer (:func:`update_parameters`) and zeroed by a single fill (:func:`zero_gradients`), with the
same numbers: the update rules are elementwise. :func:`register` puts both in the registry of
:mod:`tinygan.overrides` for every kind of array (``"any"``), loaded with the kernels: with the
kernels off (``TINYGAN_NUMBA=0``) the per-parameter loops run.

The layers do not notice. :func:`flatten_parameters` copies each parameter (and its gradient) into
its stretch of the buffer and puts a *view* of that stretch, of the parameter's shape, back into
``layer.params[name]`` (and ``layer.grads[name]``); the optimizer's state arrays become views of
buffers of the same layout. Everything that works in place -- ``grads[name] += ...``, the update
rules, ``load_state_dict`` -- then reads and writes the buffers. Code that *rebinds* an array to a
new one (``Layer.to``, ``Layer.astype``, ``Optimizer.to``) detaches it from the buffers;
:meth:`FlatGroup.is_current` notices and the buffers are made again, from the arrays' values, at the
next ``step`` or ``zero_grad`` (which also make them the first time).

This module also holds what the fused update kernels of both kernel sets share
(:func:`fused_update`).
"""

from __future__ import annotations

import functools
import inspect
import itertools
import operator
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from tinygan import optim, overrides
from tinygan.backend import Array, device_of, get_array_module, to_device
from tinygan.nn.layer import Layer

F = TypeVar("F", bound=Callable[..., Any])


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
    state : dict[str, 1-D array]
        An optimizer's state buffers of the same layout (its moments).
    homes, keys, views : lists
        Every view handed out, ``homes[i][keys[i]] is views[i]`` (a layer's ``params`` or
        ``grads``, an optimizer's state dict of one parameter), to recognise them later.
    """

    slots: list[tuple[Layer, str]]
    spans: list[slice]
    params: Array
    grads: Array
    state: dict[str, Array] = field(default_factory=dict)
    homes: list[dict[str, Any]] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    views: list[Array] = field(default_factory=list)

    def view(self, flat: Array, index: int) -> Array:
        """The stretch of ``flat`` (a buffer of this layout) for parameter ``index``, in its shape."""
        layer, name = self.slots[index]
        return flat[self.spans[index]].reshape(layer.params[name].shape)

    def hand_out(self, home: dict[str, Any], key: str, view: Array, source: Any) -> None:
        """Copy ``source`` into ``view`` and put the view in ``home[key]`` in its place."""
        view[...] = source
        home[key] = view
        self.homes.append(home)
        self.keys.append(key)
        self.views.append(view)

    def is_current(self) -> bool:
        """Whether every view handed out is still where it was put (nothing rebound it since)."""
        # Checked before every step and zero_grad: C-level loops, about 40 ns a view.
        return all(map(operator.is_, map(dict.get, self.homes, self.keys), self.views))


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
        offsets = [0, *itertools.accumulate(sizes)]
        spans = [slice(lo, hi) for lo, hi in itertools.pairwise(offsets)]
        params = xp.empty(offsets[-1], dtype=first.dtype)
        grads = xp.empty(offsets[-1], dtype=first.dtype)
        group = FlatGroup(members, spans, params, grads)
        for k, (layer, name) in enumerate(members):
            param, grad = layer.params[name], layer.grads[name]
            group.hand_out(layer.params, name, params[spans[k]].reshape(param.shape), param)
            group.hand_out(layer.grads, name, grads[spans[k]].reshape(param.shape), grad)
        groups.append(group)
    return groups


def flatten_state(group: FlatGroup, states: list[dict[str, Any]], names: tuple[str, ...]) -> None:
    """Home the state arrays ``names`` of ``states`` (one dict per parameter of ``group``, in order)
    in buffers of the group's layout, copying their values; the dicts are given views in their
    place. The old arrays may sit on another device or dtype (a layer was moved or cast)."""
    xp = get_array_module(group.params)
    device = device_of(group.params)
    for state_name in names:
        flat = xp.empty_like(group.params)
        for k, state in enumerate(states):
            source = to_device(state[state_name], device)
            group.hand_out(state, state_name, group.view(flat, k), source)
        group.state[state_name] = flat


def all_distinct(arrays: list[Any]) -> bool:
    """Whether no array object appears twice (a tied weight cannot be given two homes)."""
    return len({id(array) for array in arrays}) == len(arrays)


# Each optimizer's groups, kept while the optimizer lives; the optimizer itself stays plain.
_GROUPS: weakref.WeakKeyDictionary[optim.Optimizer, list[FlatGroup]] = weakref.WeakKeyDictionary()


def flat_groups(optimizer: optim.Optimizer) -> list[FlatGroup] | None:
    """The flat buffers holding ``optimizer``'s parameters, gradients and state, made first (again)
    if there are none yet or something rebound an array since.

    ``None`` when the parameters cannot share a buffer: one array serves two parameters (a tied
    weight), which the per-parameter loop updates twice, as written.
    """
    groups = _GROUPS.get(optimizer)
    if groups is not None and all(group.is_current() for group in groups):
        return groups
    _GROUPS.pop(optimizer, None)
    slots = [(layer, name) for layer, name, _, _ in optimizer.slots()]
    if not all_distinct([layer.params[name] for layer, name in slots]):
        return None
    position = {(id(layer), name): index for index, (layer, name) in enumerate(slots)}
    groups = flatten_parameters(slots)
    for group in groups:
        states = [optimizer.state[position[id(layer), name]] for layer, name in group.slots]
        flatten_state(group, states, optimizer.state_names)
    _GROUPS[optimizer] = groups
    return groups


def update_parameters(optimizer: optim.Optimizer) -> None:
    """:func:`tinygan.optim.update_parameters` with one call of the rule per flat buffer."""
    for group in _groups_else_plain(optimizer, "update_parameters"):
        optimizer.update(group.params, group.grads, group.state)


def zero_gradients(optimizer: optim.Optimizer) -> None:
    """:func:`tinygan.optim.zero_gradients` with one fill per flat buffer."""
    for group in _groups_else_plain(optimizer, "zero_gradients"):
        group.grads[...] = 0


def _groups_else_plain(optimizer: optim.Optimizer, loop: str) -> list[FlatGroup]:
    """:func:`flat_groups` of ``optimizer``; where it has none (a tied weight), the plain function
    ``loop`` is run on it instead and there is nothing left to do: ``[]``."""
    groups = flat_groups(optimizer)
    if groups is None:
        overrides.plain(loop)(optimizer)
        return []
    return groups


def register() -> None:
    """Register the flat-buffer versions of the optimizer's loops for every kind of array."""
    for function in (update_parameters, zero_gradients):
        overrides.register(function.__name__, "any", function)


def fused_update(handles: Callable[..., bool]) -> Callable[[F], F]:
    """Mark a kernel of an optimizer update rule (``sgd_update``, ``adam_update``,
    ``rmsprop_update``), which updates the parameter and its state in one pass.

    The kernel runs where ``handles(*arrays)`` is true of its array arguments, those before
    ``lr`` (``None`` for an absent state): every kernel set has its own condition, contiguous
    arrays for a flat loop, one dtype for a typed GPU kernel. Elsewhere the plain rule of the same
    name runs, which updates in place all the same. The flat buffers always qualify; the other
    arrays are those of a direct call.
    """

    def mark(kernel: F) -> F:
        plain = overrides.plain(kernel.__name__)
        arrays = list(inspect.signature(plain).parameters).index("lr")

        @functools.wraps(kernel)
        def update(*args: Any) -> None:
            (kernel if handles(*args[:arrays]) else plain)(*args)

        return update  # type: ignore[return-value]

    return mark
