"""The ``crm-rules`` command line.

This is the only place where domain errors (``CrmRulesError``) become
messages and exit codes; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno
import gc
import io
import json
import os
import signal
import sys
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from typer.core import TyperGroup

from .engine import __version__
from .engine.errors import CrmRulesError, PluginError, PolicyError, UsageError
from .engine.user_text import escape, one_line, visible


class _Console(Console):
    def on_broken_pipe(self) -> None:
        """The reader left (`| head`): what it wanted was written, so it is no error (rich would exit 1)."""
        _drop_stdout()
        raise SystemExit(0)


# Lines are not wrapped to the terminal's width: a command, a path or a `file:line:col:` message must stay one line
# to copy, paste and grep, also in a cron log, where rich would otherwise wrap at 80 columns.  Tables still fit.
console = _Console(soft_wrap=True)
err_console = _Console(stderr=True, soft_wrap=True)


class _Group(TyperGroup):
    """Turns domain errors into ``error: ...`` lines and their exit codes."""

    def get_params(self, ctx):
        return _flags_untyped(super().get_params(ctx))

    def get_command(self, ctx, cmd_name):
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            _flags_untyped(command.get_params(ctx))
        return command

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except CrmRulesError as exc:
            if (ctx.obj or {}).get("debug"):
                raise
            _print_error(exc)
            raise typer.Exit(exc.exit_code) from None
        except BrokenPipeError:  # as _Console.on_broken_pipe, for what is written without rich
            _drop_stdout()
            raise typer.Exit(0) from None
        except OSError as exc:
            if exc.errno not in OUTPUT_FULL or (ctx.obj or {}).get("debug"):
                raise
            # Standard output is a full disk or a broken device; what was printed is incomplete.
            _drop_stdout()
            err_console.print(f"error: cannot write the output ({exc.strerror}); what was written is incomplete",
                              highlight=False, markup=False)
            raise typer.Exit(1) from None


def _flags_untyped(params: list) -> list:
    """Typer 0.29's rich help prints ``<bool>`` beside every flag, --help included, as if it took a value;
    an empty metavar leaves that column blank, as the plain help does."""
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    return params


# The errors of writing to a redirected standard output: files crm-rules writes itself report them as DataError.
OUTPUT_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO}


def _drop_stdout() -> None:
    """Point standard output at /dev/null, so that the interpreter's final flush fails no second time."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _print_error(exc: CrmRulesError) -> None:
    if isinstance(exc, PolicyError):
        for d in exc.diagnostics:
            err_console.print(visible(str(d)), highlight=False, markup=False)
        n = len(exc.diagnostics)
        files = sorted({d.file for d in exc.diagnostics})
        where = exc.subject or ("the policy" if len(files) <= 1 and not any(f.endswith(".test.yaml") for f in files)
                                else ", ".join(files))
        err_console.print(f"error: {n} problem{'s' if n != 1 else ''} in {where}", highlight=False, markup=False)
    else:
        err_console.print(f"error: {visible(exc.message)}", highlight=False, markup=False)
    if exc.hint:
        err_console.print(f"  hint: {visible(exc.hint)}", highlight=False, markup=False)


app = typer.Typer(
    cls=_Group,
    help="Grade customers and assign service levels with YAML policies compiled to SQL over SQLite.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_json(data) -> None:
    """JSON for integrators: strict (no Infinity or NaN, which JSON lacks: json_ready writes them as null), UTF-8."""
    from .engine.export import json_ready

    console.print_json(json.dumps(json_ready(data), ensure_ascii=False, default=str, allow_nan=False))


def _version(value: bool) -> None:
    if value:
        console.print(f"crm-rules {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version and exit."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars (they are off anyway when stderr is not a terminal)."),
) -> None:
    ctx.obj = {"debug": debug}
    _session["quiet"] = quiet


_session = {"quiet": False}  # the root options commands need outside a click context (set per invocation)


@contextmanager
def _progress_bars():
    """A ``Progress`` callback drawing one bar per kind of work on stderr; silent when not a terminal or --quiet."""
    from .engine.progress import silent

    if _session["quiet"] or not err_console.is_terminal:
        yield silent
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    tasks: dict[str, int] = {}
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err_console, transient=True) as bars:
        def report(what: str, done: int, total: int | None) -> None:
            if what not in tasks:
                tasks[what] = bars.add_task(what, total=total)
            bars.update(tasks[what], completed=done, total=total)

        yield report


def _table_or_json(fmt: str | None, as_json: bool) -> str:
    """The output format of a command with ``--format table|json`` and its ``--json`` shorthand.

    ``--format`` defaults to None, not "table", so that ``--format table --json`` can be told from ``--json``
    and refused: which of the two the user meant, nobody can tell.
    """
    given = None if fmt is None else fmt.strip().lower()
    if given not in (None, "table", "json"):
        raise UsageError(f"unknown format {fmt!r}", hint="use --format table or --format json")
    if as_json and given == "table":
        raise UsageError("--format table and --json contradict each other (--json is the same as --format json)",
                         hint="give one of them: --format table for the tables, --json for JSON")
    return "json" if as_json else given or "table"


DbOption = typer.Option(..., "--db", help="The SQLite database with your customer data.", dir_okay=False)
PolicyOption = typer.Option(..., "--policy", "-p", help="Policy file, or the name of a shipped policy (e.g. base).")
AsOfOption = typer.Option(None, "--as-of", help="As-of date YYYY-MM-DD; data after it is ignored (default: today).")
OverridesOption = typer.Option(None, "--overrides", dir_okay=False,
                               help="YAML or CSV file of manual overrides (instead of the policy's overrides: source).")


def _note_policy_choice(ref: str | Path, option: str = "-p ") -> None:
    """On stderr: which file a bare policy name (``-p base``) was when it names both a file here and a shipped policy.

    ``option``: how the command takes the policy (``-p `` or nothing for an argument), for the commands to type."""
    from shlex import quote

    from .engine.policy_files import shadowed_shipped

    found = shadowed_shipped(str(ref))
    if found is None:
        return
    local, shipped = found
    here = f"./{local}" if not local.is_absolute() else str(local)
    err_console.print(f"note: {option}{ref} is {here} in this folder, not the shipped policy {ref}; give "
                      f"{option}{quote(here)} to say so without this note, or the shipped one's path: "
                      f"{option}{quote(str(shipped))}", highlight=False, markup=False)


def _labels_by_kind(policy) -> dict[str, dict[str, str]]:
    return {"tiers": {t.id: t.rule.label for t in policy.tiers},
            "subgrades": {s.id: s.label for t in policy.tiers for s in t.subgrades},
            "stages": {s.id: s.label for s in policy.stages},
            "service_levels": {sl.id: str(sl.details.get("label") or sl.id) for sl in policy.service_levels}}


def _labels(policy) -> dict[str, dict[str, str]]:
    """The label shown beside each id, per kind; "" where the label is the id itself."""
    return {kind: {k: ("" if v == k else v) for k, v in labels.items()}
            for kind, labels in _labels_by_kind(policy).items()}


def _print_run(outcome, policy, db: Path, as_json: bool) -> None:
    from .engine.render import print_summary

    if as_json:
        # the run's policy_name and policy_version as runs, changes, export... name them; "policy" (the name) is
        # what apply --json printed first, and what explain, analyze and diff call the policy they grade
        _print_json({"run_id": outcome.run_id, "policy_name": policy.name, "policy_version": policy.version,
                     "policy": policy.name, "policy_sha256": policy.sha256,
                     "as_of": outcome.as_of, "notes": outcome.notes, "summary": outcome.summary,
                     "labels": _labels_by_kind(policy)})  # what the table shows beside each id
        return
    from .engine.terminal_table import print_indented

    what = f"run {outcome.run_id} written to {escape(str(db))}" if outcome.run_id else "dry run: nothing written"
    print_summary(console, outcome.summary, _labels(policy),
                  f"[b]{escape(policy.name)}[/b] as of {outcome.as_of}: {outcome.summary['customers']:,} customers graded; {what}")
    for note in outcome.notes:
        print_indented(console, f"note: {escape(note)}")


def _refuse_future(as_of: str) -> None:
    """A mistyped year (2062 for 2026) is a valid date: its run grades everyone as lost, and being the policy's
    latest date it becomes crm_current and the run prune keeps longest."""
    import datetime as dt

    today = dt.date.today().isoformat()
    if as_of > today:
        raise UsageError(f"--as-of {as_of} is after today ({today}): a run grades the days up to its as-of date, and "
                         f"these have not happened yet", hint="check the year; to grade as of a future date anyway "
                                                               "(a what-if), add --allow-future")


@app.command()
def apply(
    db: Path = DbOption,
    policy: str = PolicyOption,
    as_of: Optional[str] = AsOfOption,
    results_db: Optional[Path] = typer.Option(None, "--results-db", help="Write results to this database instead of --db.", dir_okay=False),
    dry_run: bool = typer.Option(False, "--dry-run", help="Compute everything, write nothing."),
    overrides: Optional[Path] = OverridesOption,
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    allow_future: bool = typer.Option(False, "--allow-future", help="Allow an --as-of after today (a what-if)."),
) -> None:
    """Grade every customer with a policy and write the results as one run."""
    from .engine.policy_model import load_policy
    from .engine.runner import apply_policy, parse_as_of

    date = parse_as_of(as_of)
    if not allow_future:
        _refuse_future(date)
    _note_policy_choice(policy)
    loaded = load_policy(policy)
    with _progress_bars() as progress:
        outcome = apply_policy(db, loaded, date, results_db, dry_run=dry_run, overrides=overrides, progress=progress)
    _print_run(outcome, loaded, results_db or db, as_json)


