"""The docs under docs/ stay true to the code.

What a reader copies must work: every `mothership ...` command shown in a shell code block
parses against the real typer app (subcommands, options, option values, required
arguments), every relative link points at a file (and heading) that exists, every
`mothership_*` metric named exists in the operator's registry, and every condition type
and reason in a condition table is one the controllers really write. In the other
direction, every metric and every condition type the code has is documented.

The checkers are plain functions; the last tests feed them broken input to prove they
can fail.
"""

from __future__ import annotations

import ast
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer.main

from mothership.cli.main import app

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
# docs/reference/api.md is generated from the models and has its own drift test.
DOC_FILES = sorted(p for p in DOCS.rglob("*.md") if p != DOCS / "reference" / "api.md")
SHELL_LANGS = {"bash", "sh", "shell", "console", "zsh"}

_FENCE = re.compile(r"^\s*```(?P<lang>[\w+-]*)\s*$")
# `mothership` where a shell would run it: line start, after a pipe/;/&&, inside $( ),
# or after sudo/env assignments. Stops at what ends a simple command.
_MOTHERSHIP = re.compile(
    r"(?:^|\$\(|[|;&]\s*|\bsudo\s+|^(?:[A-Z_][A-Z0-9_]*=\S*\s+)+)"
    r"mothership(?P<args>(?:\s[^|;&)<>#\n]*)?)(?![\w-])"
)
_LINK = re.compile(r"(?<!!)\[[^\]]*\]\((?P<target>[^)\s]+)(?:\s+\"[^\"]*\")?\)")
_METRIC = re.compile(r"\bmothership_[a-z0-9_]+\b")
_CODE = re.compile(r"`([^`\n]+)`")


@dataclass(frozen=True)
class Found:
    file: str
    line: int
    text: str
    inline: bool = False  # in prose, where naming a command group alone is fine

    def where(self) -> str:
        return f"{self.file}:{self.line}"


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


# --- commands ---------------------------------------------------------------------------------


def shell_lines(text: str, file: str = "<text>") -> Iterator[Found]:
    """Lines of shell code blocks, with backslash continuations joined."""
    lang: str | None = None
    pending, start = "", 0
    for number, line in enumerate(text.splitlines(), 1):
        fence = _FENCE.match(line)
        if fence:
            lang = None if lang is not None else fence["lang"].lower()
            continue
        if lang not in SHELL_LANGS:
            continue
        stripped = line.strip()
        if lang == "console":
            if not stripped.startswith("$ ") and not pending:
                continue  # output, not a command
            stripped = stripped.removeprefix("$ ")
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        yield Found(file, start, pending + stripped)
        pending = ""


def mothership_commands(text: str, file: str = "<text>") -> Iterator[Found]:
    """Every `mothership ...` invocation in shell code blocks and in inline code of prose."""
    for line in shell_lines(text, file):
        for match in _MOTHERSHIP.finditer(line.text):
            yield Found(line.file, line.line, "mothership" + match["args"].rstrip())
    in_code = False
    for number, line in enumerate(text.splitlines(), 1):
        if _FENCE.match(line):
            in_code = not in_code
            continue
        if not in_code:
            for span in _CODE.findall(line):
                if span.startswith("mothership "):
                    yield Found(file, number, span.strip(), inline=True)


def command_problem(command: str, group_ok: bool = False) -> str | None:
    """Why `command` would not parse with the real CLI, or None when it does.

    Walks the click tree typer builds, consuming subcommand names, then lets the leaf
    command parse its own arguments exactly as it would at run time (types, choices,
    required arguments), without invoking it.
    """
    try:
        tokens = shlex.split(command)[1:]
    except ValueError as exc:
        return f"not valid shell: {exc}"
    # typer may bring its own copy of click, so commands and errors are recognised by
    # what they can do rather than by click's classes.
    cmd: Any = typer.main.get_command(app)
    name, info, args, parent = "mothership", "mothership", tokens, None
    try:
        while hasattr(cmd, "resolve_command"):  # a group: the next token picks a subcommand
            if not args:
                return None if group_ok else f"{name}: names no subcommand"
            ctx = cmd.make_context(info, list(args), parent=parent)
            rest = [*getattr(ctx, "_protected_args", []), *ctx.args]
            if not rest:
                return f"{name}: names no subcommand"
            sub_name, sub, args = cmd.resolve_command(ctx, rest)
            if sub is None or sub_name is None:
                return f"{name}: no subcommand {rest[0]!r}"
            cmd, name, info, parent = sub, f"{name} {sub_name}", sub_name, ctx
        cmd.make_context(info, list(args), parent=parent)
    except Exception as exc:
        if type(exc).__name__ == "Exit":  # --help
            code = getattr(exc, "exit_code", 1)
            return None if code == 0 else f"exits {code}"
        if hasattr(exc, "format_message"):  # UsageError, BadParameter, NoSuchOption
            return f"{name}: {exc.format_message()}"
        raise
    return None


