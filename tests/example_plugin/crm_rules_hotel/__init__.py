"""crm-rules plugin for hotel loyalty clubs (an example third-party package).

The plugin itself is :mod:`crm_rules_hotel.plugin`, found by crm-rules through
the ``crm_rules`` entry point declared in ``pyproject.toml``.
"""

__version__ = "0.1.0"
