"""gradcheck: it passes correct gradients, catches wrong ones, and leaves inputs alone."""

import math

import numpy as np
import pytest

from autograd import GradcheckError, GradcheckReport, Tensor, Value, gradcheck
from autograd.graph import Op, record


def _sin_backward(op, out):
    (x,) = out._prev
    x.grad += out.grad * math.cos(x.data)


def _sin_backward_wrong(op, out):
    (x,) = out._prev
    x.grad += out.grad * math.sin(x.data)  # the classic slip: sin instead of cos


SIN = Op("sin", _sin_backward)
WRONG_SIN = Op("sin", _sin_backward_wrong)


def sin(x):
    return record(Value(math.sin(x.data)), (x,), SIN)


def wrong_sin(x):
    return record(Value(math.sin(x.data)), (x,), WRONG_SIN)


def test_passes_and_reports_each_input():
    a, b = Value(1.5, label="a"), Value(0.5)
    report = gradcheck(lambda a, b: a * b.exp() + sin(a * b), [a, b])
    assert isinstance(report, GradcheckReport) and report.ok and bool(report)
    assert len(report.checks) == 2
    da = math.exp(0.5) + math.cos(0.75) * 0.5
    db = 1.5 * math.exp(0.5) + math.cos(0.75) * 1.5
    for check, exact in zip(report.checks, (da, db)):
        assert check.ok
        assert float(check.analytic) == pytest.approx(exact, rel=1e-14)
        assert float(check.numeric) == pytest.approx(exact, rel=1e-8)
        error = abs(float(check.analytic) - float(check.numeric))
        assert check.max_abs_error == pytest.approx(error, rel=1e-12)
    assert report[0].name == "a" and report[1].name == "input 1"


def test_detects_a_wrong_gradient():
    x = Value(0.4, label="x")
    with pytest.raises(GradcheckError) as info:
        gradcheck(wrong_sin, [x])
    report = info.value.report
    assert not report.ok
    assert float(report[0].analytic) == pytest.approx(math.sin(0.4), rel=1e-15)
    assert float(report[0].numeric) == pytest.approx(math.cos(0.4), rel=1e-8)
    assert "MISMATCH" in str(info.value) and "gradcheck failed" in str(info.value)


def test_report_without_raising_marks_the_wrong_input():
    good, bad = Value(0.3, label="good"), Value(-1.1, label="bad")
    report = gradcheck(lambda g, b: g * g + wrong_sin(b), [good, bad], raise_on_failure=False)
    assert not report.ok and not bool(report)
    assert report[0].ok and not report[1].ok
    rows = str(report).splitlines()
    assert rows[2].startswith("good") and rows[2].endswith("ok")
    assert rows[3].startswith("bad") and rows[3].endswith("MISMATCH")


def test_report_is_a_table_with_one_row_per_input():
    xs = [Value(0.1 * (i + 1), label=f"x{i}") for i in range(4)]
    report = gradcheck(lambda *xs: sum(x * x for x in xs), xs)
    lines = str(report).splitlines()
    assert len(lines) == 1 + 1 + 4 + 1  # header, rule, rows, footer
    assert lines[0].split() == ["input", "shape", "analytic", "numeric", "abs", "error", "rel", "error"]
    assert set(lines[1]) == {"-"}
    for i, line in enumerate(lines[2:6]):
        name, shape, analytic, numeric, _, _, verdict = line.split()
        assert (name, shape, verdict) == (f"x{i}", "scalar", "ok")
        assert float(analytic) == pytest.approx(0.2 * (i + 1), rel=1e-9)
        assert float(numeric) == pytest.approx(0.2 * (i + 1), rel=1e-8)
    assert "eps=1e-06" in lines[-1]


def _scaled_first_backward(op, out):
    # d(x * c)/dx = c for every entry, except that entry 0 is given 1.5 c: wrong in one place.
    (x,) = out._prev
    g = out.grad * op.c
    g[0] *= 1.5
    x._accumulate(g, False)


