"""Find policy files and combine ``extends`` chains into one document.

Industry presets override a base policy.  Merging follows rules users can
remember: ``metrics`` and ``data`` merge key by key (a child adds or
overrides single metrics, and ``name: null`` removes one); every other
section the child writes replaces the base's whole section, because a tier
scheme or a list of stages only makes sense as a whole.  Positions are merged
the same way so errors still name the right file.
"""

from __future__ import annotations

import hashlib
import json
from importlib.resources import files
from pathlib import Path
from typing import Any

from .errors import Diagnostic, PolicyError
from .yaml_source import SourceDocument, load_yaml_file, load_yaml_text

MAX_EXTENDS_DEPTH = 16
MERGED_SECTIONS = ("metrics", "data")


def shipped_policies_dir():
    return files("crm_rules").joinpath("policies")


def shipped_policy_names() -> list[str]:
    return sorted(p.name[: -len(".yaml")] for p in shipped_policies_dir().iterdir()
                  if p.name.endswith(".yaml") and not p.name.endswith(".test.yaml"))


TEST_SUFFIX = ".test.yaml"


def resolve_policy_path(ref: str, relative_to: Path | None = None) -> Path | None:
    """A path (relative to the referring file), a policy named next to it, or the name of a shipped policy.

    `extends: base` in a copied policy folder finds the copy's base.yaml first, so editing the
    copy changes what extends it.
    """
    if ref.endswith(TEST_SUFFIX) or ref.endswith(".test"):
        from .errors import UsageError

        raise UsageError(f"{ref!r} is a policy test file, not a policy", hint=f"run it with: crm-rules test {ref}")
    candidate = Path(ref)
    if relative_to is not None and not candidate.is_absolute():
        candidate = relative_to.parent / candidate
    if candidate.exists():  # a directory is reported as such when it is read
        return candidate
    if candidate.suffix == "" and candidate.with_suffix(".yaml").is_file():
        return candidate.with_suffix(".yaml")
    if "/" not in ref and "\\" not in ref:
        name = ref[: -len(".yaml")] if ref.endswith(".yaml") else ref
        shipped = shipped_policies_dir().joinpath(f"{name}.yaml")
        if shipped.is_file():
            return Path(str(shipped))
    return None


def _merges(path: tuple) -> bool:
    return path == () or path[0] in MERGED_SECTIONS


def _merge(base: Any, child: Any, path: tuple, base_doc: SourceDocument, child_doc: SourceDocument,
           out: SourceDocument) -> Any:
    if isinstance(base, dict) and isinstance(child, dict) and _merges(path):
        merged = {}
        for key in list(base) + [k for k in child if k not in base]:
            sub = path + (key,)
            if key in child and child[key] is None and path:
                continue  # `key: null` removes an inherited entry
            if key in child and key in base:
                merged[key] = _merge(base[key], child[key], sub, base_doc, child_doc, out)
            elif key in child:
                merged[key] = child[key]
                _copy_positions(child_doc, out, sub)
            else:
                merged[key] = base[key]
                _copy_positions(base_doc, out, sub)
        for table in ("values", "keys", "styles", "block_indent"):
            source = child_doc if path in getattr(child_doc, table) else base_doc
            if path in getattr(source, table):
                getattr(out, table)[path] = getattr(source, table)[path]
        return merged
    _copy_positions(child_doc, out, path)
    return child


def _copy_positions(src: SourceDocument, out: SourceDocument, prefix: tuple) -> None:
    n = len(prefix)
    for table in ("values", "keys", "styles", "block_indent"):
        target = getattr(out, table)
        for p, pos in getattr(src, table).items():
            if p[:n] == prefix:
                target[p] = pos


def merge_documents(base: SourceDocument, child: SourceDocument) -> SourceDocument:
    out = SourceDocument(child.file, None)
    out.data = _merge(base.data, child.data, (), base, child, out)
    return out


