"""A griffe extension for the documentation site (mkdocs.yml): docstrings written for
``help()`` and Sphinx read well on the site too.

- Sphinx roles (``:class:`~evostrat.errors.ObjectiveError```, ``:meth:`ES.fit <evostrat.ES.fit>```,
  ``:mod:``, ``:func:``, ``:attr:``, ``:exc:``...) become mkdocs-autorefs cross-references
  (optional ones: a target the site does not document is shown as code, never a broken link);
- reStructuredText's literal-block marker ``text::`` becomes ``text:`` (the indented block
  after it is already a Markdown code block);
- numpydoc types (``x0 : array-like, shape (dim,)``) are shown as written, not parsed as
  Python (which printed ``(array - like, shape(dim))``).
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


def _raw_types(text: str) -> dict[str, str]:
    types: dict[str, str] = {}
    for line in text.splitlines():
        match = TYPE_LINE.match(line)
        if match:
            for name in match.group("names").split(","):
                types.setdefault(name.strip().lstrip("*"), match.group("type"))
    return types


class _ShownAsWritten(griffe.Docstring):
    """A docstring whose parsed numpydoc types are the text as written (parsed when rendered)."""

    @property
    def parsed(self) -> list:  # type: ignore[override]
        cached = self.__dict__.get("_evostrat_parsed")
        if cached is None:
            cached = self.parse()
            types = _raw_types(self.value)
            for section in cached:
                for item in section.value if isinstance(section.value, list) else []:
                    raw = types.get(getattr(item, "name", None) or "")
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