@app.command()
def validate(
    ctx: typer.Context,
    policies: list[Path] = typer.Argument(..., metavar="POLICY", help="Policy files to check."),
    db: Optional[Path] = typer.Option(None, "--db", help="Also check the policy's tables, columns and the declared types of its number columns in this database (not the rows)."),
    as_json: bool = typer.Option(False, "--json", help="Print one entry per file (ok, problems with file/line/col) as JSON."),
    strict: bool = typer.Option(False, "--strict", help="Exit 1 when a valid policy has warnings (rules that can never match, a number in a list written like 1,500), e.g. in a policy repository's CI."),
) -> None:
    """Check policies (schema, expressions, references) and report every problem at once; warn of rules that can never match."""
    from dataclasses import asdict

    from .engine.data_binding import bind
    from .engine.data_checks import check_declared_types
    from .engine.database import connect
    from .engine.policy_model import load_policy
    from .engine.policy_warnings import policy_warnings

    exit_code = 0
    checked = []
    for path in policies:
        try:
            if str(path).endswith(".test.yaml"):  # a shell glob of a policy folder includes the test files
                from .engine.policy_test_file import load_test_file

                tests = load_test_file(path)
                checked.append({"file": str(path), "ok": True, "kind": "policy tests", "policy": tests.policy.name,
                                "cases": len(tests.cases)})
                if not as_json:
                    n = len(tests.cases)
                    console.print(f"ok: {path} (policy tests for {tests.policy.name}, {n} case{'s' if n != 1 else ''})",
                                  highlight=False)
                continue
            _note_policy_choice(path, option="")
            loaded = load_policy(path)
            if db is not None:
                conn = connect(db, mode="ro")
                try:
                    check_declared_types(conn, loaded, bind(conn, "main", loaded))
                finally:
                    conn.close()
        except CrmRulesError as exc:
            if (ctx.obj or {}).get("debug") and exc.__cause__ is not None:  # a plugin's bug: the traceback the hint promises
                traceback.print_exception(exc.__cause__, file=sys.stderr)
            exit_code = max(exit_code, exc.exit_code)
            problems = [asdict(d) for d in exc.diagnostics] if isinstance(exc, PolicyError) else []
            checked.append({"file": str(path), "ok": False, "error": exc.message, "hint": exc.hint, "problems": problems})
            if not as_json:
                _print_error(exc)
            continue
        warnings = policy_warnings(loaded)
        # policy_sha256 as every other command names the hash; "sha256" (the same) is what validate printed first
        checked.append({"file": str(path), "ok": True, "kind": "policy", "policy": loaded.name,
                        "policy_sha256": loaded.sha256, "sha256": loaded.sha256,
                        "warnings": [asdict(w) for w in warnings]})
        if not as_json:
            console.print(f"ok: {path} (policy {loaded.name}, sha256 {loaded.sha256[:12]})"
                          f"{f', {len(warnings)} warning' + ('s' if len(warnings) != 1 else '') if warnings else ''}",
                          highlight=False)
            for w in warnings:
                err_console.print(f"warning: {visible(str(w))}", highlight=False, markup=False)
        if warnings and strict:
            exit_code = max(exit_code, 1)
    if as_json:
        _print_json(checked)
    if exit_code:
        raise typer.Exit(exit_code)


@app.command("test")
def run_tests(
    paths: list[str] = typer.Argument(
        ..., metavar="POLICY_OR_DIR",
        help="Test files (*.test.yaml), policies (tested by the X.test.yaml next to them), directories "
             "(every *.test.yaml under them) or shipped policy names (base)."),
    coverage: bool = typer.Option(False, "--coverage",
                                  help="Also list the tier, sub-grade, stage and service-level rules no case exercises."),
    as_json: bool = typer.Option(False, "--json", help="Print the whole report (cases, failures, coverage) as JSON."),
) -> None:
    """Run policy tests: example customers and the tier, stage, service level and actions they must get."""
    from .engine.policy_test_report import format_report
    from .engine.policy_tests import run_policy_tests

    report = run_policy_tests(paths)
    if as_json:
        _print_json(report)
    else:
        console.print(format_report(report, coverage=coverage, width=min(78, console.width)), markup=False,
                      highlight=False)
    if report["failed"]:
        raise typer.Exit(1)


@app.command()
def explain(
    customer_id: str = typer.Argument(..., metavar="CUSTOMER_ID", help="The customer's id."),
    db: Path = DbOption,
    policy: Optional[str] = typer.Option(None, "--policy", "-p",
                                         help="Policy file, or the name of a shipped policy (e.g. base); needed "
                                              "unless --run names a stored run."),
    as_of: Optional[str] = AsOfOption,
    overrides: Optional[Path] = OverridesOption,
    run: Optional[int] = typer.Option(None, "--run", help="Explain this stored run (its as-of date and overrides; "
                                                          "the policy as the run stored it, if the file has changed "
                                                          "since or no --policy is given)."),
    recompute: bool = typer.Option(False, "--recompute", help="Compute the policy now instead of reading a stored run."),
    results_db: Optional[Path] = typer.Option(None, "--results-db", dir_okay=False,
                                              help="Database holding the runs, when apply wrote them there."),
    as_json: bool = typer.Option(False, "--json", help="Print the explanation as JSON."),
) -> None:
    """Show a customer's metrics and, rule by rule, why they got their tier, stage and service level.

    Read from the latest stored run of the same policy content and as-of date when there is one
    (fast at any size), else computed now; the last line says which. Where runs are stored, it first says
    what changed since the policy's previous run and whether the data, a policy edit or an override made it.
    """
    from .engine.explain import explain_customer, load_policy_of_run
    from .engine.render import print_explanation
    from .engine.runner import parse_as_of

    date = parse_as_of(as_of) if as_of is not None or run is None else None
    if policy is not None:
        _note_policy_choice(policy)
    loaded = load_policy_of_run(policy, results_db or db, run) if policy is not None else None
    result = explain_customer(db, loaded, customer_id, date, overrides, run_id=run, recompute=recompute,
                              results_db=results_db)
    if as_json:
        _print_json(result)
    else:
        from .engine.terminal_table import print_indented

        print_explanation(console, result)
        console.print()
        print_indented(console, f"[dim]{escape(result['source']['text'])}[/dim]")
        for note in result["source"]["notes"]:
            print_indented(console, f"note: {escape(note)}")


@app.command()
def export(
    db: Path = typer.Option(..., "--db", help="Database holding the results.", dir_okay=False),
    run: Optional[int] = typer.Option(None, "--run", help="Run id (default: the latest successful run)."),
    fmt: Optional[str] = typer.Option(None, "--format", help="csv, json or jsonl (JSON Lines: one customer a line) (default: from the --out extension, else csv)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output file (default: standard output)."),
) -> None:
    """Export a run's assignments (customer, grades, rules, metrics) as CSV, JSON or JSON Lines."""
    from .engine.export import export_run

    run_id, count, text, policy = export_run(db, run, fmt, out)
    if run is None:
        _note_newer_failures(db, run_id)
    if text is not None:
        sys.stdout.write(text)
    else:  # the policy and the file: a run id alone may be another database's (a --results-db left out)
        err_console.print(f"exported {count:,} customers of run {run_id} (policy {policy}) of {db} to {out}",
                          highlight=False, markup=False)


@app.command("import")
def import_(
    file: Path = typer.Argument(..., metavar="FILE", help="CSV file (UTF-8, with or without BOM, header row first; comma, semicolon or tab separated)."),
    db: Path = typer.Option(..., "--db", help="SQLite database to import into (created if missing).", dir_okay=False),
    table: str = typer.Option(..., "--table", help="Table to create."),
    replace: bool = typer.Option(False, "--replace", help="Replace the table if it exists."),
    append: bool = typer.Option(False, "--append", help="Append to an existing table."),
    types: list[str] = typer.Option([], "--type", help="Force a column type: COLUMN=integer|float|text|date (repeatable); integer and float also read amounts such as ¥1,234.50, date reads dates written year first (2025/3/29, 2025年3月29日) as 2025-03-29."),
    encoding: Optional[str] = typer.Option(None, "--encoding", help="The file's encoding when it is not UTF-8: gbk for a CSV that Excel saved on Chinese Windows, cp1252 on Western Windows."),
    skip_totals: bool = typer.Option(False, "--skip-totals", help="Leave out the rows that sum the others (first value 合计, 总计, 小计, Total, ...), which are refused otherwise."),
    as_json: bool = typer.Option(False, "--json", help="Print what was imported as JSON."),
) -> None:
    """Import a CSV file into a table, all rows or none."""
    from shlex import quote

    from .engine.csv_import import import_csv_file
    from .engine.csv_reader import checked_encoding

    if replace and append:
        raise UsageError("--replace and --append cannot be used together")
    overrides = {}
    for item in types:
        name, sep, kind = item.partition("=")
        if not sep or kind not in ("integer", "float", "text", "date"):
            raise UsageError(f"--type {item!r} is not COLUMN=integer|float|text|date")
        if overrides.get(name, kind) != kind:
            raise UsageError(f"--type {name}={overrides[name]} and --type {item} both name column {name!r}",
                             hint="give one --type per column")
        overrides[name] = kind
    mode = "replace" if replace else "append" if append else "create"
    codec = checked_encoding(encoding)
    with _progress_bars() as progress:
        imported = import_csv_file(db, file, table, mode=mode, types=overrides or None, progress=progress,
                                   encoding=codec, skip_totals=skip_totals)
    rows, commas = imported.rows, list(imported.decimal_comma)
    if as_json:
        # the keys only when there are such columns: the output of every other import stays as it was
        _print_json({"rows": rows, "table": table, "db": str(db), "mode": mode}
                    | ({"decimal_comma_columns": commas} if commas else {})
                    | ({"text_columns_a_run_refuses": [{"column": name, "holds": kind, "example": example}
                                                        for name, kind, example in imported.erp_text]}
                       if imported.erp_text else {})
                    | ({"totals_rows_left_out": imported.totals_count} if imported.totals_count else {}))
        return
    console.print(f"imported {rows:,} row{'' if rows == 1 else 's'} into {table} in {db}", highlight=False)
    if not rows:
        _print_no_rows_note(file, table, mode, overrides)
    if commas:  # a reading the user did not ask for: said, with how to undo it
        many = len(commas) > 1
        names = ", ".join(repr(name) for name in commas)
        undo = "" if mode == "append" else (  # appending, the table's column types decide, and --replace would drop it
            f"; to keep {'them' if many else 'it'} as text, import again with --replace "
            + " ".join(f"--type {quote(f'{name}=text')}" for name in commas))
        console.print(f"note: numbers with a decimal comma (1.234,56 as 1234.56) were read in {names}: the file is "
                      f"separated by semicolons and every value of {'these columns' if many else 'this column'} is "
                      f"written so{undo}", highlight=False, markup=False)
    if imported.totals_count:  # rows of the file that are not in the table: said, with the lines
        listed = "; ".join(f"line {line}: {what}" for line, what in imported.totals)
        more = imported.totals_count - len(imported.totals)
        console.print(f"note: left out {imported.totals_count:,} totals row{'' if imported.totals_count == 1 else 's'} "
                      f"(--skip-totals): {listed}{f'; and {more:,} more' if more else ''}", highlight=False, markup=False)
    if imported.erp_text:
        given = ([f"--encoding {quote(encoding)}"] if encoding else []) + (["--skip-totals"] if skip_totals else []) \
            + [f"--type {quote(item)}" for item in types]
        _print_erp_text_note(file, db, table, mode, imported.erp_text, given)


