"""Recurrent networks: one cell, the same parameters at every time step.

In the notation of the lecture notes, with row-vector batches (m x n):

    H_t = f1(X_t W1 + H_{t-1} Wh1 + β1)        (hidden state, t = 1..T, H_0 given or 0)
    Ŷ_t = f2(H_t W2 + β2)                      (readout)
    L   = Σ_t L_t                              (sequence loss)

and in code: W1 = ``W_xh``, Wh1 = ``W_hh``, β1 = ``b_h``, W2 = ``W_hy``, β2 = ``b_y``.

The unrolled loop below is all there is to backpropagation through time: every step
uses the same ``W_hh`` node, so ``loss.backward()`` adds each step's contribution into
its gradient, dL/dW_hh = Σ_t (contribution of step t). Nothing here computes a gradient.

The unrolling is written once, in :class:`RecurrentStack`, for any :class:`RecurrentCell`:
a cell says how many gate blocks its weights hold (``GATES``), what its state is made of
(``STATE``: ``("h",)`` here, ``("h", "c")`` for a cell with a memory beside h) and how one
step goes (``_step``); :class:`RNNCell` and :class:`RNN` are the Elman cell and its stack.

Each step's nodes are created inside ``autograd.scope(f"layer {l}")`` and
``autograd.scope(f"t={t}")``, and each state H_t is labelled ``H_t`` (each part of a state
of several parts by its letter, ``C_t`` beside ``H_t``; on the value engine each entry,
``H_t[i,j]``), so drawings and messages name the states as the notes do. NOTE: time steps
are counted from 1 in scope tags and labels, as in the notes (H_0 is the initial state),
while arrays index from 0: ``out[0]`` is H_1.
"""

from __future__ import annotations

import numpy as np

from autograd import AnomalyError, is_anomaly_enabled, scope
from autograd.graph import flag, mark

from . import functional as F
from . import init
from .backends import backend, given, swap01
from .backends import data as backends_data
from .interop import BIAS_HH, BIAS_IH, SAME, TRANSPOSED
from .layers import check_size
from .module import Module

__all__ = ["RNN", "RNNCell", "RNNModel", "RecurrentCell", "RecurrentStack"]

NONLINEARITIES = ("tanh", "relu")


