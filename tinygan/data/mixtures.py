r"""Two-dimensional mixtures of Gaussians with known modes: the ring and the grid of the mode-collapse
literature.

The 2-D ring (8 Gaussians evenly spaced on the unit circle, standard deviation 0.01) and the 2-D grid
(25 Gaussians at :math:`\{-4, -2, 0, 2, 4\}^2`, standard deviation 0.05) are the synthetic targets of
VEEGAN (Srivastava, Valkov, Russell, Gutmann, Sutton, NeurIPS 2017, arXiv 1705.07761, experiments on
synthetic data) and PacGAN (Lin, Khetan, Fanti, Oh, NeurIPS 2018, arXiv 1712.04086, which reuses
VEEGAN's protocol). Every mode is known exactly and far from the others (neighbouring ring modes are
:math:`2 \sin(\pi/8) \approx 0.77`, i.e. 77 standard deviations, apart), so a generator's samples
can be assigned to modes and the modes it drops counted (:mod:`tinygan.quality.metrics.modes`).

As in the authors' code, each point picks a mode uniformly at random and adds isotropic Gaussian
noise; a run trains on one fixed set of 100,000 such points (:data:`POINTS_PER_RUN`), shuffled each
epoch, and a fresh draw per batch is the option (:func:`mixture_batches`).
"""

from __future__ import annotations

import json
import math
import operator
from numbers import Real
from typing import Any

import numpy as np

from tinygan.backend import Array, to_device
from tinygan.data.batches import BatchIterator

#: Points a run draws once and trains on, epoch after epoch (VEEGAN's and PacGAN's data set size).
POINTS_PER_RUN = 100_000


class GaussianMixture2D:
    r"""An equal-weight mixture of isotropic 2-D Gaussians sharing one standard deviation.

    Parameters
    ----------
    centres : array-like, shape (K, 2)
        The modes :math:`\mu_k`, finite.
    std : float
        Standard deviation :math:`\sigma > 0` of every component along each axis.
    name : str
        What reports call it (``"ring"``, ``"grid"``).

    Attributes
    ----------
    centres : numpy.ndarray, shape (K, 2), float64, read-only
    std : float
    name : str

    Notes
    -----
    Density: :math:`p(x) = \frac1K \sum_k \frac{1}{2\pi\sigma^2}
    \exp\left(-\frac{\lVert x - \mu_k \rVert^2}{2\sigma^2}\right)`. The distance of a draw from its
    own mode follows a Rayleigh law, :math:`P(\lVert x - \mu_k \rVert \le r\sigma) = 1 - e^{-r^2/2}`:
    98.9% of real points lie within three standard deviations, the "high quality" radius of the
    mode-collapse measures.
    """

    def __init__(self, centres: Any, std: float, name: str) -> None:
        centres = np.array(centres, dtype=np.float64)
        if centres.ndim != 2 or centres.shape[1] != 2 or len(centres) == 0:
            raise ValueError(f"centres must have shape (K, 2) with K >= 1, got {centres.shape}")
        if not np.isfinite(centres).all():
            raise ValueError("centres must be finite")
        if not (isinstance(std, Real) and not isinstance(std, bool) and 0 < std < math.inf):
            raise ValueError(f"std must be a positive finite number, got {std!r}")
        centres.flags.writeable = False  # shared by every sample and metric: never edited
        self.centres, self.std, self.name = centres, float(std), str(name)

    @property
    def num_modes(self) -> int:
        return len(self.centres)

    def sample(self, n: int, rng: np.random.Generator, dtype: Any = np.float32) -> np.ndarray:
        """``n`` independent draws, shape (n, 2): a uniformly chosen mode plus N(0, std^2) noise."""
        points, _ = self.sample_with_modes(n, rng, dtype)
        return points

    def sample_with_modes(
        self, n: int, rng: np.random.Generator, dtype: Any = np.float32
    ) -> tuple[np.ndarray, np.ndarray]:
        """As :meth:`sample`, also returning the mode each point was drawn from, int64 (n,)."""
        n = operator.index(n)
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        modes = rng.integers(self.num_modes, size=n)
        points = self.centres[modes] + self.std * rng.standard_normal((n, 2))
        return points.astype(dtype), modes

    def __repr__(self) -> str:
        return f"GaussianMixture2D({self.name}: {self.num_modes} modes, std {self.std:g})"


def ring_mixture(modes: int = 8, radius: float = 1.0, std: float = 0.01) -> GaussianMixture2D:
    r"""``modes`` Gaussians evenly spaced on a circle: centre :math:`k` at angle
    :math:`2\pi k / K`, :math:`(r \cos, r \sin)`. The defaults are VEEGAN's and PacGAN's ring."""
    angles = 2 * np.pi * np.arange(operator.index(modes)) / modes
    centres = radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return GaussianMixture2D(centres, std, "ring")