def _print_no_rows_note(file: Path, table: str, mode: str, types: dict[str, str]) -> None:
    """A file of only its header (an export of a day without orders, a report left empty) makes a table without
    rows, which a run notes; one made by it has no value to take a column's type from, so its columns are TEXT,
    and numbers appended to it later stay text, which a run refuses in a number column."""
    if mode == "append":
        console.print(f"note: {file} holds no rows, only its header: nothing was appended to {table}",
                      highlight=False, markup=False)
        return
    typed = "" if not types else " (but those given a --type)"
    console.print(f"note: {file} holds no rows, only its header: table {table} is empty, and its columns{typed} are "
                  f"declared TEXT, as no value showed numbers; rows appended to it later keep those types, so numbers "
                  f"are stored as text, which a run refuses where a policy reads numbers: import the first file with "
                  f"rows with --replace (or give number columns a --type COLUMN=float now)", highlight=False,
                  markup=False)


def _print_erp_text_note(file: Path, db: Path, table: str, mode: str, columns: tuple[tuple[str, str, str], ...],
                         given: list[str]) -> None:
    """Say which columns were kept as text that hold amounts or dates as an ERP writes them: a policy that maps one
    gets a run refusing every row, and the import that stores them right is one command away: the one given
    (``given``: its other options, --encoding and --type among them, quoted), with the types that store them."""
    from shlex import quote

    how = {"amounts": ("amounts written with a currency sign or thousands separators", "numbers", "float"),
           "dates": ("dates written year first, not as YYYY-MM-DD", "YYYY-MM-DD dates", "date")}
    parts, needs, flags = [], [], []
    for kind, (written, needed, as_type) in how.items():
        found = [(name, example) for name, what, example in columns if what == kind]
        if found:
            parts.append(", ".join(f"{name!r} ({example})" for name, example in found) + f": {written}")
            needs.append(needed)
            flags += [f"--type {quote(f'{name}={as_type}')}" for name, _ in found]
    redo = ("" if mode == "append" else  # appending, the table's column types decide
            f"; to store them so, import again with: crm-rules import {quote(str(file))} --db {quote(str(db))} "
            f"--table {quote(table)} --replace {' '.join([*given, *flags])}")
    console.print(f"note: kept as text, {'; '.join(parts)}; a run refuses them where a policy reads "
                  f"{' or '.join(needs)}{redo}", highlight=False, markup=False)


@app.command()
def demo(
    folder: Path | None = typer.Argument(None, metavar="DIR", show_default=False, file_okay=False,
                                         help="Directory to create the demo in; the same as --dir."),
    directory: Path = typer.Option(Path("crm-demo"), "--dir", help="Directory to create the demo in.", file_okay=False),
    customers: int = typer.Option(2000, "--customers", min=1, max=5_000_000, help="Number of customers to generate."),
    seed: int = typer.Option(7, "--seed", help="Random seed (the same seed gives the same data)."),
    policy: str = typer.Option("base", "--policy", "-p", help="Policy to apply to the demo data."),
) -> None:
    """Create a realistic demo database and the shipped policies in DIR or --dir (crm-demo), apply the base policy and write report.html there."""
    from shlex import quote

    if folder is not None:  # `crm-rules demo my-demo`, as other tools that make a folder are called
        if directory != Path("crm-demo") and directory != folder:
            raise UsageError(f"the demo folder is given twice: {folder} and --dir {directory}", hint="give one of them")
        directory = folder

    from .engine.demo_data import DEMO_AS_OF, generate_demo_database
    from .engine.policy_model import load_policy
    from .engine.report_html import write_report
    from .engine.runner import apply_policy

    db = directory / "crm.db"
    target = directory / "policies"
    page = directory / "report.html"
    copies = _demo_copies(directory)
    # Everything is checked before anything is written: a demo never replaces a file, and a wrong
    # --policy must not leave a half-made demo that the corrected command then refuses to overwrite.
    _check_demo_folder(directory, [db, *(dest for _, dest in copies), page])
    chosen, check_now = _demo_policy(policy, target, dict(copies))
    load_policy(check_now)
    created: list[Path] = []
    try:
        try:
            _make_folders(directory, [target, directory / "schemas"], created)
            counts = generate_demo_database(db, customers=customers, seed=seed)
            created.append(db)
            for source, dest in copies:
                _copy_new(source, dest)
                created.append(dest)
        except OSError as exc:
            raise _demo_write_error(directory, exc) from None
        console.print(f"demo database {db}: " + ", ".join(f"{n:,} {t}" for t, n in counts.items()), highlight=False)
        console.print(f"policies copied to {target}", highlight=False)
        loaded = load_policy(chosen)
        with _progress_bars() as progress:
            outcome = apply_policy(db, loaded, DEMO_AS_OF, progress=progress)
        _print_run(outcome, loaded, db, as_json=False)
        _check_demo_folder(directory, [page])  # it may have appeared while the policy ran
        write_report(db, page, outcome.run_id)
        created.append(page)
    except BaseException:
        _remove_created(created)
        raise
    console.print(f"\nreport: {page} (open it in a browser: {page.resolve().as_uri()})", highlight=False)
    console.print(f"next: crm-rules explain {quote(_sample_customer(db))} --db {quote(str(db))} "
                  f"--policy {quote(str(chosen))} --as-of {DEMO_AS_OF}", highlight=False, markup=False)


# The files SQLite keeps beside a database: a stale one left beside a new crm.db would be mixed into it.
_DB_COMPANIONS = ("-wal", "-shm", "-journal")
_DEMO_SCHEMAS = ("policy.schema.json", "policy-test.schema.json")


def _demo_copies(directory: Path) -> list[tuple[Path, Path]]:
    """(shipped file, its copy in the demo) for every policy, policy test and the schemas they refer to.

    The copied policies start with ``$schema=../schemas/...``, so the schemas go to DIR/schemas.
    """
    from importlib.resources import files

    from .engine.policy_files import shipped_policies_dir

    policies = sorted((item for item in shipped_policies_dir().iterdir() if item.name.endswith(".yaml")),
                      key=lambda item: item.name)
    schemas = files("crm_rules").joinpath("schemas")
    return ([(Path(str(item)), directory / "policies" / item.name) for item in policies]
            + [(Path(str(schemas.joinpath(name))), directory / "schemas" / name) for name in _DEMO_SCHEMAS])


def _check_demo_folder(directory: Path, writes: list[Path]) -> None:
    """Refuse a --dir that is not a folder, or in which any file the demo writes already exists."""
    folders = {directory, *(path.parent for path in writes)}
    for folder in sorted(folders, key=lambda p: len(p.parts)):
        for part in (folder, *folder.parents):
            if os.path.lexists(part) and not part.is_dir():
                raise UsageError(f"--dir {directory}: {part} is a file, not a folder",
                                 hint="choose another --dir (the demo creates the folder if it does not exist)")
    existing = [path for path in writes if os.path.lexists(path)]
    db = directory / "crm.db"
    if db in writes:
        existing += [Path(f"{db}{suffix}") for suffix in _DB_COMPANIONS if os.path.lexists(f"{db}{suffix}")]
    if existing:
        existing.sort(key=lambda path: (path != db, path.parent != directory, path.parent == directory / "policies"))
        first, *others = [_relative(path, directory) for path in existing]
        message = f"{first} already exists in {directory}"
        if others:
            shown = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
            message += f", as do{'es' if len(others) == 1 else ''} {shown}"
        them = "all of those files" if others else "that file"
        # Deleting only crm.db is not enough: the demo also writes the policies, schemas and report.
        hint = (f"choose another --dir, or delete the old demo first: move or remove {them}"
                + (", not only crm.db" if others else "")
                if db in existing else f"choose another --dir, or move or remove {them} first")
        raise UsageError(f"{message}; the demo never overwrites a file", hint=hint)


def _relative(path: Path, directory: Path) -> str:
    try:
        return str(path.relative_to(directory))
    except ValueError:
        return str(path)


