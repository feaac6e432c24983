"""Griffe extension for the docs build: Sphinx conventions that mkdocstrings would miss.

xcrop's docstrings use Sphinx roles (``:func:`metrics```,
``:class:`~xcrop.MultiHeadLSTM```, ``:meth:`save```). mkdocstrings would show them
verbatim; this rewrites each one, when the docs build loads the package, into a
mkdocstrings cross-reference (``[metrics][xcrop.metrics]``) if it names a
documented xcrop object, and into plain code otherwise (third-party objects such as
``matplotlib.figure.Figure``). Only the rendered text changes, never the
source files.

It also gives module attributes documented with Sphinx's ``#:`` comments above them
(``#: The STAC APIs known by name.``) those comments as their docstring, and splits the
numpydoc groups of parameters (``periods, days`` over one description) into one entry per
name: griffe would give every name of a group the type and default of the first.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|attr|obj|data|exc):`(~?)([\w.]+)(\(\))?`")


class SphinxConventions(griffe.Extension):
    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        self._walk(pkg, pkg)

    def _walk(self, obj: griffe.Object, pkg: griffe.Module) -> None:
        if obj.is_attribute and obj.docstring is None:
            comment = _comment_above(obj)
            if comment:
                obj.docstring = griffe.Docstring(comment, parent=obj)
        if obj.docstring is not None:
            value = ROLE.sub(lambda m: self._link(m, obj, pkg), obj.docstring.value)
            obj.docstring.value = _split_groups(value)
        for member in obj.members.values():
            if not member.is_alias:
                self._walk(member, pkg)

    def _link(self, match: re.Match, obj: griffe.Object, pkg: griffe.Module) -> str:
        short, path = match.group(1), match.group(2)
        shown = path.rsplit(".", 1)[-1] if short else path
        target = self._find(path, obj, pkg)
        return f"[`{shown}`][{target}]" if target else f"`{shown}`"

    def _find(self, path: str, obj: griffe.Object, pkg: griffe.Module) -> str | None:
        head = path.split(".", 1)[0]
        candidates = []
        scope: griffe.Object | None = obj
        while scope is not None:  # the object, its class, its module, ... then absolute
            if head in scope.members:
                candidates.append(f"{scope.path}.{path}")
            scope = scope.parent
        candidates.append(path)
        for candidate in candidates:
            target = self._documented(candidate, pkg)
            if target:
                return target
        return None

    def _documented(self, path: str, pkg: griffe.Module) -> str | None:
        if path.split(".", 1)[0] != pkg.name:
            return None
        try:
            target = pkg.modules_collection.get_member(path)
        except (KeyError, ValueError, griffe.AliasResolutionError, griffe.CyclicAliasError):
            return None
        try:
            target = target.final_target if target.is_alias else target
        except (griffe.AliasResolutionError, griffe.CyclicAliasError):
            return None
        if any(part.startswith("_") for part in target.path.split(".")):
            return None
        if not target.is_module and target.docstring is None:
            return None
        return target.path


def _comment_above(obj: griffe.Object) -> str:
    """The ``#:`` comment lines right above an attribute's assignment, joined."""
    lines = obj.module.lines
    if not obj.lineno or not lines:
        return ""
    found = []
    number = obj.lineno - 2  # the line above, 0-based
    while number >= 0 and lines[number].lstrip().startswith("#:"):
        found.append(lines[number].lstrip()[2:].strip())
        number -= 1
    return "\n".join(reversed(found))


GROUPED = ("Parameters", "Other Parameters", "Attributes")


def _split_groups(text: str) -> str:
    """``a, b`` followed by an indented description, in a parameter-like section, becomes
    ``a`` and ``b``, each with that description."""
    lines = text.split("\n")
    out: list[str] = []
    section = None
    i = 0
    while i < len(lines):
        line = lines[i]
        if i + 1 < len(lines) and set(lines[i + 1].strip()) == {"-"} and line.strip():
            section = line.strip()
        names = [n.strip() for n in line.split(",")]
        if (
            section in GROUPED
            and len(names) > 1
            and not line.startswith(" ")
            and all(n.isidentifier() for n in names)
        ):
            j = i + 1
            while j < len(lines) and (lines[j].startswith(" ") or not lines[j].strip()):
                last = j + 1 >= len(lines) or not lines[j + 1].startswith(" ")
                if not lines[j].strip() and last:  # a blank line that ends the entry
                    break
                j += 1
            for name in names:
                out.append(name)
                out.extend(lines[i + 1 : j])
            i = j
            continue
        out.append(line)
        i += 1
    return "\n".join(out)
