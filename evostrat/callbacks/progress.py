"""A live progress line for :meth:`ES.fit <evostrat.ES.fit>` and ``evostrat run``.

Shows the generation, evaluations, the best value so far, the current generation's best,
sigma and the elapsed time; a bar and a percentage only against a budget the user set
(``max_evals``, else ``max_generations``: ``gen 12/40``, ``evals 70/100``), never against
the default generation limit, which most runs stop long before. ``fit(progress=...)``
switches it on: ``False`` (the library's default) shows nothing; ``True``/``"auto"`` shows
it when stderr is a terminal or a Jupyter notebook (the CLI's default); ``"always"`` also
elsewhere (a file, a pipe), as a plain status line without terminal codes, at most every
``interval`` seconds and a final one, whatever the ``style``. With ``rich`` installed
(``pip install evostrat[progress]``) the terminal view is a rich progress bar, else one
line redrawn with ``\\r``; redraws are throttled, so the bar costs microseconds per generation.

Examples
--------
>>> import io
>>> import numpy as np
>>> from evostrat import ES
>>> from evostrat.callbacks.progress import ProgressBar
>>> out = io.StringIO()
>>> es = ES("snes", max_generations=30, random_state=0).fit(
...     lambda X: (X ** 2).sum(axis=1), np.ones(3), progress=ProgressBar("always", file=out))
>>> print(out.getvalue().splitlines()[-1])   # doctest: +ELLIPSIS
gen 30/30 | evals 210 | best ... | current ... | sigma ... | 0:00:0...
>>> ProgressBar("auto", file=io.StringIO()).enabled      # not a terminal
False
"""

from __future__ import annotations

import importlib.util
import sys
import time
from typing import Any, TextIO

from evostrat.callbacks.base import Callback
from evostrat.errors import InvalidArgumentError, InvalidTypeError

__all__ = ["ProgressBar", "make_progress"]


def _is_interactive(file: Any) -> bool:
    try:
        if file.isatty():
            return True
    except (AttributeError, ValueError):
        return False
    return "ipykernel" in sys.modules and file in (sys.stdout, sys.stderr)


def _clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _num(value: Any) -> str:
    try:
        return f"{float(value):.4e}"
    except (TypeError, ValueError):
        return "-"


