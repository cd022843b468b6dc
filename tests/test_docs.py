"""The documentation stays true to the code.

- ``docs/cli.md`` is exactly what ``engine/cli_reference.py`` renders from the
  commands in ``cli.py`` now, and every command and sub-command has a heading
  in it;
- the guides exist, and every ``crm-rules ...`` command line in them (in code
  blocks, and in inline code) names a real command and only options that
  command has;
- the YAML examples of the policy and operator guides load: full policies
  are validated, policy tests run and pass, partial snippets are validated on
  top of the policy they belong to, and examples of mistakes fail with the
  message they claim;
- every relative link between the docs and the README points at an existing
  file (and, inside docs/, at an existing heading);
- the messages of the code point at what an installed crm-rules has: no
  guide, README or docs/ file (files of the repository, not of the wheel),
  and only real ``crm-rules ...`` commands.

YAML examples say what they are in their first line:

``# file: crm-demo/policies/first.yaml``
    a whole file, saved at that path (relative to the demo directory); the
    shipped policies are in ``crm-demo/policies/`` too, as after ``crm-rules demo``;
``# in vip_card.yaml``
    an excerpt of that policy (or test file): validated as a policy that
    extends it;
``# invalid: MESSAGE``
    a mistake on purpose: loading it must fail with MESSAGE;
anything else
    a snippet of top-level sections, validated as a policy extending ``base``
    (a mapping with ``extends`` is validated as it is, one with ``cases`` is a
    policy test file and must pass, a list is an overrides file).
"""

from __future__ import annotations

import ast
import difflib
import enum
import re
import shlex
import unicodedata
from pathlib import Path

import pytest
import yaml

from crm_rules.engine.cli_reference import REGENERATE, command_tree, options_of, render, root_command
from crm_rules.engine.errors import PolicyError
from crm_rules.engine.overrides import load_overrides_file
from crm_rules.engine.policy_files import shipped_policies_dir
from crm_rules.engine.policy_model import load_policy
from crm_rules.engine.policy_tests import run_policy_tests

ROOT = Path(__file__).parent.parent
DOCS = ROOT / "docs"
README = ROOT / "README.md"
CLI_MD = DOCS / "cli.md"
GUIDES = ("README.md", "policy-guide.md", "plugin-guide.md", "operator-guide.md")
VALIDATED_YAML = ("policy-guide.md", "operator-guide.md")  # the plugin guide's policies need the example plugin
SHELL_LANGUAGES = {"", "bash", "sh", "shell", "zsh", "console", "cron", "crontab", "ini", "systemd", "dockerfile"}
PROMPT_LANGUAGES = {"text", "console"}  # only `$ crm-rules ...` lines are commands there
SHELL_OPERATORS = {"&&", "||", "|", ";", ">", ">>", "<", "&", "2>", "2>&1", ")", "(", "`"}


# ---------------------------------------------------------------------------
# Markdown helpers
# ---------------------------------------------------------------------------

def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def code_blocks(text: str) -> list[tuple[int, str, str]]:
    """(line number of the first line, language, body) of every fenced code block."""
    blocks, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        m = re.match(r"^(\s*)(```+|~~~+)\s*([\w+-]*)", lines[i])
        if not m:
            i += 1
            continue
        fence, language, start, body = m.group(2), m.group(3).lower(), i + 2, []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            body.append(lines[i])
            i += 1
        blocks.append((start, language, "\n".join(body)))
        i += 1
    return blocks


def prose(text: str) -> str:
    """The text outside fenced code blocks (line numbers kept: blocks become blank lines)."""
    out, fence = [], None
    for line in text.splitlines():
        m = re.match(r"^\s*(```+|~~~+)", line)
        if fence is None and m:
            fence = m.group(1)
            out.append("")
        elif fence is not None:
            if line.strip().startswith(fence):
                fence = None
            out.append("")
        else:
            out.append(line)
    return "\n".join(out)


