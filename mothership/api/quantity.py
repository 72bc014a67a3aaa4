"""Kubernetes resource quantities ("10Gi", "500M", "1.5e9"), parsed for comparing sizes.

Only what comparing two sizes needs: the exact value as a Decimal. Used by admission
(a volume may not shrink) and by the controller (a volume that grows needs its claims
patched), so both read "1Gi" and "1073741824" as the same size.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_SUFFIXES = {
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal(10**3),
    "M": Decimal(10**6),
    "G": Decimal(10**9),
    "T": Decimal(10**12),
    "P": Decimal(10**15),
    "E": Decimal(10**18),
}
_QUANTITY = re.compile(
    r"^(?P<number>[+-]?(?:\d+\.?\d*|\.\d+))"
    r"(?:(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)|[eE](?P<exp>[+-]?\d+))?$"
)


def parse(text: str | int | float) -> Decimal:
    """The value of a quantity; ValueError naming the text when it is not one."""
    if isinstance(text, bool):
        raise ValueError(f"{text!r} is not a quantity")
    if isinstance(text, int | float):
        return Decimal(str(text))
    match = _QUANTITY.match(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a quantity (e.g. 10Gi, 500Mi, 1G)")
    try:
        number = Decimal(match["number"])
    except InvalidOperation as exc:  # pragma: no cover - the pattern admits only numbers
        raise ValueError(f"{text!r} is not a quantity") from exc
    if match["exp"] is not None:
        return number.scaleb(int(match["exp"]))
    return number * _SUFFIXES[match["suffix"] or ""]


def compare(a: str | int | float, b: str | int | float) -> int:
    """-1, 0 or 1 as quantity a is smaller than, equal to or larger than b."""
    x, y = parse(a), parse(b)
    return (x > y) - (x < y)
