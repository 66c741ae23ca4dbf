"""No step in the library moves every row into one partition through a window.

A window without ``partitionBy`` (``Window.orderBy(...)``, ``Window.partitionBy()``, a
constant partition key, ``.over()`` with no window, or SQL ``OVER ()`` / ``OVER (ORDER
BY ...)``) makes Spark gather the whole frame in one task: fine on a laptop, a wall at
scale. Ranks and quantiles use distributed aggregates instead (see cradle.profile.rfm).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

LIB = Path(__file__).resolve().parents[1] / "lib" / "cradle"
SQL_GLOBAL_OVER = re.compile(r"\bOVER\s*\(\s*(\)|ORDER\s+BY|ROWS\b|RANGE\b)", re.IGNORECASE)


def _is_window(node: ast.AST) -> bool:
    return isinstance(node, ast.Name) and node.id == "Window"


def _is_constant(node: ast.AST) -> bool:
    """A number, or ``F.lit(...)`` / ``lit(...)``: the same partition for every row (a string
    names a column)."""
    if isinstance(node, ast.Constant):
        return not isinstance(node.value, str)
    if isinstance(node, ast.Call):
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        return name == "lit"
    return False


def global_windows(source: str, filename: str = "<string>") -> list[str]:
    """``file:line: what`` for every partition-less window in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            attr, owner = node.func.attr, node.func.value
            if _is_window(owner) and attr in ("orderBy", "rowsBetween", "rangeBetween"):
                found.append(f"{filename}:{node.lineno}: Window.{attr} without partitionBy")
            elif _is_window(owner) and attr == "partitionBy":
                if not node.args or all(_is_constant(a) for a in node.args):
                    found.append(f"{filename}:{node.lineno}: Window.partitionBy without a column")
            elif attr == "over" and not node.args and not node.keywords:
                found.append(f"{filename}:{node.lineno}: .over() with no window")
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and SQL_GLOBAL_OVER.search(node.value)
        ):
            found.append(f"{filename}:{node.lineno}: SQL window without PARTITION BY")
    return sorted(found, key=lambda f: int(f.split(":")[1]))


def test_the_detector_finds_each_kind_of_global_window() -> None:
    sample = """
w1 = Window.orderBy("x")
w2 = Window.partitionBy()
w3 = Window.partitionBy(F.lit(1)).orderBy("x")
w4 = Window.rowsBetween(Window.unboundedPreceding, 0)
n = F.count("*").over()
q = "SELECT rank() OVER (ORDER BY x) FROM t"
ok1 = Window.partitionBy("one_id").orderBy("x")
ok2 = "SELECT rank() OVER (PARTITION BY k ORDER BY x) FROM t"
"""
    assert [f.split(": ", 1)[0] for f in global_windows(sample, "s")] == [
        "s:2",
        "s:3",
        "s:4",
        "s:5",
        "s:6",
        "s:7",
    ]


def test_no_partitionless_window_in_the_library() -> None:
    found = []
    for path in sorted(LIB.rglob("*.py")):
        found += global_windows(path.read_text(encoding="utf-8"), str(path.relative_to(LIB.parents[1])))
    assert found == []
