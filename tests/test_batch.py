"""Batched fits (issue 19 item 1): a batch equals its runs done one by one.

numpy and torch run a loop of ``ES.fit`` (bit for bit); JAX advances each group of
runs in one ``vmap``-ed compiled program (float tolerance, same stop generation and
reason). Sharding over 4 host devices runs in a subprocess (the device count is
fixed when JAX starts).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

from evostrat import ES, InvalidArgumentError, InvalidTypeError
from evostrat.errors import ParameterOverrideWarning
from evostrat.problems import sphere
from evostrat.run.batch import expand_grid, fit_batch, seed_list
from evostrat.strategies.snes import SNES

SEEDS = 8
GRID = {"strategy__lr_sigma": [0.1, 0.3]}


def _alone(params: dict, x0, objective, **settings):
    return ES("snes", **settings).set_params(**params).fit(objective, x0)


def test_numpy_batch_of_8_seeds_x_2_rates_equals_16_runs_bit_for_bit():
    x0 = np.full(5, 2.0)
    res = fit_batch(ES("snes", max_generations=40), sphere, x0, seeds=SEEDS, grid=GRID)
    assert len(res) == 16 and res.fast_path is None
    assert [p["random_state"] for p in res.params] == list(range(8)) * 2
    assert [p["strategy__lr_sigma"] for p in res.params] == [0.1] * 8 + [0.3] * 8
    for i, params in enumerate(res.params):
        alone = _alone(params, x0, sphere, max_generations=40)
        assert np.array_equal(res.x[i], alone.x_)
        assert res.fun[i] == alone.fun_
        assert res.n_evals[i] == alone.n_evals_ and res.stop_reason[i] == alone.stop_reason_
        assert [h["best"] for h in res.histories[i]] == [h["best"] for h in alone.history_]
    assert len(set(res.fun.tolist())) == 16  # the seeds and rates do differ


def test_torch_batch_equals_runs_alone():
    torch = pytest.importorskip("torch")
    x0 = torch.full((4,), 2.0, dtype=torch.float64)
    res = fit_batch(ES("snes", max_generations=15), sphere, x0, seeds=[3, 5], grid=GRID)
    for i, params in enumerate(res.params):
        alone = _alone(params, x0, sphere, max_generations=15)
        # to float tolerance: the vmapped tell's batched matrix products may round differently from
        # the lone tell's (bit-identical on some CPUs, not on others)
        torch.testing.assert_close(res.estimators[i].x_, alone.x_, rtol=1e-12, atol=1e-15)
        assert res.fun[i] == pytest.approx(alone.fun_, rel=1e-12)


def test_jax_batch_of_8_seeds_x_2_rates_equals_16_runs_to_float_tolerance():
    """Both rates in one vectorised program (lr_sigma is traced per run)."""
    jnp = pytest.importorskip("jax.numpy")

    def f(X):
        return (X ** 2).sum(axis=1)

    x0 = jnp.full(3, 2.0)
    settings = dict(max_generations=200, ftarget=1e-4)
    res = fit_batch(ES("snes", **settings), f, x0, seeds=SEEDS, grid=GRID)
    assert res.fast_path == "batched" and res.n_programs == 1  # the rates are traced per run: one program
    assert len(set(res.n_generations.tolist())) > 1  # the runs stop at different generations
    for i, params in enumerate(res.params):
        alone = _alone(params, x0, f, **settings)
        assert alone.fast_path_ == "compiled_loop"
        assert res.stop_reason[i] == alone.stop_reason_ == "ftarget"
        assert res.n_generations[i] == alone.n_generations_  # stops exactly where it would alone
        np.testing.assert_allclose(res.fun[i], alone.fun_, rtol=1e-3)
        np.testing.assert_allclose(res.x[i], np.asarray(alone.x_), rtol=1e-3, atol=1e-5)
        np.testing.assert_allclose([h["best"] for h in res.histories[i]], [h["best"] for h in alone.history_],
                                   rtol=1e-3)


@pytest.mark.slow
def test_shape_changing_parameters_make_one_program_each():
    jnp = pytest.importorskip("jax.numpy")

    def f(X):
        return (X ** 2).sum(axis=1)

    res = fit_batch(ES("snes", max_generations=5), f, jnp.ones(3), seeds=2, grid={"popsize": [6, 10]})
    assert res.n_programs == 2
    assert res.n_evals.tolist() == [30, 30, 50, 50]
    # a strategy that reads lr_sigma on the host (float()): one program per value, same results as alone
    res = fit_batch(ES(HostRateSNES(), max_generations=5), f, jnp.ones(3), seeds=2, grid=GRID)
    assert res.n_programs == 2
    assert [e.strategy_.strategy.lr_sigma for e in res.estimators] == [0.1, 0.1, 0.3, 0.3]  # each its own copy
    for i, params in enumerate(res.params):
        alone = ES(HostRateSNES(lr_sigma=params["strategy__lr_sigma"]), max_generations=5,
                   random_state=params["random_state"]).fit(f, jnp.ones(3))
        np.testing.assert_allclose(res.fun[i], alone.fun_, rtol=1e-4)


class HostRateSNES(SNES):
    """SNES reading its rate on the host, as a third-party strategy might."""

    def resolved_lr_sigma(self, dim: int) -> float:
        return 0.2 if self.lr_sigma is None else float(self.lr_sigma)


@pytest.mark.slow
def test_runs_the_compiled_loop_does_not_apply_to_are_fitted_alone():
    jnp = pytest.importorskip("jax.numpy")

    def f(X):
        return (X ** 2).sum(axis=1)

    # compiled_loop=False: the host loop (bounds, this test's first choice, run compiled since)
    res = fit_batch(ES("snes", max_generations=6), f, jnp.ones(3), seeds=1,
                    grid={"compiled_loop": ["auto", False]})
    assert res.fast_path == "batched" and [e.fast_path_ for e in res.estimators] == ["batched", None]
    alone = ES("snes", max_generations=6, compiled_loop=False, random_state=0).fit(f, jnp.ones(3))
    assert res.fun[1] == alone.fun_


def test_grid_vocabulary_and_sklearn_parameter_grid():
    assert expand_grid({"b": [1, 2], "a": [0]}) == [{"a": 0, "b": 1}, {"a": 0, "b": 2}]
    sklearn = pytest.importorskip("sklearn.model_selection")
    grid = {"popsize": [6, 8], "sigma0": [1.0]}
    assert expand_grid(sklearn.ParameterGrid(grid)) == expand_grid(grid)
    with pytest.raises(InvalidArgumentError, match="grid must make at least one combination"):
        expand_grid(sklearn.ParameterGrid([]))  # was an IndexError in fit_batch
    with pytest.raises(InvalidTypeError, match=r"grid's names must be parameter names \(str\), got 3"):
        expand_grid([{3: 1}])  # an iterable of combinations (as ParameterGrid yields them)


def test_generators_as_grid_and_seeds_are_read_once():
    """A generator of combinations (as ParameterGrid yields them) and of seeds: the runs of the lists."""
    es, x0 = ES("snes", max_generations=3), np.ones(3)
    want = fit_batch(es, sphere, x0, seeds=[1, 2], grid=[{"popsize": [6, 8]}])
    got = fit_batch(es, sphere, x0, seeds=(s for s in [1, 2]), grid=({"popsize": p} for p in [6, 8]))
    assert got.params == want.params and got.fun.tolist() == want.fun.tolist()
    assert expand_grid(filter(lambda c: c["popsize"] > 6, [{"popsize": 6}, {"popsize": 8}])) == [{"popsize": 8}]


def test_generator_of_grid_dicts_is_told_how_to_have_its_lists_combined():
    # was "popsize must be an int or None, got [6, 8]", naming neither grid nor why a list reached popsize
    with pytest.raises(InvalidTypeError, match=r"popsize must be an int or None, got \[6, 8\]; grid \(a generator\) "
                       r"yields the combinations themselves, so 'popsize' was given the whole list \[6, 8\]: pass a "
                       r"dict of lists or a list of such dicts"):
        fit_batch(ES("snes", max_generations=3), sphere, np.ones(3), grid=(g for g in [{"popsize": [6, 8]}]))
    # an entry that is not a dict: was Python's "TypeError: 'int' object is not iterable"
    with pytest.raises(InvalidTypeError, match=r"grid must be .* an iterable of combinations .*; it yielded 6 of type int"):
        fit_batch(ES("snes", max_generations=3), sphere, np.ones(3), grid=iter([6, 8]))


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(grid={"popsize": 8}), InvalidArgumentError, r"grid\['popsize'\] must be a non-empty list"),
    (dict(grid={"popsize": []}), InvalidArgumentError, r"grid\['popsize'\]"),
    (dict(grid={"random_state": [1]}), InvalidArgumentError, "seeds="),
    (dict(grid="popsize"), InvalidTypeError, "grid must be a dict"),
    # an empty list of grids made no run: was an IndexError from fit_batch's own code
    (dict(grid=[]), InvalidArgumentError, r"grid must make at least one combination \(None or \{\} for one run"),
    # a name that is not a string: was Python's TypeError 'keywords must be strings'
    (dict(grid={1: [6]}), InvalidTypeError, r"grid's names must be parameter names \(str\), got 1 of type int"),
    (dict(grid=[{"popsize": [6]}, {("sigma0",): [1.0]}]), InvalidTypeError, r"got \('sigma0',\) of type tuple"),
    (dict(seeds=0), InvalidArgumentError, "seeds must be"),
    (dict(seeds=[1.5]), InvalidArgumentError, "seeds must be"),
    # was 'random_state must be >= 0, got -1', naming a parameter the call did not pass
    (dict(seeds=[3, -1]), InvalidArgumentError, r"seeds must be non-negative ints \(each run's random_state\), got -1"),
    (dict(grid={"popsiz": [8]}), InvalidArgumentError, "popsize"),
    (dict(devices="gpu"), InvalidArgumentError, "devices must be"),
    # the class, not an instance: was "ES.get_params() missing 1 required positional argument: 'self'"
    (dict(es=ES), InvalidTypeError, r"es must be an evostrat ES \(the template of the runs, ES\(...\)\), got the class ES"),
    (dict(devices=["cpu"]), InvalidArgumentError, "devices must be"),
    # more runs than any memory holds: was a MemoryError listing range(10**15) (or minutes of swapping)
    (dict(seeds=10**15), InvalidArgumentError, r"seeds=1000000000000000 makes 1000000000000000 runs: at 512 bytes"),
    (dict(grid={"popsize": list(range(4, 10**6)), "sigma0": [1.0] * 10**6, "tolx": [0.0] * 10**6}),
     InvalidArgumentError, r"grid makes 999996000000000000 runs"),
    (dict(seeds=10**6, grid={"popsize": list(range(4, 10**4 + 4))}), InvalidArgumentError,
     r"10000 grid combinations x 1000000 seeds makes 10000000000 runs"),
])
def test_bad_batch_arguments_are_named(kwargs, error, match):
    x0 = np.ones(3)
    if "devices" in kwargs:
        pytest.importorskip("jax")
        import jax.numpy as jnp

        x0 = jnp.ones(3)
    es = kwargs.pop("es", ES("snes", max_generations=2))
    with pytest.raises(error, match=match):
        fit_batch(es, lambda X: (X ** 2).sum(axis=1), x0, **kwargs)


@pytest.mark.parametrize("devices", ["gpu", [], ["cpu"]])
def test_devices_are_checked_also_when_no_jax_batch_runs(devices):
    """A numpy batch (a loop of ES.fit) ignored any devices= (it is read only where a JAX batch runs)."""
    with pytest.raises(InvalidArgumentError, match="devices must be 'auto', None or a non-empty list of JAX devices"):
        fit_batch(ES("snes", max_generations=2), lambda X: (X ** 2).sum(axis=1), np.ones(3), devices=devices)


def test_seed_list():
    assert seed_list(2) == [0, 1] and seed_list(np.array([4, 2])) == [4, 2]


SHARDED = textwrap.dedent("""
    import json, jax, jax.numpy as jnp, numpy as np
    from evostrat import ES
    from evostrat.run.batch import fit_batch
    f = lambda X: (X ** 2).sum(axis=1)
    # every second generation decomposes C: the decision is one for the runs on all four devices
    es = ES("cma_es", max_generations=60, ftarget=1e-6, strategy_options=dict(lazy_eigen=2))
    one = fit_batch(es, f, jnp.full(4, 2.0), seeds=6, devices=None)
    four = fit_batch(es, f, jnp.full(4, 2.0), seeds=6)
    big = ES("cma_es", popsize=10, max_generations=30)  # one run: its population is split instead
    solo = [fit_batch(big, f, jnp.full(6, 2.0), seeds=[5], devices=d).fun[0] for d in (None, "auto")]
    print(json.dumps({"devices": jax.device_count(), "one": one.fun.tolist(), "four": four.fun.tolist(),
                      "gens": [one.n_generations.tolist(), four.n_generations.tolist()],
                      "x": float(np.abs(one.x - four.x).max()), "solo": solo}))
