"""Fault-matrix fixtures and the matrix table printed at the end of the session.

A test names its cell with the ``matrix`` fixture — ``matrix("503 burst", "APPEND")`` —
and the outcome of that test (setup, call and teardown) becomes the cell's result.
``pytest_terminal_summary`` prints fault x operation → pass/FAIL. Every test here also
checks, at teardown, that the simulator never saw more than 4 concurrent Graph requests
for alice or bob (GRAPH-MAIL-FACTS §4.1).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.faults.harness import assert_concurrency

_CELLS: dict[tuple[str, str], str] = {}
_KEY = "fault_matrix_cell"


@pytest.fixture
def matrix(request: pytest.FixtureRequest) -> Callable[[str, str], None]:
    def name(fault: str, operation: str) -> None:
        request.node.user_properties.append((_KEY, (fault, operation)))

    return name


@pytest.fixture(autouse=True)
def _graph_concurrency_never_exceeded(request: pytest.FixtureRequest) -> Iterator[None]:
    # Taken before the test so that it is torn down after this check.
    tenant = request.getfixturevalue("tenant") if "tenant" in request.fixturenames else None
    yield
    if tenant is not None:
        assert_concurrency(tenant.sim, tenant.alice, tenant.bob)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Any:
    report = yield
    cells = [value for key, value in item.user_properties if key == _KEY]
    for cell in cells:
        previous = _CELLS.get(cell, "pass")
        if report.failed:
            _CELLS[cell] = "FAIL"
        elif previous != "FAIL" and report.when == "call":
            _CELLS[cell] = "pass"
    return report


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _CELLS:
        return
    faults = sorted({f for f, _ in _CELLS}, key=_order_key)
    operations = sorted({o for _, o in _CELLS}, key=_order_key)
    first = max(len("fault"), *(len(f) for f in faults))
    widths = [max(len(o), 4) for o in operations]
    write = terminalreporter.write_line
    terminalreporter.section("fault matrix (fault x operation)")
    heads = [o.ljust(w) for o, w in zip(operations, widths, strict=True)]
    write(" | ".join(["fault".ljust(first), *heads]))
    write("-+-".join(["-" * first, *("-" * w for w in widths)]))
    for fault in faults:
        row = [fault.ljust(first)]
        for operation, width in zip(operations, widths, strict=True):
            row.append(_CELLS.get((fault, operation), "-").ljust(width))
        write(" | ".join(row))
    failed = sum(1 for v in _CELLS.values() if v == "FAIL")
    write(f"{len(_CELLS)} cells, {failed} failed")


_ORDER = [
    "none",
    "429 storm",
    "503 burst",
    "504 burst",
    "504 once",
    "connection resets",
    "2 s latency",
    "token expiry",
    "expired delta token",
    "notification dropped",
    "notification duplicated",
    "SIGKILL mid-sync",
    "SIGKILL before",
    "SIGKILL after",
    "initial sync + FETCH",
    "delta apply",
    "APPEND",
    "STORE flags",
    "COPY",
    "MOVE",
    "EXPUNGE",
    "SMTP send",
]


def _order_key(name: str) -> tuple[int, str]:
    for index, prefix in enumerate(_ORDER):
        if name.startswith(prefix):
            return index, name
    return len(_ORDER), name