def github_anchor(heading: str, seen: dict[str, int]) -> str:
    """The id GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens, duplicates numbered."""
    text = re.sub(r"`|\*\*|__|<[^>]+>", "", heading.strip()).lower()
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    slug = "".join(ch for ch in text if ch in " -_" or unicodedata.category(ch)[0] in "LNM")
    slug = slug.replace(" ", "-")
    n = seen.get(slug, 0)
    seen[slug] = n + 1
    return slug if n == 0 else f"{slug}-{n}"


def anchors(text: str) -> set[str]:
    seen: dict[str, int] = {}
    return {github_anchor(m.group(1), seen) for m in re.finditer(r"^#{1,6}\s+(.*?)\s*#*\s*$", prose(text), re.M)}


# ---------------------------------------------------------------------------
# (a), (b): the generated CLI reference
# ---------------------------------------------------------------------------

def test_cli_reference_is_up_to_date():
    expected = render()
    current = _read(CLI_MD) if CLI_MD.is_file() else ""
    if current != expected:
        diff = "".join(difflib.unified_diff(current.splitlines(True), expected.splitlines(True),
                                            "docs/cli.md (committed)", "docs/cli.md (generated now)", n=1))
        shown = diff if len(diff) < 4000 else diff[:4000] + "\n[... more differences ...]\n"
        pytest.fail("docs/cli.md is out of date with the commands in cli.py. Regenerate it from the repository "
                    f"root with:\n\n    {REGENERATE}\n\n(crm_rules must be importable: installed with pip, editable or not, or on "
                    "PYTHONPATH as a link to this checkout) and commit the result.\n\n" + shown, pytrace=False)


def test_cli_reference_does_not_depend_on_the_terminal(monkeypatch):
    first = render()
    monkeypatch.setenv("COLUMNS", "37")
    monkeypatch.setenv("TERM", "dumb")
    assert render() == first


@pytest.mark.parametrize("name", [d.name for d in command_tree()])
def test_every_command_has_a_heading_in_the_cli_reference(name):
    headings = re.findall(r"^#{3,6} `(crm-rules[^`]*)`$", _read(CLI_MD), re.M)
    assert name in headings, f"docs/cli.md has no heading for `{name}`; regenerate it with: {REGENERATE}"


def test_cli_reference_documents_every_exit_code_of_cli_py():
    """Exit codes raised directly in cli.py (typer.Exit(N)) must have a meaning in the reference."""
    from crm_rules.engine.cli_reference import exit_codes

    source = _read(ROOT / "cli.py")
    used = {int(n) for n in re.findall(r"Exit\(\s*(\d+)\s*\)", source)}
    assert used <= set(exit_codes()), f"exit codes without a documented meaning: {sorted(used - set(exit_codes()))}"


class _Format(str, enum.Enum):  # an option with choices, for the test below (typer needs it at module level)
    xlsx = "xlsx"
    csv = "csv"


def test_cli_reference_renders_groups_recursively():
    """Sub-command groups (crm-rules table export/import) get their own sections, with a usage line each."""
    import typer

    app = typer.Typer(help="Root.", add_completion=False)
    table = typer.Typer(help="Edit a policy's tables in a spreadsheet.")
    app.add_typer(table, name="table")

    @table.command("export")
    def export(policy: str = typer.Argument(..., help="The policy."),
               name: str = typer.Option(..., "--table", help="tiers | stages"),
               out: Path = typer.Option(..., "--out", "-o", dir_okay=False, help="File to write."),
               fmt: _Format = typer.Option(_Format.xlsx, "--format")):
        """Write a table of the policy to a spreadsheet.

        Second paragraph with *stars*."""

    text = render(app)
    assert [d.name for d in command_tree(app)] == ["crm-rules table", "crm-rules table export"]
    assert "### `crm-rules table`" in text and "#### `crm-rules table export`" in text
    assert "crm-rules table export [OPTIONS] POLICY" in text
    assert "| `-o`, `--out FILE` | file | required | File to write. |" in text
    assert "| `--format [xlsx\\|csv]` | one of `xlsx`, `csv` | `xlsx` |" in text
    assert "| `--table TEXT` | text | required | tiers \\| stages |" in text
    assert "Second paragraph with \\*stars\\*." in text
    assert "[`crm-rules table export`](#crm-rules-table-export)" in text