def test_a_gradient_wrong_in_one_entry_of_many_fails_and_is_measured():
    import numpy as np

    from autograd import Tensor

    scaled = Op("scaled", _scaled_first_backward, c=2.0)
    x = Tensor([0.5, -1.0, 2.0], requires_grad=True, label="x")

    def f(x):
        out = record(Tensor(x.data * 2.0), (x,), scaled)
        out.requires_grad = True
        return (out * out).sum()  # d/dx = 8x, reported as 12x in entry 0

    report = gradcheck(f, [x], raise_on_failure=False)
    check = report[0]
    assert not report.ok and not check.ok
    np.testing.assert_allclose(check.analytic, [6.0, -8.0, 16.0], rtol=1e-15)
    np.testing.assert_allclose(check.numeric, [4.0, -8.0, 16.0], rtol=1e-8)
    assert check.max_abs_error == pytest.approx(2.0, rel=1e-8)  # the worst entry, not a mean
    assert check.max_rel_error == pytest.approx(0.5, rel=1e-8)  # 2 / |4|
    row = str(report).splitlines()[2].split()
    assert row[:4] == ["x", "3", f"|.|={np.linalg.norm([6.0, -8.0, 16.0]):.6g}",
                       f"|.|={np.linalg.norm([4.0, -8.0, 16.0]):.6g}"]
    assert row[-1] == "MISMATCH" and float(row[4]) == pytest.approx(2.0, rel=1e-2)


def test_default_tolerances_are_those_the_report_states():
    # Pass when |a - n| <= 1e-5 + 1e-3 |n|: at n = 0.1 the limit is 1.1e-4.
    report = gradcheck(lambda x: x * 0.1, [Value(1.0)])
    assert (report.atol, report.rtol, report.eps) == (1e-5, 1e-3, 1e-6)
    assert str(report).splitlines()[-1] == "(central differences, eps=1e-06; pass: |a-n| <= 1e-05 + 0.001|n|)"

    def off_by(delta):
        op = Op("off", lambda op, out: setattr(out._p0, "grad", out._p0.grad + out.grad * (0.1 + delta)))
        return lambda x: record(Value(x.data * 0.1), (x,), op)

    assert gradcheck(off_by(1.0e-4), [Value(1.0)], raise_on_failure=False).ok
    assert not gradcheck(off_by(1.2e-4), [Value(1.0)], raise_on_failure=False).ok


def test_tolerances_are_used():
    # Central differences of x^3 are off by about eps^2 plus rounding: far above 1e-15.
    x = Value(1.5)
    assert gradcheck(lambda x: x**3, [x]).ok
    assert not gradcheck(lambda x: x**3, [x], atol=0.0, rtol=1e-15, raise_on_failure=False).ok


def test_inputs_keep_their_gradients_and_data():
    x, y = Value(0.7), Value(-0.2)
    x.grad, y.grad = 0.25, -3.0
    gradcheck(lambda x, y: (x * y).tanh(), [x, y])
    assert (x.grad, y.grad) == (0.25, -3.0)
    assert (x.data, y.data) == (0.7, -0.2)
    with pytest.raises(GradcheckError):
        gradcheck(wrong_sin, [x])
    assert x.grad == 0.25 and x.data == 0.7


def test_leaves_the_function_closes_over_keep_their_gradients():
    # A model's parameters inside f: the analytic pass must not add into their gradients
    # (an optimizer step after the check would use them).
    w, b = Value(3.0), Value(0.1)
    w.grad = 0.5
    x = Value(0.5)
    x.grad = 7.0
    gradcheck(lambda x: (w * x + b).tanh(), [x])
    assert (w.grad, b.grad, x.grad) == (0.5, 0.0, 7.0)
    assert b.grad is Value._EMPTY_GRAD  # and b still reads as "no backward has reached it"


def test_input_the_output_does_not_depend_on():
    x, unused = Value(2.0), Value(5.0)
    report = gradcheck(lambda x, u: x * x, [x, unused])
    assert float(report[1].analytic) == 0.0 and float(report[1].numeric) == 0.0


def test_rejects_bad_inputs_and_outputs():
    x = Value(1.0)
    with pytest.raises(ValueError, match=r"input 1 \(\* 2\) is not a leaf"):
        gradcheck(lambda a, b: a * b, [x, x * 2])
    with pytest.raises(TypeError, match="input 0 must be a Value or Tensor, got float"):
        gradcheck(lambda a: a, [1.0])
    with pytest.raises(TypeError, match="f must return a Value or Tensor, got float"):
        gradcheck(lambda a: a.data, [x])


def test_float32_is_refused_since_its_differences_would_report_a_right_gradient_as_wrong():
    # x * x at 1.3 in float32: a numeric slope of 2.5625 against the analytic 2.6, a MISMATCH
    x32 = Tensor(np.array([1.3], np.float32), requires_grad=True, label="x")
    with pytest.raises(ValueError, match=r"gradcheck: input 0 \(x .*\) is float32: central differences in float32 "
                                         r"keep only a few digits.*Check the graph in float64"):
        gradcheck(lambda x: (x * x).sum(), [x32])
    # with tolerances suited to float32, given on purpose, it checks
    assert gradcheck(lambda x: (x * x).sum(), [x32], eps=1e-2, atol=1e-2, rtol=1e-2).ok
    x64 = Tensor(x32.data.astype(np.float64), requires_grad=True)  # the way the message gives
    report = gradcheck(lambda x: (x * x).sum(), [x64])
    assert report.ok and report[0].analytic[0] == 2 * x64.data[0]


