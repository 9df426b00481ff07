"""The NumPy engine: layers, activations, losses, optimizers, schedules, initialisers and
`Sequential`, written from the maths. float32, vectorised over the batch (the per-sample path in
`persample` is the one exception, and says why), seeded. The speed devices sit behind the named
kernels of `kernels`; the training loop every trainer shares is in `training`."""

from .activations import LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from .callbacks import Callback, CallbackList, EarlyStopping, History
from .conv import BatchNorm, Conv2D, GlobalAveragePooling2D, MaxPool2D
from .initializers import INITIALIZERS
from .layers import Dense, Dropout, Flatten, Layer, Reshape, Rescaling
from .losses import CrossEntropy, MeanSquaredError
from .model import LAYERS, Sequential, layer_from_config
from .optimizers import SGD, Adam, Optimizer
from .schedules import Constant, Cosine, OneCycle, StepDecay

__all__ = [
    "Adam", "BatchNorm", "Callback", "CallbackList", "Constant", "Conv2D", "Cosine", "CrossEntropy", "Dense",
    "Dropout", "EarlyStopping", "Flatten", "GlobalAveragePooling2D", "History", "INITIALIZERS", "LAYERS", "Layer",
    "LeakyReLU", "MaxPool2D", "MeanSquaredError", "OneCycle", "Optimizer", "ReLU", "Rescaling", "Reshape", "SGD",
    "Sequential", "Sigmoid", "Softmax", "StepDecay", "Tanh", "layer_from_config",
]
