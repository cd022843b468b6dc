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
import re
import unicodedata
from dataclasses import replace
from importlib.resources import files
from pathlib import Path
from typing import Any

from .errors import Diagnostic, PolicyError, UsageError
from .file_kinds import UTF16, YAML, kind_of
from .yaml_source import Position, SourceDocument, load_yaml_file, load_yaml_text
from . import removed_names

MAX_EXTENDS_DEPTH = 16


def shipped_policies_dir():
    return files("crm_rules").joinpath("policies")


def shipped_policy_names() -> list[str]:
    return sorted(p.name[: -len(".yaml")] for p in shipped_policies_dir().iterdir()
                  if p.name.endswith(".yaml") and not p.name.endswith(".test.yaml"))


TEST_SUFFIX = ".test.yaml"


TEST_SUFFIXES = (TEST_SUFFIX, ".test")  # a test file's name, or its name without .yaml as policies are named


def is_test_file(ref: str) -> bool:
    return ref.endswith(TEST_SUFFIXES)


def policy_files_in(directory: Path) -> list[str]:
    """The names of the policy files (not test files) in ``directory``, sorted; none when it cannot be read: for
    the hint when `extends:` or a test file's `policy:` names a directory."""
    try:
        return sorted(p.name for p in directory.iterdir() if p.name.endswith(".yaml") and not is_test_file(p.name))
    except OSError:
        return []


def resolve_policy_path(ref: str, relative_to: Path | None = None) -> Path | None:
    """A path (relative to the referring file), a policy named next to it, or the name of a shipped policy.

    `extends: base` in a copied policy folder finds the copy's base.yaml first, so editing the
    copy changes what extends it.
    """
    if is_test_file(ref):
        raise UsageError(f"{ref!r} is a policy test file, not a policy", hint=f"run it with: crm-rules test {ref}")
    candidate = Path(ref)
    if relative_to is not None and not candidate.is_absolute():
        candidate = relative_to.parent / candidate
    if candidate.exists() and not candidate.is_dir():
        return candidate
    if candidate.suffix == "" and candidate.with_suffix(".yaml").is_file():
        return candidate.with_suffix(".yaml")
    if "/" not in ref and "\\" not in ref:
        name = ref[: -len(".yaml")] if ref.endswith(".yaml") else ref
        shipped = shipped_policies_dir().joinpath(f"{name}.yaml")
        if shipped.is_file():
            return Path(str(shipped))
    if candidate.is_dir():  # `extends: base` next to a folder named base is still the policy base; else an error
        return candidate
    return None


def shadowed_shipped(ref: str) -> tuple[Path, Path] | None:
    """(the file, the shipped policy) when a bare name given on the command line (``-p base``) is a file in the
    current folder while a shipped policy has that name too; else None.

    The file wins, as it should (a copied policy folder is edited in place), but silently it also won when the
    user meant the shipped policy and a stray base.yaml lay in the folder.  A path or a name with .yaml says
    which file is meant, and ``extends:`` is resolved next to its own file: neither is ambiguous.
    """
    if "/" in ref or "\\" in ref or ref.endswith(".yaml") or is_test_file(ref):
        return None
    shipped = shipped_policies_dir().joinpath(f"{ref}.yaml")
    found = resolve_policy_path(ref)
    if found is None or not shipped.is_file():
        return None
    shipped_path = Path(str(shipped))
    return None if found.resolve() == shipped_path.resolve() else (found, shipped_path)


def _merges(path: tuple) -> bool:
    """Whether the child's mapping at ``path`` merges into the base's instead of replacing it.

    ``metrics`` merge metric by metric, but a metric the child writes is the child's whole definition: merged
    option by option, a redefined ``count: interactions`` kept the base's ``where: kind = 'complaint'``
    unseen, and one with another kind had two.  ``data`` merges all the way down (a child maps one column).
    """
    return path in ((), ("metrics",)) or path[0] == "data"


def _merge(base: Any, child: Any, path: tuple, base_doc: SourceDocument, child_doc: SourceDocument,
           out: SourceDocument) -> Any:
    if isinstance(base, dict) and isinstance(child, dict) and _merges(path):
        removed_names.record(base, child, path, base_doc, child_doc, out)
        merged = {}
        for key in list(base) + [k for k in child if k not in base]:
            sub = path + (key,)
            if key in child and child[key] is None and path:
                if path[0] == "data":  # kept: the defaults are laid under `data` after the merge, and brought back
                    merged[key] = None  # the mapping the null removes (discount: discount) when no base named it
                    _copy_positions(child_doc, out, sub)
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
    out = SourceDocument(child.file, None, readings={**base.readings, **child.readings},  # by position: no clash
                         duplicates=base.duplicates + child.duplicates, removed={**base.removed, **child.removed})
    out.data = _merge(base.data, child.data, (), base, child, out)
    return out


