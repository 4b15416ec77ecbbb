"""The estimator's own host work per fit (issue 15): what a fit's settings decide is done once per
settings, what nobody reads is made when read, and neither changes a result or skips a check."""

from __future__ import annotations

import functools
import sys
from typing import Any

import numpy as np
import pytest

from evostrat import ES, vectorized
from evostrat.errors import InvalidArgumentError, InvalidTypeError
from evostrat.plugins.factories import make_strategy
from evostrat.problems import rosenbrock
from evostrat.run.driver import settings_copy
from evostrat.run.termination import Termination
from evostrat.strategies.snes import SNES


@vectorized
def _shifted(X: Any) -> Any:
    import jax.numpy as jnp

    return jnp.sum((X - 0.3) ** 2, axis=-1)


def test_a_compiled_fit_searches_evals_best_only_when_it_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """Finding when a chunk's best was evaluated reads the chunk's rows (~30 us right after the chunk):
    a fit that nobody asks ``evals_best_`` of does not, and the answer read later is the host loop's."""
    pytest.importorskip("jax")
    import evostrat.run.chunk_host as chunk_host

    searches: list[int] = []
    found_at = chunk_host._found_at
    monkeypatch.setattr(chunk_host, "_found_at", lambda *args: searches.append(1) or found_at(*args))
    es = ES("cma_es", backend="jax", max_generations=60, random_state=1).fit(_shifted, np.zeros(3))
    assert es.fast_path_ == "compiled_loop" and es.n_generations_ == 60 and searches == []
    host = ES("cma_es", backend="jax", max_generations=60, random_state=1, compiled_loop=False).fit(_shifted, np.zeros(3))
    assert es.fun_ == host.fun_ and es.evals_best_ == host.evals_best_ and 0 < es.evals_best_ <= es.n_evals_
    assert es.evals_best_ == host.evals_best_ and searches == [1]  # searched once, then kept


def test_a_repeated_compiled_fit_calls_few_evostrat_functions() -> None:
    """The host work of a compiled fit that repeats settings already seen: 325 calls of evostrat's Python
    functions before issue 15's pass (each costing microseconds with the caches an XLA run leaves
    cold), about 150 since; the budget leaves room, not a second copy of the set-up."""
    jax = pytest.importorskip("jax")
    import evostrat

    root = evostrat.__file__.rsplit("__init__.py", 1)[0]
    x0 = jax.numpy.ones(10)
    for _ in range(2):  # compiles, then fills what is kept per settings
        ES("cma_es", max_generations=320, random_state=0).fit(rosenbrock, x0)
    calls = [0]

    def count(frame: Any, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code.co_filename.startswith(root):
            calls[0] += 1

    sys.setprofile(count)
    try:
        es = ES("cma_es", max_generations=320, random_state=0).fit(rosenbrock, x0)
    finally:
        sys.setprofile(None)
    assert es.fast_path_ == "compiled_loop" and es.n_generations_ == 320
    assert calls[0] <= 200, calls[0]


def test_make_strategy_builds_a_name_once_and_hands_out_independent_copies(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults, built = SNES().get_params(), []
    init = SNES.__init__
    monkeypatch.setattr(SNES, "__init__", functools.wraps(init)(lambda self, **kw: built.append(1) or init(self, **kw)))
    options = {"lr_sigma": 0.0123}  # settings no other test uses: built here first
    first = make_strategy("snes", options, popsize=8, sigma0=None)
    first.set_params(popsize=11)
    second = make_strategy("snes", options, popsize=8, sigma0=None)
    assert built == [1]  # the second one copied the first one's attributes as built
    assert type(second) is SNES and second is not first and second.popsize == 8 and first.popsize == 11
    assert second.get_params() == {**defaults, "lr_sigma": 0.0123, "popsize": 8}
    make_strategy("snes", {"lr_sigma": 1.0}, popsize=8)
    third = make_strategy("snes", {"lr_sigma": 1}, popsize=8)  # equal to 1.0, another setting: built
    assert built == [1, 1, 1] and type(third.lr_sigma) is int


def test_a_copied_strategy_follows_the_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """A name registered again by another plugin names the new class, not a copy of the old one."""
    from evostrat import hookimpl
    from evostrat.plugins import get_plugin_manager

    class First(SNES):
        pass

    class Second(SNES):
        pass

    def plugin(cls: type) -> Any:
        class Plugin:
            @hookimpl
            def evostrat_strategies(self) -> dict[str, type]:
                return {"issue15_probe": cls}

        return Plugin()

    pm = get_plugin_manager()
    for cls in (First, Second):
        name = pm.register(plugin(cls), name=f"issue15-{cls.__name__}")
        try:
            assert [type(make_strategy("issue15_probe", None)) for _ in range(2)] == [cls, cls]
        finally:
            pm.unregister(name=name)


def test_checks_kept_by_plain_settings_still_tell_types_apart() -> None:
    """``1 == True == 1.0``: settings that passed do not let an equal value of another type through."""
    ES(maximize=True, max_generations=5).validate_params()
    with pytest.raises(InvalidTypeError, match="maximize"):
        ES(maximize=1, max_generations=5).validate_params()
    Termination(max_generations=1, tolstagnation=0)
    with pytest.raises(InvalidTypeError, match="max_generations"):
        Termination(max_generations=True)
    with pytest.raises(InvalidArgumentError, match="tolx"):
        Termination(max_generations=1, tolx=-1.0)
    assert type(Termination(max_generations=1, tolfun=1).tolfun) is float  # converted, as before
    assert str(Termination(ftarget=-0.0).ftarget) == "-0.0" and str(Termination(ftarget=0.0).ftarget) == "0.0"


def test_settings_copy_holds_the_parameters_only() -> None:
    es = ES("cma_es", tolx=1e-3, max_generations=3, random_state=0)
    assert vars(settings_copy(es)) == es.get_params(deep=False)
    es.fit(rosenbrock, np.zeros(2))  # now with run_
    copy = settings_copy(es)
    assert vars(copy) == es.get_params(deep=False) and "run_" not in vars(copy)
