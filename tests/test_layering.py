"""ARCHITECTURE.md's import table, enforced: each package imports only what it may."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "bridge"

# package prefix -> bridge packages it may import (besides itself). Third-party
# libraries are checked separately where the table restricts them.
ALLOWED: dict[str, set[str]] = {
    "bridge.imap.wire": set(),
    "bridge.imap.session": {"bridge.imap.wire", "bridge.backend", "bridge.mime"},
    "bridge.imap.server": {
        "bridge.imap.session",
        "bridge.imap.wire",
        "bridge.config",
        "bridge.backend",
    },
    "bridge.mime": set(),
    "bridge.backend": {"bridge.store", "bridge.mime"},
    "bridge.graph": {"bridge.backend.remote", "bridge.errors"},
    "bridge.sync": {"bridge.graph", "bridge.store", "bridge.backend", "bridge.mime"},
    "bridge.store": set(),
    "bridge.push": {"bridge.graph", "bridge.store", "bridge.backend", "bridge.sync"},
    "bridge.smtp": {"bridge.backend", "bridge.mime"},
    "bridge.simulator": set(),
}
STDLIB_ONLY = {"bridge.imap.wire", "bridge.mime"}
ALWAYS_OK = {"bridge", "bridge.errors"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def _rule_for(module: str) -> str | None:
    best = None
    for prefix in ALLOWED:
        if (module == prefix or module.startswith(prefix + ".")) and (
            best is None or len(prefix) > len(best)
        ):
            best = prefix
    return best


def test_packages_import_only_what_the_architecture_allows() -> None:
    import sys

    stdlib = set(sys.stdlib_module_names)
    problems: list[str] = []
    for path in sorted(ROOT.rglob("*.py")):
        module = _module_name(path)
        rule = _rule_for(module)
        if rule is None:
            continue
        for name in _imports(path):
            top = name.split(".")[0]
            if top == "bridge":
                if name in ALWAYS_OK and rule != "bridge.simulator":
                    continue
                if name == rule or name.startswith(rule + "."):
                    continue
                if any(name == ok or name.startswith(ok + ".") for ok in ALLOWED[rule]):
                    continue
                problems.append(f"{module} imports {name}")
            elif rule in STDLIB_ONLY and top not in stdlib and top != "__future__":
                problems.append(f"{module} imports third-party {name} (stdlib only)")
    assert problems == []


def test_simulator_shares_no_code_with_the_graph_client() -> None:
    for path in sorted((ROOT / "simulator").rglob("*.py")):
        for name in _imports(path):
            assert not name.startswith("bridge.") or name.startswith("bridge.simulator"), (
                f"{path} imports {name}"
            )
