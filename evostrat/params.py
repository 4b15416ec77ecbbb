"""scikit-learn's parameter protocol without importing scikit-learn.

Hyper-parameter objects (strategies, evaluators) list their parameters as the keyword
arguments of ``__init__`` and store them unchanged under the same names; :class:`Params`
then provides ``get_params``/``set_params`` as scikit-learn's ``BaseEstimator`` does (so
``clone`` and nested ``set_params(strategy__lr=...)`` work), and ``validate_params``,
which checks the ``parameter_constraints`` a class lists, like scikit-learn's
``_parameter_constraints``: parameter name -> the constraints a value may satisfy (an
:class:`Interval`, :class:`StrOptions`, :class:`Satisfies`, ``None``, ``callable`` or a
type). :func:`check_params` checks any object's attributes against such a dict.

Examples
--------
>>> from numbers import Real
>>> from evostrat.params import Interval, Params
>>> class Knobs(Params):
...     parameter_constraints = {"lr": [Interval(Real, 0, None, closed="neither")]}
...     def __init__(self, lr=0.1, decay=1.0):
...         self.lr, self.decay = lr, decay
>>> Knobs().set_params(lr=0.5).get_params()
{'decay': 1.0, 'lr': 0.5}
>>> Knobs(lr=0.0).validate_params()
Traceback (most recent call last):
...
evostrat.errors.InvalidArgumentError: Knobs: lr must be a positive number, got 0.0
"""

from __future__ import annotations

import functools
import inspect
import math
import reprlib
from numbers import Integral, Real
from typing import Any, Callable, ClassVar, Iterable, Mapping

from evostrat.errors import InvalidArgumentError, InvalidTypeError, did_you_mean
from evostrat.run.memo import Memo, plain_key

_MISSING, _VALID = object(), Memo()  # a constrained name the owner does not have; (class, plain values) -> constraints
__all__ = ["PYCMA_NAMES", "restarts_hint", "Interval", "Params", "Satisfies", "StrOptions", "check_params", "known_keywords",
           "unknown_parameter"]


#: Types no number has (told at once, where an ABC check of ``Real`` takes microseconds).
_NOT_NUMBERS = (str, type(None), bool, dict, list, tuple)


class Interval:
    """Finite numbers of type ``kind`` (``bool`` excluded) from ``left`` to ``right``.

    A bound of ``None`` is unbounded; ``closed`` is ``"both"``, ``"left"``, ``"right"`` or ``"neither"``.

    Examples
    --------
    >>> from numbers import Real
    >>> str(Interval(Real, 0, 1, closed="right")), 1.0 in Interval(Real, 0, 1, closed="right")
    ('a number in (0, 1]', True)
    """

    def __init__(self, kind: type, left: float | None, right: float | None,
                 *, closed: str = "both") -> None:
        self.kind, self.left, self.right, self.closed = kind, left, right, closed
        #: Python types of ``kind`` told without the ABC check (``bool`` is its own type)
        self.plain_types = (int, float) if kind is Real else (int,) if kind is Integral else ()

    def matches_type(self, value: Any) -> bool:
        """Whether ``value`` has the right type (so a miss is a wrong value, not type)."""
        kind = type(value)
        if kind in self.plain_types or kind in _NOT_NUMBERS:  # without the ABC check
            return kind in self.plain_types
        return isinstance(value, self.kind) and not isinstance(value, bool)

    def __contains__(self, value: Any) -> bool:
        if not self.matches_type(value) or not math.isfinite(value):
            return False
        low = self.left is None or value > self.left or (value == self.left and self.closed in ("both", "left"))
        return low and (self.right is None or value < self.right
                        or (value == self.right and self.closed in ("both", "right")))

    def __str__(self) -> str:
        noun = "an int" if self.kind is Integral else "a number"
        if self.left is None and self.right is None:
            return f"a finite {noun.split()[1]}"
        if self.left == 0 and self.right is None:
            sign = "a positive" if self.closed in ("neither", "right") else "a non-negative"
            return f"{sign} {noun.split()[1]}"
        lo = "[" if self.closed in ("both", "left") and self.left is not None else "("
        hi = "]" if self.closed in ("both", "right") and self.right is not None else ")"
        left = "-inf" if self.left is None else f"{self.left:g}"
        return f"{noun} in {lo}{left}, {'inf' if self.right is None else format(self.right, 'g')}{hi}"


