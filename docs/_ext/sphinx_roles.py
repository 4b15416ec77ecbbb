"""A griffe extension for the documentation site (mkdocs.yml): docstrings written for
``help()`` and Sphinx read well on the site too.

- Sphinx roles (``:class:`~evostrat.errors.ObjectiveError```, ``:meth:`ES.fit <evostrat.ES.fit>```,
  ``:mod:``, ``:func:``, ``:attr:``, ``:exc:``...) become mkdocs-autorefs cross-references
  (optional ones: a target the site does not document is shown as code, never a broken link);
- reStructuredText's literal-block marker ``text::`` becomes ``text:`` (the indented block
  after it is already a Markdown code block);
- numpydoc types (``x0 : array-like, shape (dim,)``) are shown as written, not parsed as
  Python (which printed ``(array - like, shape(dim))``);
- parameters documented together (``lr_decay, lr_min : float`` and one description) are one
  row, not one row each repeating the description.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(
    r":(?:py:)?(?P<role>mod|class|meth|func|attr|data|exc|obj|const|ref):`(?P<tilde>~?)(?P<text>[^`<]+?)"
    r"(?:\s*<(?P<target>[^>`]+)>)?`"
)
LITERAL = re.compile(r"(?m)(\S)::[ \t]*$")
BARE_LITERAL = re.compile(r"(?m)^[ \t]*::[ \t]*\n")
TYPE_LINE = re.compile(r"^\s*(?P<names>\*{0,2}\w+(?:\s*,\s*\*{0,2}\w+)*)\s+:\s+(?P<type>\S.*?)\s*$")


def _candidates(target: str, obj: Any) -> list[str]:
    """Identifiers ``target`` may mean, the likeliest first (relative names resolved from ``obj``)."""
    if target.startswith("evostrat"):
        return [target]
    out = []
    parent = obj if obj.is_class or obj.is_module else obj.parent
    if parent is not None:
        out.append(f"{parent.path}.{target}")
    out.append(f"{obj.module.path}.{target}")
    out.append(f"evostrat.{target}")
    return list(dict.fromkeys(out))


def convert_roles(text: str, obj: Any) -> str:
    """Sphinx roles and ``::`` markers of a docstring as Markdown."""
    def replace(match: re.Match) -> str:
        text_part = match.group("text").strip()
        target = (match.group("target") or text_part).strip().rstrip("()")
        if match.group("tilde"):
            title = target.split(".")[-1]
        else:
            title = text_part if match.group("target") else target
        if match.group("role") in ("func", "meth") and not title.endswith(")"):
            title += "()"
        ids = _candidates(target.lstrip("~"), obj)
        slug = f' slug="{ids[1]}"' if len(ids) > 1 else ""
        return f'<autoref identifier="{ids[0]}"{slug} optional><code>{title}</code></autoref>'

    text = ROLE.sub(replace, text)
    text = BARE_LITERAL.sub("\n", text)
    return LITERAL.sub(r"\1:", text)


def _type_lines(text: str) -> dict[str, tuple[str, int]]:
    """``name -> (type as written, line number)`` of the docstring's ``name : type`` lines."""
    types: dict[str, tuple[str, int]] = {}
    for number, line in enumerate(text.splitlines()):
        match = TYPE_LINE.match(line)
        if match:
            for name in match.group("names").split(","):
                types.setdefault(name.strip().lstrip("*"), (match.group("type"), number))
    return types


def _skeleton(text: str) -> str:
    return re.sub(r"[\s(),]", "", text)


def _unnamed_type(text: str, item: Any) -> str | None:
    """The line an unnamed item's type (a numpydoc Returns line) was parsed from, as written."""
    annotation = getattr(item, "annotation", None)
    if getattr(item, "name", None) or annotation is None or isinstance(annotation, str):
        return None
    wanted = _skeleton(str(annotation))
    return next((line.strip() for line in text.splitlines() if line.strip() and _skeleton(line) == wanted), None)


def _merge_shared(items: list, lines: dict[str, tuple[str, int]], defaults: dict[str, str]) -> list:
    """Items documented together (``a, b : type`` and one description) as one row ``a, b``,
    instead of one row each repeating the description; its default is shown only when the
    signature gives them all the same one (griffe gives every name the first one's)."""
    merged: list = []
    shown: dict[int, set] = {}
    for item in items:
        name = getattr(item, "name", None)
        prev = merged[-1] if merged else None
        prev_name = getattr(prev, "name", None)
        if (prev is not None and name in lines and prev_name
                and lines.get(prev_name.split(", ")[-1], (None, -1))[1] == lines[name][1]
                and getattr(prev, "description", None) == getattr(item, "description", None)):
            prev.name = f"{prev_name}, {name}"
            values = shown.setdefault(id(prev), {defaults.get(prev_name)})
            values.add(defaults.get(name))
            if len(values) > 1 or None in values:
                prev.value = None  # the defaults differ: the signature shows them
            continue
        merged.append(item)
    return merged


def _signature_defaults(obj: Any) -> dict[str, str]:
    """``name -> default`` of ``obj``'s signature (a class: its ``__init__``'s)."""
    try:
        parameters = obj.parameters
    except Exception:  # noqa: BLE001 - modules, attributes: no signature
        return {}
    return {p.name: str(p.default) for p in parameters if p.default is not None}


class _ShownAsWritten(griffe.Docstring):
    """A docstring whose parsed numpydoc types are the text as written (parsed when rendered)."""

    @property
    def parsed(self) -> list:  # type: ignore[override]
        cached = self.__dict__.get("_evostrat_parsed")
        if cached is None:
            cached = self.parse()
            lines = _type_lines(self.value)
            types = {name: raw for name, (raw, _) in lines.items()}
            for section in cached:
                if isinstance(section.value, list) and section.kind.value in ("parameters", "attributes",
                                                                                "other parameters"):
                    section.value = _merge_shared(section.value, lines, _signature_defaults(self.parent))
                for item in section.value if isinstance(section.value, list) else []:
                    raw = types.get(getattr(item, "name", None) or "") or _unnamed_type(self.value, item)
                    annotation = getattr(item, "annotation", None)
                    if raw is not None and annotation is not None and not isinstance(annotation, str) \
                            and str(annotation) != raw:
                        item.annotation = raw
            self.__dict__["_evostrat_parsed"] = cached
        return cached


class SphinxRoles(griffe.Extension):
    """Rewrite every docstring once, when its object is loaded."""

    def on_object(self, *, obj: Any, **kwargs: Any) -> None:
        docstring = obj.docstring
        if docstring is None or isinstance(docstring, _ShownAsWritten):
            return
        docstring.value = convert_roles(docstring.value, obj)
        docstring.__class__ = _ShownAsWritten
