"""scikit-learn's parameter protocol without importing scikit-learn.

Hyper-parameter objects (strategies, evaluators) list their parameters as the
keyword arguments of ``__init__`` and store them unchanged under the same
names; :class:`Params` then provides ``get_params``/``set_params`` exactly as
scikit-learn's ``BaseEstimator`` does, so ``clone`` and nested
``set_params(strategy__lr=...)`` work.

Examples
--------
>>> from evostrat.params import Params
>>> class Knobs(Params):
...     def __init__(self, lr=0.1, decay=1.0):
...         self.lr, self.decay = lr, decay
>>> Knobs().set_params(lr=0.5).get_params()
{'decay': 1.0, 'lr': 0.5}
"""

from __future__ import annotations

import inspect
from typing import Any

from evostrat.errors import InvalidArgumentError


class Params:
    """Mixin giving ``get_params``, ``set_params`` and a readable ``repr``."""

    @classmethod
    def _param_names(cls) -> list[str]:
        init = cls.__init__
        if init is object.__init__:
            return []
        sig = inspect.signature(init)
        return sorted(
            p.name
            for p in sig.parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
        )

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Hyper-parameters as a dict (scikit-learn protocol)."""
        out = {}
        for name in self._param_names():
            value = getattr(self, name)
            out[name] = value
            if deep and hasattr(value, "get_params") and not isinstance(value, type):
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
                    f"{type(self).__name__} has no parameter {name!r}; valid: {valid}"
                )
            if sub:
                nested.setdefault(name, {})[sub] = value
            else:
                setattr(self, name, value)
        for name, sub_params in nested.items():
            getattr(self, name).set_params(**sub_params)
        return self

    def __repr__(self) -> str:
        defaults = {
            p.name: p.default for p in inspect.signature(type(self).__init__).parameters.values()
        }
        changed = []
        for k, v in self.get_params(deep=False).items():
            default = defaults.get(k, inspect.Parameter.empty)
            try:
                same = bool(v == default) if not hasattr(v, "shape") else False
            except Exception:
                same = False
            if not same:
                changed.append(f"{k}={v!r}")
        return f"{type(self).__name__}({', '.join(changed)})"