class RecurrentCell(Module):
    """What every recurrent cell shares: the parameters ``W_xh`` (input x G·hidden),
    ``W_hh`` (hidden x G·hidden) and ``b_h`` (G·hidden), for G = ``GATES`` blocks side by
    side (1 for an Elman cell; a gated cell keeps one block per gate), all drawn from
    U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)); the input projection of every step at once
    (:meth:`project`); the checks; and the state, whose parts ``STATE`` names (``("h",)``;
    several for a cell that carries more than h, with h, the output, first).

    A cell is a subclass that sets ``GATES`` and ``STATE`` and writes ``_step(xw_t, state)``,
    the new state from the projected input xw_t = x_t W_xh + b_h (m, G·hidden) and the last
    state; :class:`RecurrentStack` unrolls any such cell over a sequence.
    """

    GATES = 1
    STATE = ("h",)

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, engine: str = "tensor", seed=None):
        self.input_size = check_size("input_size", input_size)
        self.hidden_size = check_size("hidden_size", hidden_size)
        self._backend = backend(engine)
        self.engine = self._backend.name
        rng = init.generator(seed)
        be, H, G = self._backend, hidden_size, self.GATES * hidden_size
        self.W_xh = be.parameter(init.uniform(rng, (input_size, G), H), "W_xh")
        self.W_hh = be.parameter(init.uniform(rng, (H, G), H), "W_hh")
        self.b_h = be.parameter(init.uniform(rng, (G,), H), "b_h") if flag("bias", bias) else None

    def extra_repr(self) -> str:
        return f"input_size={self.input_size}, hidden_size={self.hidden_size}, engine={self.engine!r}"

    def forward(self, x_t, state=None):
        """The next state from x_t (m, input_size) and the last state (zeros if None)."""
        x_t = self._constant(x_t, "x_t")
        self._check("x_t", x_t, self.input_size)
        m = np.shape(x_t)[0]
        state = self.zero_state(m) if state is None else self._check_state(state, m)
        return self._step(self._project(x_t), state)

    def project(self, x):
        """The input part of every step at once: x W_xh + b_h for x of shape (..., input_size)."""
        x = self._constant(x, "project: x")
        if np.ndim(x) == 0 or np.shape(x)[-1] != self.input_size:
            raise ValueError(f"{self._where()}: project: x must have shape (..., {self.input_size}), "
                             f"got {np.shape(x)}")
        return self._project(x)

    def step(self, xw_t, state):
        """The next state from xw_t = x_t W_xh + b_h (m, G·hidden_size), from :meth:`project`,
        and the last state."""
        xw_t = self._constant(xw_t, "step: xw_t")
        self._check("step: xw_t", xw_t, self.GATES * self.hidden_size)
        return self._step(xw_t, self._check_state(state, np.shape(xw_t)[0], "step: "))

    def zero_state(self, m: int):
        """The state of zeros for a batch of ``m``: one (m, hidden) array per part."""
        zeros = [self._backend.zeros((m, self.hidden_size), self.W_hh) for _ in self.STATE]
        return zeros[0] if len(zeros) == 1 else tuple(zeros)

    def output(self, state):
        """h, the part of the state the next layer and the readout read."""
        return state if len(self.STATE) == 1 else state[0]

    # Without the checks, for callers that made their inputs themselves.
    def _project(self, x):
        lead = np.shape(x)[:-1]
        x = x.reshape(-1, self.input_size)
        xw = x @ self.W_xh if self.b_h is None else F.addmm(self.b_h, x, self.W_xh)
        return xw.reshape(*lead, self.GATES * self.hidden_size)

    def _step(self, xw_t, state):
        raise NotImplementedError(f"{type(self).__name__} does not define _step(xw_t, state)")

    def _check_state(self, state, m: int, what: str = ""):
        """``state`` as constants of this engine, each part (m, hidden_size), or a clear error."""
        names = self.STATE
        if len(names) == 1:
            name = what + ("h_prev" if names == ("h",) else names[0])
            state = self._constant(state, name)
            self._check(name, state, self.hidden_size, m)
            return state
        if not isinstance(state, (tuple, list)) or len(state) != len(names):
            raise TypeError(f"{self._where()}: {what}the state must be a tuple ({', '.join(names)}) of "
                            f"{len(names)} arrays, got {given(state)}")
        parts = []
        for name, part in zip(names, state):
            part = self._constant(part, what + name)
            self._check(what + name, part, self.hidden_size, m)
            parts.append(part)
        return tuple(parts)

    def _check(self, what, x, size, batch=None):
        shape = np.shape(x)
        if len(shape) != 2 or shape[1] != size or shape[0] == 0 or (batch is not None and shape[0] != batch):
            rows = "m" if batch is None else batch
            raise ValueError(f"{self._where()}: {what} must have shape "
                             f"({rows}, {size}) with m >= 1, got {shape}")

    def _torch_entries(self, prefix: str, ours: str, suffix: str = ""):
        """PyTorch's entries for this cell (see :mod:`nn.interop`): its RNN's layout, with
        the single bias b_h exported as bias_ih and a zero bias_hh. A cell whose PyTorch
        form keeps the two biases apart (a GRU's b_hn sits inside r * (h W_hn + b_hn))
        must write its own."""
        yield f"{prefix}weight_ih{suffix}", ours + "W_xh", self.W_xh, TRANSPOSED
        yield f"{prefix}weight_hh{suffix}", ours + "W_hh", self.W_hh, TRANSPOSED
        if self.b_h is not None:
            yield f"{prefix}bias_ih{suffix}", ours + "b_h", self.b_h, BIAS_IH
            yield f"{prefix}bias_hh{suffix}", ours + "b_h", self.b_h, BIAS_HH


class RNNCell(RecurrentCell):
    """One step of an Elman RNN: h_t = f(x_t W_xh + h_prev W_hh + b_h).

    That is H_t = f1(X_t W1 + H_{t-1} Wh1 + β1) with f1 = ``nonlinearity`` ("tanh" or
    "relu"). ``x_t`` is (m, input_size), ``h_prev`` and the result (m, hidden_size).
    Parameters: ``W_xh`` (input x hidden), ``W_hh`` (hidden x hidden), ``b_h`` (hidden), all
    drawn from U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)).
    """

    def __init__(self, input_size: int, hidden_size: int, nonlinearity: str = "tanh", bias: bool = True,
                 engine: str = "tensor", seed=None):
        super().__init__(input_size, hidden_size, bias, engine, seed)
        self.nonlinearity = nonlinearity
        self._f = F.activation(nonlinearity, NONLINEARITIES, "nonlinearity")

    def extra_repr(self) -> str:
        return (f"input_size={self.input_size}, hidden_size={self.hidden_size}, "
                f"nonlinearity={self.nonlinearity!r}, engine={self.engine!r}")

    def forward(self, x_t, h_prev=None):
        """h_t from x_t (m, input_size) and h_prev (m, hidden_size; zeros if None)."""
        return super().forward(x_t, h_prev)

    def step(self, xw_t, h_prev):
        """h_t = f(xw_t + h_prev W_hh), where xw_t = x_t W_xh + b_h from :meth:`project`;
        both (m, hidden_size)."""
        return super().step(xw_t, h_prev)

    def _step(self, xw_t, h_prev):
        return self._f(F.addmm(xw_t, h_prev, self.W_hh))


