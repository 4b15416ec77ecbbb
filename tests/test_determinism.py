"""Determinism: same seed, same run, bit for bit (issue 10).

For every registered strategy and every backend case (numpy float64, torch
float32/float64 on the CPU, JAX float32, torch on CUDA when there is one) the
reference is ``ES(name, random_state=SEED, evaluator="vectorized").fit`` for
``GENERATIONS`` generations. Compared bit for bit with it (the whole
state after every generation, random key included, ``x_``, ``fun_``,
``n_evals_``, ``stop_reason_``, the history without timings):

- the same fit run again in this process, and in a fresh Python process with
  another hash seed (:func:`test_fresh_process_reproduces_runs_and_resumes`:
  no process-global state such as hash seeds or caches leaks into a run);
- ``evaluator="serial"`` (one call per candidate);
- ``evaluator="executor"`` on a thread pool (chunks of 3), and on a process
  pool (loky, two workers shared by the module) with ``seeded=True``: the
  strategies with ``population_seed`` (SNES, OpenAI-ES, PGPE) ship seeds that
  the workers expand (:mod:`evostrat.evaluators.seeded`), the others ship rows;
- a run interrupted after ``RESUME_AT`` generations whose ``state_dict`` goes
  through ``np.savez``/JSON (pickling refused) into a fresh ``ES`` object with
  another seed that continues with ``ask``/``tell``: the remaining populations
  equal the uninterrupted run's (in this process and in the fresh process);
- on JAX, ``ES.fit``'s compiled fast path (no callbacks) run twice.

:func:`test_the_comparison_detects_another_seed` shows the comparison can fail.

The objective sums the squares column by column, so a candidate's value is
computed by the same floating-point operations whether the evaluator passes one
row or the whole population (a library's batched reduction may otherwise round
differently from its 1-D one, which is not what this suite tests). Behaviour
strategies get ``(f(x), x_0 * x_1)``.

JAX compiles ``ask``/``tell`` per run (about 2 s per strategy the first time);
a persistent compilation cache in a temporary folder keeps the repeated
compilations cheap. To bound the default run, these JAX variants are in the
slow suite (``-m slow``): the serial evaluator, the process pool (workers
import JAX and compile the seed expansion), the fresh process, and the fast
path of strategies other than ``FAST_PATH_DEFAULT``. The default run takes
about 45 s on two cores.
"""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from array_api_compat import array_namespace
from conftest import BACKEND_CASES, BackendCase, strategy_class, strategy_names, to_numpy

from evostrat import ES
from evostrat.evaluators import ExecutorEvaluator

STRATEGIES = strategy_names()
SEED = 2024
DIM = 4
GENERATIONS = 6
RESUME_AT = 3
X0 = np.array([1.5, -0.5, 2.0, 0.25])
HISTORY_KEYS_IGNORED = {"time"}


def column_sphere(X: Any) -> Any:
    """``sum_j x_j^2`` accumulated column by column (same operations for a row or a batch)."""
    total = X[..., 0] * X[..., 0]
    for j in range(1, X.shape[-1]):
        total = total + X[..., j] * X[..., j]
    return total


def column_behaviours(X: Any) -> Any:
    """``(f(x), x_0 x_1)`` per candidate: ``(popsize, 2)`` for a batch, ``(2,)`` for a row."""
    xp = array_namespace(X)
    return xp.stack([column_sphere(X), X[..., 0] * X[..., 1]], axis=-1)


def objective_for(name: str) -> Any:
    return column_behaviours if strategy_class(name).needs_behaviours else column_sphere


# -- recording a run ------------------------------------------------------------------------------


def record(es: ES, states: list[dict[str, np.ndarray]]) -> dict[str, Any]:
    """Everything a run produced, as host arrays and plain values."""
    history = [{k: v for k, v in h.items() if k not in HISTORY_KEYS_IGNORED} for h in es.history_]
    return {
        "states": states,
        "x": to_numpy(es.x_).copy(),
        "fun": es.fun_,
        "n_evals": es.n_evals_,
        "n_generations": es.n_generations_,
        "stop_reason": es.stop_reason_,
        "history": history,
        "state": es.strategy_.state_dict()["arrays"],
    }


