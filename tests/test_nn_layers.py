"""Initialisation, nn.Linear and nn.MLP on both engines: values against numpy, gradients
against finite differences and closed forms, and the errors for bad input."""

import re

import numpy as np
import pytest

import nn
from autograd import Tensor, Value, gradcheck

from .reference import ACTIVATIONS, numbers

ENGINES = ["tensor", "value"]


# --- initialisation ----------------------------------------------------------------------
def _layers(engine, seed):
    return [
        nn.Linear(3, 2, engine=engine, seed=seed),
        nn.MLP(3, [4, 2], engine=engine, seed=seed),
        nn.RNNCell(2, 3, engine=engine, seed=seed),
        nn.RNN(2, 3, num_layers=2, engine=engine, seed=seed),
        nn.RNNModel(2, 3, 2, num_layers=2, engine=engine, seed=seed),
    ]


def _same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return list(sa) == list(sb) and all(np.array_equal(sa[k], sb[k]) for k in sa)


def test_same_int_seed_same_weights_on_both_engines():
    for a, b, c in zip(_layers("tensor", 7), _layers("tensor", 7), _layers("value", 7)):
        assert _same_state(a, b)
        assert _same_state(a, c)


def test_same_generator_state_same_weights_on_both_engines():
    for a, b in zip(_layers("tensor", np.random.default_rng(11)), _layers("value", np.random.default_rng(11))):
        assert _same_state(a, b)


def test_different_seeds_give_different_weights():
    for a, b in zip(_layers("tensor", 1), _layers("tensor", 2)):
        sa, sb = a.state_dict(), b.state_dict()
        assert all(not np.array_equal(sa[k], sb[k]) for k in sa)


def test_no_seed_is_seed_zero():
    for a, b in zip(_layers("tensor", None), _layers("tensor", 0)):
        assert _same_state(a, b)


def test_a_shared_generator_gives_consecutive_layers_different_weights():
    rng = np.random.default_rng(3)
    first, second = nn.Linear(3, 3, seed=rng), nn.Linear(3, 3, seed=rng)
    assert not np.array_equal(first.W.data, second.W.data)
    rng = np.random.default_rng(3)
    assert np.array_equal(nn.Linear(3, 3, seed=rng).W.data, first.W.data)
    assert np.array_equal(nn.Linear(3, 3, seed=rng).W.data, second.W.data)


def test_layers_inside_a_model_differ_from_each_other():
    m = nn.RNN(3, 3, num_layers=2, seed=0)
    assert not np.array_equal(m.cells[0].W_hh.data, m.cells[1].W_hh.data)
    mlp = nn.MLP(3, [3, 3], seed=0)
    assert not np.array_equal(mlp.layers[0].W.data, mlp.layers[1].W.data)


@pytest.mark.parametrize("seed", [1.5, "3", True, [1]])
def test_bad_seed_is_rejected(seed):
    with pytest.raises(TypeError, match=f"seed must be an int, a numpy Generator or None, got {type(seed).__name__}"):
        nn.Linear(2, 2, seed=seed)


@pytest.mark.parametrize("seed", [-1, np.int64(-5)])
def test_a_negative_seed_is_named(seed):
    with pytest.raises(ValueError, match=rf"^Linear: seed must be an int >= 0, a numpy Generator or None, got {seed}$"):
        nn.Linear(2, 2, seed=seed)


def _check_uniform(w, k):
    """w looks like a large sample of U(-k, k): inside the bounds, reaching close to them,
    mean 0 and variance k^2/3 within five standard errors."""
    w = np.ravel(w)
    n = w.size
    assert w.dtype == np.float64
    assert np.abs(w).max() <= k
    assert np.abs(w).max() > k * (1 - 10 / n)
    assert abs(w.mean()) < 5 * k / np.sqrt(3 * n)
    assert abs((w * w).mean() - k * k / 3) < 5 * np.sqrt(4 / 45) * k * k / np.sqrt(n)


def test_linear_init_is_uniform_with_fan_in():
    lin = nn.Linear(400, 50, seed=5)
    _check_uniform(lin.W.data, 1 / np.sqrt(400))
    assert np.abs(lin.b.data).max() <= 1 / np.sqrt(400)
    mlp = nn.MLP(400, [100, 30], seed=5)
    _check_uniform(mlp.layers[0].W.data, 1 / np.sqrt(400))
    _check_uniform(mlp.layers[1].W.data, 1 / np.sqrt(100))