class RecurrentStack(Module):
    """A stack of ``num_layers`` cells of the class ``CELL`` unrolled over a sequence.

    ``stack(x, h0=None)`` returns ``(out, h_n)``: ``x`` is (T, m, input_size) (or
    (m, T, input_size) with ``batch_first``), ``out`` holds the top layer's outputs
    H_1..H_T, (T, m, hidden_size), and ``h_n`` each layer's last state, (num_layers, m,
    hidden_size), or a tuple of such arrays, one per part of the cell's state. ``h0`` has
    the same form and is zero unless given. Layer l > 0 reads the outputs of layer l - 1 as
    its input sequence. The cells are ``stack.cells[l]``; the same parameter objects serve
    every time step. A stack of a new cell is a subclass that sets ``CELL`` and passes the
    cell's own options through ``__init__``.
    """

    CELL = RecurrentCell

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, engine: str = "tensor", seed=None, **cell_options):
        self.input_size = check_size("input_size", input_size)
        self.hidden_size = check_size("hidden_size", hidden_size)
        self.num_layers = check_size("num_layers", num_layers)
        self.batch_first = flag("batch_first", batch_first)
        self._backend = backend(engine)
        self.engine = self._backend.name
        rng = init.generator(seed)
        self.cells = [
            self.CELL(input_size if l == 0 else hidden_size, hidden_size, bias=bias, engine=engine, seed=rng,
                      **cell_options)
            for l in range(num_layers)
        ]

    def extra_repr(self) -> str:
        return (f"input_size={self.input_size}, hidden_size={self.hidden_size}, num_layers={self.num_layers}, "
                f"batch_first={self.batch_first}, engine={self.engine!r}")

    def forward(self, x, h0=None):
        be = self._backend
        x = self._constant(x, "the input")
        check_sequence(self, x, self.input_size, self.batch_first)
        if self.batch_first:
            x = swap01(x)
        T, m = np.shape(x)[:2]
        h0 = check_h0(self, h0, self.num_layers, m, self.hidden_size, self.CELL.STATE)

        layer_input, last = x, []
        for l, cell in enumerate(self.cells):
            with scope(f"layer {l}"):
                state = cell.zero_state(m) if h0 is None else _layer_state(h0, l)
                xw = cell._project(layer_input) if be.fuse_steps else None
                step, single, name = cell._step, len(cell.STATE) == 1, be.name_state
                letters = [part.upper() for part in cell.STATE]  # the states' names: H_t (and C_t ...)
                outputs = be.stack_builder(T)
                for t in range(T):
                    made_after = mark()  # the step's own nodes are newer (see name_state)
                    with scope(f"t={t + 1}"):
                        state = step(xw[t] if xw is not None else cell._project(layer_input[t]), state)
                    if single:
                        name(state, f"{letters[0]}_{t + 1}", made_after)
                        outputs.append(state)
                    else:
                        for letter, part in zip(letters, state):
                            name(part, f"{letter}_{t + 1}", made_after)
                        outputs.append(cell.output(state))
                layer_input = outputs.stack()
                last.append(state)
        out = swap01(layer_input) if self.batch_first else layer_input
        if len(self.CELL.STATE) == 1:
            return out, be.stack(last, 0)
        return out, tuple(be.stack([state[k] for state in last], 0) for k in range(len(self.CELL.STATE)))

    def _torch_entries(self, prefix: str, ours: str):
        for k, cell in enumerate(self.cells):
            yield from cell._torch_entries(prefix, f"{ours}cells.{k}.", f"_l{k}")