def load_policy_document(path: Path, text: bytes | None = None) -> tuple[SourceDocument, list[str]]:
    """The merged document of ``path`` and its ``extends`` chain, and the files read.

    ``text``: what ``path`` would hold (an edit checked before it is written); ``extends`` and
    relative paths resolve from ``path`` all the same.
    """
    chain: list[SourceDocument] = []
    seen: list[Path] = []
    current: Path | None = path
    referrer: tuple[SourceDocument, tuple] | None = None
    while current is not None:
        resolved = current.resolve()
        if resolved in seen:
            cycle = " -> ".join(str(p) for p in seen + [resolved])
            pos = referrer[0].position(referrer[1])
            raise PolicyError(Diagnostic(pos.file, pos.line, pos.col, "extends", f"circular extends: {cycle}"),
                              hint="remove one of the extends")
        if len(seen) >= MAX_EXTENDS_DEPTH:
            raise PolicyError(Diagnostic(str(current), 0, 0, "extends", f"more than {MAX_EXTENDS_DEPTH} levels of extends"))
        seen.append(resolved)
        if text is not None and current is path:
            doc = load_yaml_text(text, _display(current))
        else:
            doc = load_yaml_file(current, display_name=_display(current))
        if not isinstance(doc.data, dict):
            raise PolicyError(Diagnostic(doc.file, 1, 1, "", "a policy must be a mapping of sections (name, metrics, tiers, ...)"))
        chain.append(doc)
        if "extends" not in doc.data:
            break
        ref = doc.data["extends"]
        if not isinstance(ref, str) or not ref.strip():
            # Checked here, not by the schema: `extends` is resolved (and removed) before the schema runs.
            pos = doc.value_position(("extends",))
            raise PolicyError(Diagnostic(pos.file, pos.line, pos.col, "extends", "expected a policy name or file (a string)"),
                              hint=f"e.g. `extends: base` or `extends: ../common/base.yaml`; shipped policies: "
                                   f"{', '.join(shipped_policy_names())}")
        nxt = resolve_policy_path(ref, current)
        if nxt is None:
            pos = doc.value_position(("extends",))
            raise PolicyError(Diagnostic(pos.file, pos.line, pos.col, "extends", f"cannot find policy {ref!r}"),
                              hint=f"give a path relative to this file, or a shipped policy: {', '.join(shipped_policy_names())}")
        referrer = (doc, ("extends",))
        current = nxt
    merged = chain[-1]
    for doc in reversed(chain[:-1]):
        merged = merge_documents(merged, doc)
    merged.data.pop("extends", None)
    if "name" not in chain[0].data:
        merged.data["name"] = Path(chain[0].file).stem
    _inline_sources_file(merged, path)
    return merged, [d.file for d in chain]


SHIPPED_PREFIX = "<shipped>/"


def _display(path: Path) -> str:
    """Shipped policies are shown by name, the user's files as given."""
    try:
        rel = path.resolve().relative_to(Path(str(shipped_policies_dir())).resolve())
        return f"{SHIPPED_PREFIX}{rel}"
    except ValueError:
        return str(path)


def source_lines(file: str) -> list[str]:
    """The lines of a policy file named as diagnostics name it (a shipped one as ``<shipped>/...``); [] if unreadable.

    For messages that quote what the file says where YAML read something else (`id: NO` is false).
    """
    path = shipped_policies_dir().joinpath(file[len(SHIPPED_PREFIX):]) if file.startswith(SHIPPED_PREFIX) else Path(file)
    try:
        return path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError):
        return []


def _inline_sources_file(doc: SourceDocument, policy_path: Path) -> None:
    ref = doc.data.get("data")
    if not isinstance(ref, str):
        return
    pos = doc.value_position(("data",))
    target = Path(ref)
    base_file = Path(pos.file) if not pos.file.startswith(SHIPPED_PREFIX) else policy_path
    if not target.is_absolute():
        target = base_file.parent / target
    if not target.is_file():
        raise PolicyError(Diagnostic(pos.file, pos.line, pos.col, "data", f"cannot find sources file {ref!r} (looked for {target})"),
                          hint="give the path relative to the policy file")
    sources = load_yaml_file(target)
    if not isinstance(sources.data, dict):
        raise PolicyError(Diagnostic(sources.file, 1, 1, "", "a sources file must be a mapping (customers, orders, ...)"))
    doc.data["data"] = sources.data
    for table in ("values", "keys", "styles", "block_indent"):
        getattr(doc, table).update({("data",) + p: q for p, q in getattr(sources, table).items()})


def canonical_json(data: Any) -> str:
    return json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def content_hash(data: Any) -> str:
    """sha256 of the resolved policy: comments and formatting do not change it."""
    return hashlib.sha256(canonical_json(data).encode("utf-8")).hexdigest()