def _doc_commands() -> list[Found]:
    return [c for f in DOC_FILES for c in mothership_commands(f.read_text(), _rel(f))]


def test_docs_show_commands() -> None:
    """The scan itself works: the docs do show commands (else every check passes vacuously)."""
    assert DOC_FILES, "no docs found"
    assert len(_doc_commands()) >= 10


@pytest.mark.parametrize("found", _doc_commands(), ids=lambda f: f"{f.where()} {f.text}")
def test_command_in_docs_parses(found: Found) -> None:
    problem = command_problem(found.text, group_ok=found.inline)
    assert problem is None, f"{found.where()}: `{found.text}`: {problem}"


# --- links ------------------------------------------------------------------------------------


def heading_anchors(text: str) -> set[str]:
    """GitHub's anchors for the headings of a Markdown text (duplicates get -1, -2, ...)."""
    anchors: set[str] = set()
    in_code = False
    for line in text.splitlines():
        if _FENCE.match(line):
            in_code = not in_code
            continue
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if in_code or not match:
            continue
        title = re.sub(r"`|\*\*|__", "", match[1]).strip().lower()
        slug = re.sub(r"[^\w\- ]", "", title).replace(" ", "-")
        candidate, n = slug, 0
        while candidate in anchors:
            n += 1
            candidate = f"{slug}-{n}"
        anchors.add(candidate)
    return anchors


def link_problems(path: Path, text: str) -> list[str]:
    """Relative links of a Markdown file that point nowhere."""
    problems = []
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    for match in _LINK.finditer(prose):
        target = match["target"]
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if not dest.exists():
            problems.append(f"{_rel(path)}: {target}: {_rel(dest)} does not exist")
        elif anchor and dest.suffix == ".md" and anchor not in heading_anchors(dest.read_text()):
            problems.append(f"{_rel(path)}: {target}: no heading #{anchor} in {_rel(dest)}")
    return problems


def test_relative_links_resolve() -> None:
    problems = [
        p for f in [*DOC_FILES, ROOT / "README.md"] for p in link_problems(f, f.read_text())
    ]
    assert not problems, "\n".join(problems)


def test_readme_links_the_docs() -> None:
    assert "(docs/README.md)" in (ROOT / "README.md").read_text()


# --- metrics ----------------------------------------------------------------------------------


def metric_samples() -> dict[str, str]:
    """Sample name -> metric family, for every mothership_* metric the operator exports."""
    from prometheus_client import REGISTRY

    import mothership.controllers.metrics  # noqa: F401 - registers the metrics

    suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum")}
    out: dict[str, str] = {}
    for family in REGISTRY.collect():
        if not family.name.startswith("mothership_"):
            continue
        out[family.name] = family.name
        for suffix in suffixes.get(family.type, ()):
            out[family.name + suffix] = family.name
    return out


def metric_problems(text: str, known: dict[str, str]) -> list[str]:
    return [f"{m}: no such metric" for m in sorted(set(_METRIC.findall(text))) if m not in known]


def test_metrics_named_in_docs_exist() -> None:
    known = metric_samples()
    problems = [f"{_rel(f)}: {p}" for f in DOC_FILES for p in metric_problems(f.read_text(), known)]
    assert not problems, "\n".join(problems)


def test_every_metric_is_documented() -> None:
    text = (DOCS / "operations.md").read_text()
    mentioned = {metric_samples().get(m) for m in _METRIC.findall(text)}
    missing = sorted(set(metric_samples().values()) - mentioned)
    assert not missing, f"docs/operations.md does not mention {missing}"


# --- conditions -------------------------------------------------------------------------------


def code_strings() -> set[str]:
    """Every string constant in the package: condition reasons live in ternaries and calls."""
    out: set[str] = set()
    for path in (ROOT / "mothership").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                out.add(node.value)
    return out


