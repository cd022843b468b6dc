"""crm-rules engine: YAML customer policies compiled to SQL over SQLite."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("crm-rules")
except PackageNotFoundError:  # running from a source checkout
    __version__ = "0+source"
