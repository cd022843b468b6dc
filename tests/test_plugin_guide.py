"""The plugin guide's walkthrough (section 1 and the tests of section 8), run as a plugin author runs it.

The guide's `# file:` blocks are written out as the guide lays them out, the plugin is registered from that
source tree, and the commands the guide shows must work and print what the text says they print: a
reader copies these blocks verbatim, so a block that drifted from the engine is a broken plugin for them.
"""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import crm_rules
from crm_rules.engine.demo_data import DEMO_AS_OF, generate_demo_database
from crm_rules.engine.plugin_manager import get_plugin_manager, get_registry

GUIDE = Path(__file__).parent.parent / "docs" / "plugin-guide.md"
FILE_BLOCK = re.compile(r"```\w+\n(# file: (\S+)\n.*?)```", re.S)


@pytest.fixture
def guide_dir(tmp_path, monkeypatch):
    """tmp_path as the guide's working directory after `crm-rules demo`, with every `# file:` block written out
    and the churn_risk plugin registered from the source tree (as the guide's own test fixture does)."""
    for body, target in ((m.group(1), m.group(2)) for m in FILE_BLOCK.finditer(GUIDE.read_text(encoding="utf-8"))):
        (tmp_path / target).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / target).write_text(body, encoding="utf-8")
    generate_demo_database(tmp_path / "crm-demo" / "crm.db", customers=2000, seed=7)  # `crm-rules demo`'s data
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path / "crm-rules-churn-risk"))
    plugin = importlib.import_module("crm_rules_churn.plugin")
    pm, _ = get_plugin_manager()
    pm.register(plugin, name="churn_risk")
    get_registry.cache_clear()
    yield tmp_path
    pm.unregister(name="churn_risk")
    get_registry.cache_clear()
    for name in [m for m in sys.modules if m == "crm_rules_churn" or m.startswith("crm_rules_churn.")]:
        del sys.modules[name]


def test_the_guide_writes_the_whole_package():
    targets = {m.group(2) for m in FILE_BLOCK.finditer(GUIDE.read_text(encoding="utf-8"))}
    assert {"crm-rules-churn-risk/pyproject.toml", "crm-rules-churn-risk/crm_rules_churn/__init__.py",
            "crm-rules-churn-risk/crm_rules_churn/plugin.py", "crm-rules-churn-risk/tests/test_churn_risk.py",
            "crm-demo/policies/churn_watch.yaml", "crm-demo/policies/churn_watch.test.yaml"} <= targets


def test_the_entry_point_names_the_module_with_the_hooks(guide_dir):
    project = tomllib.loads((guide_dir / "crm-rules-churn-risk" / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["entry-points"]["crm_rules"] == {"churn_risk": "crm_rules_churn.plugin"}
    assert project["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"] == ["crm_rules_churn"]


def test_section_1_commands_print_what_the_guide_says(guide_dir, cli):
    policy = "crm-demo/policies/churn_watch.yaml"
    assert cli("validate", policy, ok=True).output.startswith(f"ok: {policy}")
    assert "3 passed" in cli("test", policy, ok=True).output
    dry = cli("apply", "--db", "crm-demo/crm.db", "--policy", policy, "--as-of", DEMO_AS_OF, "--dry-run", ok=True).output
    counts = {m.group(1): m.group(2) for m in re.finditer(r"│\s*(low|medium|high)\s*│\s*([\d,]+)\s*│", dry)}
    assert counts == {"low": "1,207", "medium": "400", "high": "393"}, dry  # the numbers the guide quotes
    assert list(counts) == ["high", "medium", "low"]  # in the order of the band's values, as the guide says
    shown = cli("explain", "C000002", "--db", "crm-demo/crm.db", "--policy", policy, "--as-of", DEMO_AS_OF,
                ok=True).output
    assert "churn_band" in shown and "scores.churn, plugin" in shown


def test_section_8_tests_pass_as_the_guide_runs_them(guide_dir):
    """Copied as section 8 says and run with `python -m pytest` from the package: no install needed."""
    package = guide_dir / "crm-rules-churn-risk"
    (package / "tests" / "policies").mkdir(parents=True, exist_ok=True)
    for name in ("churn_watch.yaml", "churn_watch.test.yaml"):
        (package / "tests" / "policies" / name).write_bytes((guide_dir / "crm-demo" / "policies" / name).read_bytes())
    engine_path = str(Path(list(crm_rules.__path__)[0]).resolve().parent)  # where `import crm_rules` finds it
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [engine_path, os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], cwd=package,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 passed" in done.stdout


def test_section_9_shows_the_message_of_a_misspelt_metric_as_printed(guide_dir, cli):
    shown = next(line for line in GUIDE.read_text(encoding="utf-8").splitlines()
                 if line.startswith("crm-demo/policies/churn_watch.yaml:") and "recency_day'" in line)
    policy = guide_dir / "crm-demo" / "policies" / "churn_watch.yaml"
    policy.write_text(policy.read_text(encoding="utf-8").replace("{recency: recency_days,", "{recency: recency_day,"),
                      encoding="utf-8")
    result = cli("validate", "crm-demo/policies/churn_watch.yaml")
    assert result.exit_code == 1
    assert " ".join(result.output.split()) == " ".join(f"{shown}\nerror: 1 problem in the policy".split())
