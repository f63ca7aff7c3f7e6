"""Losses on both engines: values and gradients against closed forms and finite differences,
the three reductions, numerical safety at the edges, sequence losses and bad input."""

import math
import re

import numpy as np
import pytest

import nn
from autograd import Tensor, Value, detect_anomaly, gradcheck
from nn import backends
from nn.backends import ValueBackend

ENGINES = ("tensor", "value")


def leaf(a, engine):
    """``a`` as differentiable leaves: one Tensor, or an object array of Values."""
    a = np.asarray(a, dtype=np.float64)
    return Tensor(a, requires_grad=True) if engine == "tensor" else ValueBackend.constant(a)


def number(loss) -> float:
    return float(np.asarray(backends.data(loss)).reshape(()))


def backprop(loss) -> None:
    """Backward from a scalar loss, or from the sum of a "none" loss."""
    (loss if isinstance(loss, (Tensor, Value)) and np.size(backends.data(loss)) == 1 else loss.sum()).backward()


def sigmoid(z):
    return np.array([1 / (1 + math.exp(-v)) if v >= 0 else math.exp(v) / (1 + math.exp(v)) for v in np.ravel(z)])


def log_softmax(z):
    z = np.asarray(z, dtype=np.float64)
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def value_gradcheck(loss_fn, a, *args, **kw):
    """gradcheck of ``loss_fn`` on Value leaves arranged like ``a``."""
    a = np.asarray(a, dtype=np.float64)
    leaves = [Value(x) for x in a.ravel()]
    return gradcheck(lambda *vs: loss_fn(np.array(vs, dtype=object).reshape(a.shape), *args, **kw), leaves)


# --- mse_loss -----------------------------------------------------------------------------

PRED = np.array([[0.5, -1.0, 2.0], [3.0, 0.0, -0.25]])
TARGET = np.array([[1.0, -1.0, 0.0], [2.5, 0.5, 0.75]])


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("reduction, scale", [("mean", 1 / 6), ("sum", 1.0), ("none", 1.0)])
def test_mse_loss_values_and_gradients(engine, reduction, scale):
    p = leaf(PRED, engine)
    loss = nn.mse_loss(p, TARGET, reduction=reduction)
    squares = (PRED - TARGET) ** 2
    if reduction == "none":
        np.testing.assert_allclose(backends.data(loss), squares, rtol=1e-15)
    else:
        assert number(loss) == pytest.approx(squares.sum() * scale, rel=1e-15)
    backprop(loss)
    np.testing.assert_allclose(backends.grad(p), 2 * (PRED - TARGET) * scale, rtol=1e-15)


def test_mse_loss_gradcheck():
    gradcheck(lambda p: nn.mse_loss(p, TARGET), [Tensor(PRED, requires_grad=True)])
    gradcheck(lambda p: nn.mse_loss(p, TARGET, reduction="none"), [Tensor(PRED, requires_grad=True)])
    value_gradcheck(nn.mse_loss, PRED, TARGET, reduction="sum")


# --- binary_cross_entropy -----------------------------------------------------------------

PROB = np.array([0.2, 0.7, 0.9, 0.5])
LABEL = np.array([0.0, 1.0, 1.0, 0.3])  # the last one a soft label


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("reduction, scale", [("mean", 1 / 4), ("sum", 1.0), ("none", 1.0)])
def test_binary_cross_entropy_values_and_gradients(engine, reduction, scale):
    p = leaf(PROB, engine)
    loss = nn.binary_cross_entropy(p, LABEL, reduction=reduction)
    per_entry = -(LABEL * np.log(PROB) + (1 - LABEL) * np.log(1 - PROB))
    if reduction == "none":
        np.testing.assert_allclose(backends.data(loss), per_entry, rtol=1e-14)
    else:
        assert number(loss) == pytest.approx(per_entry.sum() * scale, rel=1e-14)
    backprop(loss)
    # d/dp of -(y log p + (1 - y) log(1 - p)) = (p - y) / (p (1 - p))
    np.testing.assert_allclose(backends.grad(p), (PROB - LABEL) / (PROB * (1 - PROB)) * scale, rtol=1e-12)


def test_binary_cross_entropy_gradcheck():
    gradcheck(lambda p: nn.binary_cross_entropy(p, LABEL), [Tensor(PROB, requires_grad=True)])
    value_gradcheck(nn.binary_cross_entropy, PROB, LABEL)


@pytest.mark.parametrize("engine", ENGINES)
def test_binary_cross_entropy_is_finite_at_zero_and_one(engine):
    # Certain and wrong, certain and right, on both sides.
    p = leaf([0.0, 1.0, 0.0, 1.0], engine)
    with detect_anomaly():  # no op on the way may produce inf or nan
        loss = nn.binary_cross_entropy(p, [1.0, 0.0, 0.0, 1.0], reduction="none")
        backprop(loss)
    per_entry = np.asarray(backends.data(loss))
    wrong = -math.log(1e-12)  # 27.631...: the documented cost of a certain wrong answer
    assert wrong == pytest.approx(27.631021115928547, rel=1e-15)
    np.testing.assert_allclose(per_entry[:2], wrong, rtol=1e-5)
    assert np.all((0 <= per_entry[2:]) & (per_entry[2:] < 1e-11))
    # The clipped entries pass no gradient (and no nan).
    np.testing.assert_array_equal(backends.grad(p), 0.0)


