"""What the nn tests compare against: the numbers of any engine's output, and the
activation functions written in numpy; and a stand-in for a PyTorch tensor."""

import numpy as np

from autograd import Tensor


def numbers(x) -> np.ndarray:
    """The float numbers of a Tensor, a Value or an object array of Values."""
    if isinstance(x, Tensor):
        return x.data
    return np.vectorize(lambda v: v.data, otypes=[float])(x)


class TensorLike:
    """Stands in for a torch tensor that requires grad: refuses np.asarray, offers detach().cpu().numpy()."""

    def __init__(self, array):
        self._array = np.asarray(array)

    def __array__(self, *args, **kwargs):
        raise RuntimeError("call .detach() first")

    def detach(self):
        return self

    def cpu(self):
        return self

    def numpy(self):
        return self._array


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# f1 and f2 of the lecture notes, by the names nn takes
ACTIVATIONS = {
    "tanh": np.tanh,
    "relu": lambda z: np.maximum(z, 0.0),
    "sigmoid": lambda z: 1.0 / (1.0 + np.exp(-z)),
    "identity": lambda z: z,
    "softmax": _softmax,
}
