"""nn.interop against PyTorch's own numbers, and its layouts and errors.

tests/data/torch_rnn_reference.npz was written by tools/make_torch_reference.py (the only
place that needs PyTorch): for each case, a torch.nn.RNN with a Linear readout on every
step, its weights, inputs, outputs, loss and gradients. Here the same weights are loaded
with ``from_torch_state_dict`` into nn.RNNModel(mode="many_to_many") and everything is
compared to 1e-12; gradients come back through ``to_torch_state_dict(grads=True)``.
"""

import json
from pathlib import Path

import numpy as np
import pytest

import nn
from autograd import Tensor, Value

from .reference import TensorLike, numbers

REFERENCE = Path(__file__).parent / "data" / "torch_rnn_reference.npz"
TOL = dict(rtol=1e-12, atol=1e-12)


def _load_reference() -> dict:
    with np.load(REFERENCE, allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in archive.files}
    cases = {}
    for name in json.loads(str(arrays["index"]))["cases"]:
        prefix = name + "/"
        case = {key[len(prefix):]: value for key, value in arrays.items() if key.startswith(prefix)}
        case["config"] = json.loads(str(case["config"]))
        case["state"] = {k[len("state/"):]: v for k, v in case.items() if k.startswith("state/")}
        case["grad"] = {k[len("grad/"):]: v for k, v in case.items() if k.startswith("grad/")}
        cases[name] = case
    return cases


CASES = _load_reference()


def leaf(array, engine):
    """An input we can differentiate with respect to, on either engine."""
    if engine == "tensor":
        return Tensor(array, requires_grad=True)
    return np.vectorize(Value, otypes=[object])(array)


def leaf_grad(x) -> np.ndarray:
    if isinstance(x, Tensor):
        return x.grad
    return np.vectorize(lambda v: v.grad, otypes=[float])(x)


def time_first(x, batch_first):
    """(m, T, ...) -> (T, m, ...) on numpy arrays, Tensors and object arrays."""
    if not batch_first:
        return x
    return np.swapaxes(x, 0, 1) if isinstance(x, np.ndarray) else x.transpose(1, 0, *range(2, x.ndim))


def build(config, engine="tensor", seed=0):
    return nn.RNNModel(config["input_size"], config["hidden_size"], config["output_size"], mode="many_to_many",
                       num_layers=config["num_layers"], nonlinearity=config["nonlinearity"], bias=config["bias"],
                       batch_first=config["batch_first"], engine=engine, seed=seed)


def check_against_torch(case, engine):
    config, bf = case["config"], case["config"]["batch_first"]
    model = build(config, engine)
    nn.from_torch_state_dict(model, case["state"])
    x = leaf(case["input"], engine)
    h0 = leaf(case["h0"], engine) if config["h0"] else None

    # The RNN alone: inside RNNModel it is always time-first.
    states, h_n_rnn = model.rnn(time_first(case["input"], bf), None if h0 is None else case["h0"])
    np.testing.assert_allclose(numbers(states), time_first(case["out"], bf), **TOL)
    np.testing.assert_allclose(numbers(h_n_rnn), case["h_n"], **TOL)

    y, h_n = model(x, h0)
    np.testing.assert_allclose(numbers(y), case["y"], **TOL)
    np.testing.assert_allclose(numbers(h_n), case["h_n"], **TOL)

    steps, targets = time_first(y, bf), time_first(case["target"], bf)
    if config["loss"] == "cross_entropy":
        loss, _ = nn.sequence_loss(nn.cross_entropy, steps, targets)
    else:
        loss, _ = nn.sequence_loss(nn.mse_loss, steps, targets, reduction="sum")
    np.testing.assert_allclose(float(numbers(loss)), case["loss"], **TOL)

    loss.backward()
    grads = nn.to_torch_state_dict(model, grads=True)
    params = {k: v for k, v in case["grad"].items() if k not in ("input", "h0")}
    assert sorted(grads) == sorted(params)
    for key, expected in params.items():
        np.testing.assert_allclose(grads[key], expected, **TOL, err_msg=key)
    np.testing.assert_allclose(leaf_grad(x), case["grad"]["input"], **TOL)
    if h0 is not None:
        np.testing.assert_allclose(leaf_grad(h0), case["grad"]["h0"], **TOL)