def test_binary_cross_entropy_of_one_certain_wrong_answer_is_log_1e12():
    p = Tensor([0.0], requires_grad=True)
    assert nn.binary_cross_entropy(p, [1.0]).item() == pytest.approx(-math.log(1e-12), rel=1e-15)


def test_binary_cross_entropy_in_float32_is_finite_at_one():
    # 1 - 1e-12 rounds to 1 in float32, so the clip alone does not keep log(1 - p) finite.
    p = Tensor(np.array([1.0, 0.0], dtype=np.float32), requires_grad=True)
    loss = nn.binary_cross_entropy(p, [0.0, 1.0])
    # Clipped to [ε, 1 - ε] with ε float32's machine epsilon: each entry costs -log ε, and the
    # mean of the two is that too; no gradient flows through a clipped entry.
    assert loss.dtype == np.float32
    assert loss.item() == pytest.approx(-np.log(np.finfo(np.float32).eps), rel=1e-6)
    loss.backward()
    np.testing.assert_array_equal(p.grad, [0.0, 0.0])


# --- binary_cross_entropy_with_logits ------------------------------------------------------

LOGITS = np.array([-1000.0, 1000.0, 0.0, 0.0, 2.5, -0.75, 1000.0])
BINARY = np.array([1.0, 0.0, 1.0, 0.0, 0.3, 1.0, 1.0])


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("reduction, scale", [("mean", 1 / 7), ("sum", 1.0), ("none", 1.0)])
def test_bce_with_logits_values_and_gradients(engine, reduction, scale):
    z = leaf(LOGITS, engine)
    loss = nn.binary_cross_entropy_with_logits(z, BINARY, reduction=reduction)
    per_entry = np.logaddexp(0.0, LOGITS) - BINARY * LOGITS  # log(1 + e^z) - y z
    if reduction == "none":
        np.testing.assert_allclose(backends.data(loss), per_entry, rtol=1e-14, atol=1e-15)
    else:
        assert number(loss) == pytest.approx(per_entry.sum() * scale, rel=1e-14)
    backprop(loss)
    g = backends.grad(z)
    assert np.all(np.isfinite(g))
    np.testing.assert_allclose(g, (sigmoid(LOGITS) - BINARY) * scale, rtol=1e-14, atol=1e-17)


@pytest.mark.parametrize("engine", ENGINES)
def test_bce_with_logits_gradient_at_zero_is_exact(engine):
    z = leaf([0.0, 0.0], engine)
    loss = nn.binary_cross_entropy_with_logits(z, [1.0, 0.0])
    assert number(loss) == math.log(2)
    backprop(loss)
    np.testing.assert_array_equal(backends.grad(z), [-0.25, 0.25])  # (1/2 - y) / 2


def test_bce_with_logits_agrees_with_bce_of_sigmoid():
    z = np.array([[-3.0, 0.5], [1.5, 4.0]])
    y = np.array([[0.0, 1.0], [0.25, 1.0]])
    a, b = Tensor(z, requires_grad=True), Tensor(z, requires_grad=True)
    la = nn.binary_cross_entropy_with_logits(a, y)
    lb = nn.binary_cross_entropy(b.sigmoid(), y)
    assert la.item() == pytest.approx(lb.item(), rel=1e-12)
    la.backward()
    lb.backward()
    np.testing.assert_allclose(a.grad, b.grad, rtol=1e-10)


def test_bce_with_logits_gradcheck():
    z = np.array([-2.0, 0.0, 0.3, 5.0])
    gradcheck(lambda t: nn.binary_cross_entropy_with_logits(t, BINARY[2:6]), [Tensor(z, requires_grad=True)])
    value_gradcheck(nn.binary_cross_entropy_with_logits, z, BINARY[2:6])


# --- cross_entropy ------------------------------------------------------------------------

Z = np.array([[1.0, -0.5, 2.0, 0.25], [0.0, 3.0, -1.0, 1.5], [-2.0, 0.5, 0.5, 4.0]])
CLASSES = np.array([0, 3, 1])
ONE_HOT = np.eye(4)[CLASSES]
SOFT = np.array([[0.1, 0.2, 0.3, 0.4], [0.0, 0.5, 0.5, 0.0], [0.25, 0.25, 0.25, 0.25]])