def fit(
    name: str, case: BackendCase, evaluator: Any = "vectorized", seed: int = SEED,
    objective: Any = None,
) -> dict[str, Any]:
    states: list[dict[str, np.ndarray]] = []

    def callback(es: ES) -> None:  # the whole state (key included) after every generation
        states.append(es.strategy_.state_dict()["arrays"])

    # the host loop on every evaluator: the compiled JAX loop evaluates the objective inside its
    # XLA program, which may round differently from evaluating it eagerly
    es = ES(name, max_generations=GENERATIONS, random_state=seed, evaluator=evaluator, compiled_loop=False)
    es.fit(objective or objective_for(name), case.array(X0), callbacks=[callback])
    return record(es, states)


def assert_same_run(a: dict[str, Any], b: dict[str, Any], what: str) -> None:
    assert len(a["states"]) == len(b["states"]) == GENERATIONS, what
    for g, (sa, sb) in enumerate(zip(a["states"], b["states"])):
        assert sa.keys() == sb.keys()
        for key in sa:
            np.testing.assert_array_equal(sa[key], sb[key], err_msg=f"{what}: {key} after generation {g}")
    np.testing.assert_array_equal(a["x"], b["x"], err_msg=f"{what}: x_")
    for key in ("n_evals", "n_generations", "stop_reason"):
        assert a[key] == b[key], (what, key, a[key], b[key])
    assert np.array_equal(np.float64(a["fun"]), np.float64(b["fun"]), equal_nan=True), (what, a["fun"], b["fun"])
    assert json.dumps(a["history"]) == json.dumps(b["history"]), f"{what}: history_"
    assert a["state"].keys() == b["state"].keys()
    for key in a["state"]:
        np.testing.assert_array_equal(a["state"][key], b["state"][key], err_msg=f"{what}: state {key}")


