"""Worker failures re-raised on the driver, with the worker's traceback.

:func:`raise_failure` raises what ``evaluator="serial"`` would (an
:class:`~evostrat.errors.ObjectiveError` naming the candidate, a ``KeyboardInterrupt`` as it
is, interrupting the run,
:class:`~evostrat.errors.InvalidTypeError` for a non-number,
:class:`~evostrat.errors.EvaluationTimeoutError` past ``timeout``), with the
original exception as ``__cause__``, itself caused by a :class:`RemoteTraceback`
holding the worker's traceback text (also in ``err.traceback``).

Examples
--------
>>> from evostrat.evaluators.failures import describe_candidates
>>> describe_candidates(3, 4), describe_candidates(8, 16)
('candidate 3', 'candidates 8-15')
"""

from __future__ import annotations

from evostrat.errors import EvaluationTimeoutError, EvostratError, InvalidArgumentError, ObjectiveError
from evostrat.evaluators.worker import Failure

__all__ = ["RemoteTraceback", "describe_candidates", "raise_failure"]


class RemoteTraceback(Exception):
    """Carries a worker's traceback text as the ``__cause__`` of the original exception."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return f'\n"""\n{self.text}"""'


def describe_candidates(start: int, stop: int) -> str:
    """``"candidate 3"`` or ``"candidates 8-15"``."""
    return f"candidate {start}" if stop - start == 1 else f"candidates {start}-{stop - 1}"


def raise_failure(failure: Failure, timeout: float | None = None) -> None:
    """Re-raise a worker's :class:`~evostrat.evaluators.worker.Failure` on the driver."""
    a, b = (failure.start, failure.stop) if failure.index is None else (failure.index, failure.index + 1)
    where, indices = describe_candidates(a, b), tuple(range(a, b))
    remote = RemoteTraceback(failure.traceback)
    original = remote if failure.exception is None else failure.exception
    if original is not remote:
        original.__cause__ = remote
    if failure.kind == "raised" and (isinstance(original, KeyboardInterrupt) or failure.type_name == "KeyboardInterrupt"):
        raise original if isinstance(original, KeyboardInterrupt) else KeyboardInterrupt(failure.message) from remote
    if failure.kind == "invalid" and isinstance(original, EvostratError):
        raise original  # InvalidTypeError naming the candidate, as evaluator="serial" raises
    if failure.kind == "invalid":
        raise InvalidArgumentError(
            f"objective returned invalid values for {where}: {failure.message}"
        ) from original
    what = f"{failure.type_name}: {failure.message}"
    error, message = {  # "load": setting up the candidates failed (index is None)
        "timeout": (EvaluationTimeoutError, f"evaluation of {where} exceeded the timeout of {timeout} s "
                    "per candidate"),
        "load": (ObjectiveError, f"a worker could not build {where}: {what}"),
    }.get(failure.kind, (ObjectiveError, f"objective raised on {where}: {what}"))
    raise error(message, index=failure.index, indices=indices, traceback=failure.traceback) from original