def softmax(z):
    return np.exp(log_softmax(z))


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("target", ["indices", "one-hot", "one-hot int", "soft"])
@pytest.mark.parametrize("reduction, scale", [("mean", 1 / 3), ("sum", 1.0), ("none", 1.0)])
def test_cross_entropy_values_and_gradients(engine, target, reduction, scale):
    y = {"indices": ONE_HOT, "one-hot": ONE_HOT, "one-hot int": ONE_HOT, "soft": SOFT}[target]
    given = {"indices": CLASSES, "one-hot": ONE_HOT, "one-hot int": ONE_HOT.astype(int), "soft": SOFT}[target]
    z = leaf(Z, engine)
    loss = nn.cross_entropy(z, given, reduction=reduction)
    per_sample = -(y * log_softmax(Z)).sum(axis=1)
    if reduction == "none":
        np.testing.assert_allclose(backends.data(loss), per_sample, rtol=1e-14)
    else:
        assert number(loss) == pytest.approx(per_sample.sum() * scale, rel=1e-14)
    backprop(loss)
    # Each target row sums to 1, so the gradient is (softmax(z) - y) / N.
    np.testing.assert_allclose(backends.grad(z), (softmax(Z) - y) * scale, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("engine", ENGINES)
def test_cross_entropy_one_hot_equals_indices(engine):
    a, b = leaf(Z, engine), leaf(Z, engine)
    la, lb = nn.cross_entropy(a, CLASSES), nn.cross_entropy(b, ONE_HOT)
    assert number(la) == pytest.approx(number(lb), rel=1e-15)
    backprop(la)
    backprop(lb)
    np.testing.assert_allclose(backends.grad(a), backends.grad(b), rtol=1e-15, atol=1e-17)


def test_cross_entropy_gradcheck():
    for target in (CLASSES, SOFT):
        gradcheck(lambda z, t=target: nn.cross_entropy(z, t), [Tensor(Z, requires_grad=True)])
        gradcheck(lambda z, t=target: nn.cross_entropy(z, t, reduction="none"), [Tensor(Z, requires_grad=True)])
        value_gradcheck(nn.cross_entropy, Z[:2], target[:2])


@pytest.mark.parametrize("engine", ENGINES)
def test_cross_entropy_huge_logits_are_stable(engine):
    z = leaf([[1000.0, 0.0, -1000.0], [-1000.0, 1000.0, 0.0]], engine)
    loss = nn.cross_entropy(z, [2, 1])
    assert number(loss) == 1000.0  # (2000 + 0) / 2
    backprop(loss)
    # softmax rows are (1, 0, 0) and (0, 1, 0) to double precision
    np.testing.assert_allclose(backends.grad(z), [[0.5, 0.0, -0.5], [0.0, 0.0, 0.0]], atol=1e-300)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("target", [2, np.int64(2), np.array(2), np.eye(4)[2]], ids=["int", "int64", "0-d", "one-hot"])
def test_cross_entropy_of_one_sample_with_1d_logits(engine, target):
    z = leaf(Z[0], engine)
    loss = nn.cross_entropy(z, target)
    assert number(loss) == pytest.approx(-log_softmax(Z[0])[2], rel=1e-14)
    backprop(loss)
    np.testing.assert_allclose(backends.grad(z), softmax(Z[0]) - np.eye(4)[2], rtol=1e-12, atol=1e-16)


# --- a single Value as the prediction -----------------------------------------------------


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("loss_fn, x, y, value, grad", [
    (nn.mse_loss, 2.0, 0.5, 2.25, 3.0),
    (nn.binary_cross_entropy, 0.8, 1.0, -math.log(0.8), -1 / 0.8),
    (nn.binary_cross_entropy_with_logits, 0.0, 1.0, math.log(2), -0.5),
], ids=["mse", "bce", "bce_with_logits"])
def test_loss_of_a_single_value(loss_fn, x, y, value, grad, reduction):
    v = Value(x)
    loss = loss_fn(v, y, reduction=reduction)
    assert isinstance(loss, Value)
    assert loss.data == pytest.approx(value, rel=1e-14)
    loss.backward()
    assert v.grad == pytest.approx(grad, rel=1e-14)


# --- sequence_loss ------------------------------------------------------------------------

SEQ_OUT = np.array([[[0.5, 1.0], [-1.0, 2.0]], [[0.0, 0.25], [1.5, -0.5]], [[2.0, 2.0], [0.0, 1.0]]])  # (T, m, d)
SEQ_TARGET = np.array([[[1.0, 1.0], [0.0, 0.0]], [[0.5, 0.5], [1.0, 1.0]], [[0.0, 2.0], [0.0, -1.0]]])


@pytest.mark.parametrize("engine", ENGINES)
def test_sequence_loss_is_the_sum_of_step_losses(engine):
    out = leaf(SEQ_OUT, engine)
    L, per_step = nn.sequence_loss(nn.mse_loss, out, SEQ_TARGET)
    steps = ((SEQ_OUT - SEQ_TARGET) ** 2).mean(axis=(1, 2))
    assert np.shape(per_step) == (3,)
    np.testing.assert_allclose(backends.data(per_step), steps, rtol=1e-15)
    for t in range(3):  # each entry is the loss of that step computed alone
        alone = nn.mse_loss(leaf(SEQ_OUT[t], engine), SEQ_TARGET[t])
        assert number(per_step[t]) == pytest.approx(number(alone), rel=1e-15)
    assert number(L) == pytest.approx(steps.sum(), rel=1e-15)
    L.backward()
    np.testing.assert_allclose(backends.grad(out), 2 * (SEQ_OUT - SEQ_TARGET) / 4, rtol=1e-15)


@pytest.mark.parametrize("engine", ENGINES)
def test_sequence_loss_steps_can_be_differentiated_alone(engine):
    out = leaf(SEQ_OUT, engine)
    _, per_step = nn.sequence_loss(nn.mse_loss, out, SEQ_TARGET)
    per_step[1].backward()
    expected = np.zeros_like(SEQ_OUT)
    expected[1] = 2 * (SEQ_OUT[1] - SEQ_TARGET[1]) / 4
    np.testing.assert_allclose(backends.grad(out), expected, rtol=1e-15)


@pytest.mark.parametrize("engine", ENGINES)
def test_sequence_loss_with_class_targets_and_a_reduction(engine):
    logits = np.stack([Z[:2], Z[1:]])  # (T=2, m=2, C=4)
    classes = np.array([[0, 3], [3, 1]])
    out = leaf(logits, engine)
    L, per_step = nn.sequence_loss(nn.cross_entropy, out, classes, reduction="sum")
    steps = [-(log_softmax(logits[t])[[0, 1], classes[t]]).sum() for t in range(2)]
    np.testing.assert_allclose(backends.data(per_step), steps, rtol=1e-14)
    assert number(L) == pytest.approx(sum(steps), rel=1e-14)
    L.backward()
    np.testing.assert_allclose(backends.grad(out), softmax(logits) - np.eye(4)[classes], rtol=1e-12, atol=1e-15)


def test_sequence_loss_gradcheck():
    gradcheck(lambda o: nn.sequence_loss(nn.mse_loss, o, SEQ_TARGET)[0], [Tensor(SEQ_OUT, requires_grad=True)])
    gradcheck(lambda o: nn.sequence_loss(nn.mse_loss, o, SEQ_TARGET)[1], [Tensor(SEQ_OUT, requires_grad=True)])


def test_sequence_loss_mean_and_sum_per_step():
    out = leaf(SEQ_OUT, "tensor")
    _, mean = nn.sequence_loss(nn.mse_loss, out, SEQ_TARGET)
    _, total = nn.sequence_loss(nn.mse_loss, out, SEQ_TARGET, reduction="sum")
    np.testing.assert_allclose(total.data, ((SEQ_OUT - SEQ_TARGET) ** 2).sum(axis=(1, 2)), rtol=1e-15)
    np.testing.assert_allclose(mean.data, total.data / 4, rtol=1e-15)


@pytest.mark.parametrize("targets, message", [
    (SEQ_TARGET[:2], r"outputs have shape \(3, 2, 2\) \(T, m, ...\), targets \(2, 2, 2\)"),
    (SEQ_TARGET[:, :1], r"outputs have shape \(3, 2, 2\) \(T, m, ...\), targets \(3, 1, 2\)"),
])
def test_sequence_loss_time_and_batch_must_match(targets, message):
    with pytest.raises(ValueError, match=message):
        nn.sequence_loss(nn.mse_loss, Tensor(SEQ_OUT, requires_grad=True), targets)


@pytest.mark.parametrize("shape", [(0, 2, 2), (3,)])
def test_sequence_loss_needs_time_and_batch_axes(shape):
    message = r"outputs must have shape \(T, m, ...\) with T >= 1, got " + re.escape(str(shape))
    with pytest.raises(ValueError, match=message):
        nn.sequence_loss(nn.mse_loss, Tensor(np.ones(shape), requires_grad=True), np.ones(shape))


def test_sequence_loss_batch_first_errors_give_the_shapes_as_passed():
    out = Tensor(np.zeros((2, 5, 3)), requires_grad=True)  # (m, T, classes)
    with pytest.raises(ValueError, match=r"outputs have shape \(2, 5, 3\) \(m, T, ...\), targets \(2, 4\); "
                                         r"the time and batch axes must match"):
        nn.sequence_loss(nn.cross_entropy, out, np.zeros((2, 4), int), batch_first=True)


def test_sequence_loss_names_the_shapes_passed_when_the_step_loss_refuses_them():
    # (T, m) targets for (T, m, 1) outputs pass the sequence check (class indices), then
    # mse_loss sees every step at once as rows: the message says what was passed, and why
    out = Tensor(np.zeros((10, 1, 1)), requires_grad=True)
    with pytest.raises(ValueError) as info:
        nn.sequence_loss(nn.mse_loss, out, np.zeros((10, 1)))
    assert str(info.value) == ("sequence_loss: outputs of shape (10, 1, 1), targets (10, 1), the 10 steps' 10 rows "
                               "passed to mse_loss at once: mse_loss: prediction shape (10, 1) and target shape "
                               "(10,) differ")


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("batch_first", [False, True])
def test_sequence_loss_says_which_step_and_sequence_a_bad_target_is_in(engine, batch_first):
    # The step loss sees the T*m rows of all steps at once; its row number alone was all a
    # learner had to find the bad target with.
    T, m = 5, 4
    def at(t, i):  # the index of step t of sequence i, as the caller lays targets out
        return (i, t) if batch_first else (t, i)
    def outputs(C):
        return leaf(np.zeros((m, T, C) if batch_first else (T, m, C)), engine)
    classes = np.zeros((m, T) if batch_first else (T, m), dtype=int)
    classes[at(2, 1)] = 3
    where = "targets[1, 2]" if batch_first else "targets[2, 1]"
    with pytest.raises(ValueError, match=re.escape(f"class index 3 is out of range for 3 classes (expected 0..2), "
                                                   f"at sample 9 (row 9 is sequence 1 at t=3: {where})")):
        nn.sequence_loss(nn.cross_entropy, outputs(3), classes, batch_first=batch_first)
    rows = np.zeros((m, T, 3) if batch_first else (T, m, 3))
    rows[..., 0] = 1.0
    rows[at(1, 0)] = [1.0, 1.0, 0.0]
    where = "targets[0, 1]" if batch_first else "targets[1, 0]"
    with pytest.raises(ValueError, match=re.escape(f"row 4 is [1.0, 1.0, 0.0] (for class indices, give one per "
                                                   f"sample, shape (20,)) (row 4 is sequence 0 at t=2: {where})")):
        nn.sequence_loss(nn.cross_entropy, outputs(3), rows, batch_first=batch_first)
    probabilities = np.full((m, T, 1) if batch_first else (T, m, 1), 0.5)
    probabilities[at(3, 2)] = 2.0
    where = "targets[2, 3]" if batch_first else "targets[3, 2]"
    with pytest.raises(ValueError, match=re.escape(f"the targets must lie in [0, 1], got 2.0 at index (14, 0) "
                                                   f"(row 14 is sequence 2 at t=4: {where})")):
        nn.sequence_loss(nn.binary_cross_entropy, leaf(np.full(probabilities.shape, 0.5), engine), probabilities,
                         batch_first=batch_first)


def test_sequence_loss_means_divide_by_the_count_correctly_rounded():
    y = np.random.default_rng(2).standard_normal((200, 3, 1))
    _, per_step = nn.sequence_loss(nn.mse_loss, Tensor(y, requires_grad=True), np.zeros((200, 3, 1)))
    sums = (y * y).reshape(200, 3).sum(axis=1)
    assert (sums * (1.0 / 3) != sums / 3).any()  # where a product by 1/3 would be a bit off
    np.testing.assert_array_equal(per_step.data, sums / 3)


def test_sequence_loss_names_a_bad_output_as_an_output_and_says_nothing_of_rows_it_did_not_pass():
    outputs = np.full((5, 4, 1), 0.5)
    outputs[3, 2, 0] = 1.5
    with pytest.raises(ValueError, match=re.escape("got 1.5 at index (14, 0) (row 14 is sequence 2 at t=4: "
                                                   "outputs[3, 2])")):
        nn.sequence_loss(nn.binary_cross_entropy, Tensor(outputs, requires_grad=True), np.zeros((5, 4, 1)))
    # a loss_fn that reshapes the rows it is given: its row numbers are not those of the steps
    targets = np.zeros((5, 4, 2))
    targets[1, 2, 1] = 3.0

    def pairs(y, t, reduction):
        return nn.binary_cross_entropy(y.reshape(10, 4), t.reshape(10, 4), reduction="none")
    with pytest.raises(ValueError, match=re.escape("got 3.0 at index (3, 1)") + "$"):
        nn.sequence_loss(pairs, Tensor(np.full((5, 4, 2), 0.5), requires_grad=True), targets)


@pytest.mark.parametrize("loss_fn", [nn.mse_loss, nn.binary_cross_entropy, nn.binary_cross_entropy_with_logits],
                         ids=lambda f: f.__name__)
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("bad, dtype", [([[0.5 + 1j, 0.5]], "complex128"), ([["0.5", "1"]], "<U3")])
def test_complex_or_string_targets_are_rejected(loss_fn, engine, bad, dtype):
    # a cast would keep only the real parts (or parse the strings) without a word
    with pytest.raises(TypeError, match=re.escape(f"{loss_fn.__name__}: target: expected real numbers, "
                                                  f"got an array of dtype {dtype}")):
        loss_fn(leaf(np.full((1, 2), 0.5), engine), bad)


@pytest.mark.parametrize("loss_fn", [nn.mse_loss, nn.binary_cross_entropy, nn.binary_cross_entropy_with_logits],
                         ids=lambda f: f.__name__)
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("bad, shown", [([[None, 0.5]], "NoneType None at entry (0, 0)"),
                                        (np.array([[0.5, "1"]], dtype=object), "str '1' at entry (0, 1)")])
def test_none_or_strings_among_the_target_numbers_are_rejected(loss_fn, engine, bad, shown):
    # numpy's cast would make None a NaN loss and parse the string, without a word
    with pytest.raises(TypeError, match=re.escape(f"{loss_fn.__name__}: target: expected real numbers, got {shown}")):
        loss_fn(leaf(np.full((1, 2), 0.5), engine), bad)


@pytest.mark.parametrize("loss_fn", [nn.mse_loss, nn.cross_entropy], ids=lambda f: f.__name__)
def test_a_value_model_output_as_target_is_rejected_as_on_the_tensor_engine(loss_fn):
    # Its numbers would be read and the graph behind them silently cut.
    model = nn.Linear(2, 3, engine="value", seed=0)
    x = np.ones((4, 2))
    with pytest.raises(TypeError, match=r"mse_loss: the target must be numbers, not graph nodes \(pass plain "
                                        r"numbers, e\.g\. nn\.detach") if loss_fn is nn.mse_loss else (
            pytest.raises(TypeError, match="cross_entropy: target must be numbers, not graph nodes")):
        loss_fn(model(x), model(2 * x))


@pytest.mark.parametrize("engine", ENGINES)
def test_binary_cross_entropy_refuses_numbers_outside_0_1(engine):
    # Logits passed by mistake were clipped to 1 - ε or ε: a "perfect" loss and no gradient.
    with pytest.raises(ValueError, match=re.escape("binary_cross_entropy: the probabilities (logits? use "
                                                   "binary_cross_entropy_with_logits) must lie in [0, 1], got 3.0 "
                                                   "at index (0,)")):
        nn.binary_cross_entropy(leaf([3.0, -2.0], engine), [1.0, 0.0])
    with pytest.raises(ValueError, match=re.escape("binary_cross_entropy: the targets must lie in [0, 1], got -1.0 "
                                                   "at index (1,)")):
        nn.binary_cross_entropy(leaf([0.3, 0.6], engine), [1.0, -1.0])
    # the ends themselves are probabilities
    assert number(nn.binary_cross_entropy(leaf([0.0, 1.0], engine), [0.0, 1.0])) == pytest.approx(1e-12, rel=1e-3)


def test_cross_entropy_with_probability_targets_keeps_float32():
    z = Tensor(np.array([[0.5, -1.0, 2.0], [0.0, 0.0, 0.0]], np.float32), requires_grad=True)
    for target in ([2, 0], np.eye(3)[[2, 0]], np.array([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0]])):
        loss = nn.cross_entropy(z, target)
        assert loss.dtype == np.float32
        loss.backward()
        assert z.grad.dtype == np.float32
        z.grad = None


