"""The wheel and the editable install built from this checkout, as pip builds them.

The repository's root is the ``crm_rules`` package (``package-dir`` in pyproject.toml), so what matters is
that neither install puts ``engine``, ``plugins`` or ``cli`` into site-packages, and that the editable one
serves the checkout's files, package data included.  Each build runs on a copy of the checkout, so the
tests write nothing into the source tree.
"""

from __future__ import annotations

import json
import shutil
import site as python_site
import subprocess
import sys
import zipfile
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ("__init__.py", "cli.py", "pyproject.toml", "README.md", "engine", "plugins", "policies", "schemas")

pytest.importorskip("setuptools", reason="building the wheel needs setuptools (test extras)")


def _build(tmp_path: Path, hook: str) -> tuple[Path, zipfile.ZipFile]:
    """Copy the checkout's shipped files into ``tmp_path`` and run the PEP 517/660 ``hook`` there."""
    source = tmp_path / "checkout"
    for name in SHIPPED:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            source.mkdir(exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    out = tmp_path / "dist"
    out.mkdir()
    done = subprocess.run([sys.executable, "-c", f"from setuptools import build_meta; print(build_meta.{hook}({str(out)!r}))"],
                          cwd=source, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return source, zipfile.ZipFile(out / done.stdout.strip().splitlines()[-1])


def test_installed_package_uses_one_namespace():
    """What pip installed here (CI's ``pip install '.[test]'``, or ``pip install -e``) has no generic names."""
    try:
        dist = distribution("crm-rules")
    except PackageNotFoundError:
        pytest.skip("crm-rules is not installed (running from a source checkout)")
    if Path(dist.locate_file("")).resolve() == ROOT:
        pytest.skip("found this checkout's own crm_rules.egg-info (left by a build in the checkout), not an install")
    tops = {str(f).split("/")[0] for f in dist.files if not str(f).startswith("..")}
    tops = {t for t in tops if not t.endswith(".dist-info")}
    names = {str(f) for f in dist.files}
    if "crm_rules/cli.py" in names:  # the wheel
        assert tops == {"crm_rules"}, tops
        assert "crm_rules/policies/base.yaml" in names and "crm_rules/schemas/policy.schema.json" in names
    else:  # an editable install: a .pth file and the finder it imports
        assert tops and all(t.startswith("__editable__") for t in tops), tops


def test_wheel_ships_one_package(tmp_path):
    _, wheel = _build(tmp_path, "build_wheel")
    names = wheel.namelist()
    assert {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")} == {"crm_rules"}
    assert {"crm_rules/__init__.py", "crm_rules/cli.py", "crm_rules/engine/runner.py", "crm_rules/plugins/credit_check.py",
            "crm_rules/policies/base.yaml", "crm_rules/schemas/policy.schema.json"} <= set(names)
    assert not [n for n in names if "/tests/" in n or "/bench/" in n or "__pycache__" in n]


def test_editable_install_serves_the_checkout(tmp_path):
    source, wheel = _build(tmp_path, "build_editable")
    site = tmp_path / "site"
    wheel.extractall(site)
    assert not [n for n in wheel.namelist() if n.split("/")[0] in ("engine", "plugins", "cli.py")]
    # -I -S: neither PYTHONPATH nor site-packages, where an installed crm_rules would come first; the
    # dependencies' site-packages are added only once crm_rules has been found through the editable install
    probe = """
import importlib.util, json, site, sys
site.addsitedir(sys.argv[1])  # processes the wheel's .pth file, as the interpreter does for site-packages
import crm_rules
for path in sys.argv[2:]:
    site.addsitedir(path)
import crm_rules.engine.runner
from importlib.resources import files
print(json.dumps({"runner": crm_rules.engine.runner.__file__,
                  "base": files("crm_rules").joinpath("policies").joinpath("base.yaml").is_file(),
                  "generic": [n for n in ("engine", "plugins", "cli") if importlib.util.find_spec(n)]}))
"""
    done = subprocess.run([sys.executable, "-I", "-S", "-c", probe, str(site), *sysconfig_site_packages()],
                          cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert Path(found["runner"]) == source / "engine" / "runner.py"  # the checkout's file, not a copy
    assert found["base"] and found["generic"] == []


def sysconfig_site_packages() -> list[str]:
    """This interpreter's site-packages folders, where the dependencies are."""
    return python_site.getsitepackages()
