"""The driver's generations on the host: ask -> evaluate -> tell -> record, one at a time.

:func:`host_loop` is what :meth:`Driver.run_loop <evostrat.run.driver.Driver.run_loop>` runs
when the compiled JAX chunks (:mod:`evostrat.run.compiled`) do not apply. Around the
driver's ``ask``/``tell`` it owns the evaluation of each generation: the evaluator
(``ES(evaluator=...)``, wrapped for reevaluations and noise handling by
:mod:`evostrat.run.noise`), seeded populations and their replay log
(:mod:`evostrat.evaluators.seeded`, :mod:`evostrat.evaluators.replay`), the constraint values
(:func:`split_constraints`), undoing an interrupted generation, and the observers
(:class:`~evostrat.callbacks.hooks.RunHooks`) between generations.

Examples
--------
>>> import numpy as np
>>> from evostrat import ES
>>> from evostrat.problems import sphere
>>> from evostrat.run.driver import Driver
>>> driver = Driver(ES("snes", max_generations=3, random_state=0, compiled_loop=False), np.ones(2))
>>> host_loop(driver, sphere, None)
>>> driver.state.n_generations, driver.settled
(3, True)
"""

from __future__ import annotations

from typing import Any, Callable

from evostrat.constraints.base import evaluate_constraints
from evostrat.errors import InvalidArgumentError, InvalidTypeError
from evostrat.plugins.factories import make_evaluator
from evostrat.run.asktell import AskTell
from evostrat.run.behaviours import Outcome
from evostrat.run.noise import noise_evaluator

__all__ = ["host_loop", "plugin_values_error", "split_constraints"]

CHECK_VALUES = AskTell.check_values.__code__  # the check of the values (or behaviours) an evaluator returned


def split_constraints(driver: Any, X: Any, values: Any) -> tuple[Any, Any]:
    """``(fitness, G)`` of a population ``X`` evaluated to ``values`` in ``driver``'s run.

    ``G`` comes from ``driver.constraint_fn(x)`` per candidate, or from the objective's
    ``(f, g)`` (``constraints="objective"``); without constraints it is ``None``.

    Raises
    ------
    InvalidArgumentError
        With ``constraints="objective"``, when the objective did not return ``(f, g)``.
    """
    if driver.constraint_fn is None:
        return values, None
    if not isinstance(driver.constraint_fn, str):
        return values, evaluate_constraints(driver.constraint_fn, driver.runner.backend.to_numpy(X))
    if not isinstance(values, Outcome) or values.fitness is None:
        raise InvalidArgumentError("with constraints='objective' the objective must return (f, g) per "
                                   "candidate (or (F, G) for the population), g the constraint values")
    return values.fitness, driver.runner.backend.to_numpy(values.behaviours)


#: The wording of the behaviour checks, and what it is for the g of ``constraints="objective"``.
_CONSTRAINT_WORDS = (("a behaviour vector of shape (k,)", "constraint values g of shape (m,)"),
                     ("behaviour vectors", "constraint vectors g"), ("behaviour values", "constraint values"),
                     ("behaviours", "constraint values g"), ("length k", "length m"), (", k)", ", m)"))


def constraint_values_error(error: BaseException) -> BaseException | None:
    """``error``, raised checking the ``(f, g)`` of a ``constraints="objective"`` run, in its words.

    The objective's ``(f, g)`` is read as strategies that need behaviours read ``(fitness,
    behaviours)``; the checks' errors speak of behaviours. ``None`` for any other error.

    Examples
    --------
    >>> from evostrat.errors import InvalidTypeError
    >>> err = constraint_values_error(InvalidTypeError("objective must return a behaviour vector of shape (k,) "
    ...                                                "for candidate 0"))
    >>> type(err).__name__, str(err).split(": ", 1)[1]
    ('InvalidTypeError', 'objective must return constraint values g of shape (m,) for candidate 0')
    """
    if not isinstance(error, (InvalidArgumentError, InvalidTypeError)) or "behaviour" not in str(error):
        return None
    message = str(error)
    for said, meant in _CONSTRAINT_WORDS:
        message = message.replace(said, meant)
    return type(error)(f"with constraints='objective' the objective returns (f, g), g the constraint values: {message}")