@pytest.mark.parametrize("engine", ENGINES)
def test_sequence_loss_refuses_outputs_without_a_class_axis_for_cross_entropy(engine):
    # (T, m) outputs flatten to one row of T*m "classes": say so, rather than fail reshaping.
    with pytest.raises(ValueError, match=re.escape("sequence_loss: cross_entropy needs outputs (T, m, C), the "
                                                   "classes last, got (4, 3)")):
        nn.sequence_loss(nn.cross_entropy, leaf(np.zeros((4, 3)), engine), np.zeros((4, 3), dtype=int))
    # a loss of the same signature that gives one loss in all, not one per row, is named
    with pytest.raises(ValueError, match=re.escape("sequence_loss: outputs of shape (4, 3), targets (4, 3): "
                                                   "total gave losses of shape () for the 12 rows of the 4 steps, "
                                                   "where one per row was expected")):
        def total(pred, target, reduction):
            return nn.mse_loss(pred, target, reduction="sum")
        nn.sequence_loss(total, leaf(np.zeros((4, 3)), engine), np.zeros((4, 3)))


def test_targets_holding_tensors_or_ragged_are_refused():
    pred = Tensor(np.zeros((2, 2)), requires_grad=True)
    with pytest.raises(TypeError, match="mse_loss: the target: got a list holding Tensors"):
        nn.mse_loss(pred, [Tensor([1.0, 2.0]), Tensor([3.0, 4.0])])
    with pytest.raises(TypeError, match="sequence_loss: the targets: got a list holding Tensors"):
        nn.sequence_loss(nn.mse_loss, Tensor(np.zeros((2, 1, 2))), [[Tensor([1.0, 2.0])], [Tensor([3.0, 4.0])]])
    with pytest.raises(ValueError, match="sequence_loss: the targets: expected a regular array of numbers"):
        nn.sequence_loss(nn.mse_loss, Tensor(np.zeros((2, 2))), [[1.0, 2.0], [1.0]])