# ---------------------------------------------------------------------------
# (c): the guides name real commands and options
# ---------------------------------------------------------------------------

_COMMAND = re.compile(r"(?:^|[\s;&|(=])((?:[^\s;&|(=`'\"]*/bin/)?crm-rules)(?=\s|$)")


def _logical_lines(body: str) -> list[str]:
    """Lines of a code block with backslash continuations joined."""
    out, current = [], ""
    for line in body.splitlines():
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
        else:
            out.append(current + line)
            current = ""
    if current:
        out.append(current)
    return out


def command_lines(text: str) -> list[tuple[int, str]]:
    """(line, the text from `crm-rules` on) for every crm-rules command line in code blocks and inline code."""
    found = []
    for start, language, body in code_blocks(text):
        if language not in SHELL_LANGUAGES and language not in PROMPT_LANGUAGES:
            continue
        for offset, line in enumerate(_logical_lines(body)):
            if language in PROMPT_LANGUAGES:
                if not line.lstrip().startswith("$ "):
                    continue
                line = line.lstrip()[2:]
            if line.lstrip().startswith("#"):
                continue
            if language in ("ini", "systemd") and not re.match(r"\s*Exec\w*=", line):
                continue  # a unit file: only its Exec lines are commands
            for m in _COMMAND.finditer(line):
                found.append((start + offset, "crm-rules" + line[m.end(1):]))
    for number, line in enumerate(prose(text).splitlines(), 1):
        for m in re.finditer(r"`(crm-rules(?:\s[^`]*)?)`", line):
            found.append((number, m.group(1)))
    return found


def _tokens(line: str) -> list[str]:
    try:
        lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|<>()")
        lexer.whitespace_split = True
        lexer.commenters = "#"
        tokens = list(lexer)
    except ValueError:  # an unbalanced quote: fall back to plain words
        tokens = line.split()
    out = []
    for token in tokens:
        if token in SHELL_OPERATORS or (token and set(token) <= set(";&|<>()")):
            break
        out.append(token)
    return out


def _is_placeholder(word: str) -> bool:
    return bool(re.fullmatch(r"[A-Z][A-Z_]*(\.\.\.)?", word))


def check_command_line(line: str) -> list[str]:
    """Problems of one command line: an unknown command or sub-command, or an option the command does not have."""
    tokens = _tokens(line)[1:]  # after crm-rules
    root = root_command()
    global_options = options_of(root)
    known_global = {o for opts in global_options.values() for o in opts}
    while tokens and tokens[0].startswith("-"):
        if tokens[0] not in known_global:
            return [f"unknown global option {tokens[0]!r}"]
        tokens.pop(0)
    command, path = root, []
    while tokens:
        subs = getattr(command, "commands", None)
        if not isinstance(subs, dict):
            break
        word = tokens[0]
        if word.startswith("-") or _is_placeholder(word) or word == "...":
            break
        if word not in subs:
            what = "sub-command of crm-rules " + " ".join(path) if path else "command"
            return [f"unknown {what} {word!r} (known: {', '.join(sorted(subs))})"]
        command = subs[word]
        path.append(word)
        tokens.pop(0)
    if command is root:
        return []  # crm-rules alone, crm-rules --version, crm-rules COMMAND --help
    options = {o for opts in options_of(command).values() for o in opts}
    problems = []
    for token in tokens:
        for word in token.strip("[]").split("|"):
            name = word.split("=", 1)[0]
            if re.fullmatch(r"--[A-Za-z][\w-]*|-[A-Za-z]", name) and name not in options:
                problems.append(f"`crm-rules {' '.join(path)}` has no option {name!r} "
                                f"(options: {', '.join(sorted(options))})")
    return problems


