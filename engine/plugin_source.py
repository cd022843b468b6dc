"""Where in a plugin's own source a mistake is: ``crm_rules_churn/plugin.py:12``.

A plugin's mistakes are reported by the engine, far from the plugin's code: a hook
with a misspelt name, a second ``register()`` of one name, an exception in a hook
or while a policy compiles.  The plugin's author fixes them in their file, so the
messages say which file and line, as a policy's messages say where in the YAML;
``--debug`` still gives the whole traceback.
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

_HERE = Path(__file__).resolve().parent
# crm-rules' own code (not its tests, which are in the source tree too): the frames that are not a plugin's
CRM_RULES_CODE = (_HERE, _HERE.parent / "plugins", _HERE.parent / "cli.py")


def shown(path: str | Path, line: int) -> str:
    """``path:line``, relative to the working directory when the file is under it (an editable install in the
    author's project), else as it is (a package in site-packages)."""
    try:
        path = Path(path).resolve().relative_to(Path.cwd().resolve())
    except (ValueError, OSError):
        pass
    return f"{path}:{line}"


def defined_at(obj: Any) -> str | None:
    """Where the function (or method) ``obj`` is defined, or None when Python cannot tell (a C callable)."""
    fn = inspect.unwrap(getattr(obj, "__func__", obj))
    code = getattr(fn, "__code__", None)
    if code is None:
        return None
    return shown(code.co_filename, code.co_firstlineno)


def called_from(frame: FrameType | None) -> str | None:
    """Where ``frame`` is: the line of a plugin that called back into the engine (``register(...)``)."""
    return None if frame is None else shown(frame.f_code.co_filename, frame.f_lineno)


def raised_at(exc: BaseException, package: str | None) -> str | None:
    """The line of the plugin's own code where ``exc`` was raised, or the innermost line outside crm-rules.

    ``package``: the plugin's module (``crm_rules_churn.plugin``); the frames in the files of its top-level
    package are the plugin's, so a KeyError raised by a dict lookup in the plugin names the plugin's line,
    not one in a library it called.  Python's own import machinery (``<frozen importlib._bootstrap>``) is
    never the place.
    """
    frames = [(tb.tb_frame.f_code.co_filename, tb.tb_lineno) for tb in _walk(exc.__traceback__)]
    if isinstance(exc, SyntaxError) and exc.filename and exc.lineno:  # the file that does not parse has no frame
        frames.append((exc.filename, exc.lineno))
    frames = [(f, line) for f, line in frames if not f.startswith("<")]
    own = package_dir(package)
    for matches in ((lambda f: own is not None and _within(f, own)), (lambda f: not _ours(f))):
        found = [(f, line) for f, line in frames if matches(f)]
        if found:
            return shown(*found[-1])
    return None


def module_of(obj: Any) -> str | None:
    """The module a plugin's function (or method) is defined in."""
    return getattr(inspect.unwrap(getattr(obj, "__func__", obj)), "__module__", None)


def _walk(tb: TracebackType | None):
    while tb is not None:
        yield tb
        tb = tb.tb_next


def package_dir(module: str | None) -> Path | None:
    """The directory of the top-level package of ``module`` (the file, for a module of its own), if imported."""
    top = sys.modules.get((module or "").split(".")[0])
    if top is None:
        return None
    paths = getattr(top, "__path__", None)
    if paths:
        return Path(list(paths)[0]).resolve()
    file = getattr(top, "__file__", None)
    return Path(file).resolve() if file else None


def is_built_in(obj: Any) -> bool:
    """Whether ``obj`` is a function of crm-rules itself (a built-in plugin's)."""
    fn = inspect.unwrap(getattr(obj, "__func__", obj))
    code = getattr(fn, "__code__", None)
    return code is not None and _ours(code.co_filename)


def _within(file: str, root: Path) -> bool:
    try:
        path = Path(file).resolve()
    except OSError:
        return False
    return path == root or root in path.parents


def _ours(file: str) -> bool:
    return any(_within(file, root) for root in CRM_RULES_CODE)
