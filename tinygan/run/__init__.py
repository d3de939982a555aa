"""The run machinery: what turns a preset and a data set into a finished run folder.

A learner never needs to open this package to learn how a GAN works (that is :mod:`tinygan.gan` and
:mod:`tinygan.nn`); a user meets it as the ``tinygan`` command and the examples.
"""