def test_recurrent_init_is_uniform_with_fan_hidden_size():
    m = nn.RNNModel(400, 25, 200, num_layers=2, seed=9)
    k = 1 / np.sqrt(25)
    for name, arr in m.state_dict().items():
        assert np.abs(arr).max() <= k, name
    state = m.state_dict()
    for name in ("rnn.cells.0.W_xh", "rnn.cells.1.W_xh", "W_hy"):
        _check_uniform(state[name], k)
    _check_uniform(np.concatenate([state["rnn.cells.0.W_hh"].ravel(), state["rnn.cells.1.W_hh"].ravel()]), k)


# --- Linear ------------------------------------------------------------------------------
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("shape", [(3,), (5, 3), (2, 4, 3)])
def test_linear_is_x_w_plus_b(engine, shape):
    lin = nn.Linear(3, 2, engine=engine, seed=1)
    x = np.random.default_rng(0).standard_normal(shape)
    W, b = lin.state_dict()["W"], lin.state_dict()["b"]
    y = lin(x)
    if engine == "value":
        assert y.dtype == object and all(isinstance(v, Value) for v in np.ravel(y))
    else:
        assert y.op == "addmm" and y.parents[0] is lin.b and y.parents[2] is lin.W  # b + x W, one op
    assert np.shape(y) == shape[:-1] + (2,)
    np.testing.assert_allclose(numbers(y), np.einsum("...i,ij->...j", x, W) + b, rtol=0, atol=1e-14)


@pytest.mark.parametrize("engine", ENGINES)
def test_linear_without_bias(engine):
    lin = nn.Linear(3, 2, bias=False, engine=engine, seed=1)
    assert lin.b is None
    x = np.random.default_rng(0).standard_normal((4, 3))
    np.testing.assert_allclose(numbers(lin(x)), x @ lin.state_dict()["W"], rtol=0, atol=1e-14)


def test_linear_accepts_a_tensor_that_requires_grad_and_gradchecks():
    lin = nn.Linear(3, 2, seed=1)
    x = Tensor(np.random.default_rng(0).standard_normal((4, 3)), requires_grad=True)
    report = gradcheck(lambda x, W, b: lin(x), [x, lin.W, lin.b])
    assert report.ok and len(report.checks) == 3
    assert [c.name for c in report.checks] == ["input 0", "W", "b"]


def test_linear_gradients_closed_form_on_both_engines():
    rng = np.random.default_rng(2)
    x, C = rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
    for engine in ENGINES:
        lin = nn.Linear(3, 2, engine=engine, seed=1)
        (lin(x) * C).sum().backward()
        grads = lin.grad_dict()
        np.testing.assert_allclose(grads["W"], x.T @ C, rtol=0, atol=1e-13)
        np.testing.assert_allclose(grads["b"], C.sum(0), rtol=0, atol=1e-13)


def test_linear_value_entries_gradcheck():
    lin = nn.Linear(3, 2, engine="value", seed=1)
    x = np.random.default_rng(0).standard_normal((2, 3))

    def loss(*_):
        y = lin(x)
        return (y * y).sum()

    report = gradcheck(loss, [lin.W[0, 0], lin.W[2, 1], lin.b[1]])
    assert [c.name for c in report.checks] == ["W[0,0]", "W[2,1]", "b[1]"]
    assert all(abs(c.analytic.item()) > 1e-3 for c in report.checks)


# --- MLP ---------------------------------------------------------------------------------
def _mlp_numpy(state, x, n_layers, act):
    for i in range(n_layers):
        x = x @ state[f"layers.{i}.W"] + state[f"layers.{i}.b"]
        if i < n_layers - 1:
            x = ACTIVATIONS[act](x)
    return x


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_mlp_forward_against_numpy(engine, activation):
    mlp = nn.MLP(3, [4, 3, 2], activation=activation, engine=engine, seed=2)
    assert [n for n, _ in mlp.named_parameters()] == [f"layers.{i}.{p}" for i in range(3) for p in "Wb"]
    x = np.random.default_rng(1).standard_normal((5, 3))
    expected = _mlp_numpy(mlp.state_dict(), x, 3, activation)
    np.testing.assert_allclose(numbers(mlp(x)), expected, rtol=0, atol=1e-14)