def _demo_policy(policy: str, target: Path, copies: dict[Path, Path]) -> tuple[Path | str, Path | str]:
    """(the policy the demo runs, the file that is that policy before anything is copied).

    A shipped policy's name runs its copy in DIR/policies, which the next: line then names for the user to edit.
    """
    copy = target / f"{policy}.yaml"
    for source, dest in copies.items():
        if dest == copy:
            return copy, source
    if copy.is_file():
        return copy, copy
    return policy, policy


def _make_folders(directory: Path, subfolders: list[Path], created: list[Path]) -> None:
    """Create --dir (with its missing parents) and its subfolders, recording each folder this run created."""
    missing = [part for part in (directory, *directory.parents) if not os.path.lexists(part)]
    for folder in [*reversed(missing), *subfolders]:
        try:
            folder.mkdir()
        except FileExistsError:
            if not folder.is_dir():
                raise
            continue
        created.append(folder)


def _copy_new(source: Path, dest: Path) -> None:
    """Copy a shipped file, never over a file that appeared since the check."""
    try:
        with open(dest, "xb") as fh:
            fh.write(source.read_bytes())
    except FileExistsError:
        raise UsageError(f"{dest} already exists; the demo never overwrites a file",
                         hint="choose another --dir, or move or remove that file first") from None


def _demo_write_error(directory: Path, exc: OSError):
    from .engine.errors import DataError

    if isinstance(exc, (FileExistsError, NotADirectoryError)):
        return UsageError(f"--dir {directory}: {exc.filename}: {exc.strerror}",
                          hint="choose another --dir (the demo creates the folder if it does not exist)")
    folder = Path(exc.filename).parent if exc.filename else directory
    return DataError(f"cannot write the demo in {folder} ({exc.strerror or exc}); nothing was kept",
                     hint="check the folder's permissions and the free disk space, or choose another --dir")


def _remove_created(created: list[Path]) -> None:
    """Undo a demo that failed half-way, so that rerunning the corrected command works: only what this run created."""
    for path in reversed(created):
        try:
            if path.is_dir() and not path.is_symlink():
                path.rmdir()  # only when empty: never anything it did not create
            else:
                path.unlink(missing_ok=True)
                if path.name == "crm.db":
                    for suffix in _DB_COMPANIONS:
                        Path(f"{path}{suffix}").unlink(missing_ok=True)
        except OSError:
            pass


def _sample_customer(db: Path) -> str:
    from .engine.database import connect

    conn = connect(db, mode="ro")
    try:
        row = conn.execute("SELECT customer_id FROM crm_assignments ORDER BY run_id DESC, customer_id LIMIT 1").fetchone()
        return str(row[0]) if row else "CUSTOMER_ID"
    finally:
        conn.close()


@app.command()
def plugins(ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="Print as JSON.")) -> None:
    """List the loaded plugins, their versions, hooks and what they register."""
    from .engine.plugin_manager import build_plugin_manager, build_registry, get_plugin_manager, slow_import_note
    from .engine.terminal_table import print_indented, titled_table, words_fit

    # Every command that loads a policy fails on a plugin that cannot be loaded (an import error, an unknown hook)
    # or registered (a name registered twice): this one lists the plugins anyway, as it is where the user looks for
    # what is installed, then reports the problems and fails.
    not_loaded: list = []
    try:
        pm, infos = get_plugin_manager()
    except PluginError:  # loaded again, leaving out what cannot be loaded
        pm, infos = build_plugin_manager(not_loaded)
    registry = build_registry(pm, keep_going=True)
    listing = [{"name": info.name, "version": info.version, "source": info.source, "module": info.module,
                "import_seconds": round(info.import_seconds, 3), "hooks": sorted(registry.hooks.get(info.name, [])),
                "contributions": [{"kind": c.kind, "name": c.name} for c in registry.by_plugin(info.name)],
                "problems": [{"error": e.message, "hint": e.hint} for e in registry.problems.get(info.name, [])]}
               for info in infos.values()]
    listing += [{"name": p.plugin.name, "version": p.plugin.version, "source": p.plugin.source,
                 "module": p.plugin.module, "hooks": [], "contributions": [], "loaded": False,
                 "problems": [{"error": p.error.message, "hint": p.error.hint}]} for p in not_loaded if p.plugin]
    if as_json:
        _print_json(listing)
    else:
        registers = []
        for p in listing:
            lines = [f"{c['kind']}: {c['name']}" for c in p["contributions"]]
            if p.get("loaded") is False:
                lines.append("not loaded: see below")
            elif p["problems"]:  # what it failed to register is not in the list
                n = len(p["problems"])
                lines.append(f"{n} problem{'s' * (n != 1)}: see below")
            elif not lines:  # a plugin whose hooks are elsewhere than its entry point says
                lines.append("nothing" + ("" if p["hooks"] else f" (no hooks in {p['module']})"))
            registers.append(escape("\n".join(lines)))
        # a contribution is read as one thing: at 60 columns "scorer: weighted_value" broke between "scorer:" and the
        # name it registers. The column holds the widest whole; where that leaves too little room for the other
        # columns, the version and source go under the plugin's name (and only where even that does not fit, it breaks)
        widest = max((console.render_str(escape(f"{c['kind']}: {c['name']}")).cell_len
                      for p in listing for c in p["contributions"]), default=None)

        def plugin_table(stacked: bool, held: bool):
            table = (titled_table("Loaded plugins", "Plugin\n[dim]version, source[/dim]", "Registers") if stacked else
                     titled_table("Loaded plugins", "Plugin", "Version", "Source", "Registers"))
            table.columns[-1].min_width = widest if held else None
            for p, cell in zip(listing, registers):
                name, version, source = escape(p["name"]), escape(p["version"]), escape(p["source"])
                table.add_row(*([f"{name}\n[dim]{version}, {source}[/dim]"] if stacked else [name, version, source]), cell)
            return table
        table = plugin_table(False, True)
        if not words_fit(console, table):
            table = plugin_table(True, True)
            if not words_fit(console, table):
                table = plugin_table(True, False)
        console.print(table)
        for info in infos.values():
            note = slow_import_note(info)
            if note:
                print_indented(console, f"note: {escape(note)}")
    problems = [p.error for p in not_loaded] + [error for errors in registry.problems.values() for error in errors]
    for error in problems:
        if (ctx.obj or {}).get("debug") and error.__cause__ is not None:  # a plugin's bug: the traceback the hint promises
            traceback.print_exception(error.__cause__, file=sys.stderr)
        _print_error(error)
    if problems:
        raise typer.Exit(1)


ACTIONS_FULL_WIDTH = 110  # terminal columns the actions table needs to show every column readably
# Below this the table left the reason four cells wide ("volu / me / -44%"): each action is two lines instead
ACTIONS_TABLE_WIDTH = 80


@app.command()
def actions(
    db: Path = typer.Option(..., "--db", help="Database holding the results.", dir_okay=False),
    run: Optional[int] = typer.Option(None, "--run", help="Run id (default: the latest successful run)."),
    due_before: Optional[str] = typer.Option(None, "--due-before", help="Only actions due before this date (YYYY-MM-DD)."),
    owner: Optional[str] = typer.Option(None, "--owner", help="Only actions of this owner (account manager)."),
    action: Optional[str] = typer.Option(None, "--action", help="Only this action (e.g. churn_alert)."),
    limit: int = typer.Option(50, "--limit", min=0, help="Rows to show in the table (0 = all)."),
    as_json: bool = typer.Option(False, "--json", help="Print every matching action as JSON."),
) -> None:
    """List a run's actions (retention, churn alerts, upgrades, renewals), most urgent first: priority 1 first,
    then the earliest due."""
    from .engine.action_queue import list_actions
    from .engine.terminal_table import print_listing

    run_id, items = list_actions(db, run, due_before, owner, action)
    if run is None:
        _note_newer_failures(db, run_id)
    if as_json:
        from .engine.export import run_identity

        _print_json(run_identity(db, run_id) | {"actions": items})  # the as-of date and policy a CRM import files them under
        return
    # Below this width the customer's name and the owner are left out: with them, an 80-column terminal left
    # eleven characters for name, owner and reason together, and folded each into a column of four.
    if console.width < ACTIONS_TABLE_WIDTH:
        _print_actions_as_lines(run_id, items, limit)
        return
    def cells(a: dict) -> dict:
        given = {"Due": a["due_date"], "Prio": a["priority"], "Customer": a["customer_id"],
                 "Name": a["customer_name"] or "", "Tier": a["tier"] or "", "Action": a["action"],
                 "Owner": a["owner"] or "", "Reason": a["reason"] or ""}
        return {k: escape(str(v)) for k, v in given.items()}

    # dates, ids and action names stay whole; names and reasons wrap
    print_listing(console, f"Actions of run {run_id}: {len(items):,}",
                  ("Prio", "Due", "Customer", "Name", "Tier", "Action", "Owner", "Reason"), items, cells, limit=limit,
                  whole=("Prio", "Due", "Customer", "Tier", "Action"), optional=("Name", "Owner"),
                  full_width=ACTIONS_FULL_WIDTH, json_hint="--json")


def _print_actions_as_lines(run_id: int, items: list[dict], limit: int) -> None:
    """The actions in a terminal too narrow for their table: a line of priority, due date, customer, tier and
    action, then the customer's name, the reason and the owner indented below it (wrapped there, not by the
    terminal at its first column)."""
    from rich.padding import Padding
    from rich.text import Text

    console.print(f"Actions of run {run_id}: {len(items):,}", highlight=False)
    shown = items if limit == 0 else items[:limit]
    for a in shown:
        tier = f" ({escape(str(a['tier']))})" if a["tier"] else ""
        console.print(f"p{a['priority']} {a['due_date']} {escape(str(a['customer_id']))}{tier} "
                      f"[b]{escape(a['action'])}[/b]", highlight=False)
        owner = f" — {a['owner']}" if a["owner"] else ""
        name = f"{a['customer_name']}: " if a["customer_name"] else ""
        console.print(Padding(Text(visible(f"{name}{a['reason'] or ''}{owner}")), (0, 0, 0, 3), expand=False),
                      soft_wrap=False)  # the console's soft wrap would crop the padded text, not wrap it
    if len(shown) < len(items):
        console.print(f"{len(items) - len(shown):,} more; use --limit 0 or --json", highlight=False)


