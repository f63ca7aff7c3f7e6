"""unrollgrad's autograd engine: one graph core, two node kinds (``Value``, ``Tensor``).

NOTE: ``from autograd import Value`` loads only the graph core, the scalar engine and
``gradcheck`` (which imports numpy when it runs). The parts that need numpy or graphviz
(``Tensor`` and its ops, the drawing) are imported the first time they are asked for, so a
program that uses only ``Value`` does not pay for importing numpy (about a tenth of a second).
"""

from importlib import import_module

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
from .value import Value

# The names each module imported on first use provides.
_LAZY = {
    "StackBuilder": ".tensor",
    "Tensor": ".tensor",
    "addmm": ".tensor",
    "concat": ".tensor",
    "stack": ".tensor",
    "draw_graph": ".viz",
    "save_graph": ".viz",
}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'autograd' has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value  # found directly from now on
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "AnomalyError",
    "StackBuilder",
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
