"""Size profile of a source tree: module lines (median / p90 / max), modules over 300 lines,
functions over 60 lines, and the class with the most methods. Prints figures; asserts nothing.

    python tests/benchmarks/size_profile.py [PACKAGE_DIR]
"""

from __future__ import annotations

import ast
import statistics
import sys
from pathlib import Path


def profile(root: Path) -> dict[str, object]:
    lines: dict[str, int] = {}
    functions: list[tuple[int, str]] = []
    classes: list[tuple[int, str]] = []
    for path in sorted(root.rglob("*.py")):
        text = path.read_text()
        name = str(path.relative_to(root.parent))
        lines[name] = len(text.splitlines())
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                functions.append((node.end_lineno - node.lineno + 1, f"{name}:{node.name}"))  # type: ignore[operator]
            elif isinstance(node, ast.ClassDef):
                methods = [n for n in node.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
                classes.append((len(methods), f"{name}:{node.name}"))
    sizes = sorted(lines.values())
    function_sizes = sorted(size for size, _ in functions)
    return {
        "modules": len(sizes),
        "module lines median / p90 / max": (statistics.median(sizes), sizes[int(0.9 * (len(sizes) - 1))], max(sizes)),
        "largest modules": sorted(lines.items(), key=lambda item: -item[1])[:5],
        "modules over 300 lines": f"{sum(s > 300 for s in sizes)} ({sum(s > 300 for s in sizes) / len(sizes):.0%})",
        "function lines median / p90": (
            statistics.median(function_sizes),
            function_sizes[int(0.9 * (len(function_sizes) - 1))],
        ),
        "functions over 60 lines": sorted((f for f in functions if f[0] > 60), reverse=True),
        "largest class (methods)": max(classes),
    }


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "llmbulk")
    for key, value in profile(target).items():
        print(f"{key}: {value}")