class StrOptions(tuple):
    """One of a few strings (sorted).

    Examples
    --------
    >>> str(StrOptions({"b", "a"})), str(StrOptions({"mean"})), "a" in StrOptions({"a"})
    ("one of ('a', 'b')", "'mean'", True)
    """

    def __new__(cls, options: Iterable[str]) -> "StrOptions":
        return super().__new__(cls, sorted(options))

    def matches_type(self, value: Any) -> bool:
        """Whether ``value`` is a string (so a miss is a wrong value, not type)."""
        return isinstance(value, str)

    def __str__(self) -> str:
        return repr(self[0]) if len(self) == 1 else f"one of {tuple(self)}"


class Satisfies:
    """Values for which ``test(value)`` holds, described as ``text`` (what no type says)."""

    def __init__(self, test: Callable[[Any], bool], text: str) -> None:
        self.test, self.text = test, text

    def __contains__(self, value: Any) -> bool:
        try:
            return bool(self.test(value))
        except Exception:  # noqa: BLE001 - a test that cannot decide says no
            return False

    def __str__(self) -> str:
        return self.text


def _satisfies(value: Any, constraint: Any) -> bool:
    if constraint is None or constraint is callable:
        return value is None if constraint is None else callable(value)
    if isinstance(constraint, type):
        return isinstance(value, constraint) and not (isinstance(value, bool) and constraint in (Real, Integral))
    if isinstance(constraint, StrOptions):
        return isinstance(value, str) and value in constraint
    return value in constraint  # an Interval or Satisfies


def _describe(constraint: Any) -> str:
    if constraint is None or constraint is callable:
        return "None" if constraint is None else "a callable"
    if isinstance(constraint, type):
        library = "numpy " if constraint.__module__ == "numpy" else ""
        return {Real: "a number", Integral: "an int"}.get(constraint, f"a {library}{constraint.__name__}")
    return str(constraint)


def check_params(owner: Any, constraints: Mapping[str, list[Any]]) -> None:
    """Check the attributes of ``owner`` named in ``constraints`` as :meth:`Params.validate_params` does.

    A constraint on a name ``owner`` does not have (a misspelt ``parameter_constraints`` key) is an
    :class:`InvalidArgumentError` naming it and the parameters there are. Plain values that passed: known.
    """
    key = plain_key(tuple([getattr(owner, name, _MISSING) for name in constraints]), type(owner), zeros=False)
    if _VALID.holds(key, constraints):
        return
    for name, options in constraints.items():
        value = getattr(owner, name, _MISSING)
        if value is _MISSING:
            names = sorted(p for p in inspect.signature(type(owner).__init__).parameters if p != "self")
            if name in names:  # an __init__ argument that __init__ does not store under its name
                raise InvalidTypeError(f"{type(owner).__name__}.__init__ must store its argument {name!r} as "
                                       f"self.{name} (the scikit-learn convention parameter_constraints reads)")
            raise InvalidArgumentError(f"{type(owner).__name__}: parameter_constraints constrains {name!r}, which "
                                       f"is not a parameter{did_you_mean(name, names)}; parameters: {names}")
        if value is None and None in options:  # the usual default
            continue
        for c in options:
            if _satisfies(value, c):
                break
        else:
            _refuse(owner, name, value, options)
    _VALID.keep(key, constraints)


def _refuse(owner: Any, name: str, value: Any, options: list[Any]) -> None:
    """Raise the error of :func:`check_params` for ``value`` of ``name``, which no option accepts."""
    texts = [_describe(c) for c in options]
    expected = texts[0] if len(texts) == 1 else f"{', '.join(texts[:-1])} or {texts[-1]}"
    wrong_value = any(hasattr(c, "matches_type") and c.matches_type(value) for c in options)
    error = InvalidArgumentError if wrong_value else InvalidTypeError
    hint = getattr(owner, "value_hints", {}).get(name, lambda v: "")(value)  # ES: pycma's spellings
    raise error(f"{type(owner).__name__}: {name} must be {expected}, got {value!r}{hint}")