def roundtrip(state_dict: dict[str, Any]) -> dict[str, Any]:
    """A state_dict through npz (pickles refused) and JSON, as a checkpoint file would go."""
    buf = io.BytesIO()
    np.savez(buf, **state_dict["arrays"])
    buf.seek(0)
    with np.load(buf, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(json.dumps({k: v for k, v in state_dict.items() if k != "arrays"}))
    return {**meta, "arrays": arrays}


def ask_tell_run(name: str, case: BackendCase, resume_from: dict | None = None) -> tuple[list, dict | None]:
    """Populations of a manual ask/tell run; with ``resume_from``, continued from that state_dict.

    Returns the populations asked and the ``state_dict`` taken after ``RESUME_AT`` generations.
    """
    objective = objective_for(name)
    es = ES(name, random_state=SEED if resume_from is None else SEED + 1).initialize(case.array(X0))
    start = 0
    if resume_from is not None:
        es.strategy_.load_state_dict(roundtrip(resume_from))
        start = RESUME_AT
    asked, saved = [], None
    for g in range(start, GENERATIONS):
        if g == RESUME_AT and resume_from is None:
            saved = es.strategy_.state_dict()
        X = es.ask()
        asked.append(to_numpy(X).copy())
        es.tell(X, objective(X))
    return asked, saved


# -- fixtures ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def jax_cache_dir(tmp_path_factory: pytest.TempPathFactory):
    """A persistent JAX compilation cache for this module (and the fresh process)."""
    path = tmp_path_factory.mktemp("jax_cache")
    try:
        import jax
    except ImportError:  # pragma: no cover - jax is a dev dependency
        yield path
        return
    from jax.experimental.compilation_cache import compilation_cache

    names = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs")
    old = {n: getattr(jax.config, n) for n in names}
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    yield path
    for n, value in old.items():
        jax.config.update(n, value)
    compilation_cache.reset_cache()


@pytest.fixture(scope="module")
def process_pool():
    """Two worker processes shared by the module (loky: lambdas and closures travel)."""
    from joblib.externals.loky import ProcessPoolExecutor

    pool = ProcessPoolExecutor(max_workers=2)
    yield pool
    pool.shutdown(wait=True)


_REFERENCE: dict[tuple[str, str], dict[str, Any]] = {}


@pytest.fixture
def reference(name: str, case: BackendCase, jax_cache_dir: Path) -> dict[str, Any]:
    key = (name, case.id)
    if key not in _REFERENCE:
        _REFERENCE[key] = fit(name, case)
    return _REFERENCE[key]


# -- the tests -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", STRATEGIES)
@pytest.mark.parametrize("case", BACKEND_CASES)
def test_repeated_fit_is_identical(name: str, case: BackendCase, reference: dict) -> None:
    assert_same_run(reference, fit(name, case), "second fit")


@pytest.mark.parametrize("name", STRATEGIES)
def test_the_comparison_detects_another_seed(name: str) -> None:
    """The comparison can fail: another seed, or one value changed in the last generation, is caught."""
    case = BackendCase("numpy", "numpy", "float64")
    a = fit(name, case)
    with pytest.raises(AssertionError):
        assert_same_run(a, fit(name, case, seed=SEED + 1), "another seed")
    objective = objective_for(name)

    def nudged(X: Any) -> Any:  # in the last generation candidate 0 gets a better value
        out = np.array(objective(X), dtype=np.float64)
        calls.append(1)
        if len(calls) == GENERATIONS:
            out.reshape(-1)[0] = out.min() - 1.0
        return out

    calls: list[int] = []
    with pytest.raises(AssertionError):
        assert_same_run(a, fit(name, case, objective=nudged), "one value nudged")


def pairs(slow_on_jax: Any = lambda name: False, cuda: bool = True) -> list[Any]:
    """(name, case) parameters; ``slow_on_jax(name)`` moves the JAX case to ``-m slow``."""
    out = []
    for case_param in BACKEND_CASES:
        case = case_param.values[0]
        if case.device == "cuda" and not cuda:
            continue
        for name in STRATEGIES:
            marks = list(case_param.marks)
            if case.backend == "jax" and slow_on_jax(name):
                marks.append(pytest.mark.slow)
            out.append(pytest.param(name, case, marks=marks, id=f"{case.id}-{name}"))
    return out


@pytest.mark.parametrize("name, case", pairs(slow_on_jax=lambda name: True))
def test_serial_matches_vectorized(name: str, case: BackendCase, reference: dict) -> None:
    assert_same_run(reference, fit(name, case, "serial"), "evaluator='serial'")


@pytest.mark.parametrize("name, case", pairs())
def test_thread_executor_matches_vectorized(name: str, case: BackendCase, reference: dict) -> None:
    with ThreadPoolExecutor(max_workers=3) as pool:
        threads = fit(name, case, ExecutorEvaluator(executor=pool, chunksize=3))
    assert_same_run(reference, threads, "executor on a thread pool")


@pytest.mark.parametrize("name, case", pairs(slow_on_jax=lambda name: True, cuda=False))
def test_process_executor_matches_vectorized(
    name: str, case: BackendCase, reference: dict, process_pool: Any
) -> None:
    # seeded=True: strategies with population_seed ship seeds that workers expand, the
    # others (and populations off the CPU) ship rows
    seeded = ExecutorEvaluator(executor=process_pool, seeded=True)
    assert_same_run(reference, fit(name, case, seeded), "executor on processes")


#: Strategies whose JAX fast path (ES.fit's compiled loop) runs in the default suite.
FAST_PATH_DEFAULT = ("cma_es", "snes")


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=() if n in FAST_PATH_DEFAULT else pytest.mark.slow)
     for n in STRATEGIES if not strategy_class(n).needs_behaviours],
)
def test_jax_compiled_loop_is_repeatable(name: str, jax_cache_dir: Path) -> None:
    """ES.fit's JAX fast path (whole chunks in one lax.scan) gives the same run twice."""
    pytest.importorskip("jax")
    import jax.numpy as jnp

    runs = []
    for _ in range(2):
        es = ES(name, max_generations=40, random_state=SEED).fit(column_sphere, jnp.asarray(X0))
        assert es.fast_path_ == "compiled_loop"
        runs.append(es)
    a, b = runs
    np.testing.assert_array_equal(to_numpy(a.x_), to_numpy(b.x_))
    assert a.fun_ == b.fun_ and a.n_generations_ == b.n_generations_ and a.stop_reason_ == b.stop_reason_
    strip = lambda h: [{k: v for k, v in e.items() if k not in HISTORY_KEYS_IGNORED} for e in h]  # noqa: E731
    assert json.dumps(strip(a.history_)) == json.dumps(strip(b.history_))
    sa, sb = a.strategy_.state_dict()["arrays"], b.strategy_.state_dict()["arrays"]
    for key in sa:
        np.testing.assert_array_equal(sa[key], sb[key], err_msg=key)


