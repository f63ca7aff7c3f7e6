"""Neural-network modules built from autograd ops: layers, recurrent stacks on both engines,
losses, optimizers, clipping and truncated BPTT. Nothing here computes a gradient by hand."""

from . import functional, optim
from .backends import detach
from .interop import from_torch_state_dict, to_torch_state_dict
from .layers import MLP, Linear
from .losses import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cross_entropy,
    mse_loss,
    sequence_loss,
)
from .module import Module
from .optim import clip_grad_norm_, clip_grad_value_
from .recurrent import RNN, RecurrentCell, RecurrentStack, RNNCell, RNNModel
from .training import train_truncated

__all__ = [
    "MLP",
    "RNN",
    "Linear",
    "Module",
    "RNNCell",
    "RNNModel",
    "RecurrentCell",
    "RecurrentStack",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "clip_grad_norm_",
    "clip_grad_value_",
    "cross_entropy",
    "detach",
    "from_torch_state_dict",
    "functional",
    "mse_loss",
    "optim",
    "sequence_loss",
    "to_torch_state_dict",
    "train_truncated",
]
