"""Render the Markdown CLI reference (``docs/cli.md``) from the Typer app itself.

The reference is read off the command tree Typer builds for ``crm-rules``
(``typer.main.get_command``): every command and sub-command (groups such as
``table`` recursively), its help text, a usage line, its arguments and
options with their types, defaults and help, the global options, and the
exit codes, which come from the error classes in ``engine/errors.py``.
Nothing depends on the terminal: no wrapping, no colours, no widths, so the
same code always gives the same file and ``tests/test_docs.py`` can check
that ``docs/cli.md`` is up to date.

    python -m crm_rules.engine.cli_reference > docs/cli.md
    python -m crm_rules.engine.cli_reference --write docs/cli.md
    python -m crm_rules.engine.cli_reference --check docs/cli.md   # exit 1 if out of date
"""

from __future__ import annotations

import argparse
import enum
import inspect
import sys
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import json_outputs

PROG = "crm-rules"
REGENERATE = "python -m crm_rules.engine.cli_reference --write docs/cli.md"


# ---------------------------------------------------------------------------
# The command tree
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class CommandDoc:
    """One command of the tree: its words after ``crm-rules`` and the click command object."""

    path: tuple[str, ...]
    command: Any

    @property
    def name(self) -> str:
        return " ".join((PROG, *self.path))

    @property
    def is_group(self) -> bool:
        return _subcommands(self.command) is not None

    @property
    def anchor(self) -> str:
        """GitHub's anchor of the command's heading (`` `crm-rules table export` `` -> crm-rules-table-export)."""
        return "-".join((PROG, *self.path))


def _subcommands(command: Any) -> dict[str, Any] | None:
    """A group's visible sub-commands in the order ``--help`` lists them, or None for a plain command."""
    commands = getattr(command, "commands", None)
    if not isinstance(commands, dict):
        return None
    try:
        names = list(command.list_commands(None))
    except Exception:  # pragma: no cover - a list_commands that needs a real context
        names = list(commands)
    return {n: commands[n] for n in names if n in commands and not getattr(commands[n], "hidden", False)}


def root_command(app: Any = None) -> Any:
    """The click command of the Typer app (default: the ``crm-rules`` app of cli.py)."""
    import typer

    if app is None:
        from ..cli import app
    return typer.main.get_command(app)


def command_tree(app: Any = None) -> list[CommandDoc]:
    """Every visible command and sub-command, depth first, in the order ``--help`` lists them."""
    out: list[CommandDoc] = []

    def walk(command: Any, path: tuple[str, ...]) -> None:
        for name, sub in (_subcommands(command) or {}).items():
            out.append(CommandDoc(path + (name,), sub))
            walk(sub, path + (name,))

    walk(root_command(app), ())
    return out


def options_of(command: Any) -> dict[str, list[str]]:
    """Every option string a command accepts (``--db``, ``-p``, ``--help``), by parameter name."""
    found: dict[str, list[str]] = {}
    for p in command.params:
        if _is_option(p):
            found[p.name] = [*p.opts, *getattr(p, "secondary_opts", [])]
    found["help"] = ["--help"]
    return found


# ---------------------------------------------------------------------------
# Parameters: kind, type, default (for the Typer-vendored click and for click 8)
# ---------------------------------------------------------------------------

def _is_option(param: Any) -> bool:
    return getattr(param, "param_type_name", "") == "option"


def _is_flag(param: Any) -> bool:
    return bool(getattr(param, "is_flag", False)) or bool(getattr(param, "count", False))


def _strip_optional(annotation: Any) -> Any:
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) is typing.Union and len(args) == 1:
        return args[0]
    return annotation


