"""The pure-Python engine: neural networks in plain lists of floats, standard library only.

This is the lineage of the first tutorial, a 10 x 784 linear network trained with the delta rule
in plain Python, which took seconds per 1,000 images. The same ideas, kept readable, made fast
enough to train on all 60,000 MNIST images in seconds per epoch: inputs scaled to 0..1, softmax
cross-entropy, sparse images (only the non-zero pixels), updates that skip zero pixels, and
CPython's fast paths (``sum``/``map``/``itemgetter`` in C, local names).

    from digitlab.pure import PureNetwork, sparse_images
    images = sparse_images(pixel_lists, scale=1 / 255)   # lists of 784 ints -> sparse images
    net = PureNetwork([784, 32, 10], seed=0)
    net.train_epoch(images, labels, lr=0.02, rule="softmax", rng=random.Random(0))
    net.predict(images[0]), net.accuracy(images, labels)

No NumPy is imported anywhere in this package (a test checks it). `digitlab.recipes.pure` turns
a trained network into a NumPy `Sequential` with the same weights, which saves to a model file.
"""

from .images import SparseImage, dense, sparse, sparse_images
from .network import RULES, PureNetwork, softmax

__all__ = [
    "PureNetwork", "RULES", "SparseImage", "dense", "softmax", "sparse", "sparse_images",
]
