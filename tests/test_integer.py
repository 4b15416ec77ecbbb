"""Integer and mixed-integer variables (``ES(integer=...)``, :mod:`evostrat.run.integers`).

Checked: bad masks get errors naming ``integer``; every evaluated and asked candidate and
``x_`` is integral on the integer coordinates and inside their integer range; the margin
correction keeps the marginal probabilities of the paper's invariant; CMA-ES with margin
solves an integer problem where CMA-ES on a rounded objective stalls; the slow study
compares with cmaes' ``CMAwM`` on its mixed-integer examples.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import ndtr

from evostrat import ES
from evostrat.errors import InvalidArgumentError, InvalidTypeError
from evostrat.run.integers import IntegerSpace, integer_mask


def shifted_sphere(X):
    return ((X - 0.3) ** 2).sum(axis=1)


@pytest.mark.parametrize("integer, error, text", [
    ([0.0, 1.0, 0.0], InvalidTypeError, "integer must be a boolean mask"),
    ([True, False], InvalidArgumentError, "x0 has dimension 3"),
    ([[True, False, True]], InvalidArgumentError, "integer must be"),
    ([3], InvalidArgumentError, "integer indices must lie in"),
    ([1, 0, 1], InvalidArgumentError, "integer indices must be distinct"),  # a 0/1 "mask" of ints
    ("abc", InvalidTypeError, "integer must be"),
])
def test_bad_integer_masks_name_the_argument(integer, error, text):
    with pytest.raises(error, match=text):
        ES("cma_es", integer=integer).initialize(np.zeros(3))


def test_integer_range_needs_two_values():
    with pytest.raises(InvalidArgumentError, match="integer coordinate 1 must have at least two integer values"):
        ES("cma_es", integer=[1], bounds=([-1, 0.2, -1], [1, 1.8, 1])).initialize(np.ones(3) * 0.5)
    with pytest.raises(InvalidArgumentError, match=r"integer coordinate 1 must have at least two integer values inside "
                                                   r"bounds, but \[0.2, 0.8\] holds no integer value$"):
        ES("cma_es", integer=[1], bounds=([-1, 0.2, -1], [1, 0.8, 1])).initialize(np.ones(3) * 0.5)


def test_masks_and_indices_agree():
    assert integer_mask([0, -1], 4).tolist() == [True, False, False, True]
    assert integer_mask(np.array([False, True]), 2).tolist() == [False, True]
    assert IntegerSpace.from_spec([False, False], np.zeros(2)) is None


@pytest.mark.parametrize("strategy", ["cma_es", "sep_cma_es", "snes"])
def test_candidates_and_result_are_integral_inside_the_range(strategy):
    mask = np.array([True, False, True, False, True])
    lower, upper = np.array([-2.5, -1, -3, -np.inf, 0]), np.array([2.5, 1, np.inf, np.inf, 1])
    seen = []

    def f(X):
        seen.append(np.array(X))
        return shifted_sphere(X)

    es = ES(strategy, sigma0=1.5, integer=mask, bounds=(lower, upper), max_generations=60,
            random_state=1, evaluator="vectorized").fit(f, np.array([1.0, 0.5, 2.0, 0.0, 1.0]))
    X = np.concatenate(seen)
    assert np.array_equal(X[:, mask], np.round(X[:, mask]))
    assert (X[:, 0] >= -2).all() and (X[:, 0] <= 2).all() and (X[:, 2] >= -3).all()
    assert set(np.unique(X[:, 4])) <= {0.0, 1.0}
    assert (X[:, 1] >= -1).all() and (X[:, 1] <= 1).all()
    assert np.array_equal(es.x_[mask], np.round(es.x_[mask]))
    assert es.fun_ == pytest.approx(shifted_sphere(es.x_[None])[0])


def test_manual_ask_tell_with_integers():
    es = ES("cma_es", sigma0=2.0, integer=[0, 1], random_state=0).initialize(np.full(3, 4.0))
    for _ in range(80):
        X = es.ask()
        assert np.array_equal(X[:, :2], np.round(X[:, :2]))
        es.tell(X, shifted_sphere(X))
    assert es.x_[:2].tolist() == [0.0, 0.0]
    assert abs(es.x_[2] - 0.3) < 0.05


def test_margin_keeps_the_marginal_probabilities():
    """After each correction, P(round(x_j) != round(m_j)) >= margin / 2 on each open side."""
    es = ES("cma_es", sigma0=2.0, integer=[True] * 4 + [False] * 2, bounds=(-3, 3), random_state=2,
            max_generations=1).initialize(np.full(6, 1.0))
    space = es.run_.integers
    checked = 0
    for _ in range(150):
        X = es.ask()  # the correction of the last update ran before this sample
        state, idx = es.run_.runner.state, space.index
        m, A = state.mean[idx], space.A[idx]
        s = state.sigma * A * np.sqrt(state.diag_C[idx])
        low, up = space.limits(m)
        p_low, p_up = ndtr((low - m) / s), 1 - ndtr((up - m) / s)
        interior = (low < up)
        tol = 1e-9
        assert (p_low[interior] >= space.alpha / 2 - tol).all() and (p_up[interior] >= space.alpha / 2 - tol).all()
        edge = ~interior
        assert (np.minimum(p_low, p_up)[edge] >= space.alpha - 1e-6).all()
        checked += 1
        es.tell(X, shifted_sphere(X))
    assert checked == 150 and (space.A[space.index] > 1).any()  # the margin had to act


def test_margin_solves_where_rounding_stalls():
    """An 8-D ellipsoid (weights 1 to 1000) whose four lightest coordinates are integers: the
    heavy continuous ones make sigma shrink, and CMA-ES on the rounded objective (no margin)
    freezes the integer coordinates on a plateau in every seed; with margin every seed reaches
    1e-8 (with the integer coordinates at 0)."""
    n, mask = 8, np.arange(8) < 4
    w = 10 ** (3 * np.arange(n) / (n - 1))

    def f(X):
        return ((w * X) ** 2).sum(axis=1)

    def rounded(X):
        return f(np.where(mask, np.round(X), X))

    options = dict(sigma0=2.0, ftarget=1e-8, max_evals=8000, tolstagnation=None, evaluator="vectorized")
    for seed in range(3):
        es = ES("cma_es", integer=mask, random_state=seed, **options).fit(f, np.full(n, 3.0))
        assert es.fun_ <= 1e-8 and es.x_[:4].tolist() == [0.0] * 4, (seed, es.fun_, es.stop_reason_)
        plain = ES("cma_es", random_state=seed, **options).fit(rounded, np.full(n, 3.0))
        assert plain.fun_ > 1e-3, (seed, plain.fun_)  # at least one integer coordinate stuck off 0


@pytest.mark.parametrize("backend", ["torch", pytest.param("jax", marks=pytest.mark.slow)])  # jax: ~10 s of jit
def test_integers_on_torch_and_jax(backend):
    lib = pytest.importorskip(backend)
    x0 = lib.full((4,), 3.0) if backend == "torch" else lib.numpy.full((4,), 3.0)
    es = ES("cma_es", sigma0=2.0, integer=[0, 1], max_generations=40, random_state=0,
            evaluator="vectorized").fit(shifted_sphere, x0)
    x = np.asarray(es.x_)
    assert type(es.x_).__module__.split(".")[0] in ("torch", "jaxlib", "jax")
    assert x[:2].tolist() == [0.0, 0.0] and np.allclose(x[2:], 0.3, atol=0.05)


@pytest.mark.slow
@pytest.mark.parametrize("problem", ["sphere", "ellipsoid"])
def test_against_cmaes_cmawm(problem):
    """cmaes' CMAwM examples (10 continuous + 10 integer coordinates in [-10, 11], mean 5, sigma 2):
    evostrat solves (f <= 1e-8) in at least as many seeds with a median evaluation count within
    20 % of CMAwM's (benchmarks/mixed_integer.py prints the table of BENCHMARKS.md)."""
    pytest.importorskip("cmaes")
    from benchmarks.mixed_integer import compare

    table = compare(problem, seeds=range(10))
    assert table["evostrat_solved"] >= table["cmaes_solved"]
    assert table["evostrat_median"] <= 1.2 * table["cmaes_median"]


