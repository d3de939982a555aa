"""The quality machinery: how good a generator's samples are.

:mod:`tinygan.quality.metrics` holds the measures (FID, Inception Score, coverage, precision and
recall, mode counts), :mod:`tinygan.quality.classifier` the MNIST and Fashion-MNIST classifiers they
read features from, and :mod:`tinygan.quality.evaluate` what scores a run while it trains and after.
"""