class RNN(RecurrentStack):
    """A stack of ``num_layers`` RNN cells unrolled over a sequence.

    ``rnn(x, h0=None)`` returns ``(out, h_n)``: ``x`` is (T, m, input_size) (or
    (m, T, input_size) with ``batch_first``), ``out`` holds the top layer's states
    H_1..H_T, (T, m, hidden_size), and ``h_n`` each layer's last state,
    (num_layers, m, hidden_size). ``h0`` (num_layers, m, hidden_size) is zero unless given.
    Layer l > 0 reads the states of layer l - 1 as its input sequence. The cells are
    ``rnn.cells[l]``; the same parameter objects serve every time step.
    """

    CELL = RNNCell

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, engine: str = "tensor", seed=None):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, engine, seed,
                         nonlinearity=nonlinearity)


def _layer_state(h0, l: int):
    """Layer l's part of an initial state: h0[l], or the tuple of each part's [l]."""
    return tuple(part[l] for part in h0) if isinstance(h0, tuple) else h0[l]


class RNNModel(Module):
    """An RNN with a readout: the three topologies of the lecture notes.

        H_t = f1(X_t W_xh + H_{t-1} W_hh + b_h),   Ŷ_t = f2(H_t W_hy + b_y)

    ``mode``:
      * ``"many_to_one"``: reads out only the last step: ``y`` is (m, output_size);
      * ``"many_to_many"``: reads out every step: ``y`` is (T, m, output_size);
      * ``"one_to_many"``: takes one input vector per sequence, ``x`` (m, input_size), and
        unrolls ``steps`` steps: X_1 = x and X_t = 0 for t > 1, so later steps are driven by
        the hidden state alone. ``y`` is (steps, m, output_size).
    (With ``batch_first``, sequences are (m, T, ...) in and out.)

    ``output_activation`` is f2: "identity" (logits, for ``cross_entropy``), "softmax"
    (over the last axis), "sigmoid" or "relu". ``model(x, h0=None)`` returns ``(y, h_n)``.
    Parameters: the RNN's (``rnn.cells.{l}.W_xh`` ...) and ``W_hy`` (hidden x output) and
    ``b_y`` (output), drawn from U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)).
    """

    MODES = ("many_to_one", "many_to_many", "one_to_many")
    OUTPUTS = ("identity", "softmax", "sigmoid", "relu")

    def __init__(self, input_size: int, hidden_size: int, output_size: int, mode: str = "many_to_one",
                 output_activation: str = "identity", num_layers: int = 1, steps: int | None = None,
                 nonlinearity: str = "tanh", bias: bool = True, batch_first: bool = False,
                 engine: str = "tensor", seed=None):
        if mode not in self.MODES:
            raise ValueError(f"mode must be one of {list(self.MODES)}, got {mode!r}")
        if mode == "one_to_many":
            steps = check_size("steps (for mode='one_to_many')", steps)
        elif steps is not None:
            raise ValueError(f"steps is only used by mode='one_to_many', got steps={steps!r} with mode={mode!r}")
        self.mode, self.steps = mode, steps
        self.output_size = check_size("output_size", output_size)
        self.output_activation = output_activation
        self._f2 = F.activation(output_activation, self.OUTPUTS, "output_activation")
        self._backend = backend(engine)
        self.engine = self._backend.name
        self.batch_first = flag("batch_first", batch_first)
        rng = init.generator(seed)
        self.rnn = RNN(input_size, hidden_size, num_layers, nonlinearity, bias, batch_first=False,
                       engine=engine, seed=rng)
        H = hidden_size
        self.W_hy = self._backend.parameter(init.uniform(rng, (H, output_size), H), "W_hy")
        self.b_y = self._backend.parameter(init.uniform(rng, (output_size,), H), "b_y") if flag(
            "bias", bias) else None

    def extra_repr(self) -> str:
        return (f"mode={self.mode!r}, input_size={self.rnn.input_size}, hidden_size={self.rnn.hidden_size}, "
                f"output_size={self.output_size}, output_activation={self.output_activation!r}, "
                f"engine={self.engine!r}")

    def forward(self, x, h0=None):
        be = self._backend
        x = self._constant(x, "the input")
        if self.mode == "one_to_many":
            shape = np.shape(x)
            if len(shape) != 2 or shape[1] != self.rnn.input_size or shape[0] == 0:
                raise ValueError(f"{self._where()}: one_to_many expects one input "
                                 f"vector per sequence, shape (m, {self.rnn.input_size}) with m >= 1, got {shape}")
            rest = be.zeros((self.steps - 1, shape[0], shape[1]), self.rnn.cells[0].W_xh)
            x = be.concat([x.reshape(1, *shape), rest], 0) if self.steps > 1 else x.reshape(1, *shape)
        else:
            check_sequence(self, x, self.rnn.input_size, self.batch_first)
            if self.batch_first:
                x = swap01(x)
        h0 = check_h0(self, h0, self.rnn.num_layers, np.shape(x)[1], self.rnn.hidden_size,
                      self.rnn.CELL.STATE)  # named as this model
        states, h_n = self.rnn(x, h0)
        if self.mode == "many_to_one":
            with scope("readout"):
                return self._readout(states[-1]), h_n
        y = self._readout_sequence(states)
        return (swap01(y) if self.batch_first else y), h_n

    def _torch_entries(self, prefix: str, ours: str):
        """A torch module with attributes ``rnn`` (its RNN) and ``readout`` (an nn.Linear)."""
        yield from self.rnn._torch_entries(prefix + "rnn.", ours + "rnn.")
        yield prefix + "readout.weight", ours + "W_hy", self.W_hy, TRANSPOSED
        if self.b_y is not None:
            yield prefix + "readout.bias", ours + "b_y", self.b_y, SAME

    def _readout(self, h):
        """Ŷ = f2(H W_hy + b_y) for states of shape (..., hidden)."""
        z = h @ self.W_hy if self.b_y is None else F.addmm(self.b_y, h, self.W_hy)
        return self._f2(z)

    def _readout_sequence(self, states):
        be = self._backend
        if be.fuse_steps:  # one product for all steps
            T, m, H = np.shape(states)
            with scope("readout"):
                return self._readout(states.reshape(T * m, H)).reshape(T, m, self.output_size)
        ys = []
        for t in range(np.shape(states)[0]):
            with scope("readout"), scope(f"t={t + 1}"):
                ys.append(self._readout(states[t]))
        return be.stack(ys, 0)


