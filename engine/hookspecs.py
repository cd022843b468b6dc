"""Hook specifications of crm-rules: the whole contract between engine and plugins.

Each hook hands the plugin a ``register`` callback; what a plugin registers
becomes usable by name in policies.  The engine owns the registry, so a name
registered twice is an error that names both plugins.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("crm_rules")

Register = Callable[[str, Callable[..., Any], dict], None]


@hookspec
def crm_rules_register_scorers(register: Register) -> None:
    """Register scorers that policies use in their ``scores:`` section.

    :param register: call ``register(name, fn, schema)`` once per scorer; ``fn(ctx, params)``
        returns a ``SqlOutputs`` or ``BatchOutputs`` plan and ``schema`` is the JSON Schema of ``params``.
    """


@hookspec
def crm_rules_register_credit_checks(register: Register) -> None:
    """Register credit checks that policies use in their ``credit:`` section.

    :param register: call ``register(name, fn, schema)`` once per credit check; ``fn(ctx, params)``
        returns a ``SqlOutputs`` or ``BatchOutputs`` plan and ``schema`` is the JSON Schema of ``params``.
    """


@hookspec
def crm_rules_register_actions(register: Register) -> None:
    """Register action generators that policies use in their ``actions:`` section.

    :param register: call ``register(name, fn, schema)`` once per generator; ``fn(ctx, params)``
        returns a ``SqlActions`` or ``BatchActions`` plan and ``schema`` is the JSON Schema of ``params``.
    """


@hookspec
def crm_rules_register_functions(register: Register) -> None:
    """Register extra functions for the policy expression language.

    :param register: call ``register(name, fn, schema)`` once per function; ``fn(*argument_sql)`` returns the SQL of
        the call and ``schema`` is its signature, ``{"args": [types], "returns": type}`` with types number/text/date/bool.
    """
