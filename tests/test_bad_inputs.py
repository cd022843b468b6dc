"""Bad input of any kind: a clear message naming the place and the fix, a non-zero exit, nothing written.

Every file in ``tests/bad_inputs/`` is one case (the file name is its id):

```yaml
about: what is wrong with the input
policy: |                 # inline policy text, written to {dir}/policy.yaml; or
policy_bytes_hex: "..."   # raw bytes of policy.yaml; or
policy_size_mb: 3         # a valid-looking policy padded with comments to this size;
                          # none of them: {policy} is the shipped policy `base`
extra_files: {name: text} # more files in {dir} (sources, extended policies, CSV files)
extra_files_hex: {name: hex}  # the same, as raw bytes
db: demo                  # demo | demo_run (demo with one successful run) | minimal | empty | not_sqlite | none
setup_sql: [...]          # applied to the database before the snapshot
args: [apply, --db, "{db}", --policy, "{policy}", --as-of, "2026-06-30"]   # placeholders {db} {policy} {dir}
exit: 1
expect: ["substring", ...]   # each must occur in stdout+stderr
reject: ["substring", ...]   # none may occur (e.g. a misleading follow-on error)
unchanged: bytes          # bytes (default) | no_partial_run | none (the db must not exist afterwards)
absent: ["{dir}/x.db"]    # paths that must not exist afterwards
lock: write               # another connection holds the database during the run: write (BEGIN IMMEDIATE)
                          # or exclusive (BEGIN EXCLUSIVE); the busy timeout is cut to 0.2 s to keep it fast
xfail: "..."              # the engine currently gets this wrong: what happens now vs what should
```

The CLI runs in-process; an exception escaping it is a failure, as is "Traceback" in the output.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import sqlite3
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from crm_rules.cli import app
from crm_rules.engine import database
from crm_rules.engine.demo_data import DEMO_AS_OF, SCHEMA, generate_demo_database

CASES_DIR = Path(__file__).parent / "bad_inputs"
CASE_FILES = sorted(CASES_DIR.glob("*.yaml"))
REQUIRED = ("about", "args", "exit", "expect")
OPTIONAL = ("reject", "policy", "policy_bytes_hex", "policy_size_mb", "extra_files", "extra_files_hex", "db", "setup_sql",
            "unchanged", "absent", "lock", "xfail")
DB_KINDS = ("demo", "demo_run", "minimal", "empty", "not_sqlite", "none")
UNCHANGED = ("bytes", "no_partial_run", "none")
LOCKS = {"write": "BEGIN IMMEDIATE", "exclusive": "BEGIN EXCLUSIVE"}

# A few hand-made rows for cases that need to see exactly what is in the tables.
MINIMAL_ROWS = [
    "INSERT INTO customers (id, name, region, industry, created_at, account_manager, credit_limit) VALUES ('K1', 'Acme Ltd', 'Europe', 'retail', '2020-01-01', 'ann', 10000)",
    "INSERT INTO customers (id, name, region, industry, created_at, account_manager, credit_limit) VALUES ('K2', '华东贸易有限公司', '华东', 'retail', '2021-03-15', 'bo', 5000)",
    "INSERT INTO customers (id, name, region, industry, created_at, account_manager, credit_limit) VALUES ('K3', 'Small Shop', 'Europe', 'retail', '2025-11-01', 'ann', 1000)",
    "INSERT INTO orders VALUES (1, 'K1', '2026-05-01', 1200.5, 800, 0)",
    "INSERT INTO orders VALUES (2, 'K2', '2026-06-01', 80, 50, 0)",
    "INSERT INTO orders VALUES (3, 'K1', '2026-06-02', 300, 200, 10)",
    "INSERT INTO orders VALUES (4, 'K3', '2026-01-15', 45, 30, 0)",
]


def load_case(path: Path) -> dict:
    with path.open(encoding="utf-8") as f:
        case = yaml.safe_load(f)
    assert isinstance(case, dict), f"{path.name}: a case is a mapping"
    return case


def _params():
    for path in CASE_FILES:
        case = load_case(path)
        marks = [pytest.mark.xfail(strict=True, reason=case["xfail"])] if case.get("xfail") else []
        yield pytest.param(path, id=path.stem, marks=marks)


# --- databases ---------------------------------------------------------------


@pytest.fixture(scope="session")
def templates(tmp_path_factory):
    """Template databases, built on first use and copied per case."""
    return template_factory(tmp_path_factory.mktemp("bad_inputs_templates"))


def template_factory(root: Path):
    built: dict[str, Path] = {}

    def get(kind: str) -> Path:
        if kind in built:
            return built[kind]
        path = root / f"{kind}.db"
        if kind == "demo":
            generate_demo_database(path, customers=120, seed=5)
        elif kind == "demo_run":
            shutil.copy(get("demo"), path)
            result = CliRunner().invoke(app, ["apply", "--db", str(path), "--policy", "base", "--as-of", DEMO_AS_OF],
                                        catch_exceptions=False)
            assert result.exit_code == 0, result.output
            conn = sqlite3.connect(path)  # fold the write-ahead log into the file, which is all we copy
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.close()
        elif kind == "minimal":
            conn = sqlite3.connect(path)
            for statement in SCHEMA.split(";")[:2]:  # customers and orders only
                conn.execute(statement)
            for statement in MINIMAL_ROWS:
                conn.execute(statement)
            conn.commit()
            conn.close()
        else:
            raise AssertionError(kind)
        built[kind] = path
        return path

    return get


def make_db(kind: str, target: Path, templates) -> None:
    if kind in ("demo", "demo_run", "minimal"):
        shutil.copy(templates(kind), target)
    elif kind == "empty":
        sqlite3.connect(target).close()  # a valid SQLite file without tables (0 bytes)
    elif kind == "not_sqlite":
        target.write_bytes(hashlib.sha256(b"not sqlite").digest() * 64)
    elif kind != "none":
        raise AssertionError(f"unknown db kind {kind!r}")


def run_state(db: Path) -> dict:
    """Succeeded runs, and every crm_ row that belongs to a run that did not succeed."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'crm_%'")]
        if "crm_runs" not in tables:
            return {"succeeded": [], "orphans": {}}
        succeeded = [r[0] for r in conn.execute("SELECT run_id FROM crm_runs WHERE status = 'succeeded' ORDER BY run_id")]
        orphans = {}
        for table in tables:
            columns = [r[1] for r in conn.execute(f'PRAGMA table_info("{table}")')]
            if table != "crm_runs" and "run_id" in columns:
                n = conn.execute(f'SELECT count(*) FROM "{table}" WHERE run_id NOT IN '
                                 f"(SELECT run_id FROM crm_runs WHERE status = 'succeeded')").fetchone()[0]
                if n:
                    orphans[table] = n
        return {"succeeded": succeeded, "orphans": orphans}
    finally:
        conn.close()


