"""The NumPy engine: layers, activations, losses, optimizers, schedules, initialisers and
`Sequential`, written from the maths. float32, vectorised over the batch, seeded."""

from .activations import LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from .callbacks import Callback, EarlyStopping, History, ModelCheckpoint, ProgressBar
from .conv import BatchNorm, Conv2D, GlobalAveragePooling2D, MaxPool2D
from .initializers import INITIALIZERS
from .layers import Dense, Dropout, Flatten, Layer, Reshape, Rescaling
from .losses import CrossEntropy, MeanSquaredError
from .model import LAYERS, Sequential, layer_from_config
from .optimizers import SGD, Adam, Optimizer
from .schedules import Constant, Cosine, OneCycle, StepDecay

__all__ = [
    "Adam", "BatchNorm", "Conv2D", "GlobalAveragePooling2D", "MaxPool2D", "Callback", "Constant", "Cosine", "CrossEntropy", "Dense", "Dropout", "EarlyStopping",
    "Flatten", "History", "INITIALIZERS", "LAYERS", "Layer", "LeakyReLU", "MeanSquaredError",
    "ModelCheckpoint", "OneCycle", "Optimizer", "ProgressBar", "ReLU", "Rescaling", "Reshape", "SGD",
    "Sequential", "Sigmoid", "Softmax", "StepDecay", "Tanh", "layer_from_config",
]