@pytest.mark.parametrize("engine", ENGINES)
def test_masked_targets_are_refused(engine):
    # The mask would be dropped: the entries meant to be left out would count in the loss.
    pred = leaf(np.zeros((2, 2)), engine)
    masked = np.ma.masked_array([[0.0, 5.0], [0.0, 5.0]], mask=[[False, True], [False, True]])
    notice = "got a numpy masked array, whose mask would be ignored"
    for loss_fn in (nn.mse_loss, nn.binary_cross_entropy_with_logits):
        with pytest.raises(TypeError, match=rf"^{loss_fn.__name__}: the target: {notice}"):
            loss_fn(pred, masked.clip(0, 1))
    with pytest.raises(TypeError, match=rf"^cross_entropy: target: {notice}"):
        nn.cross_entropy(pred, np.ma.masked_array([0, 1], mask=[False, True]))
    with pytest.raises(TypeError, match=rf"^sequence_loss: the targets: {notice}"):
        nn.sequence_loss(nn.mse_loss, leaf(np.zeros((2, 1, 2)), engine), masked[:, None])


def test_sequence_loss_of_a_list_or_with_a_loss_that_is_not_a_function_says_so():
    with pytest.raises(TypeError, match=r"^sequence_loss: the outputs: the prediction must be a Tensor, a Value or an "
                                        r"object array of Values, got list; join the outputs"):
        nn.sequence_loss(nn.mse_loss, [[[1.0, 2.0]]], [[[1.0, 2.0]]])
    with pytest.raises(TypeError, match=r"^sequence_loss: loss_fn must be a loss function such as nn.mse_loss, "
                                        r"got str: 'mse'$"):
        nn.sequence_loss("mse", Tensor(SEQ_OUT, requires_grad=True), SEQ_TARGET)


