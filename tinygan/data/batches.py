"""Endless shuffled minibatches over an in-memory dataset, epoch by epoch, resumable.

One epoch is one pass over a fresh random permutation of the examples, cut into consecutive
batches. With ``drop_last=True`` (the default) the ``len(data) % batch_size`` examples left over at
the end of a permutation sit that epoch out; they are as likely as any others to be drawn early in
the next one, so over many epochs every example is seen equally often on average, and every batch
has the same size (a GAN's batch statistics, e.g. BatchNorm's, stay comparable from step to step).

The data may live on a device (``to_device(data, "gpu")``): the batches are then cut there, and the
only transfer is each epoch's permutation (N integers, drawn on the host so that it can be saved), not
one batch of images per step.
"""

from __future__ import annotations

import json
import operator
from typing import Any

import numpy as np

from tinygan.backend import Array, device_of, to_device


class BatchIterator:
    """Shuffled minibatches of ``data`` along its first axis, forever.

    Parameters
    ----------
    data : array
        Shape (N, ...), on any device; batches are taken along axis 0 and live where ``data`` does.
    batch_size : int
        Examples per batch, 1 <= batch_size <= N.
    rng : numpy.random.Generator
        Draws each epoch's permutation. The iterator saves and restores its state (see
        :meth:`state_dict`), so give it a generator of its own.
    drop_last : bool
        Skip the last ``N % batch_size`` examples of each permutation (every batch full), or yield
        them as one smaller final batch.

    Attributes
    ----------
    epoch : int
        Epochs completed so far, which is also the index of the epoch the next batch comes from:
        it goes up right after the last batch of an epoch is returned.

    Examples
    --------
    >>> batches = BatchIterator(np.arange(10), 4, np.random.default_rng(0))
    >>> batches.steps_per_epoch
    2
    >>> [len(next(batches)) for _ in range(3)], batches.epoch
    ([4, 4, 4], 1)
    """

    def __init__(
        self,
        data: Array,
        batch_size: int,
        rng: np.random.Generator,
        drop_last: bool = True,
    ) -> None:
        if getattr(data, "ndim", 0) < 1:
            raise ValueError("BatchIterator needs an array with a leading example axis")
        batch_size = operator.index(batch_size)
        if not 0 < batch_size <= len(data):
            raise ValueError(
                f"batch_size must be between 1 and the number of examples ({len(data)}), "
                f"got {batch_size}"
            )
        self.data, self.batch_size, self.rng, self.drop_last = data, batch_size, rng, drop_last
        self.epoch = 0
        self._set_order(rng.permutation(len(data)))
        self._position = 0  # index into self._order of the next batch's first example

    @property
    def steps_per_epoch(self) -> int:
        """Batches per epoch: ``N // batch_size``, or ``ceil(N / batch_size)`` with ``drop_last=False``."""
        full, rest = divmod(len(self.data), self.batch_size)
        return full + int(rest > 0 and not self.drop_last)

    def __iter__(self) -> BatchIterator:
        return self

    def _set_order(self, order: np.ndarray) -> None:
        """Use ``order`` (host integers) for this epoch; a copy on the data's device indexes it."""
        self._order = order
        self._device_order = to_device(order, device_of(self.data))

    def __next__(self) -> Array:
        """The next batch: a copy of ``data[indices]``, shape (batch_size, ...) (last one smaller
        when ``drop_last`` is False), on the data's device."""
        indices = self._device_order[self._position : self._position + self.batch_size]
        self._position += self.batch_size
        if self._position >= self.steps_per_epoch * self.batch_size:
            self.epoch += 1
            self._set_order(self.rng.permutation(len(self.data)))
            self._position = 0
        return self.data[indices]

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue with exactly the same batches.

        Returns
        -------
        dict
            ``epoch`` and ``position`` (ints), ``permutation`` (int array (N,), the current epoch's
            order) and ``rng_state`` (the generator's state as a JSON string, for later epochs).
            Flat and pickle-free, so it can go into an ``.npz`` checkpoint.
        """
        return {
            "epoch": self.epoch,
            "position": self._position,
            "permutation": self._order.copy(),
            # JSON because the state holds 128-bit integers that no NumPy integer dtype can.
            "rng_state": json.dumps(self.rng.bit_generator.state),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; this also sets the state of the iterator's ``rng``.

        Raises
        ------
        ValueError
            The state does not fit this iterator's data and batch size.
        """
        order = np.asarray(state["permutation"])
        position = int(state["position"])
        if not np.array_equal(np.sort(order), np.arange(len(self.data))):
            raise ValueError(
                f"saved permutation is not a permutation of this data's {len(self.data)} examples"
            )
        if position % self.batch_size or not 0 <= position < self.steps_per_epoch * self.batch_size:
            raise ValueError(
                f"saved position {position} is not a batch start for batch_size {self.batch_size}"
            )
        self.rng.bit_generator.state = json.loads(str(state["rng_state"]))
        self.epoch = int(state["epoch"])
        self._set_order(order.astype(np.int64))
        self._position = position


class LabelledBatches:
    """Shuffled minibatches of (samples, labels) pairs, forever: what a conditional GAN trains on.

    A :class:`BatchIterator` over the examples' indices chooses each batch, and the samples and
    their labels are cut with the same indices, so a label always travels with its sample. Its
    permutations are the ones a :class:`BatchIterator` over the samples alone would draw from the
    same ``rng``, and its state (:meth:`state_dict`) is that iterator's.

    Parameters
    ----------
    data : array
        Shape (N, ...), on any device.
    labels : array
        Shape (N,), integer classes, on the same device as ``data``.
    batch_size, rng, drop_last
        As for :class:`BatchIterator`.

    Examples
    --------
    >>> batches = LabelledBatches(np.arange(10) * 10, np.arange(10), 4, np.random.default_rng(0))
    >>> samples, labels = next(batches)
    >>> bool((samples == labels * 10).all())
    True
    """

    def __init__(
        self,
        data: Array,
        labels: Array,
        batch_size: int,
        rng: np.random.Generator,
        drop_last: bool = True,
    ) -> None:
        if getattr(labels, "shape", None) != (len(data),):
            raise ValueError(
                f"labels must have shape ({len(data)},), one per example, got "
                f"{getattr(labels, 'shape', None)}"
            )
        self.data, self.labels = data, labels
        indices = to_device(np.arange(len(data)), device_of(data))
        self.indices = BatchIterator(indices, batch_size, rng, drop_last)

    @property
    def epoch(self) -> int:
        """Epochs completed so far (see :class:`BatchIterator`)."""
        return self.indices.epoch

    @property
    def steps_per_epoch(self) -> int:
        """Batches per epoch (see :class:`BatchIterator`)."""
        return self.indices.steps_per_epoch

    def __iter__(self) -> LabelledBatches:
        return self

    def __next__(self) -> tuple[Array, Array]:
        """The next batch: copies of ``data[indices]`` and ``labels[indices]``."""
        indices = next(self.indices)
        return self.data[indices], self.labels[indices]

    def state_dict(self) -> dict[str, Any]:
        """The index iterator's :meth:`BatchIterator.state_dict`."""
        return self.indices.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.indices.load_state_dict(state)