@pytest.mark.parametrize("name", STRATEGIES)
@pytest.mark.parametrize("case", BACKEND_CASES)
def test_resume_from_state_dict_mid_run(name: str, case: BackendCase, jax_cache_dir: Path) -> None:
    full, saved = ask_tell_run(name, case)
    assert saved is not None and saved["generation"] == RESUME_AT
    resumed, _ = ask_tell_run(name, case, resume_from=saved)
    assert len(resumed) == GENERATIONS - RESUME_AT
    for g, (a, b) in enumerate(zip(full[RESUME_AT:], resumed)):
        np.testing.assert_array_equal(a, b, err_msg=f"population {RESUME_AT + g} after resuming")


FRESH_PROCESS = """
import json, sys
import numpy as np
sys.path.insert(0, {tests!r})
if {jax!r}:
    import jax
    jax.config.update("jax_compilation_cache_dir", {cache!r})
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
import test_determinism as t
from conftest import BACKEND_CASES
cases = {{p.values[0].id: p.values[0] for p in BACKEND_CASES}}
out = {{}}
for name, case_id in json.loads({pairs!r}):
    case = cases[case_id]
    run = t.fit(name, case)
    saved = np.load({saved!r} + f"/{{name}}-{{case_id}}.npz", allow_pickle=False)
    meta = json.load(open({saved!r} + f"/{{name}}-{{case_id}}.json"))
    resumed, _ = t.ask_tell_run(name, case, resume_from={{**meta, "arrays": dict(saved)}})
    for g, state in enumerate(run["states"]):
        for key, value in state.items():
            out[f"{{name}}|{{case_id}}|fit|{{g}}|{{key}}"] = value
    out[f"{{name}}|{{case_id}}|fit|x"] = run["x"]
    for key, value in run["state"].items():
        out[f"{{name}}|{{case_id}}|state|{{key}}"] = value
    for g, X in enumerate(resumed):
        out[f"{{name}}|{{case_id}}|resumed|{{g}}"] = X
np.savez({result!r}, **out)
print("done", len(out))
"""


@pytest.mark.parametrize(
    "libraries", [pytest.param(("numpy", "torch"), id="numpy-torch"),
                  pytest.param(("jax",), id="jax", marks=pytest.mark.slow)]
)
def test_fresh_process_reproduces_runs_and_resumes(
    libraries: tuple[str, ...], tmp_path: Path, jax_cache_dir: Path
) -> None:
    """Another Python process (new hash seed) gives the same runs and resumes this one's state_dicts."""
    cases = [p.values[0] for p in BACKEND_CASES
             if p.values[0].device != "cuda" and p.values[0].backend in libraries]
    available = []
    for case in cases:
        try:
            case.array(X0)
        except ImportError:  # pragma: no cover - the library of that case is missing
            continue
        available.append(case)
    pairs, expected, resumed_expected = [], {}, {}
    for case in available:
        for name in STRATEGIES:
            pairs.append((name, case.id))
            if (name, case.id) not in _REFERENCE:
                _REFERENCE[(name, case.id)] = fit(name, case)
            expected[(name, case.id)] = _REFERENCE[(name, case.id)]
            full, saved = ask_tell_run(name, case)
            resumed_expected[(name, case.id)] = full[RESUME_AT:]
            np.savez(tmp_path / f"{name}-{case.id}.npz", **saved["arrays"])
            (tmp_path / f"{name}-{case.id}.json").write_text(
                json.dumps({k: v for k, v in saved.items() if k != "arrays"})
            )
    result = tmp_path / "result.npz"
    code = FRESH_PROCESS.format(
        tests=str(Path(__file__).parent), cache=str(jax_cache_dir), pairs=json.dumps(pairs),
        jax="jax" in libraries,
        saved=str(tmp_path), result=str(result),
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-4000:]
    with np.load(result, allow_pickle=False) as got:
        for (name, case_id), run in expected.items():
            for g, state in enumerate(run["states"]):
                for key, value in state.items():
                    np.testing.assert_array_equal(
                        got[f"{name}|{case_id}|fit|{g}|{key}"], value, err_msg=f"{name} {case_id} {g} {key}"
                    )
            np.testing.assert_array_equal(got[f"{name}|{case_id}|fit|x"], run["x"])
            for key, value in run["state"].items():
                np.testing.assert_array_equal(got[f"{name}|{case_id}|state|{key}"], value)
            for g, X in enumerate(resumed_expected[(name, case_id)]):
                np.testing.assert_array_equal(
                    got[f"{name}|{case_id}|resumed|{g}"], X, err_msg=f"{name} {case_id} resumed {g}"
                )
