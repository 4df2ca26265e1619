"""Sphinx configuration of chexradi's documentation site (``make docs``).

Sphinx, not MkDocs: chexradi's docstrings are numpy-style reStructuredText with roles (``:func:``,
``:math:``, ``:class:``) that autodoc + napoleon render as written, and that nitpicky mode checks
(every ``:func:`` must name a documented object); sphinx-click renders the command line from the
click objects themselves. The guides stay Markdown (MyST), readable on GitHub as they are.

The API reference (``api/``) is generated at build time from the package: every module whose
dotted path has no private part, with the names of its ``__all__``; a name re-exported by a
package is documented once, at the shortest public path (``chexradi.nn.create_model``).
"""
from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS.parent))
sys.path.insert(0, str(DOCS))

import click  # noqa: E402

from blocks import lookup  # noqa: E402  (docs/blocks.py)

import chexradi  # noqa: E402

project = "chexradi"
author = "the chexradi developers"
copyright = "2026, the chexradi developers"
release = version = chexradi.__version__

extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.mathjax", "sphinx_click"]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "site"
exclude_patterns = ["_build", "api/_*"]
myst_heading_anchors = 3
myst_enable_extensions = ["dollarmath"]
suppress_warnings = ["myst.header"]       # the guides start at ## after a # title of their own

# A reference that does not resolve is an error (-n -W in make docs); third-party names are not ours to document.
nitpicky = True
_THIRD_PARTY = r"(np|numpy|torch|nn|sitk|SimpleITK|pd|pandas|click|yaml|PIL|numba|dask|distributed|matplotlib|plt|" \
               r"transformers|sklearn|skimage|pywt|radiomics|typing|collections|pathlib|os|io|concurrent|" \
               r"multiprocessing|subprocess|logging|dataclasses|enum|re|csv|json|datetime|types|abc|builtins|" \
               r"contextlib|functools|itertools|threading|queue|tqdm|Tensor|Module|DataLoader|Dataset)"
nitpick_ignore_regex = [(r"py:.*", _THIRD_PARTY + r"(\..*)?"),
                        (r"py:.*", r"(Path|Any|Optional|Union|Callable|Iterable|Iterator|Sequence|Mapping|"
                                   r"MutableMapping|Literal|Generator|ndarray|float|int|str|bool|dict|list|tuple|"
                                   r"set|bytes|object|None|type|array_like|array|optional|callable|sequence|"
                                   r"mapping|iterable|default|shape|path|float64|int64|int32|uint8|bool_|"
                                   r"function|generator|file|str or Path|path-like)")]

autodoc_member_order = "bysource"
autodoc_typehints = "none"          # signatures as written; the docstrings say the types in words
autodoc_default_options = {"show-inheritance": False}
napoleon_numpy_docstring = True
napoleon_google_docstring = False
napoleon_use_rtype = False
napoleon_use_param = False          # types of parameters, attributes and returns are prose ("int32 array (z, y, x)"),
napoleon_use_keyword = False        # not cross-references
napoleon_use_ivar = False

html_theme = "alabaster"
html_title = f"chexradi {release}"
html_static_path: list[str] = []


# ------------------------------------------------------------------------------------------------ API pages


def public_modules() -> list[str]:
    """Every importable module of chexradi whose dotted path has no part starting with ``_``."""
    names = ["chexradi"]
    for m in pkgutil.walk_packages(chexradi.__path__, "chexradi."):
        if not any(part.startswith("_") for part in m.name.split(".")):
            names.append(m.name)
    return names


def _assigned(mod) -> set[str]:
    """Names a module assigns at its top level (its constants; what it imports is not among them)."""
    try:
        tree = ast.parse(inspect.getsource(mod))
    except (OSError, TypeError):
        return set()
    names = set()
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
            node, ast.AnnAssign) else []
        names |= {t.id for t in targets if isinstance(t, ast.Name)}
    return names


def _page(title: str, body: list[str]) -> str:
    return "\n".join([title, "=" * len(title), "", *body, ""])


def api_members() -> dict[str, list[str]]:
    """Each public module -> the names of its ``__all__`` documented there (see the module docstring)."""
    modules = sorted(public_modules(), key=lambda n: (n.count("."), n))
    seen: dict[int, str] = {}
    documents: dict[str, list[str]] = {}
    for name in modules:                     # shallow first: a re-export is documented at its shortest path
        mod = importlib.import_module(name)
        assigned = _assigned(mod)
        members = []
        for member in getattr(mod, "__all__", ()):
            if member.startswith("__"):
                continue
            obj = getattr(mod, member)
            if inspect.ismodule(obj) or isinstance(obj, click.Command):   # commands: the CLI reference
                continue
            key = id(obj)
            if callable(obj) or inspect.isclass(obj):
                if key in seen:
                    continue
                seen[key] = f"{name}.{member}"
                _CANONICAL.setdefault(key, f"{name}.{member}")
            elif member not in assigned:     # a constant is documented where it is assigned (autodoc reads it there)
                continue
            elif isinstance(obj, (tuple, dict, frozenset, list)):   # not ints or strings: their ids are shared
                _CANONICAL.setdefault(key, f"{name}.{member}")
            members.append(member)
        documents[name] = members
    return documents


