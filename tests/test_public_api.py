"""The public API is reachable the way the docs spell it.

``evostrat.expectation`` is both the documented function and the module of its other
names; the names the docs import from submodules are also exported (lazily, where they
need torch, JAX or gymnasium) by their parent packages.
"""

from __future__ import annotations

import inspect
import subprocess
import sys
import textwrap

import numpy as np

import evostrat
from evostrat.distributions import Normal


def test_expectation_is_callable_and_reaches_the_module_names() -> None:
    import evostrat.expectation as E
    from evostrat.expectation import expectation as function
    from evostrat.expectation import expectation_grad

    p = Normal(np.array([1.0]), 0.5)
    x = p.sample(64, key=0)
    v = -(x[:, 0] - 5.0) ** 2
    assert E is evostrat.expectation
    assert E.expectation_grad is expectation_grad
    assert evostrat.expectation.expectation_grad is expectation_grad
    assert float(evostrat.expectation(v, x, p)) == float(function(v, x, p)) == float(np.mean(v))
    assert float(evostrat.expectation(v, x, p=p, baseline="mean")) == float(function(v, x, p, baseline="mean"))
    g = evostrat.expectation.expectation_grad(v, x, p, baseline="mean")
    np.testing.assert_array_equal(g["mu"], expectation_grad(v, x, p, baseline="mean")["mu"])
    assert list(inspect.signature(evostrat.expectation).parameters) == ["values", "sample", "p", "dim", "baseline"]


def test_from_evostrat_import_expectation_calls_the_function() -> None:
    from evostrat import expectation

    p = Normal(np.zeros(2), 1.0)
    x = np.array([[1.0, 0.0], [3.0, 0.0]])
    assert float(expectation(x[:, 0], x, p)) == 2.0
    assert "expectation" in evostrat.__all__ and callable(evostrat.expectation)


def run_fresh(statements: str) -> str:
    """Run ``statements`` in a new interpreter; returns its stdout."""
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(statements)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_problems_package_exports_the_rl_problems_lazily() -> None:
    out = run_fresh("""
        import sys
        import evostrat.problems as problems
        assert "evostrat.problems.gym" not in sys.modules
        assert {"GymProblem", "MLPPolicy", "GymnaxProblem", "AtariProblem", "ConvLSTMPolicy"} <= set(dir(problems))
        assert {"GymProblem", "MLPPolicy", "sector_coverage", "distance"} <= set(problems.__all__)
        from evostrat.problems import GymProblem, MLPPolicy, distance, sector_coverage
        from evostrat.problems.gym import GymProblem as defined
        from evostrat.problems.point_robot import sector_coverage as coverage
        assert GymProblem is defined and problems.MLPPolicy.__module__ == "evostrat.problems.gym"
        assert sector_coverage is coverage
        print(sorted(m for m in ("torch", "jax", "gymnasium") if m in sys.modules))
    """)
    assert out.strip() == "[]"


def test_strategies_package_exports_every_builtin_class_lazily() -> None:
    out = run_fresh("""
        import sys
        import evostrat
        import evostrat.strategies as strategies
        assert "evostrat.strategies.cma_es" not in sys.modules
        from evostrat.plugins import registry
        classes = registry("strategies")
        for name, cls in classes.items():
            assert getattr(strategies, cls.__name__) is cls, name
            assert cls.__name__ in strategies.__all__ and cls.__name__ in dir(strategies), name
        from evostrat.strategies import CMAES, Strategy
        from evostrat.strategies.base import Strategy as base
        assert Strategy is base and issubclass(CMAES, Strategy)
        print("ok")
    """)
    assert out.strip() == "ok"


def test_unknown_lazy_name_is_an_attribute_error_naming_it() -> None:
    import evostrat.problems
    import evostrat.strategies

    for package in (evostrat.problems, evostrat.strategies):
        try:
            package.NoSuchThing
        except AttributeError as err:
            assert "NoSuchThing" in str(err) and package.__name__ in str(err)
        else:
            raise AssertionError("no AttributeError")


def test_callbacks_package_exports_centre_rank_and_progress_bar() -> None:
    from evostrat.callbacks import CentreRank, ProgressBar
    from evostrat.callbacks.centre_rank import CentreRank as centre_rank
    from evostrat.callbacks.progress import ProgressBar as progress_bar
    import evostrat.callbacks as callbacks

    assert CentreRank is centre_rank and ProgressBar is progress_bar
    assert {"CentreRank", "ProgressBar"} <= set(callbacks.__all__)


def test_subpackages_the_docs_reach_as_attributes_load_on_first_access() -> None:
    out = run_fresh("""
        import sys
        import evostrat
        lazy = ("callbacks", "checkpoint", "plot", "plotting", "testing")
        assert not any(f"evostrat.{name}" in sys.modules for name in lazy)
        assert set(lazy) <= set(dir(evostrat))
        from evostrat.callbacks.loggers import history_frame
        from evostrat.plotting import plot_sweep
        assert evostrat.callbacks.history_frame is history_frame      # docs/guides/monitoring.md
        assert evostrat.plotting.plot_sweep is plot_sweep             # docs/guides/batched.md
        assert callable(evostrat.plot.plot_diagnostics)               # docs/guides/minimize.md
        assert evostrat.checkpoint.checkpoint_info.__module__ == "evostrat.checkpoint"
        try:
            evostrat.no_such_module
        except AttributeError as err:
            assert "no_such_module" in str(err), err
        else:
            raise AssertionError("no AttributeError")
        print(sorted(m for m in ("matplotlib", "pandas", "torch", "jax") if m in sys.modules))
    """)
    assert out.strip() == "[]"


def test_a_function_using_the_expectation_global_pickles_to_another_process() -> None:
    import copy
    import pickle

    import pytest

    cloudpickle = pytest.importorskip("cloudpickle")
    from evostrat import expectation

    def statistic(values, x, p):  # a user's statistic, pickled by value as process pools and Ray do
        return expectation(values, x, p)

    assert copy.deepcopy(evostrat.expectation) is evostrat.expectation
    assert pickle.loads(pickle.dumps(evostrat.expectation)) is evostrat.expectation
    blob = cloudpickle.dumps(statistic)
    out = run_fresh(f"""
        import pickle
        import numpy as np
        from evostrat.distributions import Normal
        statistic = pickle.loads({blob!r})
        x = np.array([[1.0], [3.0]])
        print(float(statistic(x[:, 0], x, Normal(np.zeros(1), 1.0))))
    """)
    assert out.strip() == "2.0"