def grid_mixture(side: int = 5, spacing: float = 2.0, std: float = 0.05) -> GaussianMixture2D:
    r"""``side x side`` Gaussians on a square grid centred on the origin, ``spacing`` apart: the
    defaults give VEEGAN's and PacGAN's grid, centres :math:`\{-4, -2, 0, 2, 4\}^2` (row-major in
    the first coordinate)."""
    axis = spacing * (np.arange(operator.index(side)) - (side - 1) / 2)
    first, second = np.meshgrid(axis, axis, indexing="ij")
    return GaussianMixture2D(np.stack([first.ravel(), second.ravel()], axis=1), std, "grid")


#: The two targets of the mode-collapse tables, by name.
MIXTURES: dict[str, GaussianMixture2D] = {"ring": ring_mixture(), "grid": grid_mixture()}


class FreshBatches:
    """Endless batches drawn anew from a mixture at every step, resumable.

    There is no data set to go through; an *epoch* is counted as ``epoch_size`` points, so that
    epochs mean the same as with a fixed set of that many points.

    Parameters
    ----------
    mixture : GaussianMixture2D
    batch_size : int
        Points per batch, 1 <= batch_size <= epoch_size.
    rng : numpy.random.Generator
        Draws the points; its state is saved by :meth:`state_dict`, so give it a generator of its own.
    epoch_size : int
        Points per epoch.
    dtype : dtype
    device : str
        Where the batches are returned (drawn on the host, then copied: a batch is a few hundred
        numbers).

    Attributes
    ----------
    epoch : int
        Epochs completed so far.
    """

    def __init__(
        self,
        mixture: GaussianMixture2D,
        batch_size: int,
        rng: np.random.Generator,
        epoch_size: int = POINTS_PER_RUN,
        dtype: Any = np.float32,
        device: str = "cpu",
    ) -> None:
        batch_size, epoch_size = operator.index(batch_size), operator.index(epoch_size)
        if not 0 < batch_size <= epoch_size:
            raise ValueError(
                f"batch_size must be between 1 and epoch_size ({epoch_size}), got {batch_size}"
            )
        self.mixture, self.batch_size, self.rng = mixture, batch_size, rng
        self.epoch_size, self.dtype, self.device = epoch_size, dtype, device
        self.epoch = 0
        self._position = 0  # batches already drawn in this epoch

    @property
    def steps_per_epoch(self) -> int:
        """``epoch_size // batch_size``."""
        return self.epoch_size // self.batch_size

    def __iter__(self) -> FreshBatches:
        return self

    def __next__(self) -> Array:
        """``batch_size`` new points, (batch_size, 2), on ``device``."""
        batch = self.mixture.sample(self.batch_size, self.rng, self.dtype)
        self._position += 1
        if self._position == self.steps_per_epoch:
            self.epoch, self._position = self.epoch + 1, 0
        return to_device(batch, self.device)

    def state_dict(self) -> dict[str, Any]:
        """``epoch``, ``position`` (batches drawn in this epoch) and ``rng_state`` (JSON)."""
        return {
            "epoch": self.epoch,
            "position": self._position,
            "rng_state": json.dumps(self.rng.bit_generator.state),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`, the generator's state included.

        Raises ``ValueError`` when the saved position is not within an epoch of this iterator.
        """
        position = int(state["position"])
        if not 0 <= position < self.steps_per_epoch:
            raise ValueError(
                f"saved position {position} is not within an epoch of {self.steps_per_epoch} batches"
            )
        self.rng.bit_generator.state = json.loads(str(state["rng_state"]))
        self.epoch, self._position = int(state["epoch"]), position


def mixture_batches(
    mixture: GaussianMixture2D,
    batch_size: int,
    rng: np.random.Generator,
    num_points: int = POINTS_PER_RUN,
    fresh: bool = False,
    dtype: Any = np.float32,
    device: str = "cpu",
) -> BatchIterator | FreshBatches:
    """Training batches from ``mixture``, as the authors' code serves them or freshly drawn.

    Parameters
    ----------
    mixture : GaussianMixture2D
    batch_size : int
    rng : numpy.random.Generator
        Draws the points (and, for a fixed set, each epoch's order). Built from the run's seed, it
        gives the same points again on resume; the iterator's saved state then restores the rest.
    num_points : int
        Size of the fixed set, or of an epoch of fresh draws.
    fresh : bool
        False: draw ``num_points`` once and shuffle them each epoch (a
        :class:`~tinygan.data.BatchIterator` over them, on ``device``). True: draw every batch anew
        (:class:`FreshBatches`), the infinite-data setting.
    dtype : dtype
    device : str
        Where the batches live.

    Returns
    -------
    BatchIterator or FreshBatches
        Both endless, with ``epoch``, ``steps_per_epoch``, ``state_dict`` and ``load_state_dict``.
    """
    if fresh:
        return FreshBatches(mixture, batch_size, rng, num_points, dtype, device)
    points = mixture.sample(num_points, rng, dtype)
    return BatchIterator(to_device(points, device), batch_size, rng)