def _type_from_annotation(param: Any) -> tuple[str, str, list[str]]:
    """(metavar, type words, notes) from a Typer TypeDescriptor (Typer versions that vendor click)."""
    descriptor = param.type_descriptor
    annotation = _strip_optional(descriptor.annotation)
    if typing.get_origin(annotation) in (list, tuple, set, frozenset):
        inner = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        annotation = _strip_optional(inner[0]) if inner else str
    info = descriptor.parameter_info
    if typing.get_origin(annotation) is typing.Literal:
        return _choice([str(v) for v in typing.get_args(annotation)])
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return _choice([str(m.value) for m in annotation])
    if isinstance(annotation, type) and issubclass(annotation, Path):
        return _path(getattr(info, "file_okay", True), getattr(info, "dir_okay", True))
    if annotation is bool:
        return "", "flag", []
    if annotation in (int, float):
        word = "integer" if annotation is int else "number"
        return word.upper(), word, _range(getattr(param, "min", None), getattr(param, "max", None))
    if annotation is str:
        return "TEXT", "text", []
    name = getattr(annotation, "__name__", str(annotation)).lower()
    return name.upper(), name, []


def _type_from_click(param: Any) -> tuple[str, str, list[str]]:
    """(metavar, type words, notes) from a click ParamType (click 8 with classic Typer)."""
    t = param.type
    if hasattr(t, "choices"):
        return _choice([str(c) for c in t.choices])
    if hasattr(t, "file_okay") and hasattr(t, "dir_okay"):
        return _path(t.file_okay, t.dir_okay)
    name = getattr(t, "name", "text")
    if name in ("boolean", "bool"):
        return "", "flag", []
    if name.startswith("integer") or name.startswith("float"):
        word = "integer" if name.startswith("integer") else "number"
        return word.upper(), word, _range(getattr(t, "min", None), getattr(t, "max", None))
    if name in ("text", "string"):
        return "TEXT", "text", []
    return name.upper(), name, []


def _choice(values: list[str]) -> tuple[str, str, list[str]]:
    return "[" + "|".join(values) + "]", "one of " + ", ".join(f"`{v}`" for v in values), []


def _path(file_okay: bool, dir_okay: bool) -> tuple[str, str, list[str]]:
    if file_okay and not dir_okay:
        return "FILE", "file", []
    if dir_okay and not file_okay:
        return "DIR", "directory", []
    return "PATH", "path", []


def _range(low: Any, high: Any) -> list[str]:
    if low is not None and high is not None:
        return [f"{low}…{high}"]
    if low is not None:
        return [f"at least {low}"]
    if high is not None:
        return [f"at most {high}"]
    return []


def param_type(param: Any) -> tuple[str, str]:
    """(metavar, type description) of an argument or option, e.g. ("FILE", "file") or ("INTEGER", "integer, at least 0")."""
    if _is_flag(param):
        return "", "flag"
    if getattr(param, "type_descriptor", None) is not None:
        metavar, words, notes = _type_from_annotation(param)
    else:
        metavar, words, notes = _type_from_click(param)
    if words == "flag":  # a bool taking a value (--x true); not used by crm-rules, kept for completeness
        metavar, words = "BOOLEAN", "true/false"
    if getattr(param, "metavar", None):
        metavar = param.metavar
    if getattr(param, "multiple", False):
        notes = [*notes, "repeatable"]
    if getattr(param, "nargs", 1) == -1:
        notes = [*notes, "one or more" if param.required else "zero or more"]
    return metavar, ", ".join([words, *notes])


def _default(param: Any) -> str:
    """The default as the command line shows it, or '' when there is none worth showing."""
    if param.required:
        return "required"
    value = param.default
    if callable(value) and not isinstance(value, type):
        return ""  # a dynamic default: its help says what it is
    if value is None or value is False or value == [] or value == ():
        return ""
    if value is True and _is_flag(param):
        return "on"
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, (list, tuple)):
        return " ".join(f"`{v}`" for v in value)
    return f"`{value}`"


def _option_names(param: Any, metavar: str) -> str:
    names = [*param.opts, *getattr(param, "secondary_opts", [])]
    ordered = sorted(names, key=lambda n: (n.startswith("--"), n))  # -p before --policy, as click's help has it
    shown = [f"`{n}`" for n in ordered]
    if metavar:
        shown[-1] = f"`{ordered[-1]} {metavar}`"
    return ", ".join(shown)


