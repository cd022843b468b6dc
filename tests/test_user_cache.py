"""The user cache: results a fresh process would rebuild, kept by content, never a reason to fail."""

from __future__ import annotations

import os

import jsonschema
import pytest

from crm_rules.engine import expr_parser, user_cache
from crm_rules.engine.errors import PluginError
from crm_rules.engine.plugin_manager import Registry

SCHEMA = {"type": "object", "properties": {"weight": {"type": "number", "minimum": 0}}, "additionalProperties": False}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv(user_cache.ENV, str(folder))
    return folder


def _counting_checks(monkeypatch) -> list:
    """The schemas checked against the meta-schema from now on."""
    calls = []
    real = jsonschema.Draft202012Validator.iter_errors

    def check(self, instance, *args, **kwargs):
        if self.schema is jsonschema.Draft202012Validator.META_SCHEMA:
            calls.append(instance)
        return real(self, instance, *args, **kwargs)

    monkeypatch.setattr(jsonschema.Draft202012Validator, "iter_errors", check)
    return calls


def test_a_valid_schema_is_checked_once_per_content(cache, monkeypatch):
    calls = _counting_checks(monkeypatch)
    for plugin in ("p1", "p2"):  # two fresh registries: as two processes would build them
        Registry().add("scorer", plugin, "s", lambda c, p: None, dict(SCHEMA))
    assert len(calls) == 1
    Registry().add("scorer", "p3", "s", lambda c, p: None, {**SCHEMA, "required": ["weight"]})  # other content
    assert len(calls) == 2


def test_an_invalid_schema_is_rejected_every_time(cache, monkeypatch):
    calls = _counting_checks(monkeypatch)
    for _ in range(2):
        with pytest.raises(PluginError, match="is not a valid JSON Schema: 'nonsense' is not a JSON Schema type"):
            Registry().add("scorer", "bad", "s", lambda c, p: None, {"type": "nonsense"})
    assert len(calls) == 2
    assert not [f for f in cache.iterdir() if f.name.startswith("valid-schema-")]


def test_turned_off_it_writes_nothing_and_everything_works(tmp_path, monkeypatch):
    monkeypatch.setenv(user_cache.ENV, "")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    Registry().add("scorer", "p", "s", lambda c, p: None, dict(SCHEMA))
    assert user_cache.cache_dir() is None and list(tmp_path.iterdir()) == []


def test_the_default_folder_follows_xdg(tmp_path, monkeypatch):
    monkeypatch.delenv(user_cache.ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert user_cache.cache_dir() == tmp_path / "xdg" / "crm-rules"
    if hasattr(os, "getuid"):
        assert (tmp_path / "xdg" / "crm-rules").stat().st_mode & 0o777 == 0o700


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX ownership")
def test_someone_elses_folder_is_not_used(cache, monkeypatch):
    cache.mkdir()
    monkeypatch.setattr(os, "getuid", lambda: os.stat(cache).st_uid + 1)
    assert user_cache.cache_dir() is None
    user_cache.write("x", b"data")
    assert not (cache / "x").exists()


@pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() == 0, reason="root writes anywhere")
def test_a_read_only_folder_is_worked_without(cache):
    cache.mkdir(mode=0o500)
    try:
        assert user_cache.cache_dir() is None
        Registry().add("scorer", "p", "s", lambda c, p: None, dict(SCHEMA))
    finally:
        cache.chmod(0o700)


def test_the_grammar_tables_are_kept_and_a_damaged_file_is_rebuilt(cache, capsys):
    expr_parser._parser.cache_clear()
    try:
        first = expr_parser.parse_expression("revenue_12m >= 500_000 and region in ['华东']")
        [kept] = [f for f in cache.iterdir() if f.name.startswith("expression-grammar-")]
        expr_parser._parser.cache_clear()
        assert expr_parser.parse_expression("revenue_12m >= 500_000 and region in ['华东']") == first  # from the file
        kept.write_bytes(kept.read_bytes()[:100])  # half a file, as a crash while writing could leave
        expr_parser._parser.cache_clear()
        assert expr_parser.parse_expression("revenue_12m >= 500_000 and region in ['华东']") == first
        assert len(kept.read_bytes()) > 100  # rewritten whole
        assert capsys.readouterr().err == ""
    finally:
        expr_parser._parser.cache_clear()


def test_writes_are_whole_or_nothing(cache):
    user_cache.write("k", b"x" * 10_000)
    assert user_cache.read("k") == b"x" * 10_000
    assert [f.name for f in cache.iterdir()] == ["k"]  # no temporary file left behind


def test_no_home_directory_means_no_cache(monkeypatch):
    monkeypatch.delenv(user_cache.ENV, raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)

    def no_home():
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.setattr(user_cache.Path, "home", staticmethod(no_home))
    assert user_cache.cache_dir() is None
    assert user_cache.read("anything") is None
