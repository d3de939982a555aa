r"""How good are generated samples? Quality metrics, most of them computed through a classifier.

Each image metric reads what a classifier trained on real images (:mod:`tinygan.quality.classifier`) says
about a set of images: its class probabilities :math:`p(y \mid x)`, shape (N, K), and its penultimate
features, shape (N, F). The mode counts of ``modes`` need a classifier only for Stacked MNIST; on
the 2-D mixtures they measure distances to the known modes. One module per metric:

====================  ==========================================================================
``fid``               Frechet distance of Gaussians fitted to real and generated features (FID)
``inception_score``   confident *and* varied class predictions, from the probabilities alone
``coverage``          which classes the samples fall in: mode collapse at a glance; and, for a
                      conditional generator, how often in the class it was asked for
``precision_recall``  realism and variety measured apart, on k-nearest-neighbour manifolds
``modes``             modes captured, high-quality share and reverse KL on targets with known
                      modes (2-D ring and grid, Stacked MNIST): VEEGAN's and PacGAN's tables;
                      the papers' sample counts are its ``MIXTURE_SAMPLES`` and
                      ``STACKED_MNIST_SAMPLES``
====================  ==========================================================================

Every figure depends on the classifier and on the number of samples, so reports state N beside
each one and score real images the same way (:mod:`tinygan.quality.evaluate` does both, for checkpoints and
during training). The divergences of the GAN theory itself (KL, JS, the value of the game) are in
:mod:`tinygan.theory`.

All functions accept NumPy or CuPy arrays and copy them to the host (metrics are computed every few
epochs, not every step); they return Python floats or NumPy arrays.
"""

from tinygan.quality.metrics.coverage import (
    ClassAccuracy,
    ModeCoverage,
    class_accuracy,
    mode_coverage,
)
from tinygan.quality.metrics.fid import (
    feature_frechet_distance,
    frechet_distance,
    gaussian_statistics,
)
from tinygan.quality.metrics.inception_score import inception_score
from tinygan.quality.metrics.modes import (
    ModeCounts,
    mixture_modes,
    nearest_modes,
    reverse_kl_to_uniform,
    stacked_mnist_digits,
    stacked_mnist_modes,
)
from tinygan.quality.metrics.precision_recall import knn_radii, manifold_coverage, precision_recall

__all__ = [
    "ClassAccuracy",
    "ModeCounts",
    "ModeCoverage",
    "class_accuracy",
    "feature_frechet_distance",
    "frechet_distance",
    "gaussian_statistics",
    "inception_score",
    "knn_radii",
    "manifold_coverage",
    "mixture_modes",
    "mode_coverage",
    "nearest_modes",
    "precision_recall",
    "reverse_kl_to_uniform",
    "stacked_mnist_digits",
    "stacked_mnist_modes",
]