def test_reference_covers_the_options():
    configs = [case["config"] for case in CASES.values()]
    assert {c["num_layers"] for c in configs} >= {1, 2, 3}
    assert {c["nonlinearity"] for c in configs} == {"tanh", "relu"}
    assert {c["batch_first"] for c in configs} == {True, False}
    assert {c["bias"] for c in configs} == {True, False}
    assert {c["loss"] for c in configs} == {"cross_entropy", "sse"}
    assert {c["h0"] for c in configs} == {True, False}
    for case in CASES.values():  # PyTorch's two biases of a layer get the same gradient
        for key in case["grad"]:
            if key.startswith("rnn.bias_ih"):
                np.testing.assert_allclose(case["grad"][key], case["grad"][key.replace("_ih", "_hh")], **TOL)


@pytest.mark.parametrize("engine", ["tensor", "value"])
@pytest.mark.parametrize("name", list(CASES))
def test_matches_torch(name, engine):
    check_against_torch(CASES[name], engine)


# --- layouts ---------------------------------------------------------------------------------

def test_linear_layout():
    layer = nn.Linear(3, 2, seed=1)
    state = nn.to_torch_state_dict(layer)
    assert list(state) == ["weight", "bias"]
    assert state["weight"].shape == (2, 3)
    np.testing.assert_array_equal(state["weight"], layer.W.data.T)
    np.testing.assert_array_equal(state["bias"], layer.b.data)
    x = np.random.default_rng(0).normal(size=(4, 3))
    np.testing.assert_allclose(layer(x).data, x @ state["weight"].T + state["bias"], **TOL)  # PyTorch's formula


def test_rnn_layout():
    rnn = nn.RNN(3, 4, num_layers=2, seed=1)
    state = nn.to_torch_state_dict(rnn)
    assert list(state) == [f"{kind}_l{k}" for k in (0, 1) for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    assert state["weight_ih_l0"].shape == (4, 3)
    assert state["weight_ih_l1"].shape == (4, 4)
    for k, cell in enumerate(rnn.cells):
        np.testing.assert_array_equal(state[f"weight_ih_l{k}"], cell.W_xh.data.T)
        np.testing.assert_array_equal(state[f"weight_hh_l{k}"], cell.W_hh.data.T)
        np.testing.assert_array_equal(state[f"bias_ih_l{k}"], cell.b_h.data)
        np.testing.assert_array_equal(state[f"bias_hh_l{k}"], np.zeros(4))


def test_rnn_model_layout_without_bias():
    model = nn.RNNModel(2, 3, 4, mode="many_to_many", bias=False, seed=1)
    state = nn.to_torch_state_dict(model)
    assert list(state) == ["rnn.weight_ih_l0", "rnn.weight_hh_l0", "readout.weight"]
    assert state["readout.weight"].shape == (4, 3)
    np.testing.assert_array_equal(state["readout.weight"], model.W_hy.data.T)


def test_export_is_a_copy():
    # every entry, also those in our own layout (a bias is not transposed, so only a copy
    # keeps a write into the export off the layer), and the gradients with grads=True
    layer = nn.Linear(2, 2, seed=1)
    (layer(np.ones((1, 2))) ** 2).sum().backward()
    before, grads = layer.state_dict(), layer.grad_dict()
    for exported in (nn.to_torch_state_dict(layer), nn.to_torch_state_dict(layer, grads=True)):
        for array in exported.values():
            array[...] = 7.0
    for name, value in layer.state_dict().items():
        np.testing.assert_array_equal(value, before[name])
    for name, value in layer.grad_dict().items():
        np.testing.assert_array_equal(value, grads[name])


def test_import_sums_the_two_biases():
    rng = np.random.default_rng(3)
    rnn = nn.RNN(2, 3, seed=0)
    state = {"weight_ih_l0": rng.normal(size=(3, 2)), "weight_hh_l0": rng.normal(size=(3, 3)),
             "bias_ih_l0": rng.normal(size=3), "bias_hh_l0": rng.normal(size=3)}
    nn.from_torch_state_dict(rnn, state)
    cell = rnn.cells[0]
    np.testing.assert_array_equal(cell.W_xh.data, state["weight_ih_l0"].T)
    np.testing.assert_array_equal(cell.W_hh.data, state["weight_hh_l0"].T)
    np.testing.assert_array_equal(cell.b_h.data, state["bias_ih_l0"] + state["bias_hh_l0"])


@pytest.mark.parametrize("engine", ["tensor", "value"])
def test_round_trip_is_identity(engine):
    source = nn.RNNModel(3, 4, 2, mode="many_to_many", num_layers=2, engine=engine, seed=1)
    target = nn.RNNModel(3, 4, 2, mode="many_to_many", num_layers=2, engine=engine, seed=2)
    assert not np.array_equal(source.state_dict()["W_hy"], target.state_dict()["W_hy"])
    exported = nn.to_torch_state_dict(source)
    nn.from_torch_state_dict(target, exported)
    for key, value in source.state_dict().items():
        np.testing.assert_array_equal(target.state_dict()[key], value, err_msg=key)
    for key, value in nn.to_torch_state_dict(target).items():
        np.testing.assert_array_equal(value, exported[key], err_msg=key)



@pytest.mark.parametrize("convert", [lambda a: a.tolist(), lambda a: a.astype(np.float32), TensorLike],
                         ids=["lists", "float32", "tensor-like"])
def test_import_accepts_array_likes(convert):
    rng = np.random.default_rng(4)
    state = {"weight": rng.normal(size=(2, 3)), "bias": rng.normal(size=2)}
    given = {k: convert(v) for k, v in state.items()}
    layer = nn.Linear(3, 2, seed=0)
    nn.from_torch_state_dict(layer, given)
    as_numbers = {k: v.numpy() if isinstance(v, TensorLike) else np.asarray(v) for k, v in given.items()}
    assert layer.W.data.dtype == np.float64
    np.testing.assert_array_equal(layer.W.data, as_numbers["weight"].T)
    np.testing.assert_array_equal(layer.b.data, as_numbers["bias"])


# --- errors ----------------------------------------------------------------------------------

def model_and_state():
    model = nn.RNNModel(2, 3, 2, mode="many_to_many", seed=1)
    state = {k: v + 1.0 for k, v in nn.to_torch_state_dict(model).items()}  # differs from the model everywhere
    return model, state


def assert_unchanged(model, before):
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[key], err_msg=key)