def plugin_values_error(error: BaseException, setting: Any, evaluator: Any) -> BaseException | None:
    """``error`` (raised checking the values ``evaluator`` returned) naming that evaluator, when it is a plugin's.

    Parameters
    ----------
    error : BaseException
        What a generation raised.
    setting : str or Evaluator
        ``ES(evaluator=...)``: a registered name or the instance.
    evaluator : Evaluator
        The evaluator the run made of it (before the noise wrappers).

    Returns
    -------
    BaseException or None
        An error of ``error``'s class whose message starts with the evaluator's name and class;
        ``None`` when ``evaluator`` is one of evostrat's own, or ``error`` did not come from the check.
    """
    module = type(evaluator).__module__
    if module == "evostrat" or module.startswith("evostrat.") or type(error) not in (InvalidArgumentError,
                                                                                        InvalidTypeError):
        return None
    tb = error.__traceback__
    while tb is not None and tb.tb_frame.f_code is not CHECK_VALUES:
        tb = tb.tb_next
    if tb is None:
        return None
    cls = type(evaluator).__qualname__
    name = f"evaluator {setting!r} ({cls})" if isinstance(setting, str) else f"evaluator {cls}"
    return type(error)(f"{name} returned values the run cannot use: {error}")


def host_loop(driver: Any, objective: Callable, hooks: Any, observer: Any = None) -> None:
    """Run ``driver`` (a :class:`~evostrat.run.driver.Driver`) on the host until it stops.

    Parameters
    ----------
    driver : Driver
        The run; its ``state.stop_reason`` ends the loop.
    objective : callable
        The objective, already taking flat candidates.
    hooks : RunHooks or None
        The observers, called between generations with ``observer``.
    observer : ES, optional
        What the observers get: the estimator of the run.
    """
    from evostrat.evaluators.replay import ReplayLog
    from evostrat.evaluators.seeded import population_seed
    from evostrat.evaluators.sync import generation  # a learning objective's state: fixed within a generation

    s = driver.config
    plugin = make_evaluator(s.evaluator, s.evaluator_options)
    evaluator = noise_evaluator(driver, plugin)
    evaluator.behaviours = driver.runner.strategy.needs_behaviours or isinstance(driver.constraint_fn, str)
    seeded = getattr(evaluator, "accepts_seed", False) and driver.bounds is None  # evostrat.evaluators.seeded
    replay = ReplayLog() if seeded and getattr(evaluator, "accepts_replay", False) else None
    observed = hooks is not None and hooks.observers
    one_generation = generation(objective)  # entered each generation
    try:
        if hooks is not None:
            hooks.start(observer)
        while driver.state.stop_reason is None:
            runner = driver.runner
            extra = {"seed": population_seed(runner)} if seeded else {}
            if replay is not None:
                extra["replay"] = replay.step(runner)
            driver.settled = False  # until the generation is recorded, or undone
            try:  # KeyboardInterrupt too: back to the last finished generation
                X = driver.ask()
                extra = {} if runner.injected_rows else extra  # injected rows are not the seed's: plain
                with one_generation:
                    values = evaluator.evaluate(objective, X, runner.backend, **extra)
                told = driver.tell(X, *split_constraints(driver, X, values))
            except BaseException as error:
                driver.settled = driver.unask()  # False: interrupted mid-tell, no final checkpoint of it
                if isinstance(driver.constraint_fn, str):
                    worded = constraint_values_error(error)  # read as behaviours: say constraint values
                    if worded is not None:
                        raise worded from error
                named = plugin_values_error(error, s.evaluator, plugin)  # a plugin's values: name it
                if named is None:
                    raise
                raise named from error
            if driver.noise is not None:
                driver.noise.record(driver.state.history[-1])  # the noise measure, with noise handling
            if replay is not None:
                replay.told(runner, told)  # a restart in tell starts a new runner: a new run id
            driver.settled = True
            if observed:  # without callbacks, progress or checkpoints a generation has nothing to call
                hooks.generation(observer)  # callbacks (may stop), progress, checkpoint
    finally:
        try:
            evaluator.close()  # a second Ctrl-C while an owned pool shuts down, a failing close...
        finally:  # ...still end the observers: loggers closed, the last checkpoint written
            if hooks is not None:
                hooks.end(observer)