def test_a_list_of_step_outputs_is_told_how_to_join_them():
    with pytest.raises(TypeError, match=r"got list; join the outputs of several steps with autograd.stack \(Tensors\) "
                                        r"or np.array\(\.\.\., dtype=object\) \(Values\)$"):
        nn.sequence_loss(nn.mse_loss, [Tensor(np.zeros((1, 2)), requires_grad=True)], np.zeros((1, 1, 2)))


def test_sequence_loss_batch_first_must_be_a_bool():
    # The string "no" would count as true and swap the axes.
    with pytest.raises(TypeError, match=r"^sequence_loss: batch_first must be True or False, got str: 'no'$"):
        nn.sequence_loss(nn.mse_loss, Tensor(SEQ_OUT, requires_grad=True), SEQ_TARGET, batch_first="no")


def test_sequence_loss_reduction():
    with pytest.raises(ValueError, match="sequence_loss: reduction must be 'mean' or 'sum', got 'none'"):
        nn.sequence_loss(nn.mse_loss, Tensor(SEQ_OUT, requires_grad=True), SEQ_TARGET, reduction="none")


# --- bad input ----------------------------------------------------------------------------

ELEMENTWISE = [nn.mse_loss, nn.binary_cross_entropy, nn.binary_cross_entropy_with_logits]
ALL_LOSSES = [*ELEMENTWISE, nn.cross_entropy]


