"""Every Tensor op against closed forms, hand-computed numbers and finite differences:
the shared case table (on several shapes, and broadcasting between the two arguments),
matmul in every arrangement, reductions, shape ops, indexing, joining, softmax, and dtypes."""

import math

import numpy as np
import pytest

from autograd import Tensor, addmm, concat, gradcheck, scope, stack

from .cases import CASES, check_case_on


def leaf(x):
    return Tensor(x, requires_grad=True)


def backward_with(out, seed):
    """Backward from ``out`` with the seed ``seed`` (the gradient of sum(out * seed))."""
    out.backward(np.asarray(seed, dtype=float))


def reduce_to(g, shape):
    """Sum the full broadcast gradient ``g`` over every output entry that reads the same
    input entry: leading axes, and the axes where the input has size 1."""
    lead = g.ndim - len(shape)
    g = g.sum(axis=tuple(range(lead)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    return g.sum(axis=stretched, keepdims=True).reshape(shape)


def scatter_reference(shape, index, seed):
    """The gradient of x[index] seeded with ``seed``, by counting: every entry of the
    result is one read of some entry of x, and each read adds its seed there."""
    size = math.prod(shape)
    ids = np.arange(size).reshape(shape)[index]
    return np.bincount(np.ravel(ids), weights=np.ravel(seed), minlength=size).reshape(shape)


# --- the shared case table ----------------------------------------------------------------

SHAPES = [None, (1,), (3,), (2, 3), (2, 1, 3)]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "0-d" if s is None else str(s))
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_case_table_on_tensors(case, shape):
    rng = np.random.default_rng(1)
    for _ in range(2):
        out = check_case_on(leaf, case, case.sample(rng, shape=shape))
        assert out.shape == (() if shape is None else shape)


BROADCAST_PAIRS = [((3, 1), (1, 4)), ((4,), (2, 3, 4)), ((), (3,)), ((3,), ()), ((2, 1, 4), (3, 1)), ((1,), (2, 2))]
BINARY = [c for c in CASES if c.arity == 2]


@pytest.mark.parametrize("shapes", BROADCAST_PAIRS, ids=str)
@pytest.mark.parametrize("case", BINARY, ids=lambda c: c.name)
def test_case_table_with_broadcasting(case, shapes):
    rng = np.random.default_rng(2)
    xs = tuple(rng.uniform(lo, hi, size=s) for (lo, hi), s in zip(case.domain, shapes))
    nodes = [leaf(x) for x in xs]
    out = case.fn(*nodes)
    assert out.shape == np.broadcast_shapes(*shapes)
    np.testing.assert_allclose(out.data, case.reference(*xs), rtol=1e-15, atol=0)
    out.backward(np.ones(out.shape))
    for node, x, g in zip(nodes, xs, case.expected_grads(*xs)):
        assert node.grad.shape == x.shape
        np.testing.assert_allclose(node.grad, reduce_to(g, x.shape), rtol=1e-12, atol=1e-15)
    gradcheck(case.fn, nodes)


def test_broadcast_gradient_by_hand():
    # y[i, j] = a[i, 0] * b[0, j]: d sum(y) / d a[i] = sum_j b[j], d / d b[j] = sum_i a[i].
    a, b = leaf([[1.0], [2.0], [3.0]]), leaf([[10.0, 20.0]])
    (a * b).sum().backward()
    np.testing.assert_array_equal(a.grad, [[30.0], [30.0], [30.0]])
    np.testing.assert_array_equal(b.grad, [[6.0, 6.0]])


def test_numpy_arrays_and_numbers_on_either_side():
    x = leaf([1.0, 2.0])
    w = np.array([3.0, 5.0])
    out = w * x + 1.0 - x / 2 + (2.0 - x) * w
    np.testing.assert_array_equal(out.data, [3 + 1 - 0.5 + 3, 10 + 1 - 1 + 0])
    assert isinstance(out, Tensor)
    out.backward(np.ones(2))
    np.testing.assert_array_equal(x.grad, w - 0.5 - w)


# --- matmul -------------------------------------------------------------------------------

MATMUL_SHAPES = {
    "1-D @ 1-D": ((4,), (4,), "i,i->", ",i->i", "i,->i"),
    "1-D @ 2-D": ((4,), (4, 3), "i,ij->j", "j,ij->i", "i,j->ij"),
    "2-D @ 1-D": ((2, 4), (4,), "ij,j->i", "i,j->ij", "ij,i->j"),
    "2-D @ 2-D": ((2, 4), (4, 3), "ij,jk->ik", "ik,jk->ij", "ij,ik->jk"),
    "batched @ 2-D": ((2, 3, 4), (4, 5), "bij,jk->bik", "bik,jk->bij", "bij,bik->jk"),
    "batched @ batched": ((2, 3, 4), (2, 4, 5), "bij,bjk->bik", "bik,bjk->bij", "bij,bik->bjk"),
    "broadcast batch": ((1, 3, 4), (2, 4, 5), "ij,bjk->bik", "bik,bjk->ij", "ij,bik->bjk"),
}


@pytest.mark.parametrize("name", MATMUL_SHAPES)
def test_matmul_against_einsum(name):
    # The gradients of sum(C * G) for C = A @ B are G B^T and A^T G, with every batch
    # axis that was broadcast summed: written as einsums, independently of matmul.
    sa, sb, forward, grad_a, grad_b = MATMUL_SHAPES[name]
    rng = np.random.default_rng(3)
    a_np, b_np = rng.standard_normal(sa), rng.standard_normal(sb)
    a, b = leaf(a_np), leaf(b_np)
    a_e = a_np[0] if name == "broadcast batch" else a_np
    c = a @ b
    expected = np.einsum(forward, a_e, b_np)
    np.testing.assert_allclose(c.data, expected, rtol=1e-12, atol=1e-14)
    seed = rng.standard_normal(c.shape)
    c.backward(seed)
    np.testing.assert_allclose(a.grad, np.einsum(grad_a, seed, b_np).reshape(sa), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(b.grad, np.einsum(grad_b, a_e, seed).reshape(sb), rtol=1e-12, atol=1e-14)
    gradcheck(lambda a, b: a @ b, [a, b])


def test_matmul_by_hand():
    a = leaf([[1.0, 2.0], [3.0, 4.0]])
    b = leaf([[5.0, 6.0], [7.0, 8.0]])
    c = a @ b
    np.testing.assert_array_equal(c.data, [[19.0, 22.0], [43.0, 50.0]])
    c.sum().backward()
    # d sum(AB) / dA_ij = sum_k B_jk (row sums of B); d / dB_jk = sum_i A_ij (column sums of A).
    np.testing.assert_array_equal(a.grad, [[11.0, 15.0], [11.0, 15.0]])
    np.testing.assert_array_equal(b.grad, [[4.0, 4.0], [6.0, 6.0]])


def test_matmul_with_numpy_on_either_side():
    w = np.array([[1.0, 2.0], [3.0, 4.0]])
    x = leaf([1.0, -1.0])
    (w @ x).sum().backward()  # sum_i (W x)_i = (1^T W) x
    np.testing.assert_array_equal(x.grad, [4.0, 6.0])
    x.grad = None
    (x @ w).sum().backward()  # (x^T W) 1 = x . (W 1)
    np.testing.assert_array_equal(x.grad, [3.0, 7.0])


# --- addmm: c + a @ b as one op -------------------------------------------------------------

# c's shape, for each arrangement of MATMUL_SHAPES: the product's own, and a row broadcast over it
ADDMM_C = {
    "1-D @ 1-D": [()],
    "1-D @ 2-D": [(3,), ()],
    "2-D @ 1-D": [(2,), (1,)],
    "2-D @ 2-D": [(2, 3), (3,)],
    "batched @ 2-D": [(2, 3, 5), (3, 1)],
    "batched @ batched": [(2, 3, 5), (5,)],
    "broadcast batch": [(2, 3, 5), (1, 3, 5)],
}


@pytest.mark.parametrize("name", MATMUL_SHAPES)
def test_addmm_against_einsum(name):
    # d sum(G * (C + A @ B)) / dC is G summed over the axes C was broadcast along; A and B
    # get the gradients of the product alone (see test_matmul_against_einsum).
    sa, sb, forward, grad_a, grad_b = MATMUL_SHAPES[name]
    for sc in ADDMM_C[name]:
        rng = np.random.default_rng(4)
        a_np, b_np, c_np = rng.standard_normal(sa), rng.standard_normal(sb), rng.standard_normal(sc)
        a, b, c = leaf(a_np), leaf(b_np), leaf(c_np)
        a_e = a_np[0] if name == "broadcast batch" else a_np
        out = addmm(c, a, b)
        assert out.op == "addmm" and out.parents == (c, a, b)
        np.testing.assert_allclose(out.data, c_np + np.einsum(forward, a_e, b_np), rtol=1e-12, atol=1e-14)
        seed = rng.standard_normal(out.shape)
        out.backward(seed)
        np.testing.assert_allclose(c.grad, reduce_to(seed, sc), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(a.grad, np.einsum(grad_a, seed, b_np).reshape(sa), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(b.grad, np.einsum(grad_b, a_e, seed).reshape(sb), rtol=1e-12, atol=1e-14)
        gradcheck(addmm, [c, a, b])


@pytest.mark.parametrize("shapes", [((4, 6), (4, 5), (5, 6)), ((6,), (4, 5), (5, 6)), ((4, 1), (4, 5), (5, 6)),
                                    ((2, 4, 6), (4, 5), (5, 6)), ((4, 6), (1, 5), (5, 6)), ((4, 6), (4, 5), (5, 1)),
                                    ((4, 2, 3), (2,), (2, 2, 3)), ((2, 3, 4), (3, 2), (2, 4))], ids=str)
def test_addmm_is_c_plus_a_matmul_b(shapes):
    # The same numbers and gradients as the two ops it fuses, bit for bit, except where c
    # broadcasts to more dimensions than the product has, (2, 4, 6): then a and b's
    # gradients are summed over the batch in another order. Where c stretches the
    # product's rows or columns, (4, 6) + (1, 5) @ (5, 6), the product's gradient is
    # summed back to its shape first.
    rng = np.random.default_rng(5)
    arrays = [rng.standard_normal(s) for s in shapes]
    fused, apart = [leaf(x) for x in arrays], [leaf(x) for x in arrays]
    out, ref = addmm(*fused), apart[0] + apart[1] @ apart[2]
    np.testing.assert_array_equal(out.data, ref.data)
    seed = rng.standard_normal(out.shape)
    out.backward(seed)
    ref.backward(seed)
    for x, y in zip(fused, apart):
        if len(shapes[0]) > 2:
            np.testing.assert_allclose(x.grad, y.grad, rtol=1e-13, atol=1e-14)
        else:
            np.testing.assert_array_equal(x.grad, y.grad)
    np.testing.assert_array_equal(arrays[0], fused[0].data)  # c's data is not written into


def test_addmm_by_hand_with_numbers_and_arrays():
    a = leaf([[1.0, 2.0], [3.0, 4.0]])
    W = np.array([[5.0, 6.0], [7.0, 8.0]])
    out = addmm(1.0, a, W)  # a number for c, a numpy array for b
    np.testing.assert_array_equal(out.data, [[20.0, 23.0], [44.0, 51.0]])
    out.sum().backward()
    np.testing.assert_array_equal(a.grad, [[11.0, 15.0], [11.0, 15.0]])
    b = leaf([0.5, -0.5])
    addmm(b, np.eye(2), np.ones((2, 2))).sum().backward()
    np.testing.assert_array_equal(b.grad, [2.0, 2.0])


def test_addmm_dtypes_follow_c_plus_a_matmul_b():
    rng = np.random.default_rng(6)
    a32, b32 = (Tensor(rng.standard_normal((2, 3)), dtype=np.float32, requires_grad=True) for _ in range(2))
    c64 = leaf(rng.standard_normal(2))
    wide = addmm(c64, a32, b32.T)  # float64 c: the sum is float64, as c + a @ b would be
    assert wide.dtype == np.float64 == (c64 + a32 @ b32.T).dtype
    c32 = Tensor(np.ones(2), dtype=np.float32, requires_grad=True)
    narrow = addmm(c32, a32, b32.T)
    assert narrow.dtype == np.float32
    narrow.sum().backward()
    assert c32.grad.dtype == a32.grad.dtype == np.float32


def test_addmm_shape_error_names_the_op():
    with pytest.raises(ValueError, match=r"addmm: cannot apply to shapes \(3,\), \(2, 4\), \(4, 5\)"):
        addmm(Tensor(np.ones(3)), Tensor(np.ones((2, 4))), Tensor(np.ones((4, 5))))


# --- reductions -----------------------------------------------------------------------------

AXES = [None, 0, 1, 2, -1, -2, (0, 2), (0, -1), (1, 2), (0, 1, 2)]


def reduced_index(index, axes, keepdims):
    """The output entry that input entry ``index`` is reduced into."""
    if keepdims:
        return tuple(0 if i in axes else k for i, k in enumerate(index))
    return tuple(k for i, k in enumerate(index) if i not in axes)


def normalised(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    return tuple(a % ndim for a in ((axis,) if isinstance(axis, int) else axis))


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", AXES, ids=str)
@pytest.mark.parametrize("op", ["sum", "mean", "max"])
def test_reductions(op, axis, keepdims):
    rng = np.random.default_rng(4)
    x_np = rng.permutation(24).reshape(2, 3, 4) / 8.0  # distinct entries: no ties in max
    x = leaf(x_np)
    out = getattr(x, op)(axis=axis, keepdims=keepdims)
    axes = normalised(axis, 3)
    expected_shape = tuple(1 if i in axes else n for i, n in enumerate(x_np.shape)) if keepdims else tuple(
        n for i, n in enumerate(x_np.shape) if i not in axes)
    assert out.shape == expected_shape
    count = math.prod(x_np.shape[a] for a in axes)
    groups: dict = {}
    for index in np.ndindex(x_np.shape):
        groups.setdefault(reduced_index(index, axes, keepdims), []).append(x_np[index])
    reference = {"sum": math.fsum, "mean": lambda v: math.fsum(v) / count, "max": max}[op]
    for r, values in groups.items():
        assert out.data[r] == pytest.approx(reference(values), rel=1e-15)

    seed = rng.standard_normal(out.shape)
    out.backward(seed)
    expected = np.zeros(x_np.shape)
    for index in np.ndindex(x_np.shape):
        r = reduced_index(index, axes, keepdims)
        if op == "sum":
            expected[index] = seed[r]
        elif op == "mean":
            expected[index] = seed[r] / count
        else:
            expected[index] = seed[r] if x_np[index] == max(groups[r]) else 0.0
    np.testing.assert_allclose(x.grad, expected, rtol=1e-15, atol=0)
    gradcheck(lambda x: getattr(x, op)(axis=axis, keepdims=keepdims), [x])


def test_mean_by_hand():
    x = leaf(np.arange(6.0).reshape(2, 3))
    m = x.mean(axis=1)
    np.testing.assert_array_equal(m.data, [1.0, 4.0])
    m.backward([3.0, 6.0])
    np.testing.assert_array_equal(x.grad, [[1.0, 1.0, 1.0], [2.0, 2.0, 2.0]])


def test_mean_is_the_sum_divided_correctly_rounded_as_numpy_and_pytorch_give_it():
    # It was the sum times a rounded 1/n: 344 of 1,000 rows of three differed in the last
    # bit from the sum divided by 3. The losses' "mean" reduction divides too.
    import nn

    rows = np.random.default_rng(0).standard_normal((1000, 3))
    x = leaf(rows)
    m = x.mean(axis=1)
    sums = rows.sum(axis=1)
    assert (sums * (1.0 / 3) != sums / 3).sum() > 300  # the old way would differ here
    np.testing.assert_array_equal(m.data, sums / 3)
    m.backward(np.full(1000, 3.0))
    np.testing.assert_array_equal(x.grad, np.full((1000, 3), 1.0))
    for r in rows[:50]:
        assert nn.mse_loss(Tensor(r, requires_grad=True), np.zeros(3)).item() == np.sum(r * r) / 3
        assert nn.mse_loss(Tensor(r, requires_grad=True), np.zeros(3)).item() == np.mean(r * r)


def test_max_ties_share_the_gradient_equally():
    x = leaf([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0], [5.0, 0.0, 4.0]])
    m = x.max(axis=1)
    np.testing.assert_array_equal(m.data, [3.0, 2.0, 5.0])
    m.backward([1.0, 6.0, 7.0])
    np.testing.assert_array_equal(x.grad, [[0.0, 0.5, 0.5], [2.0, 2.0, 2.0], [7.0, 0.0, 0.0]])

    y = leaf([[4.0, 1.0], [4.0, 4.0]])
    y.max().backward()  # three entries tie for the overall maximum
    np.testing.assert_array_equal(y.grad, [[1 / 3, 0.0], [1 / 3, 1 / 3]])

    z = leaf([[4.0, 1.0], [4.0, 4.0]])
    z.max(axis=0, keepdims=True).backward([[3.0, 5.0]])
    np.testing.assert_array_equal(z.grad, [[1.5, 0.0], [1.5, 5.0]])


def test_a_nan_is_the_maximum_and_takes_the_gradient():
    # np.max gives NaN where one is; with NaN == NaN false, no entry took the gradient, and
    # the NaN's own input got a zero, as if it had not mattered
    nan = float("nan")
    x = leaf([[1.0, nan, 3.0], [nan, 2.0, nan], [5.0, 0.0, 4.0]])
    m = x.max(axis=1)
    np.testing.assert_array_equal(m.data, [nan, nan, 5.0])
    m.backward([2.0, 6.0, 7.0])
    np.testing.assert_array_equal(x.grad, [[0.0, 2.0, 0.0], [3.0, 0.0, 3.0], [7.0, 0.0, 0.0]])
    a = leaf([1.0, 2.0])
    (a * np.array([1.0, nan])).max().backward()
    np.testing.assert_array_equal(a.grad, [0.0, nan])  # the NaN flows back into a[1]: nan * 1


def test_reductions_reject_an_axis_out_of_range():
    with pytest.raises(ValueError, match=r"axis 3 is out of range for a 2-d Tensor"):
        Tensor(np.ones((2, 3))).sum(axis=3)
    with pytest.raises(ValueError, match=r"axis -3 is out of range"):
        Tensor(np.ones((2, 3))).max(axis=(0, -3))


@pytest.mark.parametrize("op", ["sum", "mean", "max"])
def test_reductions_refuse_a_keepdims_that_is_not_a_bool(op):
    # A string such as "no" would count as true.
    t = Tensor(np.ones((2, 3)))
    with pytest.raises(TypeError, match=rf"^{op}: keepdims must be True or False, got str: 'no'$"):
        getattr(t, op)(axis=0, keepdims="no")
    assert getattr(t, op)(axis=0, keepdims=np.True_).shape == (1, 3)


@pytest.mark.parametrize("axis", [1.0, True, (0, 1.5), "0"])
def test_an_axis_must_be_an_int(axis):
    # int(True) would quietly be axis 1, int(1.0) axis 1.
    with scope("t=2"), pytest.raises(TypeError, match=r"sum: an axis must be an int, got .* \(scope t=2\)"):
        Tensor(np.ones((2, 3))).sum(axis=axis)
    with pytest.raises(TypeError, match="transpose: an axis must be an int"):
        Tensor(np.ones((2, 3))).transpose(1.0, 0.0)


def test_shape_errors_of_reshape_and_transpose_name_the_op_the_shape_and_the_scope():
    x = Tensor(np.ones((2, 3)))
    with scope("layer 0"):
        with pytest.raises(TypeError, match=r"reshape: cannot apply to shapes \(2, 3\): .*integer.*\(scope layer 0\)"):
            x.reshape(3.0, 2)
        with pytest.raises(ValueError, match=r"transpose: axes \(0, 0\) are not a permutation of the 2 axes of a "
                                             r"Tensor of shape \(2, 3\) \(scope layer 0\)"):
            x.transpose(0, 0)


@pytest.mark.parametrize("low, high", [(np.nan, 1.0), (0.0, np.nan)])
def test_clip_refuses_nan_bounds(low, high):
    with pytest.raises(ValueError, match="clip: needs numbers low <= high"):
        Tensor([0.5]).clip(low, high)


# --- reshape and transpose -------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(3, 2), ((6,),), (-1, 2), ([1, 6],), (1, 2, 3, 1)], ids=str)
def test_reshape(shape):
    x_np = np.arange(6.0).reshape(2, 3)
    x = leaf(x_np)
    y = x.reshape(*shape)
    target = shape[0] if len(shape) == 1 else shape
    np.testing.assert_array_equal(y.data.ravel(), np.arange(6.0))
    assert y.shape == np.empty(6).reshape(target).shape
    seed = np.arange(6.0).reshape(y.shape) * 10 + 1
    y.backward(seed)
    # reshape keeps the order of entries: the seed's k-th entry goes to x's k-th entry.
    np.testing.assert_array_equal(x.grad, [[1.0, 11.0, 21.0], [31.0, 41.0, 51.0]])


@pytest.mark.parametrize("axes", [(1, 2, 0), (2, 0, 1), (0, 2, 1), ((1, 2, 0),), ([2, 1, 0],), ()], ids=str)
def test_transpose(axes):
    x_np = np.arange(24.0).reshape(2, 3, 4)
    x = leaf(x_np)
    y = x.transpose(*axes)
    perm = (axes[0] if len(axes) == 1 else axes) or (2, 1, 0)
    assert y.shape == tuple(x_np.shape[p] for p in perm)
    seed = np.random.default_rng(5).standard_normal(y.shape)
    y.backward(seed)
    expected = np.zeros(x_np.shape)
    for out_index in np.ndindex(y.shape):
        in_index = [0, 0, 0]
        for k, p in enumerate(perm):  # y[out_index] = x[in_index] with in_index[perm[k]] = out_index[k]
            in_index[p] = out_index[k]
        assert y.data[out_index] == x_np[tuple(in_index)]
        expected[tuple(in_index)] = seed[out_index]
    np.testing.assert_array_equal(x.grad, expected)


@pytest.mark.parametrize("axes", [(-1, 0), (1, -2), (-1, -2)], ids=str)
def test_transpose_with_negative_axes(axes):
    # Negative axes count from the end, as in numpy: each of these swaps the two axes.
    x = leaf(np.arange(6.0).reshape(2, 3))
    y = x.transpose(*axes)
    np.testing.assert_array_equal(y.data, np.arange(6.0).reshape(2, 3).T)
    seed = np.arange(6.0).reshape(3, 2)
    y.backward(seed)
    np.testing.assert_array_equal(x.grad, seed.T)


def test_transpose_with_negative_axes_in_3d():
    x_np = np.arange(24.0).reshape(2, 3, 4)
    x = leaf(x_np)
    y = x.transpose(-1, 0, 1)  # the same as (2, 0, 1)
    seed = np.arange(24.0).reshape(4, 2, 3)
    y.backward(seed)
    np.testing.assert_array_equal(x.grad, seed.transpose(1, 2, 0))


def test_T():
    m = leaf(np.arange(6.0).reshape(2, 3))
    m.T.backward(np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]))
    np.testing.assert_array_equal(m.grad, [[1.0, 3.0, 5.0], [2.0, 4.0, 6.0]])
    v = leaf([1.0, 2.0])  # a 1-D tensor is its own transpose
    assert v.T.shape == (2,)
    v.T.backward([5.0, 7.0])
    np.testing.assert_array_equal(v.grad, [5.0, 7.0])
    c = leaf(np.arange(24.0).reshape(2, 3, 4))
    assert c.T.shape == (4, 3, 2)
    seed = np.arange(24.0).reshape(4, 3, 2)
    c.T.backward(seed)
    assert c.grad[1, 2, 3] == seed[3, 2, 1]
    np.testing.assert_array_equal(c.grad, seed.transpose(2, 1, 0))


# --- indexing ----------------------------------------------------------------------------------

INDICES = {
    "int": 1,
    "negative int": -1,
    "two ints": (1, 2),
    "slice": slice(1, None),
    "step": (slice(None), slice(None, None, 2)),
    "negative step": slice(None, None, -1),
    "negative step 2": (slice(None, None, -2), slice(3, 0, -1)),
    "None": (None, 0),
    "Ellipsis": (Ellipsis, 1),
    "None and Ellipsis": (None, Ellipsis, None, slice(0, 2)),
    "int list": [0, 2],
    "repeated ints": [0, 0, 1],
    "repeated negative": [2, -1, -1, 0],
    "int array 2-d": np.array([[0, 1], [1, 1]]),
    "pair of arrays": ([0, 0, 2], [3, 3, 3]),
    "array and slice": (slice(None), [1, 1, 0]),
    "int and array": (2, [0, 0]),
    "bool mask": np.array([True, False, True]),
    "2-d mask": np.arange(12).reshape(3, 4) % 3 == 0,
    "mask as list": [False, True, True],
    "mask and int": (np.array([True, False, True]), 1),
}


@pytest.mark.parametrize("name", INDICES)
def test_indexing(name):
    index = INDICES[name]
    x_np = np.arange(12.0).reshape(3, 4)
    x = leaf(x_np)
    y = x[index]
    np_index = tuple(np.asarray(k) if isinstance(k, list) else k for k in index) if isinstance(
        index, tuple) else (np.asarray(index) if isinstance(index, list) else index)
    np.testing.assert_array_equal(y.data, x_np[np_index])
    seed = np.random.default_rng(6).standard_normal(y.shape)
    y.backward(seed)
    np.testing.assert_allclose(x.grad, scatter_reference(x_np.shape, np_index, seed), rtol=1e-15, atol=0)
    gradcheck(lambda x: x[index], [x])


@pytest.mark.parametrize("shape", [(4,), (4, 2)], ids=str)
def test_int_and_slice_reads_add_up(shape):
    # An int index of a 1-D tensor reads a number, of a 2-D tensor a row (a view): either way
    # every read adds its gradient into its own place.
    x = leaf(np.arange(8.0)[: math.prod(shape)].reshape(shape))
    out = x[0] * 2.0 + x[3] + x[1:3].sum(axis=0) + x[-1]
    out.backward(np.ones(out.shape))
    expected = np.array([2.0, 1.0, 1.0, 2.0]).reshape((4,) + (1,) * (len(shape) - 1))
    np.testing.assert_array_equal(x.grad, np.broadcast_to(expected, shape))


def test_repeated_indices_accumulate():
    x = leaf(np.arange(5.0))
    x[[0, 0, 1]].sum().backward()
    np.testing.assert_array_equal(x.grad, [2.0, 1.0, 0.0, 0.0, 0.0])
    x.grad = None
    x[np.array([4, 4, 4, -1])].backward([1.0, 2.0, 3.0, 4.0])
    np.testing.assert_array_equal(x.grad, [0.0, 0.0, 0.0, 0.0, 10.0])


def test_overlapping_reads_add_up():
    x = leaf(np.arange(4.0))
    (x[:3] * x[1:]).sum().backward()  # sum_i x_i x_{i+1}: d/dx_k = x_{k-1} + x_{k+1}
    np.testing.assert_array_equal(x.grad, [1.0, 0.0 + 2.0, 1.0 + 3.0, 2.0])


def test_iteration_reads_the_first_axis():
    x = leaf(np.arange(6.0).reshape(3, 2))
    rows = list(x)
    assert len(rows) == 3 and all(r.shape == (2,) for r in rows)
    np.testing.assert_array_equal(rows[2].data, [4.0, 5.0])
    (rows[0] * 1.0 + rows[2] * 3.0).sum().backward()
    np.testing.assert_array_equal(x.grad, [[1.0, 1.0], [0.0, 0.0], [3.0, 3.0]])


def test_float_index_arrays_are_rejected():
    x = Tensor(np.arange(4.0))
    with pytest.raises(IndexError, match="indices must be integers, slices or booleans, got a float64 array"):
        x[np.array([0.0, 1.0])]
    with pytest.raises(IndexError, match="float64 array"):
        x[[0.5]]


def test_index_out_of_range_names_the_op_and_shape():
    with pytest.raises(IndexError, match=r"getitem: cannot apply to shapes \(2, 3\).*out of bounds"):
        Tensor(np.ones((2, 3)))[5]


# --- stack and concat --------------------------------------------------------------------------


@pytest.mark.parametrize("axis", [0, 1, 2, -1, -3])
def test_stack(axis):
    a_np, b_np = np.arange(6.0).reshape(2, 3), np.arange(6.0, 12.0).reshape(2, 3)
    a, b = leaf(a_np), leaf(b_np)
    s = stack([a, b], axis=axis)
    new = axis % 3
    assert s.shape == tuple(np.insert(np.array([2, 3]), new, 2))
    np.testing.assert_array_equal(np.take(s.data, 0, axis=new), a_np)
    np.testing.assert_array_equal(np.take(s.data, 1, axis=new), b_np)
    seed = np.arange(12.0).reshape(s.shape)
    s.backward(seed)
    np.testing.assert_array_equal(a.grad, np.take(seed, 0, axis=new))
    np.testing.assert_array_equal(b.grad, np.take(seed, 1, axis=new))


def test_stack_by_hand():
    a, b, c = leaf([1.0, 2.0]), leaf([3.0, 4.0]), np.array([5.0, 6.0])
    s = stack([a, b, c], axis=1)
    np.testing.assert_array_equal(s.data, [[1.0, 3.0, 5.0], [2.0, 4.0, 6.0]])
    s.backward([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    np.testing.assert_array_equal(a.grad, [1.0, 4.0])
    np.testing.assert_array_equal(b.grad, [2.0, 5.0])


@pytest.mark.parametrize("axis", [0, 1, -1, -2])
def test_concat(axis):
    a_np, b_np = np.arange(6.0).reshape(2, 3), np.arange(6.0, 10.0).reshape(2, 2)
    if axis % 2 == 0:
        b_np = b_np.reshape(1, 4)[:, :3]  # rows are joined: widths must agree
    a, b = leaf(a_np), leaf(b_np)
    c = concat([a, b], axis=axis)
    ax = axis % 2
    n = a_np.shape[ax]
    assert c.shape[ax] == n + b_np.shape[ax]
    seed = np.arange(float(c.size)).reshape(c.shape) + 1
    c.backward(seed)
    head = (slice(None),) * ax
    np.testing.assert_array_equal(c.data[head + (slice(0, n),)], a_np)
    np.testing.assert_array_equal(c.data[head + (slice(n, None),)], b_np)
    np.testing.assert_array_equal(a.grad, seed[head + (slice(0, n),)])
    np.testing.assert_array_equal(b.grad, seed[head + (slice(n, None),)])


def test_concat_of_many_pieces_of_different_lengths():
    # One VJP call gives every piece its gradient, an empty piece included.
    rng = np.random.default_rng(3)
    lengths = [3, 0, 1, 5, 2, 0, 4] * 5
    parts = [leaf(rng.standard_normal((n, 2))) for n in lengths]
    c = concat(parts, axis=0)
    seed = rng.standard_normal(c.shape)
    c.backward(seed)
    starts = np.cumsum([0] + lengths)
    for p, lo, hi in zip(parts, starts[:-1], starts[1:]):
        np.testing.assert_array_equal(p.grad, seed[lo:hi])
        assert p.grad.shape == p.shape


def test_concat_of_one_tensor_used_twice():
    x = leaf([1.0, 2.0])
    c = concat([x, x * 3.0, x], axis=0)
    np.testing.assert_array_equal(c.data, [1.0, 2.0, 3.0, 6.0, 1.0, 2.0])
    c.backward([1.0, 10.0, 100.0, 1000.0, 10000.0, 100000.0])
    np.testing.assert_array_equal(x.grad, [1.0 + 300.0 + 10000.0, 10.0 + 3000.0 + 100000.0])


def test_stack_and_concat_errors():
    with pytest.raises(ValueError, match=r"stack: cannot apply to shapes \(2,\), \(3,\)"):
        stack([Tensor([1.0, 2.0]), Tensor([1.0, 2.0, 3.0])])
    with pytest.raises(ValueError, match=r"concat: cannot apply to shapes \(2, 2\), \(2, 3\)"):
        concat([Tensor(np.ones((2, 2))), Tensor(np.ones((2, 3)))], axis=0)
    with pytest.raises(ValueError, match=r"stack\(\) needs at least one tensor"):
        stack([])
    with pytest.raises(ValueError, match=r"concat\(\) needs at least one tensor"):
        concat(iter([]))


# --- softmax and log-softmax -------------------------------------------------------------------


def softmax_reference(logits):
    m = max(logits)
    e = [math.exp(z - m) for z in logits]
    return [v / math.fsum(e) for v in e]


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_softmax_closed_form(op):
    z_np = np.array([[0.5, -1.0, 2.0, 0.0], [3.0, 3.0, -2.0, 1.0]])
    z = leaf(z_np)
    out = getattr(z, op)()
    seed = np.array([[1.0, -2.0, 0.5, 3.0], [0.0, 1.0, -1.0, 2.0]])
    out.backward(seed)
    for row, g, y, dz in zip(z_np, seed, out.data, z.grad):
        p = np.array(softmax_reference(list(row)))
        if op == "softmax":
            np.testing.assert_allclose(y, p, rtol=1e-15)
            jacobian = np.diag(p) - np.outer(p, p)  # d p_i / d z_j = p_i (delta_ij - p_j)
        else:
            np.testing.assert_allclose(y, np.log(p), rtol=1e-15)
            jacobian = np.eye(4) - p[None, :]  # d log p_i / d z_j = delta_ij - p_j
        np.testing.assert_allclose(dz, g @ jacobian, rtol=1e-13, atol=1e-15)
    gradcheck(lambda z: getattr(z, op)(axis=0), [z])
    gradcheck(lambda z: getattr(z, op)(axis=-1), [z])


def test_softmax_along_the_first_axis():
    z = leaf([[0.0, 1.0], [math.log(3.0), 1.0]])
    p = z.softmax(axis=0)
    np.testing.assert_allclose(p.data, [[0.25, 0.5], [0.75, 0.5]], rtol=1e-15)
    p.backward([[1.0, 0.0], [0.0, 0.0]])  # d p_00 / d z_k0 = p_00 (delta - p_k0)
    np.testing.assert_allclose(z.grad, [[0.25 * 0.75, 0.0], [-0.25 * 0.75, 0.0]], rtol=1e-15)


@pytest.mark.filterwarnings("error")  # no overflow, no division by zero, no NaN
def test_softmax_is_stable_for_huge_logits():
    z = leaf([1e4, -1e4, 0.0])
    p = z.softmax()
    np.testing.assert_array_equal(p.data, [1.0, 0.0, 0.0])
    lp = z.log_softmax()
    np.testing.assert_array_equal(lp.data, [0.0, -2e4, -1e4])
    lp.backward([1.0, 0.0, 0.0])  # d log p_0 / d z = e_0 - p = 0
    np.testing.assert_array_equal(z.grad, [0.0, 0.0, 0.0])
    z.grad = None
    lp2 = z.log_softmax()
    lp2.backward([0.0, 1.0, 0.0])  # d log p_1 / d z = e_1 - p
    np.testing.assert_array_equal(z.grad, [-1.0, 1.0, 0.0])
    z.grad = None
    p.backward([1.0, 2.0, 3.0])  # p (g - p.g) with p = e_0 vanishes
    np.testing.assert_array_equal(z.grad, [0.0, 0.0, 0.0])
    same = leaf([1e4, 1e4])
    q = same.softmax()
    np.testing.assert_array_equal(q.data, [0.5, 0.5])
    q.backward([1.0, 0.0])
    np.testing.assert_array_equal(same.grad, [0.25, -0.25])


def test_softmax_is_shift_invariant():
    z = np.array([0.3, -1.2, 2.5])
    np.testing.assert_allclose(Tensor(z + 1000.0).softmax().data, Tensor(z).softmax().data, rtol=1e-13)
    np.testing.assert_allclose(Tensor(z - 1000.0).log_softmax().data, Tensor(z).log_softmax().data, rtol=1e-13)



@pytest.mark.parametrize("n", [1, 2, 10, 32, 33, 100])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_reductions_along_a_short_last_axis_match_numpy(n, dtype):
    """softmax's max and sum go another way along a last axis of at most 32 entries (a
    product with ones, a transposed copy); same maxima, sums to the last bits."""
    from autograd.tensor import _SHORT, _reduce

    assert _SHORT == 32  # n = 33 and 100 take numpy's own reductions
    rng = np.random.default_rng(n)
    x = rng.standard_normal((50, 3, n)).astype(dtype)
    tol = 1e-6 if dtype == np.float32 else 1e-15
    for a, axis in [(x, -1), (x, 2), (x[:, :, ::2], -1), (x[0], -1), (x[:0], -1)]:
        got_max, got_sum = _reduce(np.maximum, a, axis), _reduce(np.add, a, axis)
        assert got_max.dtype == got_sum.dtype == dtype
        np.testing.assert_array_equal(got_max, a.max(axis=axis, keepdims=True))
        np.testing.assert_allclose(got_sum, a.sum(axis=axis, keepdims=True), rtol=tol, atol=tol * n)
    y = x[0].astype(float)
    y[0, 0], y[1, -1], y[2, 0] = np.nan, np.inf, -np.inf
    got_max, got_sum = _reduce(np.maximum, y, -1), _reduce(np.add, y, -1)
    np.testing.assert_array_equal(got_max, y.max(axis=-1, keepdims=True))  # nan and inf as numpy gives them
    np.testing.assert_array_equal(got_sum[:, 0] == got_sum[:, 0], [False, True, True])
    np.testing.assert_array_equal(np.isinf(got_sum[1:, 0]), [True, True])


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
@pytest.mark.parametrize("classes", [10, 40])  # along a short last axis, and a long one
def test_softmax_of_a_batch_of_sequences(op, classes):
    rng = np.random.default_rng(classes)
    z_np = rng.standard_normal((3, 4, classes)) * 5.0
    z = leaf(z_np)
    out = getattr(z, op)()
    seed = rng.standard_normal(z_np.shape)
    out.backward(seed)
    for i in np.ndindex(3, 4):
        p = np.array(softmax_reference(list(z_np[i])))
        g = seed[i]
        if op == "softmax":
            np.testing.assert_allclose(out.data[i], p, rtol=1e-14)
            np.testing.assert_allclose(z.grad[i], p * (g - g @ p), rtol=1e-12, atol=1e-15)
        else:
            np.testing.assert_allclose(out.data[i], np.log(p), rtol=1e-14, atol=1e-15)
            np.testing.assert_allclose(z.grad[i], g - p * g.sum(), rtol=1e-12, atol=1e-15)
    gradcheck(lambda z: getattr(z, op)(axis=2), [leaf(z_np[:2, :2])])


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
@pytest.mark.parametrize("axis", [None, (1, 2), (0, 2)])
def test_softmax_over_several_axes(op, axis):
    """An axis tuple (or None, every axis) normalises over all the entries it names."""
    rng = np.random.default_rng(7)
    z_np = rng.standard_normal((2, 3, 4))
    out = getattr(Tensor(z_np), op)(axis=axis).data
    moved = z_np if axis is None else np.moveaxis(z_np, [a for a in range(3) if a not in axis], range(3 - len(axis)))
    groups = moved.reshape(-1, moved.size if axis is None else int(np.prod([z_np.shape[a] for a in axis])))
    expected = np.array([softmax_reference(list(row)) for row in groups]).reshape(moved.shape)
    if axis is not None:
        expected = np.moveaxis(expected, range(3 - len(axis)), [a for a in range(3) if a not in axis])
    np.testing.assert_allclose(out, expected if op == "softmax" else np.log(expected), rtol=1e-14, atol=1e-15)
    gradcheck(lambda z: getattr(z, op)(axis=axis), [leaf(z_np)])

# --- elementwise functions --------------------------------------------------------------------

UNARY = {
    "exp": (math.exp, math.exp),
    "log": (math.log, lambda x: 1 / x),
    "tanh": (math.tanh, lambda x: 1 - math.tanh(x) ** 2),
    "sigmoid": (lambda x: 1 / (1 + math.exp(-x)), lambda x: math.exp(-x) / (1 + math.exp(-x)) ** 2),
    "relu": (lambda x: max(x, 0.0), lambda x: 1.0 if x > 0 else 0.0),
}


@pytest.mark.parametrize("name", UNARY)
def test_unary_functions(name):
    f, df = UNARY[name]
    x_np = np.array([[0.3, 1.7, 2.5], [0.05, 1.0, 4.0]]) if name == "log" else np.array(
        [[-2.5, -0.4, 0.0], [0.3, 1.1, 3.0]])
    x = leaf(x_np)
    y = getattr(x, name)()
    seed = np.array([[1.0, 2.0, -1.0], [0.5, -3.0, 2.0]])
    y.backward(seed)
    for index in np.ndindex(x_np.shape):
        assert y.data[index] == pytest.approx(f(x_np[index]), rel=1e-15, abs=1e-300)
        assert x.grad[index] == pytest.approx(seed[index] * df(x_np[index]), rel=1e-14, abs=1e-300)
    if name != "relu":  # relu has a kink at the 0.0 entry
        gradcheck(lambda x: getattr(x, name)(), [x])


def test_relu_derivative_at_zero_is_zero():
    x = leaf([-1.0, 0.0, 2.0])
    y = x.relu()
    y.backward([5.0, 5.0, 5.0])
    np.testing.assert_array_equal(y.data, [0.0, 0.0, 2.0])
    np.testing.assert_array_equal(x.grad, [0.0, 0.0, 5.0])


@pytest.mark.filterwarnings("error")
def test_sigmoid_is_stable_at_large_inputs():
    with np.errstate(over="raise", divide="raise", invalid="raise"):  # exp(-1000) may underflow to 0
        x = leaf([-1000.0, -40.0, 0.0, 40.0, 1000.0])
        s = x.sigmoid()
        np.testing.assert_array_equal(s.data[[0, 2, 4]], [0.0, 0.5, 1.0])
        assert s.data[1] == pytest.approx(math.exp(-40.0), rel=1e-15)  # not 1 - (1 - e^-40) = 0
        assert s.data[3] == 1.0 - math.exp(-40.0)
        s.backward(np.ones(5))
        np.testing.assert_array_equal(x.grad[[0, 2, 4]], [0.0, 0.25, 0.0])
        assert x.grad[1] == pytest.approx(math.exp(-40.0), rel=1e-14)


def test_tanh_saturates_without_nan():
    x = leaf([-800.0, 800.0])
    y = x.tanh()
    y.backward([1.0, 1.0])
    np.testing.assert_array_equal(y.data, [-1.0, 1.0])
    np.testing.assert_array_equal(x.grad, [0.0, 0.0])


def test_exp_overflows_to_inf_outside_anomaly_mode():
    with np.errstate(over="ignore"):
        y = Tensor([1000.0, 0.0]).exp()
    np.testing.assert_array_equal(y.data, [np.inf, 1.0])


def test_clip():
    x = leaf([-2.0, -1.0, 0.0, 1.0, 2.0])
    y = x.clip(-1.0, 1.0)
    np.testing.assert_array_equal(y.data, [-1.0, -1.0, 0.0, 1.0, 1.0])
    y.backward([1.0, 2.0, 3.0, 4.0, 5.0])
    # NOTE: the gradient passes where the input was not limited, boundaries included.
    np.testing.assert_array_equal(x.grad, [0.0, 2.0, 3.0, 4.0, 0.0])
    z = leaf([0.2, 0.5])
    gradcheck(lambda z: z.clip(0.0, 0.4), [z])
    with pytest.raises(ValueError, match=r"clip: needs numbers low <= high, got low=1.0, high=0.0"):
        x.clip(1.0, 0.0)


def test_division():
    a, b = leaf([1.0, 6.0]), leaf([4.0, -2.0])
    q = a / b
    np.testing.assert_array_equal(q.data, [0.25, -3.0])
    q.backward([1.0, 1.0])
    np.testing.assert_array_equal(a.grad, [0.25, -0.5])  # 1 / b
    np.testing.assert_array_equal(b.grad, [-1.0 / 16.0, -6.0 / 4.0])  # -a / b^2
    x = leaf([2.0, 0.5])
    r = 3.0 / x
    np.testing.assert_array_equal(r.data, [1.5, 6.0])
    r.backward([1.0, 1.0])
    np.testing.assert_array_equal(x.grad, [-0.75, -12.0])  # -3 / x^2
    gradcheck(lambda a, b: a / b, [a, b])


def test_division_by_zero_gives_inf():
    with np.errstate(divide="ignore"):
        y = Tensor([1.0, -1.0]) / Tensor([0.0, 0.0])
    np.testing.assert_array_equal(y.data, [np.inf, -np.inf])


@pytest.mark.parametrize("p", [1.5, 0.5, -0.5, 2.25, 1 / 3])
def test_fractional_power(p):
    x_np = np.array([0.25, 1.0, 4.0])
    x = leaf(x_np)
    y = x**p
    y.backward(np.ones(3))
    for i, v in enumerate(x_np):
        assert y.data[i] == pytest.approx(v**p, rel=1e-15)
        assert x.grad[i] == pytest.approx(p * v ** (p - 1), rel=1e-14)
    gradcheck(lambda x: x**p, [x])


def test_power_by_hand():
    x = leaf([4.0, 9.0])
    y = x**0.5 + x**-1 + x**2
    np.testing.assert_allclose(y.data, [2 + 0.25 + 16, 3 + 1 / 9 + 81], rtol=1e-15)
    y.backward([1.0, 1.0])
    np.testing.assert_allclose(x.grad, [1 / 4 - 1 / 16 + 8, 1 / 6 - 1 / 81 + 18], rtol=1e-15)


def test_power_errors():
    with pytest.raises(ValueError, match=r"negative entries need an integer exponent"):
        Tensor([1.0, -4.0]) ** 0.5
    np.testing.assert_array_equal((Tensor([-2.0]) ** 3).data, [-8.0])
    with pytest.raises(TypeError, match=r"Tensor \*\* Tensor is not supported"):
        Tensor([1.0]) ** Tensor([2.0])
    with pytest.raises(TypeError, match=r"expects a real number p, got str"):
        Tensor([1.0]) ** "2"
    with pytest.raises(TypeError, match=r"expects a real number p, got ndarray"):
        Tensor([1.0]) ** np.array([2.0])


def test_power_zero_has_zero_derivative_at_zero():
    # x ** 0 is the constant 1: its derivative is 0 everywhere, 0 included (as for Value).
    x = leaf([0.0, 2.0])
    y = x**0
    y.backward([1.0, 1.0])
    np.testing.assert_array_equal(y.data, [1.0, 1.0])
    np.testing.assert_array_equal(x.grad, [0.0, 0.0])


def test_number_raised_to_a_tensor():
    # As for Value, a positive number may be raised to a Tensor: 2 ** x = exp(x log 2).
    x = leaf([0.0, 1.0, -2.0])
    y = 2**x
    np.testing.assert_allclose(y.data, [1.0, 2.0, 0.25], rtol=1e-15)
    y.backward([1.0, 1.0, 1.0])
    np.testing.assert_allclose(x.grad, np.log(2.0) * np.array([1.0, 2.0, 0.25]), rtol=1e-15)


def test_log_of_non_positive_is_rejected():
    with pytest.raises(ValueError, match=r"log expects positive inputs, got min -1"):
        Tensor([2.0, -1.0, 3.0]).log()
    with pytest.raises(ValueError, match=r"log expects positive inputs, got min 0"):
        Tensor([[0.0]]).log()


# --- detach ----------------------------------------------------------------------------------


def test_detach_stops_the_gradient():
    x = leaf([1.0, 2.0])
    y = x * 3.0
    d = y.detach()
    assert not d.requires_grad and d.is_leaf and d.grad is None
    np.testing.assert_array_equal(d.data, [3.0, 6.0])
    (d * y).sum().backward()  # d(c * 3x)/dx with c = 3x held constant: 3c
    np.testing.assert_array_equal(x.grad, [9.0, 18.0])
    assert d.grad is None
    with pytest.raises(RuntimeError, match="not the output of a recorded graph"):
        d.sum().backward()


# --- dtypes ----------------------------------------------------------------------------------


def test_float32_is_kept_by_every_op_with_python_numbers():
    x = Tensor(np.array([[0.5, -1.0], [2.0, 0.25]], dtype=np.float32), requires_grad=True)
    w = Tensor(np.array([[1.0, 2.0], [-1.0, 0.5]], dtype=np.float32), requires_grad=True)
    parts = [
        x * 2.0, 2.0 * x, x + 1, 1.5 - x, x / 3.0, 3.0 / (x * x + 1), -x, (x * x) ** 0.5, x**2,
        x.exp(), (x * x + 1).log(), x.tanh(), x.sigmoid(), x.relu(), x.clip(-0.5, 0.5),
        x @ w, x.T, x.reshape(4), x[0], x[[1, 1]], x.sum(axis=0), x.mean(), x.max(axis=1),
        x.softmax(), x.log_softmax(axis=0), stack([x, w]), concat([x, w], axis=1), x.detach(),
    ]
    for p in parts:
        assert p.dtype == np.float32, p
    total = sum(p.sum() for p in parts)
    assert total.dtype == np.float32
    total.backward()
    assert x.grad.dtype == np.float32 and w.grad.dtype == np.float32
    assert all(p.grad.dtype == np.float32 for p in parts if p.requires_grad)
    # The same graph in float64 gives the same gradient to float32 precision.
    x64, w64 = leaf(x.data.astype(np.float64)), leaf(w.data.astype(np.float64))
    (x64 @ w64 + x64.exp() * 2.0).sum().backward()
    x.grad = w.grad = None
    (x @ w + x.exp() * 2.0).sum().backward()
    np.testing.assert_allclose(x.grad, x64.grad, rtol=1e-6)
    np.testing.assert_allclose(w.grad, w64.grad, rtol=1e-6)


def test_float32_meets_float64_and_the_gradient_keeps_each_dtype():
    x = Tensor(np.float32([1.0, 2.0]), requires_grad=True)
    w = leaf([0.5, 0.25])
    y = (x * w).sum()
    assert y.dtype == np.float64  # numpy promotion for two arrays
    y.backward()
    assert x.grad.dtype == np.float32 and w.grad.dtype == np.float64
    np.testing.assert_array_equal(x.grad, np.float32([0.5, 0.25]))


def test_a_primitive_with_four_inputs():
    # No op in the table has more than three inputs; a new one goes through the general loop.
    from autograd.tensor import Primitive, _apply

    fma2 = Primitive(
        "a*b+c*d",
        lambda a, b, c, d: a * b + c * d,
        lambda g, out, a, b, c, d: g * b,
        lambda g, out, a, b, c, d: g * a,
        lambda g, out, a, b, c, d: g * d,
        lambda g, out, a, b, c, d: g * c,
    )
    a, b, c = leaf([1.0, 2.0]), leaf([3.0, -1.0]), leaf([0.5, 4.0])
    d = Tensor([2.0, -3.0])  # takes no gradient
    out = _apply(fma2, a, b, c, d)
    np.testing.assert_array_equal(out.data, [4.0, -14.0])
    (out * out).sum().backward()
    two_out = 2 * out.data
    np.testing.assert_array_equal(a.grad, two_out * b.data)
    np.testing.assert_array_equal(b.grad, two_out * a.data)
    np.testing.assert_array_equal(c.grad, two_out * d.data)
    assert d.grad is None
    gradcheck(lambda a, b, c: _apply(fma2, a, b, c, d).sum(), [leaf([1.0, 2.0]), leaf([3.0, -1.0]), leaf([0.5, 4.0])])


@pytest.mark.parametrize("inputs", [1, 2, 3])
def test_a_primitive_with_params_gets_them_in_forward_and_in_every_vjp(inputs):
    # No op in the table of two or three inputs has params; a new one must still get them
    # (forward and backward make plain calls for ops without, and the loop serves the others).
    from autograd.tensor import Primitive, _apply

    def product(*arrays, k):
        return k * np.prod(arrays, axis=0)

    def vjp(i):
        return lambda g, out, *arrays, k: g * k * np.prod([x for j, x in enumerate(arrays) if j != i], axis=0)

    scaled = Primitive("k*prod", product, *[vjp(i) for i in range(inputs)])
    values = [[1.0, 2.0], [3.0, -1.0], [0.5, 4.0]][:inputs]
    xs = [leaf(v) for v in values]
    out = _apply(scaled, *xs, k=3.0)
    np.testing.assert_array_equal(out.data, 3.0 * np.prod(values, axis=0))
    out.sum().backward()
    for i, x in enumerate(xs):
        others = [v for j, v in enumerate(values) if j != i]
        np.testing.assert_array_equal(x.grad, 3.0 * np.prod(others, axis=0) if others else [3.0, 3.0])
    gradcheck(lambda *xs: _apply(scaled, *xs, k=-2.0).sum(), [leaf(v) for v in values])
