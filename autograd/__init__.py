"""unrollgrad's autograd engine: one graph core, two node kinds (``Value``, ``Tensor``)."""

from . import memory  # noqa: F401  (keeps freed memory for the next step; see autograd/memory.py)
from .gradcheck import GradcheckError, GradcheckReport, gradcheck
from .graph import (
    AnomalyError,
    backward,
    current_scope,
    detect_anomaly,
    enable_grad,
    is_anomaly_enabled,
    is_grad_enabled,
    no_grad,
    scope,
    topological_order,
)
from .tensor import Tensor, addmm, concat, stack
from .value import Value
from .viz import draw_graph, save_graph

__all__ = [
    "AnomalyError",
    "Tensor",
    "GradcheckError",
    "GradcheckReport",
    "Value",
    "addmm",
    "backward",
    "concat",
    "current_scope",
    "detect_anomaly",
    "draw_graph",
    "enable_grad",
    "gradcheck",
    "is_anomaly_enabled",
    "is_grad_enabled",
    "no_grad",
    "save_graph",
    "scope",
    "stack",
    "topological_order",
]