def user_data(db: Path) -> dict:
    """Every non-crm_ table's rows: the user's own data must never change."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        names = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'crm_%' AND name NOT LIKE 'sqlite_%'")]
        return {n: hashlib.sha256(repr(conn.execute(f'SELECT * FROM "{n}" ORDER BY rowid').fetchall()).encode()).hexdigest()
                for n in names}
    finally:
        conn.close()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- one case ------------------------------------------------------------------


def prepare(case: dict, workdir: Path, templates) -> dict:
    """Write the case's files and database into workdir; return the placeholders."""
    unknown = set(case) - set(REQUIRED) - set(OPTIONAL)
    assert not unknown, f"unknown case keys {sorted(unknown)}"
    policy_path = workdir / "policy.yaml"
    given = [k for k in ("policy", "policy_bytes_hex", "policy_size_mb") if k in case]
    assert len(given) <= 1, f"give at most one of {given}"
    if "policy" in case:
        policy_path.write_text(case["policy"], encoding="utf-8")
    elif "policy_bytes_hex" in case:
        policy_path.write_bytes(bytes.fromhex("".join(case["policy_bytes_hex"].split())))
    elif "policy_size_mb" in case:
        head = "tiers:\n  levels:\n    - {id: A, default: true}\n"
        line = "# " + "padding " * 12 + "\n"
        policy_path.write_text(head + line * (int(case["policy_size_mb"] * 2**20) // len(line) + 1), encoding="utf-8")
    for name, text in (case.get("extra_files") or {}).items():
        (workdir / name).parent.mkdir(parents=True, exist_ok=True)
        (workdir / name).write_text(text, encoding="utf-8")
    for name, hexed in (case.get("extra_files_hex") or {}).items():
        (workdir / name).write_bytes(bytes.fromhex("".join(hexed.split())))
    db = workdir / "crm.db"
    kind = case.get("db", "demo")
    assert kind in DB_KINDS, f"db must be one of {DB_KINDS}"
    make_db(kind, db, templates)
    if case.get("setup_sql"):
        conn = sqlite3.connect(db)
        for statement in case["setup_sql"]:
            conn.execute(statement)
        conn.commit()
        conn.close()
    return {"db": str(db), "policy": str(policy_path) if given else "base", "dir": str(workdir)}


_BOX = re.compile(r"[\s\u2500-\u257f]+")  # whitespace and box drawing


def contains(output: str, expected: str) -> bool:
    """Substring test that survives Click's usage-error panel wrapping a long message over lines."""
    return expected in output or _BOX.sub("", expected) in _BOX.sub("", output)


def fill(text, places: dict) -> str:
    text = str(text)
    for name, value in places.items():
        text = text.replace("{" + name + "}", value)
    return text


@pytest.mark.parametrize("case_file", list(_params()))
def test_bad_input(case_file: Path, tmp_path: Path, templates, monkeypatch):
    case = load_case(case_file)
    workdir = tmp_path / "case"
    workdir.mkdir()
    monkeypatch.chdir(workdir)  # relative paths (e.g. demo --dir) stay in the case's folder
    places = prepare(case, workdir, templates)
    db = Path(places["db"])
    rule = case.get("unchanged", "bytes")
    assert rule in UNCHANGED
    before_bytes = digest(db) if db.is_file() else None
    before_runs = run_state(db) if rule == "no_partial_run" else None
    before_data = user_data(db) if rule == "no_partial_run" else None
    if rule == "bytes":
        assert db.exists(), "unchanged: bytes needs a database (use unchanged: none for db: none)"
    if rule == "none":
        assert not db.exists(), "unchanged: none is for a database that does not exist"
    args = [fill(a, places) for a in case["args"]]

    holder = None
    if case.get("lock"):
        monkeypatch.setattr(database, "BUSY_TIMEOUT_MS", 200)
        holder = sqlite3.connect(db, isolation_level=None)
        holder.execute(LOCKS[case["lock"]])
    try:
        result = CliRunner().invoke(app, args, catch_exceptions=False)
    finally:
        if holder is not None:
            holder.execute("ROLLBACK")
            holder.close()
    output = result.output

    assert "Traceback" not in output, output
    assert result.exit_code == case["exit"], f"exit {result.exit_code}, expected {case['exit']}:\n{output}"
    for expected in case["expect"]:
        assert contains(output, fill(expected, places)), f"{expected!r} not in output:\n{output}"
    for rejected in case.get("reject") or []:
        assert fill(rejected, places) not in output, f"{rejected!r} in output:\n{output}"
    if rule == "bytes":
        assert db.is_file() and digest(db) == before_bytes, "the database changed"
    elif rule == "no_partial_run":
        after = run_state(db)
        assert after["orphans"] == {}, f"rows of a run that did not succeed: {after['orphans']}"
        assert after["succeeded"] == before_runs["succeeded"], "a new successful run was written"
        assert user_data(db) == before_data, "the user's own tables changed"
    else:
        assert not db.exists(), "a database file was created"
    for path in case.get("absent") or []:
        assert not Path(fill(path, places)).exists(), f"{fill(path, places)} was created"
    # A rollback journal left behind means an interrupted write; a non-empty WAL holds changes the
    # byte comparison of the main file would miss. (An empty -wal/-shm pair is what SQLite leaves
    # after a read-only connection to a WAL database.)
    assert not Path(f"{db}-journal").exists(), "a rollback journal was left behind"
    wal = Path(f"{db}-wal")
    assert not wal.exists() or wal.stat().st_size == 0, "changes are pending in the write-ahead log"


def test_corpus_is_complete():
    assert len(CASE_FILES) >= 60, f"only {len(CASE_FILES)} bad-input cases"
    for path in CASE_FILES:
        case = load_case(path)
        missing = [k for k in REQUIRED if k not in case]
        assert not missing, f"{path.name}: missing {missing}"
        assert set(case) <= set(REQUIRED) | set(OPTIONAL), f"{path.name}: unknown keys {sorted(set(case) - set(REQUIRED) - set(OPTIONAL))}"
        assert isinstance(case["args"], list) and case["args"], f"{path.name}: args is a non-empty list"
        assert isinstance(case["expect"], list) and case["expect"], f"{path.name}: expect is a non-empty list"
        assert case["exit"] in (1, 2), f"{path.name}: bad input must exit 1 or 2"
        assert str(case["about"]).strip(), f"{path.name}: about is empty"
        assert case.get("db", "demo") in DB_KINDS and case.get("unchanged", "bytes") in UNCHANGED, path.name
        assert case.get("lock", "write") in LOCKS, path.name
