"""What the run driver costs over the bare strategy (issue 15's targets).

- ``jax-fit``: ``ES.fit`` on JAX with a traceable objective (the compiled
  driver: best so far, history statistics and every termination criterion on
  the device, one transfer per chunk) against a hand-written ``jax.lax.scan``
  over the functional ``ask``/``tell`` for the same number of generations
  (``G = 320``), compilation excluded (a warm-up fit compiles the chunk and
  later fits share it). CMA-ES at d = 10 and 100 (Rosenbrock), SNES at d = 100
  and 1000 (sphere). Target: at most 1.2x at every d.
- ``numpy-asktell``: one generation of ``ES.ask``/``ES.tell`` (validation,
  best so far, history, termination) against the functional core
  (``strategy.ask``/``strategy.tell`` through the resolved kernel), CMA-ES at
  d = 10 on the sphere. Target: within 10%.

Run: ``python -m pytest benchmarks/test_run_overhead.py -p no:cacheprovider``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from evostrat import ES
from evostrat.plugins.factories import make_strategy
from evostrat.problems import rosenbrock, sphere

G = 320
CASES = [("cma_es", 10, rosenbrock), ("cma_es", 100, rosenbrock), ("snes", 100, sphere),
         ("snes", 1000, sphere)]


def _case(name: str, dim: int) -> str:
    return f"{name} d={dim} G={G} (test_run_overhead)"


def scan_round(jax: Any, name: str, dim: int, objective: Any) -> Any:
    """The hand-written loop, compiled: a round runs ``G`` generations of ``jax.lax.scan``
    over the functional ``ask``/``tell`` from the same initial state."""
    s = make_strategy(name, None)
    state = s.init(jax.numpy.ones(dim), random_state=0)

    def body(st: Any, _: Any) -> tuple[Any, None]:
        X, st = s.ask(st)
        return s.tell(st, X, objective(X)), None

    loop = jax.jit(lambda st: jax.lax.scan(body, st, None, length=G)[0])

    def run() -> Any:
        return jax.block_until_ready(loop(state))

    run()  # compiles
    return run


def fit_round(jax: Any, name: str, dim: int, objective: Any) -> Any:
    """``ES.fit`` for ``G`` generations on the compiled driver (a first fit compiles the chunk).
    ``x0`` is made once, as the scan's initial state is: a round times the fit, not
    ``jnp.ones`` (about 36 us on this machine)."""
    x0 = jax.numpy.ones(dim)

    def fit() -> Any:
        es = ES(name, max_generations=G, random_state=0).fit(objective, x0)
        jax.block_until_ready(es.x_)
        assert es.fast_path_ == "compiled_loop" and es.n_generations_ == G
        return es

    fit()
    return fit


@pytest.mark.parametrize("name,dim,objective", CASES)
def test_jax_scan(benchmark: Any, record: Any, require: Any, name: str, dim: int, objective: Any) -> None:
    jax = require("jax")
    run = scan_round(jax, name, dim, objective)
    benchmark.group = f"jax-fit {name} d={dim}"
    benchmark.pedantic(run, rounds=5, iterations=1, warmup_rounds=1)
    record("jax-fit", _case(name, dim), "scan", benchmark, per_round=G, strategy=name, dim=dim, target=None)


@pytest.mark.parametrize("name,dim,objective", CASES)
def test_jax_fit(benchmark: Any, record: Any, require: Any, name: str, dim: int, objective: Any) -> None:
    jax = require("jax")
    fit = fit_round(jax, name, dim, objective)
    benchmark.group = f"jax-fit {name} d={dim}"
    benchmark.pedantic(fit, rounds=5, iterations=1, warmup_rounds=1)
    record("jax-fit", _case(name, dim), "evostrat", benchmark, per_round=G, strategy=name, dim=dim,
           target=1.2)


def test_numpy_core(benchmark: Any, record: Any) -> None:
    s = make_strategy("cma_es", None)
    box = {"state": s.init(np.ones(10), random_state=0)}

    def generation() -> None:
        X, state = s.ask(box["state"])
        box["state"] = s.tell(state, X, sphere(X))

    benchmark.group = "numpy-asktell cma_es d=10"
    benchmark.pedantic(generation, rounds=300, iterations=1, warmup_rounds=20)
    record("numpy-asktell", "cma_es d=10 (test_run_overhead)", "core", benchmark, strategy="cma_es",
           dim=10, target=None)


def test_numpy_es_asktell(benchmark: Any, record: Any) -> None:
    es = ES("cma_es", max_generations=10**6, tolfun=None, tolx=None, random_state=0).initialize(np.ones(10))

    def generation() -> None:
        X = es.ask()
        es.tell(X, sphere(X))

    benchmark.group = "numpy-asktell cma_es d=10"
    benchmark.pedantic(generation, rounds=300, iterations=1, warmup_rounds=20)
    record("numpy-asktell", "cma_es d=10 (test_run_overhead)", "evostrat", benchmark, strategy="cma_es",
           dim=10, target=1.1)