def test_missing_key():
    model, state = model_and_state()
    before = model.state_dict()
    del state["readout.bias"]
    with pytest.raises(KeyError, match=r"missing \['readout.bias'\], unexpected \[\]"):
        nn.from_torch_state_dict(model, state)
    assert_unchanged(model, before)


def test_unexpected_key():
    model, state = model_and_state()
    before = model.state_dict()
    state["rnn.weight_ih_l1"] = np.zeros((3, 3))
    with pytest.raises(KeyError, match=r"missing \[\], unexpected \['rnn.weight_ih_l1'\]"):
        nn.from_torch_state_dict(model, state)
    assert_unchanged(model, before)


def test_wrong_shape_names_key_and_shapes():
    model, state = model_and_state()
    before = model.state_dict()
    state["readout.weight"] = state["readout.weight"].T  # (3, 2) where PyTorch has (2, 3)
    with pytest.raises(ValueError, match=r"readout.weight should have shape \(2, 3\).*got \(3, 2\)"):
        nn.from_torch_state_dict(model, state)
    assert_unchanged(model, before)  # the entries checked before it were not written either


def test_complex_weights_are_rejected_before_anything_is_written():
    model, state = model_and_state()
    before = model.state_dict()
    state["readout.weight"] = state["readout.weight"] + 1j
    with pytest.raises(TypeError, match=r"from_torch_state_dict: readout.weight: expected real numbers, "
                                        r"got an array of dtype complex128"):
        nn.from_torch_state_dict(model, state)
    assert_unchanged(model, before)


def test_wrong_bias_shape():
    model, state = model_and_state()
    before = model.state_dict()
    state["rnn.bias_hh_l0"] = np.zeros(4)
    with pytest.raises(ValueError, match=r"rnn.bias_hh_l0 should have shape \(3,\).*got \(4,\)"):
        nn.from_torch_state_dict(model, state)
    assert_unchanged(model, before)


# --- other modules ---------------------------------------------------------------------------