@pytest.mark.parametrize("loss_fn", ELEMENTWISE, ids=lambda f: f.__name__)
@pytest.mark.parametrize("engine", ENGINES)
def test_mismatched_shapes_name_both(loss_fn, engine):
    with pytest.raises(ValueError, match=r"prediction shape \(2, 3\) and target shape \(3, 2\)"):
        loss_fn(leaf(np.full((2, 3), 0.5), engine), np.full((3, 2), 0.5))


@pytest.mark.parametrize("loss_fn", ELEMENTWISE, ids=lambda f: f.__name__)
def test_broadcastable_target_is_not_silently_broadcast(loss_fn):
    with pytest.raises(ValueError, match=r"\(3,\) and target shape \(3, 1\)"):
        loss_fn(Tensor([0.5, 0.5, 0.5], requires_grad=True), np.full((3, 1), 0.5))


@pytest.mark.parametrize("loss_fn", ALL_LOSSES, ids=lambda f: f.__name__)
def test_invalid_reduction(loss_fn):
    target = [0, 1] if loss_fn is nn.cross_entropy else np.full((2, 2), 0.5)
    with pytest.raises(ValueError, match=r"reduction must be one of \['mean', 'sum', 'none'\], got 'avg'"):
        loss_fn(Tensor(np.full((2, 2), 0.5), requires_grad=True), target, reduction="avg")


@pytest.mark.parametrize("loss_fn", ALL_LOSSES, ids=lambda f: f.__name__)
def test_empty_prediction(loss_fn):
    with pytest.raises(ValueError, match=r"empty \(shape \(0, 3\)\)"):
        loss_fn(Tensor(np.zeros((0, 3)), requires_grad=True), np.zeros((0, 3)))


@pytest.mark.parametrize("loss_fn", ALL_LOSSES, ids=lambda f: f.__name__)
def test_plain_numpy_prediction(loss_fn):
    with pytest.raises(TypeError, match="plain numpy array"):
        loss_fn(np.full((2, 2), 0.5), np.full((2, 2), 0.5))


