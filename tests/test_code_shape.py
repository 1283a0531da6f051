"""The package keeps the shape CONTRIBUTING.md promises: small modules, short functions.

A module over 420 lines, or a function whose code (docstring excluded) runs over 60 lines
without saying why in its docstring ("Long by design: ..."), fails here, so the size rules
do not erode one commit at a time.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "dpsynth"
MODULE_LINES = 420
FUNCTION_LINES = 60
MODULES = sorted(PACKAGE.rglob("*.py"))


def _code_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    first = node.body[0]
    has_doc = isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
        and isinstance(first.value.value, str)
    start = (first.end_lineno or first.lineno) + 1 if has_doc else node.lineno
    return (node.end_lineno or node.lineno) - start + 1


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_stays_small(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MODULE_LINES, f"{path.name} has {lines} lines; split it along a seam"


def test_long_functions_say_why() -> None:
    unexplained = []
    for path in MODULES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _code_lines(node) > FUNCTION_LINES:
                doc = ast.get_docstring(node) or ""
                if "Long by design" not in doc:
                    unexplained.append(f"{path.relative_to(PACKAGE)}:{node.name} ({_code_lines(node)} lines)")
    assert unexplained == []


def test_the_check_sees_a_long_function() -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(FUNCTION_LINES + 1))
    node = ast.parse(f"def f():\n    '''doc'''\n{body}\n").body[0]
    assert isinstance(node, ast.FunctionDef) and _code_lines(node) == FUNCTION_LINES + 1
