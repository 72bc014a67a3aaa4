"""Pure helpers for go.mod text: read replace directives, write a wrapper module.

`go install pkg@version` refuses modules with replace directives, and a module's own
replaces are ignored when it is a dependency. So each upstream family is built from a
small wrapper module that requires the target and restates its replaces, turning the
local-path ones (k8s.io staging dirs, etcd's ../api) into real module versions.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Replace:
    old: str
    old_version: str
    new: str
    new_version: str

    @property
    def is_local(self) -> bool:
        return self.new.startswith(("./", "../", "/")) or self.new in (".", "..")


def _strip_comment(line: str) -> str:
    return line.split("//", 1)[0].strip()


def _parse_replace(body: str) -> Replace:
    if "=>" not in body:
        raise ValueError(f"malformed replace directive: {body!r}")
    left, right = (part.split() for part in body.split("=>", 1))
    if not left or not right:
        raise ValueError(f"malformed replace directive: {body!r}")
    return Replace(
        old=left[0],
        old_version=left[1] if len(left) > 1 else "",
        new=right[0],
        new_version=right[1] if len(right) > 1 else "",
    )


def _directive_entries(gomod: str, keyword: str) -> list[str]:
    """The entries of one directive (`replace`, `require`), single-line and block form alike."""
    out: list[str] = []
    in_block = False
    for raw in gomod.splitlines():
        line = _strip_comment(raw)
        if not line:
            continue
        if in_block:
            if line == ")":
                in_block = False
            else:
                out.append(line)
        elif line.startswith(keyword):
            rest = line[len(keyword) :].strip()
            if rest == "(":
                in_block = True
            else:
                out.append(rest)
    return out


def parse_replaces(gomod: str) -> list[Replace]:
    """All replace directives of a go.mod."""
    return [_parse_replace(entry) for entry in _directive_entries(gomod, "replace")]


def parse_requires(gomod: str) -> list[tuple[str, str]]:
    """All (module, version) requirements of a go.mod."""
    return [
        (parts[0], parts[1])
        for entry in _directive_entries(gomod, "require")
        if len(parts := entry.split()) == 2
    ]


def bump_versions(
    replaces: list[Replace],
    requires: list[tuple[str, str]],
    bumps: tuple[tuple[str, str, str], ...],
) -> list[Replace]:
    """Move modules the proxy refuses at one version to a served one.

    `bumps` holds (module prefix, from version, to version). Replaces pointing at `from`
    point at `to` instead; required modules at `from` that no replace covers get a replace
    of every version, so the go command never asks for the refused version's go.mod.
    """
    if not bumps:
        return replaces

    def bumped(module: str, version: str) -> str:
        for prefix, old, new in bumps:
            if module.startswith(prefix) and version == old:
                return new
        return version

    out = [
        Replace(r.old, r.old_version, r.new, bumped(r.new, r.new_version)) if not r.is_local else r
        for r in replaces
    ]
    covered = {r.old for r in out}
    for module, version in requires:
        if module not in covered and (to := bumped(module, version)) != version:
            out.append(Replace(module, "", module, to))
            covered.add(module)
    return out


def parse_go_directive(gomod: str) -> str:
    for raw in gomod.splitlines():
        parts = _strip_comment(raw).split()
        if len(parts) == 2 and parts[0] == "go":
            return parts[1]
    return ""


def wrapper_replaces(
    replaces: list[Replace], sibling_prefix: str, sibling_version: str
) -> list[Replace]:
    """Replaces the wrapper must carry for the upstream module to build as it does upstream.

    Local-path replaces of sibling modules are pinned to the sibling version; local-path
    replaces of anything else (etcd's ``FORBIDDEN_DEPENDENCY`` guards) are dropped, since
    they only exist to stop a module being used at all; version replaces are kept as they are.
    """
    out: list[Replace] = []
    for r in replaces:
        if not r.is_local:
            out.append(r)
        elif sibling_prefix and r.old.startswith(sibling_prefix) and "FORBIDDEN" not in r.new:
            out.append(Replace(r.old, "", r.old, sibling_version))
    return out


def render_wrapper(
    name: str,
    go_version: str,
    requires: list[tuple[str, str]],
    replaces: list[Replace],
) -> str:
    lines = [f"module mothership.local/build/{name}", "", f"go {go_version}", "", "require ("]
    lines += [f"\t{mod} {ver}" for mod, ver in requires]
    lines.append(")")
    if replaces:
        lines += ["", "replace ("]
        for r in replaces:
            old = f"{r.old} {r.old_version}".strip()
            new = f"{r.new} {r.new_version}".strip()
            lines.append(f"\t{old} => {new}")
        lines.append(")")
    return "\n".join(lines) + "\n"