def write_api(app=None) -> dict[str, list[str]]:
    """Write ``api/<package>.rst`` (one page per top-level package) and ``api/index.rst``; return what each
    module documents."""
    out = DOCS / "api"
    out.mkdir(exist_ok=True)
    documents = api_members()
    groups: dict[str, list[str]] = {}
    for name in sorted(documents):
        top = ".".join(name.split(".")[:2])
        groups.setdefault(top, []).append(name)
    pages = []
    for top, names in sorted(groups.items()):
        body = []
        for name in names:
            heading = f"``{name}``"
            body += [heading, "-" * len(heading), "", f".. automodule:: {name}"]
            parent, _, last = name.rpartition(".")
            if parent and not inspect.ismodule(getattr(importlib.import_module(parent), last, None)):
                body.append("   :no-index:")  # its package exports a function of the same name (chexradi.train.fit)
            body.append("")
            mod = importlib.import_module(name)
            for member in documents[name]:    # one directive each: documented whether or not it has a docstring
                obj = getattr(mod, member)
                if inspect.isclass(obj):
                    kind = "autoexception" if issubclass(obj, BaseException) else "autoclass"
                    body += [f".. {kind}:: {name}.{member}", "   :members:", ""]
                elif inspect.isroutine(obj) or callable(obj):
                    body += [f".. autofunction:: {name}.{member}", ""]
                else:
                    body += [f".. autodata:: {name}.{member}", ""]
        page = top.replace(".", "-")
        text = _page(f"``{top}``", body)
        target = out / f"{page}.rst"
        if not target.exists() or target.read_text() != text:
            target.write_text(text)
        pages.append(page)
    index = _page("API reference", ["Every public module and the names of its ``__all__``.", "",
                                    ".. toctree::", "   :maxdepth: 1", "", *[f"   {p}" for p in pages]])
    if not (out / "index.rst").exists() or (out / "index.rst").read_text() != index:
        (out / "index.rst").write_text(index)
    return documents


#: id(object) -> the path it is documented at (filled by write_api).
_CANONICAL: dict[int, str] = {}


def _lookup(path: str):
    """The object at dotted ``path``, or None."""
    try:
        return lookup(path)
    except LookupError:
        return None


def resolve_elsewhere(app, env, node, contnode):
    """A reference to a public object by another of its paths (``chexradi.cam.masks.heatmap_to_mask``, or a
    short name inside its module) resolves to where it is documented (``chexradi.cam.heatmap_to_mask``)."""
    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"]
    module, cls = node.get("py:module"), node.get("py:class")
    candidates = [target]
    source = re.search(r"docstring of ([\w.]+)", str(node.source or ""))
    if source:                               # the documented object's own module (it may be shown re-exported)
        owner = _lookup(source.group(1))
        home = getattr(owner, "__module__", None) or (owner.__name__ if inspect.ismodule(owner) else None)
        if home:
            candidates.append(f"{home}.{target}")
    if module:
        candidates += [f"{module}.{cls}.{target}" if cls else None, f"{module}.{target}"]
        parts = module.split(".")
        candidates += [".".join(parts[:k] + [target]) for k in range(len(parts) - 1, 0, -1)]
    for path in filter(None, candidates):
        head, _, attr = path.rpartition(".")
        obj = _lookup(path)
        canonical = _CANONICAL.get(id(obj)) if obj is not None else None
        if canonical is None and head:        # a method or attribute of a class documented elsewhere
            owner = _lookup(head)
            base = _CANONICAL.get(id(owner)) if owner is not None else None
            canonical = f"{base}.{attr}" if base else None
        if canonical and canonical != target:
            domain = env.get_domain("py")
            ref = domain.resolve_any_xref(env, node["refdoc"], app.builder, canonical, node, contnode)
            if ref:
                return ref[0][1]
    return None


def drop_type_docstrings(app, what, name, obj, options, lines):
    """A constant without documentation of its own gets no text, not its type's (``dict``'s, ``tuple``'s)."""
    if what in ("data", "attribute") and lines:
        own = inspect.getdoc(type(obj)) or ""
        if "\n".join(lines).strip() == own.strip():
            lines[:] = []


def setup(app):
    app.connect("builder-inited", write_api)
    app.connect("autodoc-process-docstring", drop_type_docstrings, priority=100)
    app.connect("missing-reference", resolve_elsewhere)
    return {"parallel_read_safe": True}