def test_rnn_cell_alone():
    rng = np.random.default_rng(5)
    cell = nn.RNNCell(3, 2, nonlinearity="relu", seed=0)
    state = {"weight_ih": rng.normal(size=(2, 3)), "weight_hh": rng.normal(size=(2, 2)),
             "bias_ih": rng.normal(size=2), "bias_hh": rng.normal(size=2)}
    nn.from_torch_state_dict(cell, state)
    x, h = rng.normal(size=(4, 3)), rng.normal(size=(4, 2))
    # PyTorch's RNNCell: h' = relu(x W_ihᵀ + b_ih + h W_hhᵀ + b_hh)
    expected = np.maximum(x @ state["weight_ih"].T + state["bias_ih"] + h @ state["weight_hh"].T + state["bias_hh"], 0)
    np.testing.assert_allclose(cell(x, h).data, expected, **TOL)
    exported = nn.to_torch_state_dict(cell)
    assert list(exported) == ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]
    np.testing.assert_allclose(exported["bias_ih"], state["bias_ih"] + state["bias_hh"], **TOL)
    np.testing.assert_array_equal(exported["bias_hh"], np.zeros(2))


def test_rnn_cell_gradients_go_to_both_biases():
    cell = nn.RNNCell(2, 3, seed=0)
    x = np.array([[0.5, -1.0], [2.0, 0.25]])
    h = cell(x).data
    cell(x).sum().backward()
    grads = nn.to_torch_state_dict(cell, grads=True)
    dz = 1.0 - h**2  # d tanh(z)/dz, summed over the batch for the bias
    np.testing.assert_allclose(grads["bias_ih"], dz.sum(axis=0), **TOL)
    np.testing.assert_allclose(grads["bias_hh"], dz.sum(axis=0), **TOL)
    np.testing.assert_allclose(grads["weight_ih"], (x.T @ dz).T, **TOL)
    np.testing.assert_array_equal(grads["weight_hh"], np.zeros((3, 3)))  # h_prev was zero


def test_mlp_nested_names():
    rng = np.random.default_rng(6)
    mlp = nn.MLP(3, [4, 2], activation="tanh", seed=0)
    state = {"layers.0.weight": rng.normal(size=(4, 3)), "layers.0.bias": rng.normal(size=4),
             "layers.1.weight": rng.normal(size=(2, 4)), "layers.1.bias": rng.normal(size=2)}
    assert list(nn.to_torch_state_dict(mlp)) == list(state)
    nn.from_torch_state_dict(mlp, state)
    x = rng.normal(size=(5, 3))
    hidden = np.tanh(x @ state["layers.0.weight"].T + state["layers.0.bias"])
    np.testing.assert_allclose(mlp(x).data, hidden @ state["layers.1.weight"].T + state["layers.1.bias"], **TOL)


class Scaled(nn.Module):
    """A module with a bare parameter, which PyTorch has no standard layout for."""

    def __init__(self):
        self.layer = nn.Linear(2, 2, seed=0)
        self.gain = Tensor(np.ones(2), requires_grad=True)

    def forward(self, x):
        return self.layer(x) * self.gain


def test_parameter_without_torch_layout():
    model = Scaled()
    with pytest.raises(TypeError, match="no PyTorch layout.*gain of Scaled"):
        nn.to_torch_state_dict(model)
    with pytest.raises(TypeError, match="no PyTorch layout.*gain of Scaled"):
        nn.from_torch_state_dict(model, {"layer.weight": np.zeros((2, 2)), "layer.bias": np.zeros(2)})


class Tied(nn.Module):
    """Two paths to one Linear, and a readout weight shared with the recurrence, as tied
    weights are: PyTorch's state_dict() of the same tying has an entry under every path."""

    def __init__(self, engine="tensor"):
        self.a = nn.Linear(3, 3, seed=0, engine=engine)
        self.b = self.a
        self.model = nn.RNNModel(2, 3, 3, mode="many_to_many", seed=1, engine=engine)
        self.model.W_hy = self.model.rnn.cells[0].W_hh

    def forward(self, x):
        return self.b(self.a(x))


@pytest.mark.parametrize("engine", ["tensor", "value"])
def test_tied_parameters_export_under_every_path(engine):
    tied = Tied(engine)
    state = nn.to_torch_state_dict(tied)
    assert sorted(state) == sorted(["a.weight", "a.bias", "b.weight", "b.bias", "model.rnn.weight_ih_l0",
                                    "model.rnn.weight_hh_l0", "model.rnn.bias_ih_l0", "model.rnn.bias_hh_l0",
                                    "model.readout.weight", "model.readout.bias"])
    W = nn.backends.data(tied.a.W)
    for name in ("a.weight", "b.weight"):
        np.testing.assert_array_equal(state[name], W.T)
    W_hh = nn.backends.data(tied.model.rnn.cells[0].W_hh)
    np.testing.assert_array_equal(state["model.readout.weight"], W_hh.T)  # readout.weight is W_hyᵀ = W_hhᵀ
    np.testing.assert_array_equal(state["model.rnn.weight_hh_l0"], W_hh.T)


