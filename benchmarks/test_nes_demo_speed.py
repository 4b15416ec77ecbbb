"""One generation of the EvoGrad demos: evostrat (torch eager, JAX jitted) vs evograd.

A generation = sample 500 draws from ``Normal(mu, 0.5)``, evaluate, build the
statistic with ``expectation``, differentiate w.r.t. ``mu`` and take a gradient
step (``examples/evograd_demos``). evograd (``pip install evograd``; imported
only here, its code is not used anywhere else) runs the same NES generation
with its own ``Normal`` and ``expectation``; it is skipped when not installed.

Run with ``python -m pytest benchmarks/test_nes_demo_speed.py --benchmark-only``
(add ``--benchmark-group-by=group`` to see each demo side by side). Not part of
the default test run (``testpaths = ["tests"]``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

SUITE = "nes-demo"  # rows of the comparison table (benchmarks/report.py); target 0.05
DEMOS = Path(__file__).resolve().parents[1] / "examples" / "evograd_demos"


def _demo(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(f"evograd_demo_{name}", DEMOS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run_generations(benchmark: Any, step: Any, state: Any, block: Any) -> Any:
    holder = [state]

    def one_generation() -> None:
        holder[0] = step(holder[0])
        block(holder[0])

    for _ in range(3):  # warm-up (and JIT compilation on JAX)
        one_generation()
    benchmark.pedantic(one_generation, rounds=200, iterations=1, warmup_rounds=5)
    return holder[0]


@pytest.mark.parametrize("demo", ["nes_mean", "maxvar", "maxent"])
def test_generation_evostrat_torch(benchmark: Any, record: Any, demo: str) -> None:
    pytest.importorskip("torch")
    module = _demo(demo)
    from _loop import make_step

    benchmark.group = f"{demo} generation (population 500)"
    lr = 0.10 if demo == "maxent" else 0.03
    state, step = make_step(module.statistic, "torch", lr=lr)
    final = _run_generations(benchmark, step, state, lambda s: None)
    record(SUITE, f"{demo} pop=500", "evostrat-torch", benchmark, strategy=demo, popsize=500)
    assert final[0].shape == (1,)


@pytest.mark.parametrize("demo", ["nes_mean", "maxvar", "maxent"])
def test_generation_evostrat_jax_jit(benchmark: Any, record: Any, demo: str) -> None:
    pytest.importorskip("jax")
    module = _demo(demo)
    from _loop import make_step

    benchmark.group = f"{demo} generation (population 500)"
    lr = 0.10 if demo == "maxent" else 0.03
    state, step = make_step(module.statistic, "jax", lr=lr)
    final = _run_generations(benchmark, step, state, lambda s: s[0].block_until_ready())
    record(SUITE, f"{demo} pop=500", "evostrat-jax", benchmark, strategy=demo, popsize=500)
    assert final[0].shape == (1,)


def test_generation_evograd_nes(benchmark: Any, record: Any) -> None:
    torch = pytest.importorskip("torch")
    evograd = pytest.importorskip("evograd")
    from evograd.distributions import Normal as EvoGradNormal

    benchmark.group = "nes_mean generation (population 500)"
    mu = torch.tensor([1.0], requires_grad=True)

    def step(_: Any) -> None:
        p = EvoGradNormal(mu, 0.5)
        sample = p.sample(n=500)
        fitnesses = -((sample - 5.0) ** 2)
        mean = evograd.expectation(fitnesses, sample, p=p)
        mean.backward()
        with torch.no_grad():
            mu.add_(0.03 * mu.grad)
            mu.grad.zero_()

    _run_generations(benchmark, step, None, lambda s: None)
    record(SUITE, "nes_mean pop=500", "evograd", benchmark, strategy="nes_mean", popsize=500)
    assert float(mu.detach()[0]) > 1.0  # NES moved mu from 1 towards 5
    if benchmark.stats is not None:  # the timed run (not --benchmark-disable): 208 generations
        assert abs(float(mu.detach()[0]) - 5.0) < 0.5
