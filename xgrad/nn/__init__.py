"""Layers and models (``import xgrad.nn as nn``): ``Layer`` finds its parameters by attribute,
in a deterministic order; ``Linear``, ``Conv2d``, ``BatchNorm``, ``LSTM`` and friends build on it.
"""

from xgrad.nn.layer import Layer, Model, Sequential
from xgrad.nn.layers import (
    MLP,
    BatchNorm,
    Conv2d,
    Deconv2d,
    Dropout,
    Embedding,
    EmbedID,
    LayerNorm,
    Linear,
)
from xgrad.nn.recurrent import LSTM, RNN

__all__ = [
    "LSTM", "MLP", "RNN", "BatchNorm", "Conv2d", "Deconv2d", "Dropout", "EmbedID", "Embedding",
    "Layer", "LayerNorm", "Linear", "Model", "Sequential",
]
