r"""One-dimensional targets for the smallest GAN: a Gaussian, or a mixture of Gaussians.

Seed 001 teaches a GAN to imitate 1,000 draws of :math:`\mathcal N(0, 1)`: the data is a column of
numbers, the discriminator sees one number at a time, and every density involved can be plotted on a
line. A mixture of well separated components, for instance

.. math:: p_{data}(x) = \tfrac12 \mathcal N(x; -2, 0.5^2) + \tfrac12 \mathcal N(x; 2, 0.5^2),

is the classic way to watch *mode collapse*: a generator that covers one bump and ignores the other
can still fool a discriminator for a while.

Because the target is known in closed form, so is :math:`p_{data}(x)`, which is what the optimal
discriminator :math:`D^*(x) = p_{data}(x) / (p_{data}(x) + p_g(x))` needs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from tinygan.backend import get_array_module


@dataclass(frozen=True)
class GaussianMixture:
    r"""An equal-weight mixture of 1-D Gaussians (a single Gaussian when it has one component).

    Parameters
    ----------
    means : tuple of float, length K
        Component means :math:`\mu_k`.
    stds : tuple of float, length K
        Component standard deviations :math:`\sigma_k > 0`.

    Notes
    -----
    Density: :math:`p(x) = \frac1K \sum_k \frac{1}{\sigma_k \sqrt{2\pi}}
    \exp\left(-\frac{(x - \mu_k)^2}{2 \sigma_k^2}\right)`.
    Mean :math:`\bar\mu = \frac1K \sum_k \mu_k`; variance (law of total variance)
    :math:`\frac1K \sum_k (\sigma_k^2 + \mu_k^2) - \bar\mu^2`.

    Examples
    --------
    >>> GaussianMixture.parse("-2:0.5,2:0.5")
    GaussianMixture(means=(-2.0, 2.0), stds=(0.5, 0.5))
    >>> GaussianMixture.normal(0.0, 1.0).sample(3, np.random.default_rng(0)).shape
    (3, 1)
    """

    means: tuple[float, ...]
    stds: tuple[float, ...]

    def __post_init__(self) -> None:
        means = tuple(float(m) for m in self.means)
        stds = tuple(float(s) for s in self.stds)
        if not means or len(means) != len(stds):
            raise ValueError(
                f"a mixture needs as many stds as means (at least one), got {len(means)} means "
                f"and {len(stds)} stds"
            )
        if not all(math.isfinite(m) for m in means):
            raise ValueError(f"component means must be finite, got {means}")
        if not all(math.isfinite(s) and s > 0 for s in stds):
            raise ValueError(f"component stds must be positive and finite, got {stds}")
        # frozen dataclass: normalise through object.__setattr__ so equal mixtures compare equal
        object.__setattr__(self, "means", means)
        object.__setattr__(self, "stds", stds)

    @classmethod
    def normal(cls, mean: float = 0.0, std: float = 1.0) -> GaussianMixture:
        """The single Gaussian N(mean, std^2)."""
        return cls((mean,), (std,))

    @classmethod
    def parse(cls, spec: str) -> GaussianMixture:
        """Read ``"mean:std,mean:std,..."``, e.g. ``"-2:0.5,2:0.5"`` (the ``--mixture`` flag).

        Raises
        ------
        ValueError
            A component is not of the form ``mean:std`` with two numbers, or a std is not positive.
        """
        means, stds = [], []
        for part in spec.split(","):
            try:
                # a wrong number of fields fails the unpacking with a ValueError too
                mean, std = (float(field) for field in part.split(":"))
            except ValueError:
                raise ValueError(
                    f"mixture component {part.strip()!r} is not of the form mean:std "
                    f"(in {spec!r}; example: '-2:0.5,2:0.5')"
                ) from None
            means.append(mean)
            stds.append(std)
        return cls(tuple(means), tuple(stds))

    @property
    def num_components(self) -> int:
        return len(self.means)

    @property
    def mean(self) -> float:
        """Mean of the mixture."""
        return float(np.mean(self.means))

    @property
    def std(self) -> float:
        """Standard deviation of the mixture (law of total variance)."""
        means, stds = np.asarray(self.means), np.asarray(self.stds)
        second_moment = np.mean(stds**2 + means**2)
        return float(np.sqrt(second_moment - np.mean(means) ** 2))

    def interval(self, width: float = 4.0) -> tuple[float, float]:
        """``(min_k(mu_k - width * sigma_k), max_k(mu_k + width * sigma_k))``: where to plot it."""
        means, stds = np.asarray(self.means), np.asarray(self.stds)
        return float(np.min(means - width * stds)), float(np.max(means + width * stds))

    def sample(self, n: int, rng: np.random.Generator, dtype: Any = np.float32) -> np.ndarray:
        """``n`` independent draws as a column, shape (n, 1), ready for a ``Dense(1, ...)``.

        Each draw first picks a component uniformly at random, then samples that Gaussian.
        """
        component = rng.integers(self.num_components, size=n)
        means, stds = np.asarray(self.means), np.asarray(self.stds)
        values = rng.normal(means[component], stds[component])
        return values.astype(dtype).reshape(n, 1)

    def pdf(self, x: Any) -> Any:
        """Density :math:`p(x)` at every entry of ``x`` (NumPy or CuPy), same shape as ``x``."""
        xp = get_array_module(x)
        density = xp.zeros(x.shape, dtype=xp.result_type(x.dtype, xp.float32))
        for mean, std in zip(self.means, self.stds, strict=True):
            density += xp.exp(-0.5 * ((x - mean) / std) ** 2) / (std * math.sqrt(2.0 * math.pi))
        return density / self.num_components

    def __str__(self) -> str:
        parts = [f"N({m:g}, {s:g}^2)" for m, s in zip(self.means, self.stds, strict=True)]
        return parts[0] if len(parts) == 1 else "equal mixture of " + " + ".join(parts)