class Params:
    """Mixin giving ``get_params``, ``set_params``, ``validate_params`` and a readable ``repr``."""

    #: Parameter name -> list of constraints, one of which its value must satisfy.
    parameter_constraints: ClassVar[dict[str, list[Any]]] = {}
    #: Parameters whose values are data, not nested hyper-parameters (a fitted ``ES`` as a
    #: ``warm_start``): ``get_params(deep=True)`` does not list theirs and ``clone`` keeps them.
    opaque_params: ClassVar[tuple[str, ...]] = ()

    def validate_params(self) -> None:
        """Check every parameter listed in ``parameter_constraints``.

        Raises
        ------
        InvalidArgumentError
            For a value of an accepted type but outside the accepted values.
        InvalidTypeError
            For a value of no accepted type.
        """
        check_params(self, self.parameter_constraints)

    @classmethod
    @functools.cache
    def _param_names(cls) -> tuple[str, ...]:
        """The constructor's named parameters, sorted (once per class)."""
        if cls.__init__ is object.__init__:
            return ()
        params = inspect.signature(cls.__init__).parameters.values()
        return tuple(sorted(p.name for p in params
                            if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)))

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Hyper-parameters as a dict (scikit-learn protocol)."""
        if not deep:  # (a run copies its estimator's: without the nested checks)
            return {name: getattr(self, name) for name in self._param_names()}
        out = {}
        for name in self._param_names():
            value = out[name] = getattr(self, name)
            if deep and hasattr(value, "get_params") and not isinstance(value, type) and name not in self.opaque_params:
                out.update((f"{name}__{k}", v) for k, v in value.get_params().items())
        return out

    def set_params(self, **params: Any) -> "Params":
        """Set hyper-parameters; unknown names raise an error listing the valid ones."""
        valid = self._param_names()
        nested: dict[str, dict[str, Any]] = {}
        for key, value in params.items():
            name, _, sub = key.partition("__")
            if name not in valid:
                raise InvalidArgumentError(
                    f"{type(self).__name__} has no parameter {name!r}; valid: {list(valid)}"
                )
            if sub:
                nested.setdefault(name, {})[sub] = value
            else:
                setattr(self, name, value)
        for name, sub_params in nested.items():
            getattr(self, name).set_params(**sub_params)
        return self

    def __sklearn_clone__(self) -> "Params":
        """scikit-learn's ``clone``: a new object with the parameters cloned (deep-copied where they
        are not estimators), the ``opaque_params`` kept as they are."""
        from sklearn.base import clone

        params = self.get_params(deep=False)
        return type(self)(**{k: v if k in self.opaque_params else clone(v, safe=False) for k, v in params.items()})

    @reprlib.recursive_repr()  # a parameter that holds the object itself (ES(warm_start=es)) shows as ...
    def __repr__(self) -> str:
        params = inspect.signature(type(self).__init__).parameters
        changed = []
        for k, v in self.get_params(deep=False).items():
            try:  # a parameter missing from the signature (KeyError) has no default
                same = not hasattr(v, "shape") and bool(v == params[k].default)
            except Exception:
                same = False
            if not same:
                changed.append(f"{k}={v!r}")
        return f"{type(self).__name__}({', '.join(changed)})"


_IN_CMA = "a CMA-ES hyper-parameter: strategy_options={{{0!r}: ...}}"
#: The hint for a pycma option evostrat has no equivalent of.
PYCMA_OTHER = "a pycma option with no evostrat equivalent; docs/guides/pycma.md maps those that have one"
#: pycma's option names that are not :class:`~evostrat.ES` parameters -> evostrat's way to set
#: them; the unknown-parameter error of a class listing them as ``foreign_names`` (``ES``) says it
#: instead of guessing a near spelling (``maxiter`` is not ``maximize``).
PYCMA_NAMES: dict[str, str] = {
    "maxfevals": "pycma's maxfevals is max_evals", "maxiter": "pycma's maxiter is max_generations",
    "seed": "pycma's seed is random_state", "integer_variables": "pycma's integer_variables is integer",
    "noise_handler": "pycma's noise_handler is noise_handling=True (or a dict of its settings)",
    "CMA_stds": "pycma's sigma0 * CMA_stds is sigma0 as an array of shape (dim,)",
    "scaling_of_variables": "pycma's sigma0 * scaling_of_variables is sigma0 as an array of shape (dim,)",
    "verb_disp": "pycma's verb_disp is fit(progress=True) or a callback printing every N generations",
    "verbose": "pycma's verbose is fit(progress=True); evostrat prints nothing by default",
    "verb_log": "pycma's verb_log is a callback: CSVLogger, or DistributionRecorder for plot_diagnostics",
    "CMA_diagonal": "pycma's CMA_diagonal=True is strategy='sep_cma_es'",
    "CMA_active": _IN_CMA.format("active"), "CMA_cmean": _IN_CMA.format("lr_mean"),
    "incpopsize": "pycma's incpopsize is restarts=dict(kind='ipop', incpopsize=...)",
    **{name: _IN_CMA.format(name) for name in ("tolconditioncov", "tolupsigma", "tolfacupx", "noeffectaxis",
                                               "noeffectcoord")},
    # the names of other tuners for the evaluation budget and parallel evaluation
    "n_jobs": "scikit-learn's n_jobs=N is evaluator='executor', evaluator_options={'max_workers': N}",
    "max_evaluations": "the budget of objective calls is max_evals; noise_handling=dict(max_evaluations=...) "
                       "caps the evaluations per candidate",
    "budget": "nevergrad's budget is max_evals", "n_trials": "Optuna's n_trials is max_evals",
    "maxfev": "scipy's maxfev is max_evals", "maxfun": "scipy's maxfun is max_evals",
    # fmin2's keywords and options whose near spellings here mean something else
    "bipop": "pycma's restarts=9, bipop=True is restarts=dict(kind='bipop', max_restarts=9)",
    "restart_from_best": "pycma's restart_from_best has no equivalent: restart runs start at x0, or at a new "
                         "point of a callable x0",
    "CMA_mu": "pycma's CMA_mu=mu is strategy_options={'elite_ratio': mu / popsize}",
    "popsize_factor": "pycma's popsize_factor=k is popsize=k * (4 + int(3 * log(dim)))",
    "callback": "pycma's callback is fit(callbacks=[cb]): cb(es) after every generation, True stops the run",
    "termination_callback": "pycma's termination_callback is a callback returning True: fit(callbacks=[cb])",
    "timeout": "pycma's timeout is a callback: fit(callbacks=[lambda es: time.time() > deadline])",
    "parallel_objective": "pycma's parallel_objective is an objective marked @evostrat.vectorized",
    "is_feasible": "pycma's is_feasible is fit(constraints=g), g(x) <= 0 where feasible",
    "eval_initial_x": "pycma's eval_initial_x has no option: x0 is not evaluated (inject(x0) adds it to a population)",
    **dict.fromkeys(("options", "opts", "inopts"), "pycma's options are ES's keywords, with the names of "
                    "the docs' pycma table: ES('cma_es', sigma0=..., **options)"),
    "x0": "x0 is fit's argument: ES(...).fit(objective, x0), or initialize(x0)",
    "constraints": "constraints are fit's: ES(...).fit(objective, x0, constraints=g)",
    "args": "pycma's args=(a, b) is an objective lambda x: f(x, a, b)",
    "init_callback": "pycma's init_callback is a Callback's on_fit_start(es): fit(callbacks=[cb])",
    **dict.fromkeys(("noise_change_sigma_exponent", "noise_kappa_exponent"),
                    "pycma's noise settings are noise_handling=dict(...), UncertaintyHandling's parameters"),
    **dict.fromkeys(("CMA_elitist", "CMA_mirrors", "CMA_mirrormethod", "tolfunrel", "tolxstagnation", "mindx",
                     "minstd", "maxstd", "AdaptSigma", "CMA_rankmu", "CMA_rankone", "CMA_on", "CMA_eigenmethod",
                     "CMA_recombination_weights", "CMA_const_trace", "CMA_diagonal_decoding", "BoundaryHandler",
                     "typical_x", "transformation", "updatecovwait", "randn", "signals_filename", "verb_plot",
                     "verb_time", "verb_filenameprefix", "verb_append"), PYCMA_OTHER),
}
#: Prefixes of pycma's other options (``CMA_rankmu``, ``CSA_dampfac``, ``verb_plot``...): :data:`PYCMA_OTHER`.
PYCMA_PREFIXES = ("CMA_", "CSA_", "TPA_", "verb_")


def restarts_hint(value: Any) -> str:
    """The pycma spelling behind a refused ``restarts`` value (``restarts=9``, ``restarts=True``), or ``""``."""
    if value is True:
        return " (pycma's bipop=True is restarts='bipop'; IPOP is restarts='ipop')"
    if isinstance(value, Integral) and not isinstance(value, bool):
        return f" (pycma's restarts={value} is restarts=dict(kind='ipop', max_restarts={value}), or kind='bipop')"
    return ""


def unknown_parameter(cls: type, name: str, error: type[Exception]) -> Exception:
    """The error for a parameter ``cls`` does not have, suggesting the closest one (or, for a
    name in the class's ``foreign_names`` such as pycma's, its equivalent)."""
    valid = cls._param_names()
    if name.startswith("strategy__") and "strategy_options" in valid:  # set_params takes it, __init__ not
        return error(f"{cls.__name__}() takes a strategy's hyper-parameters as strategy_options="
                     f"{{{name.partition('__')[2]!r}: ...}}, not as the keyword {name!r} (set_params and "
                     f"fit_batch grids take strategy__<name>)")
    nested = " and strategy__<name>" if "strategy" in valid else ""
    foreign = getattr(cls, "foreign_names", {}).get(name)
    if foreign is None and getattr(cls, "foreign_names", None) is PYCMA_NAMES and name.startswith(PYCMA_PREFIXES):
        foreign = PYCMA_OTHER
    hint = f" ({foreign})" if foreign else did_you_mean(name, valid)
    return error(f"{cls.__name__} has no parameter {name!r}{hint}; "
                 f"valid: {list(valid)}{nested}")


def known_keywords(init: Callable[..., None]) -> Callable[..., None]:
    """``init`` refusing an unknown keyword with :class:`InvalidTypeError` (a ``TypeError``) naming it.

    ``functools.wraps`` keeps ``init``'s signature, which ``get_params`` and
    ``sklearn.base.clone`` read; the check costs one set look-up per keyword.
    """

    @functools.wraps(init)
    def checked(self: Any, *args: Any, **kwargs: Any) -> None:
        cls = type(self)
        for key in kwargs:
            if key not in cls._param_names():
                raise unknown_parameter(cls, key, InvalidTypeError)
        init(self, *args, **kwargs)

    return checked


def known_method_keywords(method: Callable[..., Any]) -> Callable[..., Any]:
    """``method`` refusing an unknown keyword with :class:`InvalidTypeError` naming it, and
    pointing a parameter of the estimator itself (``fit(..., maximize=True)``) to the constructor.

    Examples
    --------
    >>> import numpy as np
    >>> from evostrat import ES
    >>> try:
    ...     ES("snes").fit(lambda X: (X ** 2).sum(axis=1), np.ones(2), maximize=True)
    ... except TypeError as err:
    ...     print(err)
    fit() has no parameter 'maximize': it is a parameter of ES, ES(..., maximize=...) or es.set_params(maximize=...)
    """
    code = method.__code__
    names = frozenset(code.co_varnames[1:code.co_argcount + code.co_kwonlyargcount])

    @functools.wraps(method)
    def checked(self: Any, *args: Any, **kwargs: Any) -> Any:
        for key in kwargs:
            if key not in names:
                owner = type(self)
                if key in self._param_names():
                    raise InvalidTypeError(f"{method.__name__}() has no parameter {key!r}: it is a parameter of "
                                           f"{owner.__name__}, {owner.__name__}(..., {key}=...) or "
                                           f"es.set_params({key}=...)")
                raise InvalidTypeError(f"{method.__name__}() has no parameter {key!r}{did_you_mean(key, names)}; "
                                       f"valid: {sorted(names)}")
        return method(self, *args, **kwargs)

    return checked
