"""National clouds: where the token endpoint and the Graph root of each cloud live.

Owns the ``Cloud`` value and ``cloud_by_name``. Knows host names only; no I/O.
Must not import anything outside the standard library (and ``bridge.errors``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from bridge.errors import ConfigError

# GRAPH-MAIL-FACTS §2: authority host and Graph root per cloud. GCC "moderate" uses global.
_KNOWN: dict[str, tuple[str, str]] = {
    "global": ("https://login.microsoftonline.com", "https://graph.microsoft.com"),
    "gcc-high": ("https://login.microsoftonline.us", "https://graph.microsoft.us"),
    "dod": ("https://login.microsoftonline.us", "https://dod-graph.microsoft.us"),
    "china": ("https://login.chinacloudapi.cn", "https://microsoftgraph.chinacloudapi.cn"),
}

CLOUD_NAMES = (*_KNOWN, "custom")


@dataclass(frozen=True, slots=True)
class Cloud:
    """One Microsoft cloud (or the simulator). URLs carry no trailing slash."""

    name: str
    login_url: str  # authority host, e.g. https://login.microsoftonline.com
    graph_url: str  # Graph root without version, e.g. https://graph.microsoft.com
    ca_file: Path | None = None  # extra trust anchor (simulator, TLS-inspecting proxy)

    @property
    def is_custom(self) -> bool:
        return self.name == "custom"

    @property
    def scope(self) -> str:
        # Facts §1.1: app-only scope is always "<graph root>/.default".
        return f"{self.graph_url}/.default"

    @property
    def api_root(self) -> str:
        # Facts §0.1: v1.0 only, never /beta.
        return f"{self.graph_url}/v1.0"

    def authority(self, tenant_id: str) -> str:
        return f"{self.login_url}/{tenant_id}"


def _clean_url(value: str, what: str) -> str:
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.netloc:
        # MSAL refuses non-https authorities (facts §1.2); Graph is https-only.
        raise ConfigError(f"{what} must be an https:// URL with a host, got {value!r}")
    return value.rstrip("/")


def cloud_by_name(
    name: str,
    *,
    login_url: str | None = None,
    graph_url: str | None = None,
    ca_file: str | Path | None = None,
) -> Cloud:
    """The cloud called ``name``; ``custom`` needs explicit ``login_url`` and ``graph_url``.

    For the national clouds explicit URLs override the defaults (useful behind a proxy
    that rewrites hosts); ``ca_file`` is accepted for every cloud.
    """
    key = name.strip().lower()
    ca = Path(ca_file) if ca_file is not None else None
    if ca is not None and not ca.is_file():
        raise ConfigError(f"ca_file {str(ca)!r} does not exist or is not a file")
    if key == "custom":
        if not login_url or not graph_url:
            raise ConfigError("cloud 'custom' needs both login_url and graph_url")
        return Cloud(
            "custom", _clean_url(login_url, "login_url"), _clean_url(graph_url, "graph_url"), ca
        )
    if key not in _KNOWN:
        raise ConfigError(f"unknown cloud {name!r}; use one of: {', '.join(CLOUD_NAMES)}")
    default_login, default_graph = _KNOWN[key]
    return Cloud(
        key,
        _clean_url(login_url or default_login, "login_url"),
        _clean_url(graph_url or default_graph, "graph_url"),
        ca,
    )