def _string_constants(tree: ast.Module) -> dict[str, str]:
    """Module-level `NAME = "text"` assignments."""
    out = {}
    for node in tree.body:
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            value = node.value
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                out.update({t.id: value.value for t in targets if isinstance(t, ast.Name)})
    return out


def condition_types() -> set[str]:
    """Types the controllers write: the first argument of every `Condition(...)` call.

    The argument may be a literal or a constant (``CONDITION``, ``v1beta2.CONDITION_X``);
    constants are looked up in the same module first, then anywhere in the package.
    """
    trees = {p: ast.parse(p.read_text()) for p in (ROOT / "mothership").rglob("*.py")}
    package: dict[str, str] = {}
    for tree in trees.values():
        package.update(_string_constants(tree))
    out: set[str] = set()
    for path, tree in trees.items():
        if "controllers" not in path.parts:
            continue
        local = {**package, **_string_constants(tree)}
        for node in ast.walk(tree):
            if not (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", getattr(node.func, "attr", None)) == "Condition"
                and node.args
            ):
                continue
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                out.add(first.value)
            elif isinstance(first, ast.Name) and first.id in local:
                out.add(local[first.id])
            elif isinstance(first, ast.Attribute) and first.attr in package:
                out.add(package[first.attr])
    return out


def condition_table_cells(text: str, columns: tuple[str, ...] = ()) -> Iterator[tuple[str, str]]:
    """(column, name) for backticked names in table columns: by default the Condition and
    *reason* columns, else the columns named (lower case)."""
    header: list[str] | None = None
    for line in text.splitlines():
        if not line.startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None:
            header = [c.lower() for c in cells]
            continue
        for column, cell in zip(header, cells, strict=False):
            if column in columns if columns else column == "condition" or "reason" in column:
                for name in _CODE.findall(cell):
                    yield column, name


def condition_problems(text: str, types: set[str], strings: set[str]) -> list[str]:
    problems = []
    for column, name in condition_table_cells(text):
        if column == "condition" and name not in types:
            problems.append(f"condition {name}: the controllers write no such condition")
        elif column != "condition" and name not in strings:
            problems.append(f"reason {name}: not found in the code")
    return problems


def test_condition_tables_match_code() -> None:
    types, strings = condition_types(), code_strings()
    problems = [
        f"{_rel(f)}: {p}"
        for f in DOC_FILES
        for p in condition_problems(f.read_text(), types, strings)
    ]
    assert not problems, "\n".join(problems)


def test_every_condition_is_documented() -> None:
    documented = {n for c, n in condition_table_cells((DOCS / "concepts.md").read_text())}
    missing = sorted(condition_types() - documented)
    assert not missing, f"docs/concepts.md has no condition table row for {missing}"


# --- events -----------------------------------------------------------------------------------


def event_reasons() -> set[str]:
    """`reason=` of every event the controllers post (kopf.info, kopf.warn, kopf.event)."""
    out: set[str] = set()
    for path in (ROOT / "mothership" / "controllers").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) in (
                "info",
                "warn",
                "event",
                "exception",
            ):
                for keyword in node.keywords:
                    if keyword.arg == "reason" and isinstance(keyword.value, ast.Constant):
                        out.add(keyword.value.value)
    return out


def test_every_event_reason_is_documented() -> None:
    """The events table of operations.md names exactly the reasons the controllers post."""
    documented = {
        n
        for c, n in condition_table_cells((DOCS / "operations.md").read_text())
        if c == "event reason"
    }
    assert documented, "docs/operations.md has no table with an `Event reason` column"
    assert documented <= code_strings(), sorted(documented - code_strings())
    missing = sorted(event_reasons() - documented)
    assert not missing, f"docs/operations.md does not list the events {missing}"


# --- admission messages -------------------------------------------------------------------


