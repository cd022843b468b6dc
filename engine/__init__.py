"""crm-rules engine: YAML customer policies compiled to SQL over SQLite."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("crm-rules")
except PackageNotFoundError:  # running from a source checkout
    __version__ = "0+source"

import pluggy as _pluggy

#: Decorator for plugin hook implementations: ``@hookimpl def crm_rules_register_scorers(register): ...``
hookimpl = _pluggy.HookimplMarker("crm_rules")