def load_policy_document(path: Path, text: bytes | None = None) -> tuple[SourceDocument, list[str]]:
    """The merged document of ``path`` and its ``extends`` chain, and the files read.

    Duplicate keys are left in ``duplicates`` of the document, for ``build_policy`` to report with the rest.

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
            doc = load_yaml_text(text, _display(current), defer_duplicates=True)
        else:
            try:
                doc = load_yaml_file(current, display_name=_display(current), defer_duplicates=True)
            except UsageError as exc:  # e.g. a SQLite database: the mistake is the `extends` line that names it
                if referrer is None:
                    raise
                pos = referrer[0].value_position(referrer[1])
                raise PolicyError(Diagnostic(pos.file, pos.line, pos.col, "extends", exc.message),
                                  hint="extends names a policy: a YAML file, or a shipped policy's name") from None
        if not isinstance(doc.data, dict):
            raise PolicyError(Diagnostic(doc.file, 1, 1, "", "a policy must be a mapping of sections (name, metrics, tiers, ...)"))
        # each file's `data: sources.yaml` before the merge, so that a child's `data:` merges into its base's
        # sources file key by key instead of replacing it (the base's customers mapping was dropped unseen)
        _inline_sources_file(doc, current)
        removed_names.record_attributes(doc)
        chain.append(doc)
        if "extends" not in doc.data:
            break
        ref, pos = doc.data["extends"], doc.value_position(("extends",))
        if not isinstance(ref, str) or not ref.strip():
            # Checked here, not by the schema: `extends` is resolved (and removed) before the schema runs.
            raise PolicyError(Diagnostic(pos.file, pos.line, pos.col, "extends", "expected a policy name or file (a string)"),
                              hint=f"e.g. `extends: base` or `extends: ../common/base.yaml`; shipped policies: "
                                   f"{', '.join(shipped_policy_names())}")
        if is_test_file(ref):
            raise _extends_test_file(pos, ref, current)
        nxt = resolve_policy_path(ref, current)
        if nxt is None:
            raise PolicyError(Diagnostic(pos.file, pos.line, pos.col, "extends",
                                         f"cannot find policy {ref!r}{_policy_near(ref, current)}"),
                              hint=f"give a path relative to this file, or a shipped policy: {', '.join(shipped_policy_names())}")
        if nxt.is_dir():
            raise _extends_directory(pos, ref, nxt)
        referrer = (doc, ("extends",))
        current = nxt
    merged = chain[-1]
    for doc in reversed(chain[:-1]):
        merged = merge_documents(merged, doc)
    merged.data.pop("extends", None)
    if "name" not in chain[0].data:
        _name_from_file(merged, chain[0].file)
    return merged, [d.file for d in chain]


def _policy_near(ref: str, current: Path) -> str:
    """"; did you mean 'base'?" for a misspelt `extends:`: the shipped policies and the policy files beside
    ``current`` (the file that names it), each as it would be written."""
    from .expr_types import did_you_mean

    folder = (current.parent / ref).parent
    here = [p.name for p in folder.glob("*.yaml") if not is_test_file(p.name)] if folder.is_dir() else []
    prefix = ref[: len(ref) - len(Path(ref).name)]  # ../common/ of ../common/bsae.yaml
    written = [prefix + name for name in here]
    shipped = shipped_policy_names() if not prefix else []
    if ref.endswith(".yaml"):
        written += [f"{name}.yaml" for name in shipped]
    else:
        written += [prefix + name[: -len(".yaml")] for name in here] + shipped
    return did_you_mean(ref, sorted(set(written)))


def _extends_test_file(pos: Position, ref: str, referring: Path) -> PolicyError:
    """`extends: x.test.yaml`: a policy test file is run by `crm-rules test`, never extended."""
    policy_ref = ref[: -len(next(suffix for suffix in TEST_SUFFIXES if ref.endswith(suffix)))]
    advice = []
    policy = resolve_policy_path(policy_ref, referring) if policy_ref and not is_test_file(policy_ref) else None
    if policy is not None and policy.resolve() != referring.resolve():  # not the file that says it
        advice.append(f"did you mean `extends: {policy_ref}`?")
    test_file = Path(ref) if Path(ref).is_absolute() else referring.parent / ref
    if test_file.is_file():
        shown = ref if Path(ref).is_absolute() or pos.file.startswith(SHIPPED_PREFIX) else str(Path(pos.file).parent / ref)
        advice.append(f"run the tests with: crm-rules test {shown}")
    return PolicyError(Diagnostic(pos.file, pos.line, pos.col, "extends", f"{ref!r} is a policy test file, not a policy"),
                       hint=" ".join(advice) or "extends names a policy (a YAML file, or a shipped policy's name), not its tests")


def _extends_directory(pos: Position, ref: str, directory: Path) -> PolicyError:
    inside = policy_files_in(directory)
    shown = ref.rstrip("/\\")
    hint = (f"name a policy file in it, e.g. `extends: {shown}/{inside[0]}`" if inside
            else "extends names a policy file (.yaml) or a shipped policy, not a directory")
    return PolicyError(Diagnostic(pos.file, pos.line, pos.col, "extends", f"{ref!r} is a directory, not a policy file"),
                       hint=hint)


def _name_rule() -> tuple[re.Pattern, int, str]:
    """The schema's rule for a policy name (so a name made here passes it), and the rule in words."""
    from .schema_validation import load_schema

    spec = load_schema("policy.schema.json")["properties"]["name"]
    pattern, longest = re.compile(spec["pattern"]), spec.get("maxLength", 64)
    letters = "letters (any script)" if pattern.search("客户") else "letters A-Z and a-z"
    return pattern, longest, (f"{letters}, digits, _, . and -, starting with a letter, a digit or _, "
                              f"at most {longest} characters")