def test_the_docs_directory_has_every_guide():
    for name in GUIDES + ("cli.md",):
        path = DOCS / name
        assert path.is_file(), f"docs/{name} is missing"
        assert len(_read(path).strip()) > 200, f"docs/{name} is (nearly) empty"


@pytest.mark.parametrize("guide", GUIDES)
def test_command_lines_in_the_guides_are_real(guide):
    text = _read(DOCS / guide)
    lines = command_lines(text)
    problems = [f"docs/{guide}:{n}: {line.strip()}\n    {p}" for n, line in lines for p in check_command_line(line)]
    assert not problems, "commands in the guide that crm-rules does not have:\n" + "\n".join(problems)


def test_the_guides_show_commands():
    """The extraction above must find the guides' commands, or the check would pass vacuously."""
    for guide in GUIDES[1:]:
        assert len(command_lines(_read(DOCS / guide))) >= 5, guide


def test_command_line_check_finds_mistakes():
    assert check_command_line("crm-rules apply --db x.db --policy base --as-of 2026-06-30") == []
    assert check_command_line("crm-rules --debug apply -p base --db=x.db && crm-rules runs") == []
    assert check_command_line("crm-rules check policies/base.yaml")[0].startswith("unknown command 'check'")
    assert "no option '--polcy'" in check_command_line("crm-rules apply --polcy base")[0]
    assert check_command_line("crm-rules --verbose apply") == ["unknown global option '--verbose'"]
    assert check_command_line("crm-rules COMMAND --help") == []
    lines = command_lines("```cron\n30 2 * * * /opt/crm/bin/crm-rules apply --db d --policy p\n```\n"
                          "and `crm-rules runs --db DB`, `crm-rules`\n")
    assert [line for _, line in lines] == ["crm-rules apply --db d --policy p", "crm-rules runs --db DB", "crm-rules"]


# ---------------------------------------------------------------------------
# (c): the YAML examples load
# ---------------------------------------------------------------------------

def _yaml_examples(guide: str) -> list[tuple[int, str]]:
    return [(n, body) for n, language, body in code_blocks(_read(DOCS / guide)) if language in ("yaml", "yml")]


def _marker(body: str) -> tuple[str, str]:
    first = body.lstrip().splitlines()[0] if body.strip() else ""
    for kind in ("file", "in", "invalid"):
        m = re.match(rf"#\s*{kind}:?\s+(.+?)\s*$", first)
        if m:
            return kind, m.group(1)
    return "", ""


@pytest.fixture
def demo_dir(tmp_path) -> Path:
    """A directory laid out as after `crm-rules demo`: crm-demo/policies/ holds the shipped policies."""
    policies = tmp_path / "crm-demo" / "policies"
    policies.mkdir(parents=True)
    for item in shipped_policies_dir().iterdir():
        if item.name.endswith(".yaml"):
            (policies / item.name).write_bytes(item.read_bytes())
    return tmp_path


def _check_document(path: Path, data) -> None:
    """Load what is at ``path`` as what it is: overrides, a policy test file (which must pass) or a policy."""
    if isinstance(data, list):
        load_overrides_file(path, [t.id for t in load_policy("base").tiers])
    elif isinstance(data, dict) and "cases" in data:
        report = run_policy_tests([path], explain=True)
        assert report["failed"] == 0, report["failures"]
    else:
        load_policy(path)