def _argument_metavar(param: Any) -> str:
    metavar = getattr(param, "metavar", None) or param.name.upper()
    if getattr(param, "nargs", 1) == -1 and not metavar.endswith("..."):
        metavar += "..."
    return metavar if param.required else f"[{metavar}]"


def usage(doc: CommandDoc) -> str:
    """``crm-rules import [OPTIONS] FILE``: options first, then the arguments in order."""
    command = doc.command
    pieces = [doc.name, "[OPTIONS]"]
    if doc.is_group:
        pieces.append("COMMAND [ARGS]...")
    pieces += [_argument_metavar(p) for p in command.params if getattr(p, "param_type_name", "") == "argument"]
    return " ".join(pieces)


# ---------------------------------------------------------------------------
# Markdown
# ---------------------------------------------------------------------------

def _md(text: str) -> str:
    """Help text as Markdown: characters that would start emphasis or HTML are escaped, code spans kept."""
    out, code = [], False
    for ch in text:
        if ch == "`":
            code = not code
        elif not code and ch in "*<>\\":
            out.append("\\")
        out.append(ch)
    return "".join(out)


def _cell(text: str) -> str:
    """A table cell: one line, pipes escaped (also inside code spans, as GitHub requires)."""
    return " ".join(text.split()).replace("|", "\\|")


def help_paragraphs(command: Any) -> list[str]:
    """A command's help as paragraphs (lines of a paragraph joined; click's \\b markers dropped)."""
    text = inspect.cleandoc(getattr(command, "help", None) or "")
    paragraphs = []
    for block in text.split("\n\n"):
        lines = [line.strip() for line in block.splitlines() if line.strip() not in ("", "\b")]
        if lines:
            paragraphs.append(" ".join(lines))
    return paragraphs


def _summary(command: Any) -> str:
    paragraphs = help_paragraphs(command)
    return paragraphs[0] if paragraphs else ""


def _params_tables(command: Any, skip: tuple[str, ...] = ()) -> list[str]:
    lines: list[str] = []
    arguments = [p for p in command.params if getattr(p, "param_type_name", "") == "argument"]
    options = [p for p in command.params if _is_option(p) and not getattr(p, "hidden", False) and p.name not in skip]
    if arguments:
        lines += ["**Arguments**", "", "| argument | type | description |", "|---|---|---|"]
        for p in arguments:
            _, type_words = param_type(p)
            required = "required" if p.required else "optional"
            lines.append(f"| `{_cell(_argument_metavar(p))}` | {_cell(type_words)}, {required} | "
                         f"{_cell(_md(getattr(p, 'help', None) or ''))} |")
        lines.append("")
    lines += ["**Options**", "", "| option | type | default | description |", "|---|---|---|---|"]
    for p in options:
        metavar, type_words = param_type(p)
        lines.append(f"| {_cell(_option_names(p, metavar))} | {_cell(type_words)} | {_cell(_default(p))} | "
                     f"{_cell(_md(getattr(p, 'help', None) or ''))} |")
    lines.append("| `--help` | flag |  | Show the command's help and exit. |")
    lines.append("")
    return lines


def _command_section(doc: CommandDoc) -> list[str]:
    level = "#" * (2 + len(doc.path))
    lines = [f"{level} `{doc.name}`", ""]
    if getattr(doc.command, "deprecated", False):
        lines += ["*Deprecated.*", ""]
    for paragraph in help_paragraphs(doc.command):
        lines += [_md(paragraph), ""]
    lines += ["```text", usage(doc), "```", ""]
    lines += _params_tables(doc.command)
    lines += json_outputs.render(" ".join(doc.path), _cell)
    subs = _subcommands(doc.command)
    if subs:
        lines += ["**Sub-commands**", "", "| command | what it does |", "|---|---|"]
        for child in (CommandDoc(doc.path + (n,), c) for n, c in subs.items()):
            lines.append(f"| [`{child.name}`](#{child.anchor}) | {_cell(_md(_summary(child.command)))} |")
        lines.append("")
    return lines