""")


@pytest.mark.slow
def test_sharded_over_four_host_devices_equals_one_device():
    pytest.importorskip("jax")
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu",
           "JAX_ENABLE_X64": "1"}
    out = subprocess.run([sys.executable, "-c", SHARDED], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["devices"] == 4
    assert got["gens"][0] == got["gens"][1]
    np.testing.assert_allclose(got["four"], got["one"], rtol=1e-9)
    assert got["x"] < 1e-9
    assert got["solo"][1] == pytest.approx(got["solo"][0], rel=1e-9)


def test_families_label_runs_that_differ_only_in_the_seed():
    """run_batched(families=): the group of a family is found once; the runs are those found alone."""
    jnp = pytest.importorskip("jax.numpy")
    from evostrat.run.batch_jax import run_batched

    def f(X):
        return (X ** 2).sum(axis=1)

    def drivers():
        return [ES("snes", max_generations=4, random_state=s).initialize(jnp.ones(3)).run_ for s in range(3)]

    labelled, plain = drivers(), drivers()
    assert run_batched(labelled, f, None, families=[0, 0, 0]) == run_batched(plain, f, None) == 1
    assert [d.state.best_f for d in labelled] == [d.state.best_f for d in plain]
    with pytest.raises(InvalidArgumentError, match="one label per driver"):
        run_batched(drivers(), f, None, families=[0])


def test_uncommitted_jax_x0_gives_the_runs_of_a_committed_one():
    jax = pytest.importorskip("jax")
    x0 = jax.numpy.full(3, 2.0)
    assert not x0.committed
    es = ES("snes", max_generations=4)
    a = fit_batch(es, lambda X: (X ** 2).sum(axis=1), x0, seeds=2)
    b = fit_batch(es, lambda X: (X ** 2).sum(axis=1), jax.device_put(x0, jax.devices()[0]), seeds=2)
    assert a.fun.tolist() == b.fun.tolist() and a.fast_path == b.fast_path == "batched"


def test_a_numeric_hyper_parameter_that_changes_the_state_s_shapes_makes_one_program_per_value():
    """LM-MA-ES's ``memory`` (an int) sets the shape of its state: runs of two values cannot be
    stacked in one program (they were, and failed to concatenate)."""
    jnp = pytest.importorskip("jax.numpy")

    def f(X):
        return (X ** 2).sum(axis=1)

    res = fit_batch(ES("lm_ma_es", max_generations=8), f, jnp.full(5, 2.0), seeds=2,
                    grid={"strategy__memory": [2, 4]})
    assert res.fast_path == "batched" and res.n_programs == 2
    for i, params in enumerate(res.params):
        alone = ES("lm_ma_es", max_generations=8).set_params(**params).fit(f, jnp.full(5, 2.0))
        np.testing.assert_allclose(res.fun[i], alone.fun_, rtol=1e-4)  # float32: batched rounding


def test_a_run_fitted_in_the_loop_warns_of_an_override_once_as_alone():
    """A numpy batch (a loop of ES.fit on runs initialize_runs had initialised) warned each run's
    ParameterOverrideWarning twice: 6 warnings for 3 runs, each of which alone warns once."""
    es = ES("cma_es", max_generations=3, popsize=6, strategy_options={"popsize": 8})
    with warnings.catch_warnings(record=True) as alone:
        warnings.simplefilter("always")
        ES(**{**es.get_params(deep=False), "random_state": 0}).fit(sphere, np.ones(3))
    with warnings.catch_warnings(record=True) as batch:
        warnings.simplefilter("always")
        res = fit_batch(es, sphere, np.ones(3), seeds=3)
    overrides = [str(w.message) for w in batch if issubclass(w.category, ParameterOverrideWarning)]
    assert [str(w.message) for w in alone] == ["ES(popsize=6) overrides the popsize=8 given to the strategy "
                                              "'cma_es'; the run uses popsize=6"]
    assert overrides == [str(alone[0].message)] * 3 and res.n_evals.tolist() == [18, 18, 18]


ON_ANOTHER_DEVICE = textwrap.dedent("""
    import json, os, tempfile
    import jax, jax.numpy as jnp
    from evostrat import ES, fit_batch
    from evostrat.checkpoint import save_checkpoint

    def f(X):
        return jnp.sum((X - 0.5) ** 2, axis=1)

    devs = jax.devices()
    home = ES("snes", max_generations=8, random_state=0).fit(f, jnp.ones(4))
    there = ES("snes", max_generations=8, random_state=0, device=devs[2]).fit(f, jnp.ones(4))
    put = ES("cma_es", max_generations=8, random_state=0, compiled_loop=False).fit(f, jax.device_put(jnp.ones(4), devs[2]))
    one = fit_batch(ES("snes", max_generations=8), f, jax.device_put(jnp.ones(4), devs[2]), seeds=1, devices=None)
    base = fit_batch(ES("snes", max_generations=8), f, jnp.ones(4), seeds=3, devices=None)
    picked = fit_batch(ES("snes", max_generations=8), f, jnp.ones(4), seeds=3, devices=[devs[3]])
    path = os.path.join(tempfile.mkdtemp(), "run.ckpt")
    save_checkpoint(ES("snes", max_generations=4, random_state=0, device=devs[2]).fit(f, jnp.ones(4)), path)
    resumed = ES.resume(path, f, max_generations=8, device=devs[2])
    print(json.dumps({"home": home.fun_, "there": there.fun_, "there_on": sorted(d.id for d in there.x_.devices()),
                      "put_on": sorted(d.id for d in put.x_.devices()), "one": float(one.fun[0]),
                      "base": base.fun.tolist(), "picked": picked.fun.tolist(), "resumed": resumed.fun_,
                      "picked_on": sorted({d.id for e in picked.estimators for d in e.x_.devices()})}))
""")


def test_runs_on_a_device_other_than_the_default_one():
    """JAX made a run's key on the default device: a run whose x0 is on another one (ES(device=),
    jax.device_put, a one-run batch of such an x0) failed with 'Received incompatible devices for
    jitted computation'; fit_batch(devices=[one device]) ran on the default device instead."""
    pytest.importorskip("jax")
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}
    out = subprocess.run([sys.executable, "-c", ON_ANOTHER_DEVICE], env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["there"] == got["home"] == got["one"] == got["base"][0] and got["there_on"] == [2]
    assert got["put_on"] == [2]
    assert got["picked"] == got["base"] and got["picked_on"] == [3]
    assert got["resumed"] == got["home"]  # resumed from a checkpoint of the run on device 2