def _is_separator(ch: str) -> bool:
    """Spaces, punctuation and symbols other than _ . - (what a file name may hold and a policy name not)."""
    return ch not in "_.-" and unicodedata.category(ch)[0] in "ZPSC"


def _name_from_file(doc: SourceDocument, file: str) -> None:
    """The name of a policy that has no `name:`: its file name, with each run of spaces or punctuation
    made one _ (`my child.yaml` is policy my_child), so the policy's name passes the schema.

    A file name that cannot be made a name that way (letters the schema does not allow, or too long)
    is an error at the top of that file, which says what to add, not a schema error about the
    name the shipped base was given.
    """
    pattern, longest, rule = _name_rule()
    stem = unicodedata.normalize("NFC", Path(file).stem)  # macOS gives é as e + a combining accent
    tokens = "".join("\0" if _is_separator(ch) else ch for ch in stem).split("\0")
    name = "_".join(t for t in tokens if t).lstrip(".-")
    if not (pattern.search(name) and len(name) <= longest):
        plain = "".join(ch for ch in unicodedata.normalize("NFKD", name) if not unicodedata.combining(ch))  # café: cafe
        ascii_name = re.sub(r"_+", "_", re.sub(r"[^A-Za-z0-9_.-]", "_", plain)).strip("_.-")[:longest].rstrip("_.-")
        why = f"is longer than {longest} characters" if len(name) > longest and pattern.search(name) else "is not a valid name"
        raise PolicyError(Diagnostic(file, 1, 1, "name", f"this policy has no `name:`, and its file name {stem!r} {why} "
                                                          f"(a policy name holds {rule})"),
                          hint=f"add a line `name: {ascii_name or 'my_policy'}` to {file}")
    doc.data["name"] = name
    here = Position(file, 1, 1)  # not the name the base file gave itself
    doc.keys[("name",)] = doc.values[("name",)] = here
    doc.styles.pop(("name",), None)
    doc.block_indent.pop(("name",), None)


SHIPPED_PREFIX = "<shipped>/"


def _display(path: Path) -> str:
    """Shipped policies are shown by name, the user's files as given."""
    try:
        rel = path.resolve().relative_to(Path(str(shipped_policies_dir())).resolve())
        return f"{SHIPPED_PREFIX}{rel}"
    except ValueError:
        return str(path)


def _inline_sources_file(doc: SourceDocument, policy_path: Path) -> None:
    """Replace ``data: FILE`` of the document read from ``policy_path`` by that file's mapping."""
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
    kind = kind_of(target)
    if kind is not None and kind not in (YAML, UTF16):  # a CSV file or a database: the mistake is this `data:` line
        raise PolicyError(Diagnostic(pos.file, pos.line, pos.col, "data", f"{ref}: is {kind.what}, not a sources file"),
                          hint="`data:` names a sources file, YAML that maps customers, orders, ... to your tables "
                               "(or write that mapping in the policy itself)")
    sources = load_yaml_file(target, defer_duplicates=True)
    if not isinstance(sources.data, dict):
        raise PolicyError(Diagnostic(sources.file, 1, 1, "", "a sources file must be a mapping (customers, orders, ...)"))
    doc.data["data"] = sources.data
    doc.duplicates += [replace(d, path=f"data.{d.path}") for d in sources.duplicates]  # named as the policy's paths
    for table in ("values", "keys", "styles", "block_indent"):
        getattr(doc, table).update({("data",) + p: q for p, q in getattr(sources, table).items()})


def canonical_json(data: Any) -> str:
    return json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def content_hash(data: Any) -> str:
    """sha256 of the resolved policy: comments and formatting do not change it."""
    return hashlib.sha256(canonical_json(data).encode("utf-8")).hexdigest()