def test_mlp_of_one_layer_has_no_activation():
    mlp = nn.MLP(3, [2], activation="relu", seed=2)
    x = np.random.default_rng(1).standard_normal((6, 3))
    y = mlp(x).data
    np.testing.assert_allclose(y, x @ mlp.layers[0].W.data + mlp.layers[0].b.data, rtol=0, atol=1e-15)
    assert (y < 0).any()  # a relu after the last layer would have removed these


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_mlp_gradcheck_every_parameter(activation):
    mlp = nn.MLP(3, [4, 2], activation=activation, seed=3)
    x = np.random.default_rng(4).standard_normal((5, 3))
    report = gradcheck(lambda *params: mlp(x), mlp.parameters())
    assert report.ok
    assert [c.name for c in report.checks] == ["layers.0.W", "layers.0.b", "layers.1.W", "layers.1.b"]


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_mlp_value_engine_gradients_equal_tensor_engine(activation):
    rng = np.random.default_rng(5)
    x, C = rng.standard_normal((3, 3)), rng.standard_normal((3, 2))
    grads = {}
    for engine in ENGINES:
        mlp = nn.MLP(3, [3, 2], activation=activation, engine=engine, seed=6)
        (mlp(x) * C).sum().backward()
        grads[engine] = mlp.grad_dict()
    assert np.abs(grads["tensor"]["layers.0.W"]).max() > 1e-3
    for name, g in grads["tensor"].items():
        np.testing.assert_allclose(grads["value"][name], g, rtol=0, atol=1e-12, err_msg=name)


def test_mlp_value_entries_gradcheck():
    mlp = nn.MLP(2, [3, 1], engine="value", seed=1)
    x = np.random.default_rng(0).standard_normal((2, 2))
    report = gradcheck(lambda *_: (mlp(x) ** 2).sum(), [mlp.layers[0].W[1, 2], mlp.layers[1].b[0]])
    assert [c.name for c in report.checks] == ["layers.0.W[1,2]", "layers.1.b[0]"]


# --- bad input ---------------------------------------------------------------------------
@pytest.mark.parametrize("engine", ENGINES)
def test_linear_wrong_input_size_names_layer_expected_and_given(engine):
    lin = nn.Linear(3, 2, engine=engine)
    with pytest.raises(ValueError) as info:
        lin(np.zeros((4, 5)))
    message = str(info.value)
    assert message.startswith("Linear(in_features=3, out_features=2")
    assert "(..., 3)" in message and "(4, 5)" in message
    with pytest.raises(ValueError, match=r"\(\.\.\., 3\), got \(\)"):
        lin(1.0)


def test_mlp_wrong_input_size_names_the_first_layer():
    with pytest.raises(ValueError, match=r"Linear\(in_features=4, out_features=3.*\(\.\.\., 4\), got \(2, 5\)"):
        nn.MLP(4, [3, 1])(np.zeros((2, 5)))


@pytest.mark.parametrize("bad", [0, -1, 2.0, True, "3", None])
def test_bad_layer_sizes(bad):
    with pytest.raises(ValueError, match=f"^Linear: in_features must be an int >= 1, got {re.escape(repr(bad))}$"):
        nn.Linear(bad, 2)
    with pytest.raises(ValueError, match=f"out_features must be an int >= 1, got {bad!r}"):
        nn.Linear(2, bad)


def test_bad_engine_name():
    for make in (lambda e: nn.Linear(2, 2, engine=e), lambda e: nn.MLP(2, [2], engine=e)):
        with pytest.raises(ValueError, match=r"engine must be one of \['tensor', 'value'\], got 'numpy'"):
            make("numpy")


def test_mlp_bad_arguments():
    with pytest.raises(ValueError, match="at least one layer size"):
        nn.MLP(3, [])
    with pytest.raises(ValueError, match=r"activation must be one of \[.*'tanh'.*\], got 'gelu'"):
        nn.MLP(3, [2, 1], activation="gelu")


def test_mlp_sizes_must_be_a_list_of_sizes():
    for sizes in (3, "16", None):
        with pytest.raises(TypeError, match=rf"^MLP: sizes must be a list of the layers' output sizes, "
                                            rf"e.g. MLP\(2, \[16, 1\]\), got {type(sizes).__name__}: "):
            nn.MLP(2, sizes)
    with pytest.raises(ValueError, match=r"^MLP: sizes\[1\] must be an int >= 1, got 0$"):
        nn.MLP(2, [3, 0])
    assert [layer.out_features for layer in nn.MLP(2, (3, np.int64(1))).layers] == [3, 1]


def test_wrong_engine_inputs_are_rejected():
    with pytest.raises(TypeError, match="engine='value' got a Tensor"):
        nn.Linear(2, 2, engine="value")(Tensor(np.zeros((1, 2))))
    values = np.array([[Value(0.0), Value(1.0)]], dtype=object)
    with pytest.raises(TypeError, match="engine='tensor' got a numpy object array"):
        nn.Linear(2, 2)(values)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("bad, dtype", [(np.array([[1 + 5j, 2.0]]), "complex128"), (np.array([["1", "2"]]), "<U1")])