def admission_examples() -> list[str]:
    """What the validating rules answer for the examples operations.md shows."""
    from mothership.webhooks.validate import validate

    def cluster(spec: dict[str, object], name: str = "demo") -> dict[str, object]:
        meta = {"name": name, "namespace": "default"}
        return {
            "apiVersion": "k0smotron.io/v1beta2",
            "kind": "Cluster",
            "metadata": meta,
            "spec": spec,
        }

    k8s = {"distribution": "kubernetes"}
    node_port = {"service": {"type": "NodePort"}}
    cases = [
        (cluster({"version": "1.35"}), None, []),
        (cluster({**k8s, "version": "v1.35.4-k0s.0"}), None, []),
        (cluster({"version": "v1.35.4-k0s.0"}), cluster({"version": "v1.33.1-k0s.0"}), []),
        (cluster({**k8s, "version": "v1.34.4"}), cluster({**k8s, "version": "v1.35.4"}), []),
        (cluster(k8s), cluster({}), []),
        (cluster(node_port), None, [cluster(node_port, name="other")]),
        (cluster({"replicas": 3, "storage": {"type": "kine"}}), None, []),
        (cluster({"persistence": {"type": "PVC"}}), None, []),
        (cluster({}, name="payments-production-eu-west-1-tenant"), None, []),
        (
            cluster({"storage": {"etcd": {"persistence": {"size": "1Gi"}}}}),
            cluster({"storage": {"etcd": {"persistence": {"size": "2Gi"}}}}),
            [],
        ),
    ]
    return [str(e) for new, old, others in cases for e in validate(new, old, others).errors]


def message_problems(text: str, messages: list[str]) -> list[str]:
    """Cells of the `Admission message` column that no rule produces (`...` ends a prefix)."""
    problems = []
    for _, shown in condition_table_cells(text, columns=("admission message",)):
        prefix = shown.removesuffix("...").rstrip()
        if not any(m == shown or (prefix != shown and m.startswith(prefix)) for m in messages):
            problems.append(f"no rule answers `{shown}`")
    return problems


def test_admission_messages_in_docs_are_real() -> None:
    text = (DOCS / "operations.md").read_text()
    assert any(
        c == "admission message" for c, _ in condition_table_cells(text, ("admission message",))
    )
    problems = message_problems(text, admission_examples())
    assert not problems, "\n".join(problems)


# --- the checkers can fail --------------------------------------------------------------------


BROKEN = """
```bash
mothership dev up --nodes kwok          # fine
mothership dev upp                      # no such subcommand
mothership dev up --nodes banana        # not a choice
mothership dev status --colour          # no such option
eval "$(mothership dev env --nam x)"    # inside $( ), misspelt option
```
Run `mothership tools instal` (inline, misspelt); `mothership dev` names a group.
See [missing](no-such-file.md) and [bad anchor](#nowhere).

# Only heading

| Condition | Reason |
|---|---|
| `Available` | `ControlPlaneAvailable` |
| `Availabel` | `NoSuchReason` |

The metric `mothership_reconciles_totl` is misspelt.

| Admission message | fix |
|---|---|
| `spec.persistence.type: "PVC" is not valid; use pvc (values are case-sensitive)` | real |
| `spec.version: cannot upgrade from v1.33.1-k0s.0 to v1.35.4-k0s.0 in one step; ...` | prefix |
| `spec.version: "1.35" is no k0s version` | reworded |
| `spec.replicas: must be odd; ...` | invented |
"""


def test_checkers_catch_broken_docs(tmp_path: Path) -> None:
    found = list(mothership_commands(BROKEN))
    commands = [c.text for c in found]
    assert len(commands) == 7, commands
    verdicts = [command_problem(c.text, group_ok=c.inline) for c in found]
    assert verdicts[0] is None and verdicts[6] is None, verdicts
    assert all(verdicts[1:6]), verdicts
    assert command_problem("mothership dev") == "mothership dev: names no subcommand"
    assert "upp" in str(verdicts[1]) and "banana" in str(verdicts[2])

    doc = tmp_path / "broken.md"
    doc.write_text(BROKEN)
    links = link_problems(doc, BROKEN)
    assert len(links) == 2 and "no-such-file.md" in links[0] and "#nowhere" in links[1], links

    assert metric_problems(BROKEN, metric_samples()) == [
        "mothership_reconciles_totl: no such metric"
    ]
    assert message_problems(BROKEN, admission_examples()) == [
        'no rule answers `spec.version: "1.35" is no k0s version`',
        "no rule answers `spec.replicas: must be odd; ...`",
    ]
    problems = condition_problems(BROKEN, condition_types(), code_strings())
    assert problems == [
        "condition Availabel: the controllers write no such condition",
        "reason NoSuchReason: not found in the code",
    ], problems


def test_anchor_slugs_follow_github() -> None:
    text = "# Back up a `Cluster`: PKI & data\n## Logs\n## Logs\n```\n# not a heading\n```"
    assert heading_anchors(text) == {"back-up-a-cluster-pki--data", "logs", "logs-1"}