def test_tied_parameters_import_when_their_entries_agree():
    tied = Tied()
    rng = np.random.default_rng(8)
    state = {k: rng.normal(size=v.shape) for k, v in nn.to_torch_state_dict(tied).items()}
    state["b.weight"], state["b.bias"] = state["a.weight"], state["a.bias"]
    state["model.readout.weight"] = state["model.rnn.weight_hh_l0"]
    nn.from_torch_state_dict(tied, state)
    np.testing.assert_array_equal(tied.a.W.data, state["a.weight"].T)
    np.testing.assert_array_equal(tied.model.W_hy.data, state["model.rnn.weight_hh_l0"].T)
    np.testing.assert_array_equal(tied.model.rnn.cells[0].b_h.data,
                                  state["model.rnn.bias_ih_l0"] + state["model.rnn.bias_hh_l0"])
    assert nn.to_torch_state_dict(tied)["b.bias"].tolist() == state["a.bias"].tolist()


def test_tied_parameters_whose_entries_disagree_are_refused_before_anything_is_written():
    tied = Tied()
    before = nn.to_torch_state_dict(tied)
    state = {k: v + 1.0 for k, v in before.items()}
    state["b.weight"] = state["a.weight"] + 1.0  # a.W and b.W are one parameter
    with pytest.raises(ValueError, match=r"a\.W and b\.W are the same \(tied\) parameter, "
                                         r"but a\.weight and b\.weight hold different numbers"):
        nn.from_torch_state_dict(tied, state)
    state["b.weight"] = state["a.weight"]
    state["model.readout.weight"] = state["model.rnn.weight_hh_l0"] * 2.0
    with pytest.raises(ValueError, match=r"model\.rnn\.cells\.0\.W_hh and model\.W_hy are the same"):
        nn.from_torch_state_dict(tied, state)
    after = nn.to_torch_state_dict(tied)
    for key in before:
        np.testing.assert_array_equal(after[key], before[key], err_msg=key)


def test_tied_parameters_holding_nan_import_their_own_export():
    # the entries of one tied parameter agree, NaN included (NaN != NaN made them "differ")
    class Tied(nn.Module):
        def __init__(self):
            self.a = nn.Linear(2, 2, seed=0)
            self.b = self.a

    t = Tied()
    t.a.W.data[0, 0] = np.nan
    nn.from_torch_state_dict(t, nn.to_torch_state_dict(t))
    assert np.isnan(t.a.W.data[0, 0]) and t.b is t.a


def test_a_layer_with_parameters_of_its_own_is_refused_not_half_exported():
    class Scaled(nn.Linear):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.scale = Tensor(np.array([5.0]), requires_grad=True)

    m = Scaled(2, 1, seed=0)
    for call in (lambda: nn.to_torch_state_dict(m), lambda: nn.from_torch_state_dict(m, {})):
        with pytest.raises(TypeError, match=r"no PyTorch layout is defined for parameter\(s\) \['scale'\] of Scaled"):
            call()
    with pytest.raises(TypeError, match="state must be a dict of arrays, got NoneType"):
        nn.from_torch_state_dict(nn.Linear(2, 1), None)


class BFloat16Like:
    """Stands in for a torch tensor of a dtype numpy has no counterpart of: its .numpy()
    refuses (as torch's does for bfloat16), its .double() converts."""

    def __init__(self, array):
        self.array = np.asarray(array, dtype=np.float64)

    def detach(self):
        return self

    def cpu(self):
        return self

    def numpy(self):
        raise TypeError("Got unsupported ScalarType BFloat16")

    def double(self):
        return TensorLike(self.array)


def test_import_takes_tensors_of_a_dtype_numpy_lacks_through_float64():
    m = nn.Linear(2, 3, seed=0)
    state = {k: v + 1.0 for k, v in nn.to_torch_state_dict(m).items()}
    nn.from_torch_state_dict(m, {k: BFloat16Like(v) for k, v in state.items()})
    for key, value in nn.to_torch_state_dict(m).items():
        np.testing.assert_array_equal(value, state[key], err_msg=key)
