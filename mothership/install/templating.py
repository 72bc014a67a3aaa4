"""One description of the install objects, rendered two ways: plain YAML and a Helm chart.

The objects are built by ordinary Python functions that ask a :class:`Context` for every
value a user can change. :class:`Plain` answers with the value itself, so the result is
the objects for one set of settings (``deploy/install.yaml`` is the default set).
:class:`HelmContext` answers with tokens: short placeholder strings that survive YAML
dumping unchanged and are then replaced by Helm template text. Because both renderings
come from the same functions, the chart cannot say something the manifest does not, and a
test compares ``helm template`` with the plain rendering, object by object, for several
sets of values.

Token kinds (each replaced after dumping):

- scalar ``value``: the token anywhere in a string becomes ``{{ expr }}``;
- ``block``: ``key: TOKEN`` becomes ``key: {{- toYaml expr | nindent N }}``;
- list item ``items_if`` / ``items_each``: ``- TOKEN`` becomes an ``if``/``range`` around
  the items dumped at the same indentation;
- mapping entry ``entries_if``: ``TOKEN: null`` becomes an ``if`` around the entries.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

Obj = dict[str, Any]


class _Dumper(yaml.SafeDumper):
    """Block style, no anchors, descriptions with newlines as ``|`` blocks."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump(data: Any) -> str:
    """Deterministic YAML in the order the objects were built; never folds long lines."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=1 << 16)


@dataclass(frozen=True)
class Doc:
    """One object of the output, present only under a condition or once per list entry."""

    obj: Obj
    when: str | None = None  # a condition name, see Context.conditions
    each: str | None = None  # a list setting; obj was built with the entry as ctx.each_value


class Context:
    """What the object builders ask; the two subclasses answer for plain YAML or for Helm."""

    def value(self, name: str) -> Any:
        raise NotImplementedError

    def block(self, name: str) -> Any:
        raise NotImplementedError

    def flag(self, name: str) -> bool:
        """Only for plain rendering; builders use the *_if helpers so Helm sees both ways."""
        raise NotImplementedError

    def items_if(self, condition: str, yes: list[Any], no: Sequence[Any] = ()) -> list[Any]:
        raise NotImplementedError

    def entries_if(self, condition: str, yes: Obj, no: Obj | None = None) -> Obj:
        raise NotImplementedError

    def items_each(self, setting: str, build: Callable[[Any], list[Any]]) -> list[Any]:
        raise NotImplementedError

    def docs_if(self, condition: str, objs: list[Obj]) -> list[Doc]:
        raise NotImplementedError

    def docs_each(self, setting: str, build: Callable[[Any], Obj]) -> list[Doc]:
        raise NotImplementedError


@dataclass
class Plain(Context):
    """Concrete values: ``values`` holds every scalar, block and list setting by name,
    ``conditions`` every condition's truth."""

    values: dict[str, Any]
    conditions: dict[str, bool]

    def value(self, name: str) -> Any:
        return self.values[name]

    def block(self, name: str) -> Any:
        return self.values[name]

    def flag(self, name: str) -> bool:
        return self.conditions[name]

    def items_if(self, condition: str, yes: list[Any], no: Sequence[Any] = ()) -> list[Any]:
        return list(yes if self.conditions[condition] else no)

    def entries_if(self, condition: str, yes: Obj, no: Obj | None = None) -> Obj:
        return dict(yes if self.conditions[condition] else (no or {}))

    def items_each(self, setting: str, build: Callable[[Any], list[Any]]) -> list[Any]:
        return [item for entry in self.values[setting] for item in build(entry)]

    def docs_if(self, condition: str, objs: list[Obj]) -> list[Doc]:
        return [Doc(o) for o in objs] if self.conditions[condition] else []

    def docs_each(self, setting: str, build: Callable[[Any], Obj]) -> list[Doc]:
        return [Doc(build(entry)) for entry in self.values[setting]]


_TOKEN = re.compile(r"ZZ[A-Z]\d{3}ZZ")
_EACH_VALUE = "ZZD000ZZ"  # the range variable, `{{ . }}`


