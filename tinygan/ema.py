r"""An exponential moving average (EMA) of the generator's weights.

After every generator update the average moves a little towards the new weights:

.. math:: \theta_{ema} \leftarrow d\,\theta_{ema} + (1 - d)\,\theta

with a decay :math:`d` close to 1 (0.999 averages, roughly, the last :math:`1 / (1 - d) = 1000`
steps). After :math:`k` updates from :math:`\theta_{ema} = \theta_0` it is

.. math:: \theta_{ema} = d^k \theta_0 + (1 - d) \sum_{i=1}^{k} d^{k-i} \theta_i.

*Why it helps a GAN.* Training is a game, not a descent: near an equilibrium the simultaneous
gradient steps of G and D rotate around it (the bilinear game :math:`\min_x \max_y xy` is the
textbook case: gradient steps circle the origin and never reach it). Single iterates of G keep
overshooting; their average over many steps sits near the centre of the orbit, which is the
equilibrium. The averaged generator is never trained itself, it only reads G's weights, so the game
is unchanged; only what we *look at* (samples, FID, the exported generator) becomes steadier.

*Start.* The average is initialised with G's weights rather than zeros, so it is not biased towards
zero early in training (no bias correction is needed, unlike Adam's moments).

*BatchNorm's running statistics* are buffers, not trained weights: they are copied from G at every
update instead of averaged. They describe the activations of G's own recent weights, which change
slowly and are close to those of the average; averaging them again would lag twice. (A more exact
alternative re-estimates them by running the averaged generator on a few batches.)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np

from tinygan.backend import get_array_module, to_device, to_numpy
from tinygan.nn.layer import Layer


def check_decay(decay: float) -> float:
    """``decay`` as a float, if 0 < decay < 1."""
    decay = float(decay)
    if not 0.0 < decay < 1.0:
        raise ValueError(f"the EMA decay must be between 0 and 1 (exclusive), got {decay}")
    return decay


class EMA:
    """A moving average of a network's parameters (and a copy of its buffers), on its device.

    Parameters
    ----------
    network : Layer
        The generator; the average starts as a copy of its current weights.
    decay : float
        :math:`d` in :math:`\\theta_{ema} \\leftarrow d\\,\\theta_{ema} + (1 - d)\\,\\theta`.
    """

    def __init__(self, network: Layer, decay: float) -> None:
        self.decay = check_decay(decay)
        self.reset(network)

    def reset(self, network: Layer) -> None:
        """Start the average again from ``network``'s current weights."""
        self.params: dict[str, Any] = {}
        self.buffers: dict[str, Any] = {}
        for path, layer in network.named_layers():
            for name, value in layer.params.items():
                self.params[f"{path}{name}"] = value.copy()
            for name, value in layer.buffers.items():
                self.buffers[f"{path}{name}"] = value.copy()

    def update(self, network: Layer) -> None:
        """One step of the average towards ``network``'s weights; buffers are copied (see above)."""
        d = self.decay
        for path, layer in network.named_layers():
            for name, value in layer.params.items():
                average = self.params[f"{path}{name}"]
                average *= d  # in place: no new arrays per step
                average += (1.0 - d) * value
            for name, value in layer.buffers.items():
                self.buffers[f"{path}{name}"][...] = value

    def state_dict(self) -> dict[str, np.ndarray]:
        """The averaged weights as host copies, keyed like :meth:`Layer.state_dict`."""
        return {
            key: to_numpy(value).copy() for key, value in {**self.params, **self.buffers}.items()
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` exactly (into the arrays on their current device)."""
        expected = set(self.params) | set(self.buffers)
        if set(state) != expected:
            raise KeyError(
                f"EMA state does not match the generator: missing {sorted(expected - set(state))}, "
                f"unexpected {sorted(set(state) - expected)}"
            )
        for store in (self.params, self.buffers):
            for key, value in store.items():
                if tuple(state[key].shape) != tuple(value.shape):
                    raise ValueError(f"G_ema.{key}: shape {state[key].shape} != {value.shape}")
                value[...] = get_array_module(value).asarray(state[key], dtype=value.dtype)

    def copy_into(self, network: Layer) -> None:
        """Overwrite ``network``'s parameters and buffers with the averaged ones."""
        network.load_state_dict(self.state_dict())

    @contextlib.contextmanager
    def applied(self, network: Layer) -> Iterator[Layer]:
        """Inside this block ``network`` holds the averaged weights; its own come back after."""
        own = network.state_dict()
        self.copy_into(network)
        try:
            yield network
        finally:
            network.load_state_dict(own)

    def to(self, device: str) -> EMA:
        """Move the average to ``device``."""
        for store in (self.params, self.buffers):
            for key, value in store.items():
                store[key] = to_device(value, device)
        return self


@contextlib.contextmanager
def averaged_generator(gan: Any) -> Iterator[Layer]:
    """``gan.generator``, holding the EMA weights inside the block when the GAN keeps an average."""
    ema = getattr(gan, "ema", None)
    if ema is None:
        yield gan.generator
        return
    with ema.applied(gan.generator) as generator:
        yield generator