@app.command()
def diff(
    policies: list[str] = typer.Argument(..., metavar="POLICY", help="OLD_POLICY NEW_POLICY, or only NEW_POLICY with --against-run."),
    db: Path = DbOption,
    against_run: Optional[int] = typer.Option(None, "--against-run", help="Compare with this stored run instead of an old policy."),
    results_db: Optional[Path] = typer.Option(None, "--results-db", dir_okay=False,
                                              help="Database holding the runs, if not --db (with --against-run)."),
    as_of: Optional[str] = typer.Option(None, "--as-of", help="As-of date YYYY-MM-DD (default: today; with --against-run: the run's, and no other)."),
    customers: bool = typer.Option(False, "--customers", help="List the customers whose grades or actions change."),
    overrides: Optional[Path] = OverridesOption,
    limit: int = typer.Option(50, "--limit", min=0,
                              help="Rows of each list of customers and of service level changes to show (0 = all)."),
    fmt: Optional[str] = typer.Option(None, "--format", help="table or json (default: table)."),
    as_json: bool = typer.Option(False, "--json", help="Print as JSON (same as --format json)."),
) -> None:
    """Compare two policies (or a stored run and a policy) over every customer: who moves where, which actions they gain or lose, and what it costs."""
    from .engine.policy_diff import diff_policies, print_diff
    from .engine.policy_model import load_policy
    from .engine.runner import parse_as_of

    fmt = _table_or_json(fmt, as_json)
    expected = 1 if against_run is not None else 2
    if len(policies) != expected:
        usage = "NEW_POLICY --against-run RUN" if against_run is not None else "OLD_POLICY NEW_POLICY"
        raise UsageError(f"diff takes {usage}; got {len(policies)} polic{'y' if len(policies) == 1 else 'ies'}",
                         hint="crm-rules diff --db DB OLD_POLICY NEW_POLICY, or crm-rules diff --db DB NEW_POLICY --against-run ID")
    if results_db is not None and against_run is None:
        raise UsageError("--results-db is only used with --against-run")
    date = parse_as_of(as_of) if as_of is not None or against_run is None else None
    for ref in policies:
        _note_policy_choice(ref, option="")
    old = load_policy(policies[0]) if against_run is None else None
    new = load_policy(policies[-1])
    result = diff_policies(db, old, new, date, against_run, list_customers=customers, results_db=results_db,
                           overrides=overrides)
    if fmt == "json":
        _print_json(result)
    else:
        print_diff(console, result, limit)


@app.command()
def analyze(
    db: Path = DbOption,
    policy: str = PolicyOption,
    as_of: Optional[str] = AsOfOption,
    overrides: Optional[Path] = OverridesOption,
    fmt: Optional[str] = typer.Option(None, "--format", help="table or json (default: table)."),
    as_json: bool = typer.Option(False, "--json", help="Print as JSON (same as --format json)."),
) -> None:
    """Find dead and shadowed rules on your data, and gaps and overlaps in threshold tables."""
    from .engine.policy_model import load_policy
    from .engine.rule_analysis import analyze_policy, print_analysis
    from .engine.runner import parse_as_of

    fmt = _table_or_json(fmt, as_json)
    _note_policy_choice(policy)
    result = analyze_policy(db, load_policy(policy), parse_as_of(as_of), overrides)
    if fmt == "json":
        _print_json(result)
    else:
        print_analysis(console, result)


@app.command()
def index(
    db: Path = DbOption,
    policy: str = PolicyOption,
    as_of: Optional[str] = AsOfOption,
    create: bool = typer.Option(False, "--create", help="Keep the proposed indexes that make a run faster "
                                                         "(default: measure them, change nothing)."),
    as_json: bool = typer.Option(False, "--json", help="Print the advice and timings as JSON."),
) -> None:
    """Propose a covering index for each table a policy reads and measure how much faster a run reads it."""
    from .engine.index_advisor import advise_indexes, print_index_advice
    from .engine.policy_model import load_policy
    from .engine.runner import parse_as_of

    date = parse_as_of(as_of)
    _note_policy_choice(policy)
    result = advise_indexes(db, load_policy(policy), date, create=create)
    if as_json:
        _print_json(result)
    else:
        print_index_advice(console, result)




ResultsDbOption = typer.Option(..., "--db", help="Database holding the results.", dir_okay=False)
PolicyNameOption = typer.Option(None, "--policy", "-p", help="Only runs of this policy (its name, e.g. base).")


def _ids(ids: list[int]) -> str:
    """[1, 2, 3, 7] -> '1-3, 7'."""
    parts: list[list[int]] = []
    for i in ids:
        if parts and parts[-1][-1] == i - 1:
            parts[-1][-1:] = [i] if len(parts[-1]) == 2 else [parts[-1][-1], i]
        else:
            parts.append([i])
    return ", ".join("-".join(map(str, p)) for p in parts) or "none"


def _note_newer_failures(db: Path, run_id: int, policy: str | None = None) -> None:
    """On stderr, for a command that took the latest successful run: a newer run that failed, so that last night's
    failure is not taken for last night's results (stdout, which a script may read, is left as it is)."""
    from shlex import quote

    from .engine.run_history import newer_failures

    failed = newer_failures(db, run_id, policy)
    if failed is None:
        return
    n, shown = failed["count"], f"this is run {run_id} (as of {failed['shown_as_of']}), the latest successful run"
    which = f"run {failed['run_id']}" if n == 1 else f"{n} later runs failed, the latest: run {failed['run_id']}"
    err_console.print(f"note: {which} of policy {failed['policy_name']} as of {failed['as_of']}"
                      f"{' failed' if n == 1 else ''}; {shown}; `crm-rules runs --db {quote(str(db))} "
                      f"--policy {quote(failed['policy_name'])}` says why",
                      highlight=False, markup=False)


@app.command()
def runs(
    db: Path = ResultsDbOption,
    policy: Optional[str] = PolicyNameOption,
    as_json: bool = typer.Option(False, "--json", help="Print the runs as JSON."),
) -> None:
    """List the runs in a database, oldest first: policy, hash, as-of date, status and customers."""

    from .engine.render import fmt_number
    from .engine.run_history import list_runs, reruns
    from .engine.terminal_table import print_listing

    items = list_runs(db, policy)
    if as_json:
        _print_json(items)
        return

    def cells(r: dict) -> dict:
        name = escape(r["policy_name"]) + (f" [dim]{escape(r['policy_version'])}[/dim]" if r["policy_version"] else "")
        customers = fmt_number(r["customers"]) if r["status"] == "succeeded" else f"[red]{escape(r['status'])}[/red]"
        return {"Run": str(r["run_id"]), "Policy": name, "Hash": r["policy_sha256_short"], "As of": r["as_of"],
                "Finished": (r["finished_at"] or "")[:16].replace("T", " "), "Customers": customers}

    # "YYYY-MM-DD HH:MM" wraps at the space, not inside the date.  The hash is left out where the policy name
    # would break beside it: at 60 columns "zh_b" over "ase", a Chinese name two characters a line.
    print_listing(console, f"Runs in {escape(str(db))}: {len(items):,}",
                  ("Run>", "Policy", "Hash", "As of", "Finished", "Customers>"), items, cells, limit=0,
                  whole=("Run", "Hash", "As of", "Customers"), optional=(), full_width=0, json_hint="--json",
                  spare=("Hash",), min_widths={"Finished": 10})
    for r in items:
        if r["error"]:
            console.print(f"run {r['run_id']} failed: {r['error']}", highlight=False, markup=False)
    _note_reruns(reruns(items))


def _note_reruns(groups: list[list[dict]]) -> None:
    """Runs of one date and policy content read alike in the table: say which one stands for the date, and which
    applied manual overrides, so that a re-run is not taken for a copy (nor a copy for the run in force)."""
    from .engine.terminal_table import print_indented

    for group in groups:
        ids, last = [r["run_id"] for r in group], group[-1]
        with_overrides = [f"run {r['run_id']} set {r['overrides']:,} customer(s)' tier by manual override"
                          for r in group if r["overrides"]]
        print_indented(console, escape(
            f"note: runs {_ids(ids)} grade {last['as_of']} with the same policy ({last['policy_name']}, sha256 "
            f"{last['policy_sha256_short']}): run {last['run_id']}, the last of them, is the one the other commands take "
            f"for that date (crm_current, changes); `crm-rules changes --run {last['run_id']}` shows what it changed"
            + "".join(f"; {w}" for w in with_overrides)))


# What the history table gives up, in this order, until every word in it fits the terminal: at 80 columns the
# 12-character hash and the dates kept their width while "Sub-grade" broke, and at 60 every grade fell apart into
# pieces of two or three characters.  First a customer in several policies gets one table per policy (no Policy
# column, nothing lost); then these are left out, and said so below the tables (--json has everything).
HISTORY_LEAVE_OUT = ("policy hashes", "deciding rules", "run ids")