def test_integers_with_restarts():
    """Each restart run gets a fresh margin state; every candidate stays integral."""
    seen = []

    def f(X):
        seen.append(np.array(X))
        return shifted_sphere(X) + np.cos(2 * np.pi * X[:, 2])  # multimodal in the continuous coordinate

    es = ES("cma_es", sigma0=2.0, integer=[0, 1], restarts=dict(kind="ipop", max_restarts=2), max_evals=3000,
            random_state=0, evaluator="vectorized").fit(f, np.full(3, 3.0))
    X = np.concatenate(seen)
    assert len(es.restarts_) >= 2 and np.array_equal(X[:, :2], np.round(X[:, :2]))
    assert es.x_[:2].tolist() == [0.0, 0.0]


def test_jax_integers_run_on_the_compiled_loop_with_their_own_mask():
    """A traceable JAX objective with integer variables runs on the compiled loop (it took the host
    loop), each fit with its own mask: a second fit of the same objective with another mask rounds
    that mask's coordinates, not the first fit's."""
    jnp = pytest.importorskip("jax.numpy")

    def f(X):
        return ((X - 0.3) ** 2).sum(axis=1)

    for i in (0, 1):
        es = ES("cma_es", sigma0=2.0, integer=[i], max_generations=20, random_state=0).fit(f, jnp.full(3, 3.0))
        x = np.asarray(es.x_)
        assert x[i] == 0.0 and abs(x[1 - i] - 0.3) < 0.2 and x[1 - i] != np.round(x[1 - i]), (i, x)
        assert es.fast_path_ == "compiled_loop"


