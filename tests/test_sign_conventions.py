"""Sign conventions of the NES family, ExpectationES and the expectation-based strategies.

Every strategy's ``tell`` minimises (lower told fitness is better) and ``ES(maximize=True)``
negates the objective's values before ``tell``: maximising ``-f`` must then run the very same
trajectory as minimising ``f`` (every generation's mean, the best candidate, ``fun_`` negated),
for the generic NES over its families, SNES, xNES, ExpectationES (normal and Student-t),
OpenAI-ES and PGPE, on numpy and torch. The NES and ExpectationES docstrings say that ``tell``
minimises and which way round each ``statistic`` receives the values.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np
import pytest

from evostrat import ES
from evostrat.backends import get_backend
from evostrat.strategies import expectation_es, nes
from evostrat.strategies.expectation_es import ExpectationES
from evostrat.strategies.nes import NES

BACKENDS = ["numpy", pytest.param("torch", marks=pytest.mark.skipif(
    importlib.util.find_spec("torch") is None, reason="torch not installed"))]
CASES = [
    ("nes", {"distribution": "diag_normal"}),
    ("nes", {"distribution": "student_t", "distribution_options": {"df": 5}}),
    ("nes", {"distribution": "multivariate_normal"}),
    ("nes", {"distribution": "diag_normal", "gradient": "plain"}),
    ("snes", {}),
    ("xnes", {}),
    ("expectation_es", {}),
    ("expectation_es", {"distribution": "student_t"}),
    ("openai_es", {}),
    ("pgpe", {}),
]


def _ellipsoid(X: Any) -> Any:
    scales = get_backend(X).asarray(np.arange(1.0, 5.0), dtype=X.dtype)
    return (((X - 0.3) * scales) ** 2).sum(axis=1)


def _means(name: str, options: dict, backend: str, maximize: bool) -> tuple[list[np.ndarray], ES]:
    means: list[np.ndarray] = []

    def record(es: Any) -> None:
        means.append(np.asarray(es.strategy_.backend.to_numpy(es.strategy_.mean), dtype=np.float64).copy())

    objective = (lambda X: -_ellipsoid(X)) if maximize else _ellipsoid
    es = ES(name, strategy_options=options, sigma0=0.5, max_generations=12, random_state=1, backend=backend,
            maximize=maximize)
    es.fit(objective, np.ones(4), callbacks=[record])
    return means, es


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name, options", CASES, ids=[f"{n}-{'-'.join(map(str, o.values()))}" for n, o in CASES])
def test_maximising_minus_f_runs_the_trajectory_of_minimising_f(backend: str, name: str, options: dict) -> None:
    low, es_low = _means(name, options, backend, maximize=False)
    high, es_high = _means(name, options, backend, maximize=True)
    assert len(low) == len(high) == 12
    for a, b in zip(low, high):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(np.asarray(es_low.x_), np.asarray(es_high.x_))
    assert float(es_high.fun_) == -float(es_low.fun_) and float(es_low.fun_) > 0


def test_docstrings_state_the_direction() -> None:
    for doc in (nes.__doc__, expectation_es.__doc__):
        assert "``tell`` minimises" in doc and "maximize=True" in doc
    assert "higher for better" in NES.__doc__ and "lower is better" in ExpectationES.__doc__