@app.command()
def history(
    customer_id: str = typer.Argument(..., metavar="CUSTOMER_ID", help="The customer's id."),
    db: Path = ResultsDbOption,
    policy: Optional[str] = PolicyNameOption,
    as_json: bool = typer.Option(False, "--json", help="Print the history as JSON."),
) -> None:
    """Show a customer's tier, sub-grade, stage and service level in every run, with the deciding rules and policy hash."""

    from .engine.run_history import customer_history, history_absences, history_pruned
    from .engine.terminal_table import titled_table

    items = customer_history(db, customer_id, policy)
    pruned = history_pruned(db, items)
    absent = history_absences(db, items)
    if as_json:
        _print_json({"customer_id": items[-1]["customer_id"], "history": items, "pruned_runs": pruned,
                     "absent_runs": absent})
        return
    last = items[-1]
    policies = list(dict.fromkeys(r["policy_name"] for r in items))
    # in a pipe or a cron log there is no bold: a changed value is marked with a star there
    plain = console.color_system is None
    compared = len(policies) < len(items)  # some policy has a previous run to mark changes against
    from .engine.terminal_table import print_indented

    # the heading and notes wrap at spaces: at 60 columns the terminal broke them inside a word or a name
    print_indented(console, f"[b]Customer {one_line(str(last['customer_id']))}[/b] {one_line(last['customer_name'] or '')}: "
                            f"{len(items)} run{'s' if len(items) != 1 else ''} of {', '.join(escape(p) for p in policies)}"
                            + (f"; {'*' if plain else 'bold'}: changed since the policy's previous run" if compared else ""))

    def changed(text: str) -> str:
        return f"{text}*" if plain else f"[b]{text}[/b]"

    def history_table(title: str, runs: list[dict], left_out: tuple[str, ...]):
        columns = {"Run>": "run ids" not in left_out, "As of": True, "Policy": len({r["policy_name"] for r in runs}) > 1,
                   "Hash": "policy hashes" not in left_out, "Tier": True, "Sub": True, "Stage": True, "Service level": True}
        table = titled_table(title, *(c for c, shown in columns.items() if shown), whole=("Run", "As of", "Hash"))
        previous: dict[str, dict] = {}  # policy -> its previous row
        for r in runs:
            before = previous.get(r["policy_name"])

            def cell(key: str, rule: str | None = None, r=r, before=before) -> str:
                moved = before is not None and before[key] != r[key]
                if r[key] is None:  # a grade the customer lost (A2 → no sub-grade) is a change too
                    return changed("—") if moved else "—"
                text = escape(str(r[key]))
                if moved:
                    text = changed(text)
                how = r[rule] if rule and "deciding rules" not in left_out else None  # shown when not the value's own rule
                if how == "default":
                    return f"{text} [dim](default)[/dim]"
                return f"{text} [dim](by {escape(how)})[/dim]" if how and how != r[key] else text

            sha = r["policy_sha256"][:8]
            policy_changed = before is not None and before["policy_sha256"] != r["policy_sha256"]
            cells = {"Run>": str(r["run_id"]), "As of": r["as_of"], "Policy": escape(r["policy_name"]),
                     "Hash": changed(sha) if policy_changed else sha, "Tier": cell("tier", "tier_rule"),
                     "Sub": cell("subgrade", "subgrade_rule"), "Stage": cell("stage", "stage_rule"),
                     "Service level": cell("service_level")}
            table.add_row(*(cells[c] for c, shown in columns.items() if shown))
            previous[r["policy_name"]] = r
        return table

    unbounded = console.options.update_width(sys.maxsize)  # a table's minimum: its longest words, padding, borders
    layouts = dict.fromkeys([(False, ())] + [(len(policies) > 1, HISTORY_LEAVE_OUT[:n])
                                             for n in range(len(HISTORY_LEAVE_OUT) + 1)])
    for split, left_out in layouts:
        tables = ([history_table(f"History of {escape(p)}", [r for r in items if r["policy_name"] == p], left_out)
                   for p in policies] if split else [history_table("History", items, left_out)])
        if all(console.measure(table, options=unbounded).minimum <= console.width for table in tables):
            break
    for table in tables:
        console.print(table)
    if left_out:
        print_indented(console, f"{', '.join(left_out)} left out to fit this terminal ({console.width} columns): "
                                f"widen it, or use --json")
    for name, n in pruned.items():
        if n:  # the first row shown is not where the customer's history began
            first = next(r for r in items if r["policy_name"] == name)
            print_indented(console, f"note: {n} successful run{'s' if n != 1 else ''} of policy {escape(name)} before "
                                    f"run {first['run_id']} (as of {first['as_of']}) {'were' if n != 1 else 'was'} "
                                    f"pruned: this history may have begun earlier")
    for name, missing in absent.items():
        if missing:
            _note_absences(name, last["customer_id"], missing, [r for r in items if r["policy_name"] == name][-1])


def _note_absences(policy: str, customer_id, missing: list[dict], last: dict) -> None:
    """A history's note on the policy's runs after the customer's first row that do not grade them: without it, a
    customer removed from the data ended on a grade that read as today's."""
    n, s = len(missing), "s" if len(missing) != 1 else ""
    dates = missing[0]["as_of"] + (f" to {missing[-1]['as_of']}" if n > 1 else "")
    text = (f"note: customer {customer_id} is not in {n} later run{s} of policy {policy}, run{s} "
            f"{_ids(sorted(r['run_id'] for r in missing))} (as of {dates}): the data {'they' if s else 'it'} graded "
            f"had no such customer (removed, or its id changed)")
    latest = missing[-1]
    if (latest["as_of"], latest["run_id"]) > (last["as_of"], last["run_id"]):  # every run after the last row
        text += (f"; run {latest['run_id']} is the policy's latest, so the last row above is not the customer's "
                 f"grade now")
    from .engine.terminal_table import print_indented

    print_indented(console, escape(text))


CHANGES_FULL_WIDTH = 100  # terminal columns the changed-customers table needs to show service levels readably


def _override_move(change: dict) -> str | None:
    """'by override' when a manual override set the tier a customer moved to, 'override ended' when the previous
    run's tier was an override and this run's is the rules' (it expired or was removed), else None: such a move
    is a decision someone made, and `changes` listed it like any move of the data."""
    from .engine.classify_sql import OVERRIDE_RULE

    if change["direction"] not in ("upgrade", "downgrade", "unranked"):
        return None
    if change["tier_rule"] == OVERRIDE_RULE:
        return "by override"
    return "override ended" if change["tier_rule_before"] == OVERRIDE_RULE else None