@dataclass
class HelmContext(Context):
    """Tokens in place of values; :meth:`render` turns dumped YAML into template text.

    ``expressions`` maps scalar and block names to Helm expressions (``$.Values.x``),
    ``conditions`` condition names to Helm conditions, ``lists`` list settings to the
    Helm expression of the list to range over.
    """

    expressions: dict[str, str]
    conditions: dict[str, str]
    lists: dict[str, str]
    _scalars: dict[str, str] = field(default_factory=dict)
    _blocks: dict[str, str] = field(default_factory=dict)
    _structures: dict[str, tuple[str, str, Any, Any]] = field(default_factory=dict)
    _count: int = 0

    def _token(self, kind: str) -> str:
        self._count += 1
        return f"ZZ{kind}{self._count:03d}ZZ"

    def value(self, name: str) -> Any:
        token = self._token("S")
        self._scalars[token] = "{{ " + self.expressions[name] + " }}"
        return token

    def block(self, name: str) -> Any:
        token = self._token("B")
        self._blocks[token] = self.expressions[name]
        return token

    def flag(self, name: str) -> bool:
        raise TypeError(f"a Helm chart cannot decide {name!r} at generation time; use *_if")

    def items_if(self, condition: str, yes: list[Any], no: Sequence[Any] = ()) -> list[Any]:
        token = self._token("I")
        self._structures[token] = ("if", self.conditions[condition], list(yes), list(no))
        return [token]

    def entries_if(self, condition: str, yes: Obj, no: Obj | None = None) -> Obj:
        token = self._token("E")
        self._structures[token] = ("if", self.conditions[condition], dict(yes), dict(no or {}))
        return {token: None}

    def items_each(self, setting: str, build: Callable[[Any], list[Any]]) -> list[Any]:
        token = self._token("I")
        self._structures[token] = ("range", self.lists[setting], build(_EACH_VALUE), None)
        return [token]

    def docs_if(self, condition: str, objs: list[Obj]) -> list[Doc]:
        return [Doc(o, when=condition) for o in objs]

    def docs_each(self, setting: str, build: Callable[[Any], Obj]) -> list[Doc]:
        return [Doc(build(_EACH_VALUE), each=setting)]

    # -- rendering ---------------------------------------------------------------------

    def render(self, docs: list[Doc]) -> str:
        """The template text of these documents, one YAML document each."""
        parts = []
        for doc in docs:
            text = self._expand(dump(doc.obj))
            if doc.when:
                text = f"{{{{- if {self.conditions[doc.when]} }}}}\n---\n{text}{{{{- end }}}}\n"
            elif doc.each:
                text = f"{{{{- range {self.lists[doc.each]} }}}}\n---\n{text}{{{{- end }}}}\n"
            else:
                text = f"---\n{text}"
            parts.append(text)
        rendered = "".join(parts).replace(_EACH_VALUE, "{{ . }}")
        for token, expr in self._scalars.items():
            rendered = rendered.replace(token, expr)
        left = _TOKEN.findall(rendered)
        if left:
            raise ValueError(
                f"tokens left in the template (a marker in an unsupported place): {left}"
            )
        return rendered

    def _expand(self, text: str) -> str:
        """Replace block and structure tokens, innermost last, until none is left."""
        out: list[str] = []
        for line in text.splitlines():
            out.extend(self._expand_line(line))
        return "".join(line + "\n" for line in out)

    def _expand_line(self, line: str) -> list[str]:
        match = re.fullmatch(r"(\s*(?:- )?)([^:\s]+): (ZZB\d{3}ZZ)", line)
        if match:
            lead, key, token = match.groups()
            expr = self._blocks[token]
            return [f"{lead}{key}: {{{{- toYaml {expr} | nindent {len(lead) + 2} }}}}"]
        match = re.fullmatch(r"(\s*)- (ZZI\d{3}ZZ)", line)
        if match:
            indent, token = match.groups()
            return self._structure(indent, token, as_list=True)
        match = re.fullmatch(r"(\s*)(ZZE\d{3}ZZ): null", line)
        if match:
            indent, token = match.groups()
            return self._structure(indent, token, as_list=False)
        if re.search(r"ZZ[BIE]\d{3}ZZ", line):
            raise ValueError(f"a template marker in a place it cannot expand: {line.strip()!r}")
        return [line]

    def _structure(self, indent: str, token: str, *, as_list: bool) -> list[str]:
        kind, expr, first, second = self._structures[token]

        def body(data: Any) -> list[str]:
            if not data:
                return []
            return [indent + line for line in self._expand(dump(data)).splitlines()]

        lines = [f"{indent}{{{{- {kind} {expr} }}}}", *body(first)]
        if second:
            lines += [f"{indent}{{{{- else }}}}", *body(second)]
        lines.append(f"{indent}{{{{- end }}}}")
        return lines