@pytest.mark.parametrize("guide", VALIDATED_YAML)
def test_yaml_examples_in_the_guides_load(guide, demo_dir):
    examples = _yaml_examples(guide)
    policies = demo_dir / "crm-demo" / "policies"
    files = [(n, body, target) for n, body in examples
             for kind, target in [_marker(body)] if kind == "file"]
    for _, body, target in files:  # every whole file first: later examples may refer to them
        (demo_dir / target).parent.mkdir(parents=True, exist_ok=True)
        (demo_dir / target).write_text(body + "\n", encoding="utf-8")
    problems = []
    for i, (n, body) in enumerate(examples):
        kind, value = _marker(body)
        data = yaml.safe_load(body)
        where = f"docs/{guide}:{n}"
        if kind == "file":
            path = demo_dir / value
        elif isinstance(data, dict) and ("cases" in data or "extends" in data):
            path = policies / (f"example{i}.test.yaml" if "cases" in data else f"example{i}.yaml")
            path.write_text(body + "\n", encoding="utf-8")
        elif isinstance(data, list):
            path = demo_dir / f"example{i}.yaml"
            path.write_text(body + "\n", encoding="utf-8")
        else:
            base = value.removesuffix(".yaml") if kind == "in" else "base"
            path = policies / f"example{i}.yaml"
            path.write_text(f"extends: {base}\n{body}\n", encoding="utf-8")
        try:
            _check_document(path, data)
        except PolicyError as exc:
            if kind != "invalid":
                problems.append(f"{where}: the example does not load:\n{exc}")
            elif value not in str(exc):
                problems.append(f"{where}: the example fails, but not with {value!r}:\n{exc}")
            continue
        except AssertionError as exc:
            problems.append(f"{where}: the policy test example fails:\n{exc}")
            continue
        if kind == "invalid":
            problems.append(f"{where}: the example is marked `# invalid: {value}` but loads without error")
    assert not problems, "\n\n".join(problems)


def test_the_policy_guide_shows_valid_yaml_of_every_kind():
    kinds = {_marker(body)[0] for _, body in _yaml_examples("policy-guide.md")}
    assert {"file", "in", "invalid", ""} <= kinds


# ---------------------------------------------------------------------------
# (d): links resolve
# ---------------------------------------------------------------------------

