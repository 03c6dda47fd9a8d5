"""The bridge's own exception roots (protocol-level errors live with their layer).

::

    BridgeError
    └── ConfigError        a configuration mistake; str() names file, line, key and fix
"""

from __future__ import annotations


class BridgeError(Exception):
    pass


class ConfigError(BridgeError):
    pass