# ---------------------------------------------------------------------------
# Exit codes
# ---------------------------------------------------------------------------

def _error_classes() -> list[type]:
    """CrmRulesError and its subclasses, in the order they are defined."""
    from .errors import CrmRulesError

    out: list[type] = []

    def walk(cls: type) -> None:
        out.append(cls)
        for sub in cls.__subclasses__():
            walk(sub)

    walk(CrmRulesError)
    return out


def _first_line(cls: type) -> str:
    return (inspect.getdoc(cls) or "").split("\n\n")[0].replace("\n", " ").strip()


def exit_codes() -> dict[int, list[str]]:
    """Exit code -> what gives it, in words; domain errors come from the classes in engine/errors.py."""
    codes: dict[int, list[str]] = {
        0: ["Success. Also `--help` on any command and `--version`."],
    }
    from .errors import CrmRulesError

    for cls in _error_classes():
        if cls is CrmRulesError:
            continue
        code = getattr(cls, "exit_code", CrmRulesError.exit_code)
        codes.setdefault(code, []).append(f"`{cls.__name__}`: {_md(_first_line(cls))}")
    codes.setdefault(1, [])[0:0] = [
        "The input was wrong or the run failed: the command printed `error: ...` (often with a `hint:`) on "
        "standard error and stopped; a failed run writes no results (next to earlier runs, `crm_runs` keeps a "
        "`failed` row with the message), a failed import or prune changes nothing. The cases:"]
    codes[1] += [
        "`crm-rules test`: at least one policy test case failed (the failures are printed).",
        "`crm-rules validate`: at least one of the policies is invalid (every problem is printed, "
        "`file:line:col: path: message`), or with `--strict` a valid one has warnings (rules that can never "
        "match); with several policies the exit code is the highest of theirs.",
        "An unexpected error, i.e. a bug in crm-rules or in a plugin: a Python traceback instead of an "
        "`error:` line. Please report it.",
    ]
    codes.setdefault(2, [])[0:0] = [
        "Wrong command line: nothing was done. The cases:"]
    codes[2] += [
        "The command line itself could not be parsed: an unknown command or option, a missing required "
        "argument or option, a value of the wrong type or out of range (e.g. `--limit -1`); Typer prints a "
        "usage error box.",
        "`crm-rules` without a command: the help is printed.",
    ]
    codes[130] = ["Interrupted (Ctrl-C). A run that was interrupted wrote nothing: results are written in one "
                  "transaction at the end."]
    codes[143] = ["Stopped by SIGTERM (a service manager stopping the job): as for Ctrl-C, nothing was written, "
                  "and workers and temporary files are cleaned up."]
    return dict(sorted(codes.items()))


def _exit_codes_section() -> list[str]:
    lines = ["## Exit codes", "",
             "Scripts can rely on these; any other non-zero code comes from the operating system "
             "(e.g. 137 when the process was killed).", ""]
    for code, meanings in exit_codes().items():
        head, *rest = meanings
        lines.append(f"- **{code}**: {head}")
        lines += [f"  - {m}" for m in rest]
    lines += ["",
              "`crm-rules --debug COMMAND ...` shows the Python traceback of an `error:` instead of the message; "
              "the exit code is then 1.", ""]
    return lines


# ---------------------------------------------------------------------------
# The whole page
# ---------------------------------------------------------------------------