@app.command()
def changes(
    db: Path = ResultsDbOption,
    run: Optional[int] = typer.Option(None, "--run", help="Run id (default: the latest successful run)."),
    policy: Optional[str] = typer.Option(None, "--policy", "-p", help="The latest successful run of this policy (its name)."),
    limit: int = typer.Option(50, "--limit", min=0, help="Changed customers to show in the table (0 = all)."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary and every changed customer as JSON."),
) -> None:
    """Summarise what changed in a run since the previous run of its policy: upgrades, downgrades, stages, new and removed customers."""

    from collections import Counter

    from rich.cells import cell_len

    from .engine.render import fmt_number
    from .engine.run_history import changes as run_changes
    from .engine.terminal_table import print_indented, print_listing, titled_table

    c = run_changes(db, run, policy)
    if run is None:
        _note_newer_failures(db, c["run_id"], policy)
    if as_json:
        _print_json(c)
        return
    name = escape(c["policy_name"])
    pruned = c["pruned_runs"]
    runs_pruned = f"{pruned} successful run{'s' if pruned != 1 else ''} of policy {name}"
    if c["previous_run_id"] is None:
        if pruned:  # the oldest run prune kept: not the policy's first
            print_indented(console, f"run {c['run_id']} ([b]{name}[/b] as of {c['as_of']}) has no earlier run kept: "
                                    f"{runs_pruned} before it {'were' if pruned != 1 else 'was'} pruned; there is "
                                    f"nothing to compare it with")
        elif c["made_before"]:  # a backfill of the earliest date: not the first run made
            n = c["made_before"]
            print_indented(console, f"run {c['run_id']} ([b]{name}[/b] as of {c['as_of']}) grades the earliest date of "
                                    f"policy {name} (a backfill, made after {n:,} run{'s' if n != 1 else ''} of later "
                                    f"dates): there is no run before it to compare it with")
        else:
            print_indented(console, f"run {c['run_id']} ([b]{name}[/b] as of {c['as_of']}) is the first successful run "
                                    f"of policy {name}: there is nothing to compare it with")
        return
    # the heading, notes and totals wrap at spaces: at 60 columns the terminal broke them inside a word
    print_indented(console, f"[b]{name}[/b] run {c['run_id']} (as of {c['as_of']}, {c['customers']:,} customers) "
                            f"vs run {c['previous_run_id']} (as of {c['previous_as_of']}, {c['previous_customers']:,} "
                            f"customers)")
    if pruned:  # a backfill older than what prune deleted: the changes span the pruned runs too
        print_indented(console, f"note: {runs_pruned} between the two {'were' if pruned != 1 else 'was'} pruned; these "
                                f"changes include theirs")
    if c["policy_changed"]:
        print_indented(console, f"note: the policy changed between the runs (sha256 {c['previous_policy_sha256'][:12]} "
                                f"→ {c['policy_sha256'][:12]}): some moves may come from the new rules; `crm-rules explain "
                                f"CUSTOMER_ID --run {c['run_id']}` says of a customer whether the edit or the data moved them")
    elif c["as_of"] == c["previous_as_of"]:  # a re-run: nothing but the data (or the overrides) can differ
        print_indented(console, f"note: run {c['previous_run_id']} graded the same date with the same policy: what "
                                f"changed comes from the data changed since, or from manual overrides")
    if c["previous_source_db"] != c["source_db"]:  # customers "new" and "removed" may only be in the other file
        print_indented(console, f"note: the runs graded different database files ({escape(str(c['previous_source_db']))}"
                                f" → {escape(str(c['source_db']))})")
    t = c["totals"]
    print_indented(console, f"{t['upgrades']:,} upgraded, {t['downgrades']:,} downgraded, {t['stage_only']:,} changed "
                            f"stage only, {t['subgrade_only']:,} changed sub-grade only, {t['service_level_only']:,} "
                            f"changed service level only, {t['new']:,} new, {t['removed']:,} removed, "
                            f"{t['unchanged']:,} unchanged; stage changed for {t['stage_changes']:,}"
                            + (f"; {t['unranked']:,} moved from a tier this policy no longer has" if t["unranked"] else ""))
    by_override = Counter(_override_move(r) for r in c["changes"])
    made = [f"{by_override[k]:,} {text}" for k, text in (("by override", "made by a manual override"),
                                                          ("override ended", "by a manual override that ended or "
                                                                             "was removed")) if by_override[k]]
    if made:
        print_indented(console, f"of the tier changes, {' and '.join(made)} (marked in the table)")
    counts = {(m["from"], m["to"]): m["customers"] for m in c["matrix"]}
    gone = set(c["previous_only_tiers"])  # no customer can be in them after: no empty column for a renamed tier
    after = [t for t in c["tiers"] if t not in gone or any(to == t for _, to in counts)] + (
        [None] if any(to is None for _, to in counts) else [])
    before = [t for t in c["tiers"] if any(f == t for f, _ in counts)] + ([None] if any(f is None for f, _ in counts) else [])
    grid = titled_table("Tier before (rows) → after", "Before",
                        *[(escape(x) if x is not None else "(removed)") + ">" for x in after])
    for fr in before:
        cells = []
        for to in after:
            n = counts.get((fr, to), 0)
            text = fmt_number(n) if n else "·"  # empty is "·" on the diagonal too: a tier the policy no longer has
            cells.append(f"[b]{text}[/b]" if n and fr == to else text)
        grid.add_row(escape(fr) if fr is not None else "(new)", *cells)
    console.print(grid)
    items = c["changes"]
    if not items:
        return

    def move(a, b) -> str:
        a, b = ("—" if a is None else escape(str(a))), ("—" if b is None else escape(str(b)))
        return a if a == b else f"{a} → {b}"

    def tier(r: dict) -> str:
        """The tier's move, and a manual override that made it: the business's decision, not the data's."""
        why = _override_move(r)
        return move(r["tier_before"], r["tier_after"]) + (f" [dim]({why})[/dim]" if why else "")

    def cells(r: dict) -> dict:
        return {"Customer": escape(str(r["customer_id"])), "Name": escape(r["customer_name"] or ""),
                "Change": r["direction"], "Tier": tier(r),
                "Sub-grade": move(r["subgrade_before"], r["subgrade_after"]),
                "Stage": move(r["stage_before"], r["stage_after"]),
                "Service level": move(r["service_level_before"], r["service_level_after"])}

    # Below CHANGES_FULL_WIDTH the service levels are left out: with them, an 80-column terminal broke the stages
    # and service levels inside words ("developmen-t"); a "service level" change is then listed without its values.
    # The names go next where even then the words do not fit: at 60 columns a Chinese company name had a column
    # of two characters, ten lines a customer, and the stages beside it broke.  A tier's move ("C → B") is held
    # on its line: at 70 columns the name beside it took the room and left "C →" over "B".
    # A policy without sub-grades gets no column of dashes for them; where one has them, at 60 columns the sub-grades
    # go after the names ("upgrad" / "e" and "develop" / "ment" beside them), and the note names both.
    subgrades = any(r["subgrade_before"] is not None or r["subgrade_after"] is not None for r in items)
    print_listing(console, f"Changed customers: {len(items):,}",
                  ("Customer", "Name", "Change", "Tier", *(["Sub-grade"] if subgrades else []), "Stage", "Service level"),
                  items, cells,
                  limit=limit, whole=("Customer",), optional=("Service level",), full_width=CHANGES_FULL_WIDTH,
                  json_hint="--json", spare=("Name", "Sub-grade"),
                  min_widths={"Tier": max(cell_len(move(r["tier_before"], r["tier_after"])) for r in items)})


@app.command()
def prune(
    db: Path = ResultsDbOption,
    keep: int = typer.Option(..., "--keep", help="Successful runs to keep per policy (at least 1)."),
    policy: Optional[str] = typer.Option(None, "--policy", "-p", help="Only prune runs of this policy (its name)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would be deleted, delete nothing."),
    as_json: bool = typer.Option(False, "--json", help="Print what was (or would be) deleted as JSON."),
) -> None:
    """Delete old runs: keep each policy's newest N successful runs and every run after the oldest of them."""

    from .engine.render import fmt_number
    from .engine.run_history import prune as prune_runs
    from .engine.terminal_table import titled_table

    result = prune_runs(db, keep, policy, dry_run=dry_run)
    if as_json:
        _print_json(result)
        return
    from .engine.terminal_table import print_indented

    # the heading and the count of rows wrap at spaces: at 60 columns the terminal broke them inside a word
    print_indented(console, f"{'dry run: ' if dry_run else ''}pruning {escape(str(db))}, keeping each policy's newest "
                            f"{keep} successful run{'s' if keep != 1 else ''}")
    table = titled_table("Runs per policy", "Policy", "Kept successful runs", "Deleted runs")
    for p in result["policies"]:
        table.add_row(escape(p["policy_name"]), _ids(p["kept_runs"]), _ids(p["deleted_runs"]))
    console.print(table)
    n = len(result["deleted_runs"])
    if not n:
        console.print("nothing to delete", highlight=False)
        return
    rows = ", ".join(f"{fmt_number(v)} {k}" for k, v in result["rows"].items() if v)
    verb = "would delete" if dry_run else "deleted"
    print_indented(console, f"{verb} {n} run{'s' if n != 1 else ''}: {_ids(result['deleted_runs'])} ({rows})")
    if dry_run:
        console.print("dry run: nothing deleted", highlight=False)
    else:
        console.print(f"note: the file keeps its size; `sqlite3 {db} VACUUM` returns the space to the disk",
                      highlight=False, markup=False)


@app.command()
def report(
    db: Path = typer.Option(..., "--db", help="Database holding the runs (and the customer data).", dir_okay=False),
    out: Path = typer.Option(..., "--out", "-o", help="HTML file to write (its directory must exist)."),
    run: Optional[int] = typer.Option(None, "--run", help="Run id (default: the latest successful run)."),
    policy: Optional[str] = typer.Option(None, "--policy", "-p", help="The latest successful run of this policy (its name)."),
    results_db: Optional[Path] = typer.Option(None, "--results-db", dir_okay=False,
                                              help="Database holding the runs, when apply wrote them there (--db is then the customer data)."),
    rows: int = typer.Option(5000, "--rows", min=0, help="Customers to embed in the page's table, highest revenue first."),
    as_json: bool = typer.Option(False, "--json", help="Print what was written as JSON."),
) -> None:
    """Write a self-contained HTML report of a run: Pareto curve, tiers, lifecycle, transitions, credit, actions, customers."""
    from .engine.report_html import write_report

    result = write_report(db, out, run, policy, results_db, max_rows=rows)
    if run is None:
        _note_newer_failures(results_db or db, result["run_id"], policy)
    if as_json:
        _print_json(result)
        return
    console.print(f"report written to {out} ({result['customers']:,} customers, run {result['run_id']} of policy "
                  f"{result['policy_name']} in {results_db or db})", highlight=False, markup=False)
    console.print(f"open it in a browser: {out.resolve().as_uri()}", highlight=False, markup=False)


table_app = typer.Typer(
    cls=_Group,
    help="Edit a policy's rule tables (tiers, sub-grades, stages, service levels) in a spreadsheet: "
         "export to CSV/XLSX, import the edited sheet back into the YAML.",
    no_args_is_help=True,
)
app.add_typer(table_app, name="table",
              help="Export a policy's rule tables to CSV/XLSX and import the edited sheet back into the YAML.")
TableNameOption = typer.Option(None, "--table", "-t", help="tiers, subgrades, stages or service_levels.")


@table_app.command("export")
def table_export(
    policy: Path = typer.Argument(..., metavar="POLICY", help="The policy YAML file (or a shipped policy's name, e.g. base).", dir_okay=False),
    table: Optional[str] = TableNameOption,
    fmt: Optional[str] = typer.Option(None, "--format", help="csv or xlsx (default: from the --out extension, else csv)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", dir_okay=False,
                                       help="Output file (default: CSV on standard output; a file gets a UTF-8 BOM for Excel)."),
    as_json: bool = typer.Option(False, "--json", help="Without --table: list the tables as JSON."),
) -> None:
    """Export one rule table of a policy as CSV or XLSX; without --table, list the policy's tables."""
    from .engine.output_file import check_out, write_atomic
    from .engine.policy_files import resolve_policy_path
    from .engine.rule_table import export_table, is_shipped, list_tables, table_spec
    from .engine.rule_table_io import csv_text, output_format, xlsx_bytes
    from .engine.terminal_table import titled_table, words_fit

    _note_policy_choice(policy, option="")
    if table is None:
        tables = list_tables(policy)
        if fmt is not None or out is not None:  # they would be ignored: the listing is no table's export
            given = " and ".join(o for o, v in (("--format", fmt), ("--out", out)) if v is not None)
            own = [t.name for t in tables if t.own]
            raise UsageError(f"{given} {'are' if ' and ' in given else 'is'} for exporting one table, but no --table "
                             f"was given{' (--json lists the tables)' if as_json else ''}",
                             hint=(f"add --table with one of: {', '.join(own)}" if own else
                                   f"{policy} holds no rule table of its own") + "; without --table and "
                                  "--format/--out, the command lists the tables")
        if as_json:
            # policy_file as in `test --json`; "policy" (the same path, where other commands have a name) is kept
            _print_json({"policy_file": str(policy), "policy": str(policy), "tables": [t.as_json() for t in tables]})
            return
        # the YAML path under the name: a fourth column for it left too little room at 80 columns, and a
        # column name such as attributes.cost_per_customer broke inside a word
        rows = []
        for t in tables:
            where = "[dim]not in this policy[/dim]"
            if t.inherited_from and t.shipped:  # the installed package's file: not one to edit
                where = (f"inherited from the shipped policy {escape(str(t.extends))}; to change it, write a "
                         f"{escape(t.yaml_path.split('.')[0])} section in this file")
            elif t.inherited_from:
                where = f"inherited from {escape(t.inherited_from)} (extends: {escape(str(t.extends))}); edit it there"
            rows.append((f"{t.name}\n[dim]{escape(t.yaml_path)}[/dim]", str(t.rows) if t.own else "—",
                         escape(", ".join(t.columns)) if t.own else where))

        def listing(whole: tuple[str, ...] = ()):
            grid = titled_table(f"Rule tables in {escape(str(policy))}", "Table (in the YAML)", "Rows>", "Columns",
                                whole=whole)
            for row in rows:
                grid.add_row(*row)
            return grid
        # at 60 columns the YAML paths left the column names too little room: "attributes.points_multi" / "plier";
        # there the tables are listed one after another, a field a line
        grid = listing()
        console.print(grid if words_fit(console, grid) else listing(whole=("Table (in the YAML)", "Rows", "Columns")))
        own = [t.name for t in tables if t.own]
        if own:
            from shlex import quote

            console.print(f"next: crm-rules table export {quote(str(policy))} --table {own[0]} "
                          f"--out {quote(own[0] + '.xlsx')}", highlight=False, markup=False)
        return
    if as_json:
        raise UsageError("--json lists the tables; leave out --table", hint="use --format csv|xlsx to export a table")
    kind = output_format(None if out is not None and str(out) == "-" else out, fmt)  # "-": check_out says
    if out is not None:
        check_out(out, reads={"the policy": policy}, example=f"{table}.{kind}")
    exported = export_table(policy, table)
    if out is None:
        if kind == "xlsx":
            raise UsageError("an XLSX workbook cannot go to standard output", hint=f"give --out {exported.name}.xlsx")
        sys.stdout.write(csv_text(exported.columns, exported.rows))
        return
    data = csv_text(exported.columns, exported.rows).encode("utf-8-sig") if kind == "csv" else \
        xlsx_bytes(exported.name, exported.columns, exported.rows)
    write_atomic(out, data)
    n = len(exported.rows)
    err_console.print(f"exported {n:,} row{'s' if n != 1 else ''} of {table_spec(table).title} ({exported.name}) "
                      f"from {policy} to {out}", highlight=False, markup=False)
    from shlex import quote

    shipped = resolve_policy_path(str(policy))
    if shipped is not None and is_shipped(shipped):  # table import refuses it: do not suggest it
        err_console.print(f"note: {policy} is a shipped policy, not edited in place; to import an edited sheet, use a "
                          f"copy (`crm-rules demo` writes them to crm-demo/policies/) or a policy that extends "
                          f"{shipped.name[: -len('.yaml')]} and writes its own {table_spec(table).section} section",
                          highlight=False, markup=False)
        return
    err_console.print(f"next: edit it, then crm-rules table import {quote(str(policy))} --table {exported.name} "
                      f"{quote(str(out))} --dry-run", highlight=False, markup=False)


@table_app.command("import")
def table_import(
    policy: Path = typer.Argument(..., metavar="POLICY", help="The policy YAML file to update.", dir_okay=False),
    sheet: Path = typer.Argument(..., metavar="SHEET", help="The edited .csv or .xlsx file (header row first; rows matched by id).", dir_okay=False),
    table: str = typer.Option(..., "--table", "-t", help="tiers, subgrades, stages or service_levels."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would change and check the result; write nothing."),
    encoding: Optional[str] = typer.Option(None, "--encoding", help="A CSV sheet's encoding when it is not UTF-8: gbk for a CSV that Excel saved on Chinese Windows."),
    as_json: bool = typer.Option(False, "--json", help="Print the changes as JSON."),
) -> None:
    """Update a rule table in the policy YAML from an edited sheet, rewriting only the changed values.

    Rows are matched by id; comments, key order and layout are kept; nothing is written unless the
    resulting policy is valid.
    """
    from .engine.csv_reader import checked_encoding
    from .engine.rule_table_cells import format_cell
    from .engine.rule_table_import import import_table

    result = import_table(policy, table, sheet, dry_run=dry_run, encoding=checked_encoding(encoding))
    if as_json:
        _print_json(result.as_json())
        return

    def say(text: str, style: str | None = None) -> None:
        console.print(text, style=style, highlight=False, markup=False)

    say(f"{result.table} of {policy} <- {sheet}")
    counts = {"added": 0, "removed": 0, "changed": 0}
    for change in result.changes:
        counts[change.kind] += 1
        where = f" (row {change.sheet_row})" if change.sheet_row else ""
        if change.kind == "added":
            cells = ", ".join(f"{c.column} {format_cell(c.new)}" for c in change.cells)
            say(f"  + {change.id}{where}: {cells}", "green")
        elif change.kind == "removed":
            say(f"  - {change.id}" + (f" ({change.note})" if change.note else ""), "red")
        else:
            say(f"  ~ {change.id}{where}", "yellow")
            for c in change.cells:
                say(f"      {c.column}: {format_cell(c.old)} -> {format_cell(c.new)}")
    for group, old, new in result.order:
        what = f"order of {group}'s sub-grades" if group is not None else "order"
        say(f"  {what}: {', '.join(new)} (was {', '.join(old)})")
    if result.untouched_columns:
        say(f"note: columns not in the sheet are left as they are: {', '.join(result.untouched_columns)}")
    for note in result.notes:
        say(f"note: {note}")
    summary = ", ".join(f"{n} {kind}" for kind, n in counts.items() if n) or ("order changed" if result.order else "")
    if not result.changed:
        say(f"no changes: {policy} left as it is")
    elif result.written:
        say(f"{summary}; {policy} written (policy {result.policy_name} is valid, sha256 {result.policy_sha256[:12]})")
    else:
        say(f"{summary}; dry run: {policy} not changed (the result would be a valid policy)")


@app.command()
def schema(
    kind: Optional[str] = typer.Option(None, "--kind", help="policy (the default), or test for the schema of policy "
                                                            "test files (*.test.yaml)."),
    test: bool = typer.Option(False, "--test", help="Same as --kind test."),
    path: bool = typer.Option(False, "--path", help="Print the installed schema file's path (for editor settings) instead."),
) -> None:
    """Print the JSON Schema of policies (or of policy test files) for editors and other tools."""
    from importlib.resources import files

    names = {"policy": "policy.schema.json", "test": "policy-test.schema.json", "policy-test": "policy-test.schema.json"}
    asked = None if kind is None else kind.strip().lower()
    if test and asked not in (None, "test", "policy-test"):
        raise UsageError(f"--test and --kind {kind} ask for different schemas", hint="give one of them")
    kind = "test" if test else asked or "policy"
    if kind not in names:
        raise UsageError(f"unknown schema kind {kind!r}", hint="use --kind policy or --kind test")
    resource = files("crm_rules").joinpath("schemas").joinpath(names[kind])
    if path:
        sys.stdout.write(f"{Path(str(resource)).resolve()}\n")
        return
    text = resource.read_text(encoding="utf-8")
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def _terminate(signum: int, _frame) -> None:
    """SIGTERM (a service manager stopping the job) unwinds like Ctrl-C: workers stopped, temporary files removed."""
    raise SystemExit(128 + signum)


class _WholeWrites(io.RawIOBase):
    """Standard output's file descriptor, written to the last byte or with the error that stopped it.

    Unbuffered (``PYTHONUNBUFFERED=1``, common in containers and service units, or ``python -u``), Python's
    standard output passes each write to write(2) once: when the disk fills during it, write(2) stores what
    fits and returns that count, and Python drops the rest without an error, so ``export > grades.csv`` or
    ``apply --json > run.json`` ended cut short with exit code 0.  Writing the rest makes the next write(2)
    say why (ENOSPC, EFBIG), which ``_Group`` reports as ``cannot write the output``.
    """

    def __init__(self, fd: int) -> None:
        super().__init__()
        self._fd = fd

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    def isatty(self) -> bool:  # rich asks, for colours and the terminal's width
        return os.isatty(self._fd)

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        done = 0
        while done < len(view):
            written = os.write(self._fd, view[done:])
            if written == 0:  # no progress and no error: never loop on it
                raise OSError(errno.EIO, os.strerror(errno.EIO))
            done += written
        return len(view)


def _whole_stdout() -> None:
    """Give an unbuffered standard output writes that are never cut short silently (see ``_WholeWrites``).

    Buffered (the default), Python writes the rest itself and raises the error, so nothing changes then."""
    stream = sys.stdout
    if not isinstance(getattr(stream, "buffer", None), io.FileIO):
        return
    sys.stdout = io.TextIOWrapper(_WholeWrites(stream.fileno()), encoding=stream.encoding, errors=stream.errors,
                                  line_buffering=stream.line_buffering, write_through=True)


def main() -> None:
    signal.signal(signal.SIGTERM, _terminate)
    _whole_stdout()
    try:
        app()
    finally:
        # Everything the command built is garbage now; freezing it spares the interpreter's last
        # collections the walk through all of it (0.15 s of a 1 s `explain`).
        gc.freeze()


if __name__ == "__main__":  # pragma: no cover
    main()