class ProgressBar(Callback):
    """Progress display of a run (a callback).

    Parameters
    ----------
    when : {"auto", "always"}
        ``"auto"``: only on a terminal (or in Jupyter); ``"always"``: everywhere.
    file : text stream, optional
        Where to write; ``sys.stderr`` by default (resolved at the start of each run).
    style : {"auto", "rich", "plain"}
        ``"rich"`` needs the ``rich`` package; ``"auto"`` uses it on a terminal when installed.
        Off a terminal (a file, a pipe) both write plain lines, without terminal codes.
    interval : float
        Seconds between updates (the bar redraws at most this often; plain
        non-terminal output prints a line at most this often).

    Attributes
    ----------
    enabled : bool
        Whether this run shows anything (decided at ``on_fit_start``).

    Examples
    --------
    >>> import numpy as np
    >>> from evostrat import ES
    >>> import io
    >>> from evostrat.callbacks import ProgressBar
    >>> out = io.StringIO()
    >>> es = ES("snes", max_generations=3, random_state=0).fit(lambda X: (X ** 2).sum(axis=1), np.ones(2),
    ...     callbacks=[ProgressBar(when="always", file=out, style="plain", interval=0.0)])
    >>> out.getvalue().splitlines()[0]  # doctest: +ELLIPSIS
    'gen 1/3 | evals 6 | best 6.9345e-02 | ...'
    """

    def __init__(self, when: str = "auto", file: TextIO | None = None, style: str = "auto",
                 interval: float | None = None) -> None:
        if when not in ("auto", "always"):
            raise InvalidArgumentError(f"progress must be True, False, 'auto' or 'always', got {when!r}")
        if style not in ("auto", "rich", "plain"):
            raise InvalidArgumentError(f"style must be 'auto', 'rich' or 'plain', got {style!r}")
        if style == "rich" and importlib.util.find_spec("rich") is None:
            raise InvalidArgumentError("style='rich' needs the rich package: pip install evostrat[progress]")
        if interval is not None and not (isinstance(interval, (int, float)) and interval >= 0):
            raise InvalidArgumentError(f"interval must be a number of seconds >= 0, got {interval!r}")
        self.when = when
        self.file = file
        self.style = style
        self.interval = interval
        self._stream: Any = None
        self._rich: Any = None
        self._last = -float("inf")
        self._live = False
        self.enabled = self.when == "always" or _is_interactive(file if file is not None else sys.stderr)

    # -- what to show ---------------------------------------------------------------
    @staticmethod
    def budget(es: Any) -> tuple[int | None, int, str]:
        """``(total, done, unit)``: the budget the user set (``max_evals``, else
        ``max_generations``) and the progress towards it, or ``(None, evaluations, "evals")``."""
        if es.max_evals is not None:
            return int(es.max_evals), int(es.n_evals_), "evals"
        if es.max_generations is not None:
            return int(es.max_generations), int(es.n_generations_), "generations"
        return None, int(es.n_evals_), "evals"

    def _fields(self, es: Any) -> dict[str, str]:
        last = es.history_[-1] if es.history_ else {}
        return {"gen": str(es.n_generations_), "evals": str(es.n_evals_), "best": _num(es.fun_),
                "current": _num(last.get("generation_best")), "sigma": _num(last.get("sigma")),
                "centre": f" | centre rank {last['centre_rank']}" if "centre_rank" in last else ""}  # CentreRank

    def line(self, es: Any) -> str:
        """The plain status line."""
        f = self._fields(es)
        total, _, unit = self.budget(es)
        evals = f["evals"] + (f"/{total}" if total and unit == "evals" else "")
        gen = f["gen"] + (f"/{total}" if total and unit == "generations" else "")
        elapsed = _clock(es.run_.state.elapsed())
        return (f"gen {gen} | evals {evals} | best {f['best']} | current {f['current']} | "
                f"sigma {f['sigma']}{f['centre']} | {elapsed}")

    # -- the callback ----------------------------------------------------------------
    def on_fit_start(self, es: Any) -> None:
        self._stream = self.file if self.file is not None else sys.stderr
        self._live = _is_interactive(self._stream)
        self.enabled = self.when == "always" or self._live
        self._last = -float("inf")
        self._rich = None
        if not self.enabled:
            return
        if self.style != "plain" and self._live and importlib.util.find_spec("rich") is not None:
            self._start_rich(es)

    def _start_rich(self, es: Any) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

        console = Console(file=self._stream, stderr=False)
        texts = ("evals {task.fields[evals]}", "best [green]{task.fields[best]}",
                 "current {task.fields[current]}", "sigma {task.fields[sigma]}{task.fields[centre]}")
        total, done, _ = self.budget(es)
        bar = (BarColumn(bar_width=12), TaskProgressColumn()) if total else ()
        progress = Progress(
            TextColumn("gen [bold]{task.fields[gen]}"), *bar, *(TextColumn(text) for text in texts), TimeElapsedColumn(),
            console=console, refresh_per_second=1.0 / self.interval if self.interval else 10, transient=False,
        )
        task = progress.add_task("run", total=total, completed=done, **self._fields(es))
        progress.start()
        self._rich = (progress, task)

    def __call__(self, es: Any) -> None:
        if not self.enabled:
            return
        if self._rich is not None:
            self._update_rich(es)
            return
        now = time.perf_counter()
        interval = self.interval if self.interval is not None else (0.1 if self._live else 1.0)
        if now - self._last < interval:
            return
        self._last = now
        self._emit(es)

    def _emit(self, es: Any, final: bool = False) -> None:
        """Redraw the line in place (a terminal; ``final`` ends it), or print it as a new line."""
        if self._live:
            self._stream.write("\r\x1b[2K" + self.line(es) + ("\n" if final else ""))
        else:
            self._stream.write(self.line(es) + "\n")
        self._stream.flush()

    def on_fit_end(self, es: Any) -> None:
        if not self.enabled:
            return
        if self._rich is not None:
            self._update_rich(es)
            self._rich[0].stop()
            self._rich = None
            return
        self._emit(es, final=True)

    def _update_rich(self, es: Any) -> None:
        progress, task = self._rich
        total, done, _ = self.budget(es)
        progress.update(task, total=total, completed=done, **self._fields(es))

    def __repr__(self) -> str:
        return f"ProgressBar({self.when!r}, style={self.style!r})"


def make_progress(spec: Any) -> ProgressBar | None:
    """The :class:`ProgressBar` for ``fit(progress=spec)``, or ``None`` (for ``None``/``False``).

    A :class:`ProgressBar` is returned as is; other values as the module docstring says.
    """
    if spec is None or spec is False:
        return None
    if isinstance(spec, ProgressBar):
        return spec
    if spec is True or isinstance(spec, str):
        return ProgressBar("auto" if spec is True else spec)
    raise InvalidTypeError(
        f"progress must be True, False, 'auto', 'always' or a ProgressBar, got {type(spec).__name__}"
    )