def check_h0(module, h0, num_layers: int, m: int, hidden_size: int, parts=("h",)):
    """``h0`` as a constant of ``module``'s engine (None stays None), or a clear error naming
    ``module`` unless it is (num_layers, m, hidden_size), whatever ``batch_first`` says (as
    in PyTorch); for a state of several ``parts`` (an LSTM's h and c), a tuple of such
    arrays, one per part."""
    if h0 is None:
        return None
    want = (num_layers, m, hidden_size)
    if len(parts) > 1:
        names = ", ".join(f"{p}0" for p in parts)
        if not isinstance(h0, (tuple, list)) or len(h0) != len(parts):
            raise TypeError(f"{module._where()}: the initial state must be a tuple ({names}) of "
                            f"{len(parts)} arrays of shape {want}, got {given(h0)}")
        return tuple(check_h0(module, part, num_layers, m, hidden_size, (p,)) for p, part in zip(parts, h0))
    name = f"{parts[0]}0"
    h0 = module._constant(h0, name)
    if np.shape(h0) != want:
        raise ValueError(f"{module._where()}: {name} must have shape "
                         f"{want}, got {np.shape(h0)} ({name} is layers x batch x hidden)")
    return h0


def check_sequence(module, x, input_size: int, batch_first: bool) -> None:
    """A clear error, naming ``module`` and the shape given, unless ``x`` is a non-empty
    (T, m, input_size) sequence ((m, T, input_size) if ``batch_first``)."""
    shape = np.shape(x)
    order = "(m, T, {})" if batch_first else "(T, m, {})"
    where = module._where()
    if len(shape) != 3 or shape[2] != input_size:
        raise ValueError(f"{where}: the input must have shape {order.format(input_size)}, got {shape}")
    T, m = (shape[1], shape[0]) if batch_first else shape[:2]
    if T == 0:
        raise ValueError(f"{where}: the input sequence is empty (T = 0), shape {shape}")
    if m == 0:
        raise ValueError(f"{where}: the batch is empty (m = 0), shape {shape}")
    if is_anomaly_enabled():  # the steps' inputs are projected as one op: name the step here
        numbers = backends_data(x)
        bad = ~np.isfinite(numbers)
        if bad.any():
            # the earliest step's, whatever the layout
            t, i, k = (int(j) for j in np.argwhere(bad.swapaxes(0, 1) if batch_first else bad)[0])
            index = (i, t, k) if batch_first else (t, i, k)
            n = int(bad.sum())
            raise AnomalyError(f"{where}: the input holds {n} non-finite number{'s' if n > 1 else ''}, the first, "
                               f"{float(numbers[index])}, at {list(index)}: step t={t + 1} of sequence {i}")