def test_a_tensor_output_that_depends_on_no_input_reports_zero_gradients():
    # The output is a constant (cut by detach): backward cannot start from it, and the
    # report, asked for, says what the analytic gradient is, zero, against the numbers.
    A = Tensor([1.0, 2.0], requires_grad=True)
    report = gradcheck(lambda A: (A.detach() * A.detach()).sum(), [A], raise_on_failure=False)
    np.testing.assert_array_equal(report.checks[0].analytic, [0.0, 0.0])
    np.testing.assert_allclose(report.checks[0].numeric, [2.0, 4.0], rtol=1e-6)
    assert not report.ok
    assert gradcheck(lambda A: Tensor([3.0]).sum(), [A]).ok


@pytest.mark.parametrize("call, error, message", [
    (lambda x: gradcheck(lambda: x, []), ValueError, "gradcheck: got no inputs to check"),
    (lambda x: gradcheck(lambda t: t.sum(), Tensor([1.0], requires_grad=True)), TypeError,
     "inputs must be a list of Values or Tensors, got a single Tensor; wrap it in a list"),
    (lambda x: gradcheck(None, [x]), TypeError, "f must be a function of the inputs, got NoneType"),
    (lambda x: gradcheck(lambda v: v * v, [x], eps=0), ValueError, r"eps must be a finite number > 0, got 0"),
    (lambda x: gradcheck(lambda v: v * v, [x], atol=-1.0), ValueError, r"atol must be a finite number >= 0"),
    (lambda x: gradcheck(lambda v: v * v, [x], rtol=float("nan")), ValueError, r"rtol must be a finite number"),
])
def test_gradcheck_refuses_settings_that_would_check_nothing_or_everything(call, error, message):
    with pytest.raises(error, match=message):
        call(Value(1.5))


@pytest.mark.parametrize("make", [Value, lambda v: Tensor(np.array([v]), requires_grad=True)])
def test_large_inputs_divide_by_the_step_actually_taken(make):
    # At 1e10 floats are 1.9e-6 apart: x ± 1e-6 moves x by ±1.9e-6, and dividing by the
    # nominal 2 eps gave a slope of 1.9 for x * 1.0
    x = make(1e10)
    report = gradcheck(lambda x: (x * 1.0) if isinstance(x, Value) else (x * 1.0).sum(), [x])
    assert report.ok
    with pytest.raises(ValueError, match=r"^gradcheck: eps=1e-06 does not change leaf .* at entry .* \(1e\+30 ± eps "
                                         r"rounds to itself\); pass a larger eps$"):
        gradcheck(lambda x: x * 1.0, [Value(1e30)])


def test_a_constant_value_as_an_input_is_refused_as_a_tensor_without_requires_grad_is():
    # backward gives a constant (detached, or made under no_grad) no gradient: the analytic
    # side was zero and the report a mismatch
    from autograd import no_grad

    with no_grad():
        made = Value(3.0) * 1.0
    for constant in (Value(3.0, label="w").detach(), made):
        with pytest.raises(ValueError, match=r"^gradcheck: input 0 \(.*\) is a constant \(detached, or made under "
                                             r"no_grad\), so backward gives it no gradient; pass the Value itself$"):
            gradcheck(lambda x: x * 2.0, [constant])


def test_a_mismatch_at_a_kink_or_a_step_out_of_the_domain_says_why():
    # relu at 0 reported analytic 0 against numeric 0.5 and no more; log near 0 failed with
    # log's own error about a number the user never gave
    report = gradcheck(lambda a: a.relu(), [Value(0.0, "x")], raise_on_failure=False)
    assert not report.ok and "a mismatch is expected within eps of a point where f has no derivative" in str(report)
    assert "no derivative" not in str(gradcheck(lambda a: a.relu(), [Value(1.0, "x")]))
    with pytest.raises(ValueError, match=r"^gradcheck: f failed with x at 1e-07 moved to -9e-07 \(± eps=1e-06\): "
                                         r"log expects a positive input.*a smaller eps keeps both points inside it"):
        gradcheck(lambda a: a.log(), [Value(1e-7, "x")])
    assert gradcheck(lambda a: a.log(), [Value(1e-7, "x")], eps=1e-9).ok  # as it says
