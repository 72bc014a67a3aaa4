"""Whether a CEL expression parses, before the tenant's API server is asked to compile it.

The API server compiles the expressions of its AuthenticationConfiguration when it loads the
file; one it cannot parse makes it keep the previous file (an edit) or not start (a new
Cluster), with the reason only in its log. A parser here (the `cel` package, Rust's
cel-interpreter) finds the same syntax errors at admission. It knows less than the API server's
cel-go: the optional syntax (`claims.?x`, `[?"x"]`) is Kubernetes' and unknown to it, so what it
calls unsupported is let through, never refused; types and functions are left to the API
server, which checks them per token.

The parser is native code: a long enough chain (`a.b.b.b...`, some 40,000 characters) overflows
its stack and takes the whole process down, and some inputs make it panic. So expressions are
bounded by the CRD (MAX_EXPRESSION, far above any claim mapping: the worst shapes at that length
parse on a 1 MiB thread stack) and checked here again, and a panic means "not judged", not
"refused".
"""

from __future__ import annotations

import re

from mothership.api.k0smotron.v1beta2 import MAX_EXPRESSION

_POSITION = re.compile(r"<input>:(\d+):(\d+):\s*(.*)")


def syntax_error(expression: str) -> str | None:
    """A one-line description of the syntax error, or None when it parses (or uses syntax
    only the API server knows)."""
    if len(expression) > MAX_EXPRESSION:
        return f"longer than {MAX_EXPRESSION} characters"
    import cel  # here: the package imports its own CLI (a quarter second), needed by few

    try:
        cel.compile(expression)
    except ValueError as exc:
        text = str(exc)
        if "unsupported syntax" in text:
            return None
        return _first_error(text)
    except Exception:  # a fault of the parser, not of the expression
        return None
    except BaseException as exc:  # pyo3's PanicException derives from BaseException
        if type(exc).__name__ == "PanicException":
            return None
        raise
    return None


def _first_error(text: str) -> str:
    for line in text.splitlines():
        found = _POSITION.search(line)
        if found:
            line_no, column, what = found.groups()
            what = what.removeprefix("Syntax error: ").split(" expecting ", 1)[0].strip()
            where = f"column {column}" if line_no == "1" else f"line {line_no}, column {column}"
            return f"{what} at {where}"
    return text.splitlines()[0] if text else "does not parse"
