"""Layers with hand-derived backward passes. See :class:`tinygan.nn.layer.Layer` for the contract."""

from tinygan.nn.activations import LeakyReLU, ReLU, Sigmoid, Tanh, sigmoid
from tinygan.nn.batchnorm import BatchNorm
from tinygan.nn.conv import Conv2D
from tinygan.nn.conv_transpose import ConvTranspose2D
from tinygan.nn.dense import Dense
from tinygan.nn.dropout import Dropout
from tinygan.nn.layer import Layer
from tinygan.nn.maxout import Maxout
from tinygan.nn.minibatch_std import MinibatchStd
from tinygan.nn.pooling import MaxPool2D, UpSampling2D
from tinygan.nn.reshape import Flatten, Reshape
from tinygan.nn.sequential import Sequential
from tinygan.nn.spectral_norm import SpectralConv2D, SpectralDense

__all__ = [
    "BatchNorm",
    "Conv2D",
    "ConvTranspose2D",
    "Dense",
    "Dropout",
    "Flatten",
    "Layer",
    "LeakyReLU",
    "MaxPool2D",
    "Maxout",
    "MinibatchStd",
    "ReLU",
    "Reshape",
    "Sequential",
    "Sigmoid",
    "SpectralConv2D",
    "SpectralDense",
    "Tanh",
    "UpSampling2D",
    "sigmoid",
]
