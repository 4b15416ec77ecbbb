"""BBOB's step ellipsoid (f7) and the CMA-ES step-size constants that solve it (issue 23).

evostrat's IPOP runs lost f7 at 20-D to pycma (9 of 15 instances against 14): with the
tutorial's damping ``d_sigma`` a large population (IPOP's third run, popsize 48) shrinks
sigma too fast and the run ends on a plateau (``tolflatfitness``). pycma damps sigma more
when ``mu_eff`` is large against ``n``; evostrat now uses pycma's constants.
"""

from __future__ import annotations

import numpy as np
import pytest

from evostrat import ES
from evostrat.problems import step_ellipsoid
from evostrat.strategies.cma_params import cma_parameters

#: (n, popsize) -> pycma 4.5.0's CSA (cs, damps) (``es.adapt_sigma.cs/damps``, no mirrors)
PYCMA_CSA = {
    (20, 12): (0.21434997799189287, 1.214349977991893),
    (20, 48): (0.4234653289379399, 3.0495014724243767),
    (20, 96): (0.5, 4.636651909031574),
    (2, 24): (0.5, 2.334637),
    (10, 10): (0.319614, 1.319614),
    (40, 200): (0.5, 5.922013),
}


@pytest.mark.parametrize("n,popsize", sorted(PYCMA_CSA))
def test_step_size_constants_are_pycmas(n: int, popsize: int) -> None:
    p = cma_parameters(n, popsize)
    cs, damps = PYCMA_CSA[n, popsize]
    assert p.cs == pytest.approx(cs, abs=1e-6) and p.damps == pytest.approx(damps, abs=1e-6)


def test_step_ellipsoid_is_f7_without_rotation() -> None:
    assert float(step_ellipsoid(np.zeros(20))) == 0.0
    # plateaus: a small move inside a rounding cell changes only the tiny |z_1| / 1e4 term
    x = np.full(5, 2.0)
    assert abs(float(step_ellipsoid(x + 0.01)) - float(step_ellipsoid(x))) < 1e-5
    # sum_i 10^(2i/(d-1)) round(z_i)^2 / 10 with z = 10^(i/(2(d-1))) x, and the penalty beyond 5
    assert float(step_ellipsoid(np.array([1.0, 0.0]))) == pytest.approx(0.1)
    # x_3 = 6: z_3 = sqrt(10) 6 = 18.97 rounds to 19, weight 10^2; penalty (6 - 5)^2
    assert float(step_ellipsoid(np.array([0.0, 0.0, 6.0]))) == pytest.approx(0.1 * 100 * 19**2 + 1.0)


def test_cma_es_with_a_large_population_solves_the_step_ellipsoid() -> None:
    """Popsize 48 at 20-D from uniform starts in [-4, 4]^20: with the tutorial's damping 3 of
    these 12 runs reached 1e-8 (most ended on tolflatfitness), with pycma's 9."""
    hits = 0
    for seed in range(12):
        x0 = np.random.default_rng(seed).uniform(-4, 4, 20)
        es = ES("cma_es", sigma0=2.0, popsize=48, random_state=seed).fit(step_ellipsoid, x0)
        hits += es.fun_ < 1e-8
    assert hits >= 8