def _margin_run(backend="numpy", **options):
    """CMA-ES with margin after 60 generations on the shifted sphere: the scaling A of the
    integer coordinates is far above 1 (about 50 and 35)."""
    x0 = np.array([3.0, 3.0, 0.5, 0.5])
    if backend == "torch":
        torch = pytest.importorskip("torch")
        x0 = torch.tensor(x0)
    elif backend == "jax":
        jnp = pytest.importorskip("jax.numpy")
        x0 = jnp.asarray(x0, dtype=jnp.float32)
    es = ES("cma_es", integer=[0, 1], random_state=0, sigma0=0.3, **options).initialize(x0)
    for _ in range(60):
        X = es.ask()
        es.tell(X, shifted_sphere(np.asarray(X, dtype=np.float64)))
    assert (es.run_.integers.A[:2] > 10).all()  # the premise
    return es


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
@pytest.mark.parametrize("bounds", [None, ([-5, -5, -1, -1], [5, 5, 2, 2])])
def test_injected_candidates_are_evaluated_as_given_with_margin(backend, bounds):
    """With margin, an injected point went through round(m + A (x - m)) like a sampled one:
    injecting [2, -1, 0.1, 0.2] asked for [104, -35, 0.1, 0.2]."""
    es = _margin_run(backend, bounds=bounds, popsize=6)
    points = np.array([[2.0, -1.0, 0.1, 0.2], [2.4, -1.6, 0.1, 0.2]] * 4)  # 8 rows: 2 wait for the next ask
    expected = np.where([True, True, False, False], np.round(points), points)  # integer coordinates rounded
    es.inject(points)
    X = np.asarray(es.ask(), dtype=np.float64)
    np.testing.assert_allclose(X, expected[:6], atol=1e-6)
    es.tell(es.run_.asked, shifted_sphere(X))
    X = np.asarray(es.ask(), dtype=np.float64)  # the two left over, placed with the margin state of now
    np.testing.assert_allclose(X[:2], expected[6:], atol=1e-6)


def test_a_repaired_integer_candidate_is_told_as_the_point_that_encodes_to_it():
    """The strategy learnt a repaired row from its raw integer value, a point that the encoding
    maps far away (m + A (x - m), A about 50); now from m + (x - m) / A, which encodes to it (its
    step then clipped as every repaired row's, which only shortens it)."""
    es = _margin_run()
    told = []
    update = es.strategy_.update
    es.strategy_.update = lambda values, X=None: told.append(np.array(X)) or update(values, X)
    X = es.ask()
    m, A = np.array(es.strategy_.mean), es.run_.integers.A.copy()
    repaired = X.copy()
    repaired[0] = [1.0, -1.0, 0.0, 0.0]
    es.tell(repaired, shifted_sphere(repaired), repaired=True)
    direction = (repaired[0] - m) / A  # the step to the point that encodes to the repaired row
    ratio = (told[0][0] - m) / direction  # its clipped step: the same direction, shortened
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-6)
    assert 0 < ratio[0] <= 1