def _links(path: Path) -> list[tuple[int, str]]:
    found = []
    for number, line in enumerate(prose(_read(path)).splitlines(), 1):
        line = re.sub(r"`[^`]*`", "", line)
        for m in re.finditer(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", line):
            found.append((number, m.group(1)))
    return found


@pytest.mark.parametrize("document", ["README.md"] + [f"docs/{p.name}" for p in sorted(DOCS.glob("*.md"))])
def test_links_resolve(document):
    path = ROOT / document
    problems = []
    for number, target in _links(path):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
            continue
        file, _, anchor = target.partition("#")
        resolved = (path.parent / file).resolve() if file else path
        if not resolved.exists():
            problems.append(f"{document}:{number}: {target}: {resolved} does not exist")
            continue
        if anchor and resolved.suffix == ".md" and document.startswith("docs/") and anchor not in anchors(_read(resolved)):
            problems.append(f"{document}:{number}: {target}: no heading with anchor #{anchor} in {resolved.name}")
    assert not problems, "\n".join(problems)


def test_the_docs_index_links_every_guide():
    index = _read(DOCS / "README.md")
    for name in GUIDES[1:] + ("cli.md",):
        assert f"]({name})" in index, f"docs/README.md does not link {name}"


def _sql_queries(guide: str) -> dict[str, str]:
    """The queries of a guide's ```sql blocks, by the comment line above each."""
    text = (DOCS / guide).read_text(encoding="utf-8")
    queries: dict[str, str] = {}
    for block in re.findall(r"```sql\n(.*?)```", text, re.S):
        for statement in block.split(";"):
            lines = statement.strip().splitlines()
            title = " ".join(line[3:] for line in lines if line.startswith("-- "))
            if title:
                queries[title] = "\n".join(line for line in lines if not line.startswith("--"))
    return queries


def test_the_operator_guides_sql_takes_the_latest_run_by_as_of_date_after_a_backfill(demo_db):
    """The queries read "the last run" as max(run_id) and a history in run id order: after a backfill of March,
    run after June, they showed March's moves and put March after June."""
    import sqlite3

    from crm_rules.engine.run_history import changes
    from crm_rules.engine.runner import apply_policy

    policy = load_policy("base")
    for as_of in ("2025-12-31", "2026-06-30", "2026-03-31"):  # run 3 is a backfill
        apply_policy(demo_db, policy, as_of)
    queries = _sql_queries("operator-guide.md")
    conn = sqlite3.connect(demo_db)
    for sql in queries.values():
        conn.execute(sql).fetchall()
    [moved] = [sql for title, sql in queries.items() if title.startswith("Who moved between the last two runs")]
    latest = changes(demo_db, policy="base")
    assert latest["run_id"] == 2
    by_direction = {}
    for r in latest["changes"]:
        if r["direction"] in ("upgrade", "downgrade", "same tier", "new", "removed", "unranked"):
            key = (r["direction"], r["tier_before"], r["tier_after"])
            by_direction[key] = by_direction.get(key, 0) + 1
    assert {(d, b, a): n for d, b, a, n in conn.execute(moved)} == by_direction
    [over_time] = [sql for title, sql in queries.items() if title.startswith("A customer's tier over time")]
    assert [r[0] for r in conn.execute(over_time)] == ["2025-12-31", "2026-03-31", "2026-06-30"]


def test_the_policy_guides_two_scales_query_counts_every_customer_once(demo_db):
    """Two policies applied into one results database: the guide's join of their crm_current rows."""
    import sqlite3

    from crm_rules.engine.runner import apply_policy

    for name in ("base", "vip_card"):
        apply_policy(demo_db, load_policy(name), "2026-06-30")
    [query] = [sql for title, sql in _sql_queries("policy-guide.md").items() if title == "Customers by ABC tier and VIP card"]
    conn = sqlite3.connect(demo_db)
    rows = conn.execute(query).fetchall()
    assert {card for _, card, _ in rows} <= {"diamond", "gold", "silver", "standard"}
    assert sum(n for *_, n in rows) == conn.execute("SELECT count(*) FROM customers").fetchone()[0]


# ---------------------------------------------------------------------------
# (e): messages point at what an installed crm-rules has
# ---------------------------------------------------------------------------

# What the wheel installs (pyproject.toml's only-include) and that writes messages; cli_reference is the tool
# that writes docs/cli.md, in a checkout.
SHIPPED_CODE = [p for p in (*sorted((ROOT / "engine").glob("*.py")), *sorted((ROOT / "plugins").glob("*.py")),
                            ROOT / "cli.py") if p.name != "cli_reference.py"]
REPOSITORY_DOCUMENT = re.compile(r"\bguide\b|readme|docs/|\.md\b", re.I)


def _message_texts(path: Path) -> list[tuple[int, str]]:
    """(line, text) of every string of a module but its docstrings; an f-string's values read VALUE."""
    tree = ast.parse(_read(path))
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body
                  and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    texts = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            texts.append((node.lineno, "".join(v.value if isinstance(v, ast.Constant) else "VALUE" for v in node.values)))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            texts.append((node.lineno, node.value))
    return texts


def test_messages_send_no_one_to_a_document_an_installed_crm_rules_lacks():
    # hints said "(see the plugin author guide)", "(README, \"Writing a plugin\")": files of the repository only
    found = [f"{path.relative_to(ROOT)}:{line}: {text[:120]!r}" for path in SHIPPED_CODE
             for line, text in _message_texts(path) if REPOSITORY_DOCUMENT.search(text)]
    assert not found, "point at a command (`crm-rules plugins`, `crm-rules schema`) instead:\n" + "\n".join(found)


def test_commands_the_messages_name_are_real():
    lines = [(f"{path.relative_to(ROOT)}:{line}", m.group(1)) for path in SHIPPED_CODE
             for line, text in _message_texts(path) for m in re.finditer(r"`(crm-rules(?:\s[^`]*)?)`", text)]
    assert len(lines) >= 20  # or the check would pass vacuously
    problems = [f"{where}: {line}\n    {p}" for where, line in lines for p in check_command_line(line)]
    assert not problems, "commands in messages that crm-rules does not have:\n" + "\n".join(problems)
