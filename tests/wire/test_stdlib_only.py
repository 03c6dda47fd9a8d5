"""bridge/imap/wire imports nothing but the standard library and itself (ARCHITECTURE.md)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

WIRE = Path(__file__).resolve().parents[2] / "bridge" / "imap" / "wire"


def test_wire_imports_only_stdlib() -> None:
    offenders: list[str] = []
    files = sorted(WIRE.glob("*.py"))
    assert files
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top != "__future__":
                    offenders.append(f"{path.name}: {name}")
    assert offenders == []