def _environment_section() -> list[str]:
    from .plugin_manager import BLOCK_ENV, ENTRY_POINT_GROUP, LOAD_ENV
    from .user_cache import ENV as CACHE_ENV

    return ["## Environment variables", "",
            "| variable | effect |", "|---|---|",
            f"| `{LOAD_ENV}` | Load only the named plugins (comma-separated; empty: none), built-in or from the "
            f"`{ENTRY_POINT_GROUP}` entry point group. For tests and incident response. |",
            f"| `{BLOCK_ENV}` | Never load the named plugins (comma-separated; a name that is no installed plugin "
            "is an error, not ignored). |",
            f"| `{CACHE_ENV}` | The user cache: what a new process would otherwise rebuild (the expression grammar's "
            "parse tables; which plugin parameter schemas are valid JSON Schemas; the tokens of the compiled SQL "
            "that has window functions), each kept under a hash of its content. Default `$XDG_CACHE_HOME/crm-rules` "
            "(`~/.cache/crm-rules`; `%LOCALAPPDATA%\\crm-rules` on Windows); empty: no cache. Used only when the "
            "folder is the user's own; any trouble with it means working without it. Saves about a quarter of a "
            "second on every command that loads a policy, and a tenth more on every `apply` of a policy seen "
            "before. |",
            ""]


def render(app: Any = None) -> str:
    """The whole Markdown reference of the app (default: crm-rules)."""
    root = root_command(app)
    tree = command_tree(app)
    lines = ["# CLI reference", "",
             f"<!-- Generated from the command definitions by `{REGENERATE}`; do not edit by hand. -->", ""]
    for paragraph in help_paragraphs(root):
        lines += [_md(paragraph), ""]
    lines += ["```text", f"{PROG} [OPTIONS] COMMAND [ARGS]...", "```", "",
              "Every command has `--help`. Dates are `YYYY-MM-DD`. Commands that grade customers (`apply`, `explain`, "
              "`diff`, ...) take a policy file or the name of a shipped policy (`base`); commands that read stored runs "
              "take a policy's name (`--policy base` of `runs`, `changes`, ...).", "",
              "| command | what it does |", "|---|---|"]
    for doc in tree:
        indent = "&nbsp;&nbsp;" * (len(doc.path) - 1)
        lines.append(f"| {indent}[`{doc.name}`](#{doc.anchor}) | {_cell(_md(_summary(doc.command)))} |")
    lines += ["", "## Global options", "",
              "Given before the command: `crm-rules --debug apply ...`.", "",
              "| option | type | default | description |", "|---|---|---|---|"]
    for p in root.params:
        if _is_option(p) and not getattr(p, "hidden", False):
            metavar, type_words = param_type(p)
            lines.append(f"| {_cell(_option_names(p, metavar))} | {_cell(type_words)} | {_cell(_default(p))} | "
                         f"{_cell(_md(getattr(p, 'help', None) or ''))} |")
    lines += ["| `--help` | flag |  | Show the list of commands and exit. |", ""]
    lines += _exit_codes_section()
    lines += _environment_section()
    lines += ["## JSON output", "", json_outputs.CONVENTIONS, "",
              "Each command's section below lists the keys of its JSON output.", ""]
    lines += ["## Commands", ""]
    for doc in tree:
        lines += _command_section(doc)
    while lines and lines[-1] == "":
        lines.pop()
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crm_rules.engine.cli_reference",
                                     description="Print the Markdown CLI reference of crm-rules (docs/cli.md).")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", metavar="FILE", type=Path, help="write it to FILE instead of standard output")
    group.add_argument("--check", metavar="FILE", type=Path, help="exit 1 if FILE differs from what would be written")
    args = parser.parse_args(argv)
    text = render()
    if args.write:
        args.write.write_text(text, encoding="utf-8", newline="\n")
        print(f"wrote {args.write}", file=sys.stderr)
    elif args.check:
        current = args.check.read_text(encoding="utf-8") if args.check.is_file() else None
        if current != text:
            print(f"{args.check} is out of date; regenerate it with: {REGENERATE}", file=sys.stderr)
            return 1
        print(f"{args.check} is up to date", file=sys.stderr)
    else:
        sys.stdout.buffer.write(text.encode("utf-8"))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