def test_complex_or_string_inputs_are_rejected_on_both_engines(engine, bad, dtype):
    # A cast would keep only the real parts (or parse the strings) without a word.
    message = rf"^Linear\(.*\): the input: .*real numbers(,|;) got an array of dtype {dtype}"
    with pytest.raises(TypeError, match=message):
        nn.Linear(2, 1, engine=engine, seed=0)(bad)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_list_holding_tensors_is_refused_on_both_engines(engine):
    # Its numbers alone would cut the Tensors from their graph: no gradient would reach them.
    t = Tensor(np.ones(2), requires_grad=True)
    for x in ([t], [[t, t]]):
        with pytest.raises(TypeError, match=r"^Linear\(.*\): the input: .*got a list holding Tensors"):
            nn.Linear(2, 1, engine=engine, seed=0)(x)
    assert t.grad is None


@pytest.mark.parametrize("engine", ENGINES)
def test_a_masked_input_is_refused_on_both_engines(engine):
    # Its conversion would keep the numbers under the mask and drop the mask.
    masked = np.ma.masked_array([[1.0, 2.0]], mask=[[False, True]])
    with pytest.raises(TypeError, match=r"^Linear\(.*\): the input: .*got a numpy masked array, whose mask would "
                                        r"be ignored. Pass plain numbers: x.filled\(value\)"):
        nn.Linear(2, 1, engine=engine, seed=0)(masked)


def test_value_engine_names_no_entry_for_a_single_non_number():
    with pytest.raises(TypeError, match=r"^Linear\(.*\): the input: Value expects a real number .*got NoneType: None$"):
        nn.Linear(2, 1, engine="value")(None)


@pytest.mark.parametrize("engine", ENGINES)
def test_an_error_of_its_own_kind_from_an_input_keeps_its_message(engine):
    # The layer's name is put in front of TypeError and ValueError only: another kind of
    # error, raised by the input itself, may not take a message alone, and remaking it
    # would raise an unrelated error in its place. (The tensor engine's own conversion
    # turns it into a TypeError that quotes it.)
    class Refusal(TypeError):
        def __init__(self, code, detail):
            super().__init__(f"{code}: {detail}")

    class Refuses:
        def __array__(self, dtype=None, copy=None):
            raise Refusal(7, "not today")

    with pytest.raises(TypeError, match="7: not today$") as caught:
        nn.Linear(2, 1, engine=engine)(Refuses())
    assert (type(caught.value) is Refusal) == (engine == "value")


def test_value_engine_passes_value_inputs_through_so_gradients_reach_them():
    lin = nn.Linear(2, 1, engine="value", seed=0)
    x = np.array([[Value(0.5), Value(-1.5)]], dtype=object)
    lin(x)[0, 0].backward()
    assert [v.grad for v in x[0]] == [lin.W[0, 0].data, lin.W[1, 0].data]


@pytest.mark.parametrize("make, name", [
    (lambda v: nn.Linear(2, 3, bias=v), "Linear: bias"),
    (lambda v: nn.RNNCell(2, 3, bias=v), "RNNCell: bias"),
    (lambda v: nn.RNN(2, 3, batch_first=v), "RNN: batch_first"),
    (lambda v: nn.RNNModel(2, 3, 2, bias=v), "RNNModel: RNN: RNNCell: bias"),
    (lambda v: Tensor(1.0, requires_grad=v), "Tensor: requires_grad"),
    (lambda v: nn.to_torch_state_dict(nn.Linear(2, 1), grads=v), "to_torch_state_dict: grads"),
    (lambda v: nn.Linear(2, 1).load_state_dict({}, strict=v), "Linear.load_state_dict: strict"),
    (lambda v: gradcheck(lambda x: x * x, [Value(1.0)], raise_on_failure=v), "gradcheck: raise_on_failure"),
])
def test_flags_must_be_true_or_false(make, name):
    # 'no' is a true string: it would have turned the option on
    with pytest.raises(TypeError, match=re.escape(f"{name} must be True or False, got str: 'no'")):
        make("no")


def test_numpy_bools_are_flags():
    assert nn.Linear(2, 3, bias=np.False_).b is None and nn.RNNCell(2, 3, bias=np.False_).b_h is None
    assert nn.RNN(2, 3, batch_first=np.True_).batch_first is True
    assert Tensor(1.0, requires_grad=np.True_).requires_grad is True
