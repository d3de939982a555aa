r"""A small digit classifier built from tinygan's own layers: the eye of the quality metrics.

The Inception Score and the Frechet Inception Distance judge images through a classifier trained on
real data: its class probabilities :math:`p(y \mid x)` say whether a sample looks like *some* digit
and whether all digits appear; its penultimate activations are the feature space in which real and
generated sets are compared (see :mod:`tinygan.quality.metrics`). ImageNet's Inception network is the wrong
eye for 28x28 digits, so tinygan trains a LeNet-style network on the dataset itself.

Getting that eye takes four separate steps, one module each, read in this order:

=================  ================================================================================
``network``        the LeNet-style network (:class:`Classifier`, :func:`build_classifier`) and the
                   image layout it reads (:func:`as_classifier_input`)
``data_split``     which real images it learns from and which it never sees
                   (:func:`classifier_data`): the held-out ones calibrate every metric
``training``       how it learns (:func:`fit_classifier`), the recipe (:class:`ClassifierSettings`)
                   and one full training run that reports its held-out accuracy
                   (:func:`train_classifier`)
``cache``          training takes minutes, so :func:`load_classifier` trains once and keeps the
                   weights in an ``.npz`` file named after the data and the recipe
``shipped``        the MNIST and Fashion-MNIST classifiers that come with the package
                   (:func:`load_shipped`), and the script that regenerates them
``choice``         which one judges a run (:func:`choose_classifier`): the shipped one, or a cached
                   one trained on more images
=================  ================================================================================

The network knows nothing of files, the training nothing of caches, and the cache only calls the
network and the training; each can be read, tested and replaced alone. Every name is also available from
``tinygan.quality.classifier`` itself.
"""

from tinygan.quality.classifier.cache import (
    cache_path,
    folder_is_writable,
    load_classifier,
    read_classifier,
    save_classifier,
    user_cache_dir,
)
from tinygan.quality.classifier.choice import ChosenClassifier, choose_classifier
from tinygan.quality.classifier.data_split import (
    HELDOUT_FRACTION,
    SPLIT_SEED,
    ClassifierData,
    classifier_data,
)
from tinygan.quality.classifier.network import (
    IMAGE_SHAPE,
    NUM_CLASSES,
    Classifier,
    as_classifier_input,
    build_classifier,
)
from tinygan.quality.classifier.shipped import load_shipped, shipped_path
from tinygan.quality.classifier.training import (
    ClassifierSettings,
    fit_classifier,
    random_shift,
    train_classifier,
)

__all__ = [
    "HELDOUT_FRACTION",
    "IMAGE_SHAPE",
    "NUM_CLASSES",
    "SPLIT_SEED",
    "ChosenClassifier",
    "Classifier",
    "ClassifierData",
    "ClassifierSettings",
    "as_classifier_input",
    "build_classifier",
    "cache_path",
    "choose_classifier",
    "classifier_data",
    "fit_classifier",
    "folder_is_writable",
    "load_classifier",
    "load_shipped",
    "random_shift",
    "read_classifier",
    "save_classifier",
    "shipped_path",
    "train_classifier",
    "user_cache_dir",
]