@pytest.mark.parametrize("loss_fn", ALL_LOSSES, ids=lambda f: f.__name__)
def test_prediction_of_the_wrong_type(loss_fn):
    with pytest.raises(TypeError, match="got list"):
        loss_fn([[0.5, 0.5]], [[0.5, 0.5]])


@pytest.mark.parametrize("loss_fn", ELEMENTWISE, ids=lambda f: f.__name__)
def test_target_given_as_a_tensor(loss_fn):
    with pytest.raises(TypeError, match="not a Tensor"):
        loss_fn(Tensor([0.5, 0.5], requires_grad=True), Tensor([0.0, 1.0]))


@pytest.mark.parametrize("target", [Tensor([0, 1]), Tensor(ONE_HOT[:2])], ids=["indices", "one-hot"])
def test_cross_entropy_target_given_as_a_tensor_is_named(target):
    # Same rule as the other losses: targets are numbers, and the error says a Tensor was given.
    with pytest.raises(TypeError, match=r"^cross_entropy: target must be numbers \(a numpy array or list\), "
                                        r"not a Tensor$"):
        nn.cross_entropy(Tensor(Z[:2], requires_grad=True), target)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("bad", [4, -1])
def test_cross_entropy_class_index_out_of_range(engine, bad):
    with pytest.raises(ValueError, match=rf"class index {bad} is out of range for 4 classes \(expected 0\.\.3\)"):
        nn.cross_entropy(leaf(Z, engine), [0, bad, 1])


def test_cross_entropy_class_index_out_of_range_for_1d_logits():
    with pytest.raises(ValueError, match=r"class index 4 is out of range for 4 classes"):
        nn.cross_entropy(Tensor(Z[0], requires_grad=True), 4)


@pytest.mark.parametrize("target, dtype, shape", [
    ([0.0, 3.0, 1.0], "float64", r"\(3,\)"),       # class indices as floats
    ([0, 3], "int64", r"\(2,\)"),                   # one index short
    (np.eye(3)[[0, 1, 2]], "float64", r"\(3, 3\)"),  # one-hot rows of the wrong width
    ([["a", "b", "c", "d"]] * 3, "<U1", r"\(3, 4\)"),
])
def test_cross_entropy_wrong_target_dtype_or_shape(target, dtype, shape):
    with pytest.raises(ValueError, match=rf"integer class indices of shape \(3,\) or one-hot/probability rows of "
                                         rf"shape \(3, 4\); got dtype {dtype}, shape {shape}"):
        nn.cross_entropy(Tensor(Z, requires_grad=True), target)


@pytest.mark.parametrize("shape, problem", [((2, 2, 3), "logits must have shape (N, C) or (C,), got (2, 2, 3)"),
                                            ((), "logits must have shape (N, C) or (C,), got ()"),
                                            ((2, 0), "the prediction is empty (shape (2, 0))")])
def test_cross_entropy_logits_shape(shape, problem):
    with pytest.raises(ValueError, match=re.escape(f"cross_entropy: {problem}")):
        nn.cross_entropy(Tensor(np.ones(shape), requires_grad=True), np.zeros(shape[:-1], dtype=int))


@pytest.mark.parametrize("engine", ENGINES)
def test_cross_entropy_targets_of_the_logits_shape_must_be_distributions(engine):
    # Class indices given in the logits' shape (or rows that are not distributions) were
    # used as weights: a loss that means nothing.
    z = leaf(np.zeros((2, 3)), engine)
    for bad, row in ((np.array([[0, 1, 2], [2, 1, 0]]), "0 is [0, 1, 2]"),
                     (-np.ones((2, 3)), "0 is [-1.0, -1.0, -1.0]"),
                     (np.array([[0.2, 0.3, 0.5], [0.5, 0.5, 0.5]]), "1 is [0.5, 0.5, 0.5]")):
        with pytest.raises(ValueError, match=re.escape(f"cross_entropy: a target of the logits' shape (2, 3) is "
                                                       f"one-hot or probability rows, each >= 0 and summing to 1; "
                                                       f"row {row}")):
            nn.cross_entropy(z, bad)
    # one-hot rows of integers, and probability rows, are distributions
    assert number(nn.cross_entropy(z, np.eye(3, dtype=int)[[0, 2]])) == pytest.approx(math.log(3), rel=1e-15)
    assert number(nn.cross_entropy(z, [[0.2, 0.3, 0.5], [1.0, 0.0, 0.0]])) == pytest.approx(math.log(3), rel=1e-15)
    with pytest.raises(TypeError, match="cross_entropy: target: got a list holding Tensors"):
        nn.cross_entropy(z, [Tensor(np.eye(3)[0]), Tensor(np.eye(3)[1])])


@pytest.mark.parametrize("engine", ENGINES)
def test_binary_cross_entropy_with_logits_refuses_targets_outside_0_1(engine):
    with pytest.raises(ValueError, match=re.escape("binary_cross_entropy_with_logits: the targets must lie in [0, 1], "
                                                   "got 2.0 at index (0,)")):
        nn.binary_cross_entropy_with_logits(leaf([0.5], engine), [2.0])
