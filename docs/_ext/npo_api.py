"""Sphinx extension of the npo docs: the API pages, generated from the packages as they are.

autosummary writes one page per module (``docs/api/generated/``, git-ignored) from the
template ``docs/_templates/autosummary/module.rst``. This extension

- deletes the page of a module that no longer exists (:func:`prune_api_stubs`; autosummary
  rewrites pages but never removes one, so after a move the old page would fail to import);
- finds the public constants of every module (:func:`package_constants`: names in ``__all__``
  bound by assignment), which the template documents with ``autodata`` whether or not they
  carry a doc comment, so ``:data:`` references to them resolve;
- drops the docstring a constant inherits from its type (:func:`drop_inherited_docs`);
- shows a dataclass field's ``default_factory`` as ``...`` in signatures
  (:func:`factory_defaults`; ``<factory>`` does not parse as Python);
- resolves a reference to a name a module re-exports at the object's own definition, and
  shows type variables as plain text (:func:`resolve_reexports`).
"""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path
from typing import Any, TypeVar

DOCS = Path(__file__).resolve().parents[1]
ROOT = DOCS.parent
API_STUBS = DOCS / "api" / "generated"


def prune_api_stubs(app: Any = None) -> list[Path]:
    """Delete the generated API page of every module that no longer exists in the checkout.

    Args:
        app: the Sphinx application (unused; the hook's signature).

    Returns:
        The pages deleted.
    """
    gone = []
    for stub in sorted(API_STUBS.glob("*.rst")):
        path = ROOT.joinpath(*stub.stem.split("."))
        if not (path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()):
            stub.unlink()
            gone.append(stub)
    return gone


def _public_names(tree: ast.Module) -> set[str]:
    """The string literals of a module's ``__all__`` list or tuple (empty if not a literal)."""
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            getattr(t, "id", None) == "__all__" for t in node.targets
        ):
            if isinstance(node.value, (ast.List, ast.Tuple)):
                return {e.value for e in node.value.elts if isinstance(e, ast.Constant)}
    return set()


def module_constants(path: Path) -> list[tuple[str, bool]]:
    """The public constants a module defines: names in its ``__all__`` bound by assignment.

    Read from the source; nothing is imported.

    Args:
        path: the module's source file.

    Returns:
        ``(name, show_value)`` pairs in source order; ``show_value`` is true when the value's
        source is one short line.
    """
    text = path.read_text(encoding="utf-8")
    tree = ast.parse(text)
    public = _public_names(tree)
    found: dict[str, bool] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        for target in targets:
            name = getattr(target, "id", None)
            if name in public and name not in found:
                source = ast.get_source_segment(text, value) or ""
                found[name] = len(source) <= 60 and "\n" not in source
    return list(found.items())


def package_constants(*packages: str) -> dict[str, list[tuple[str, bool]]]:
    """:func:`module_constants` of every module of ``packages``, keyed by dotted name.

    Args:
        *packages: top-level package names (directories under the repository root).

    Returns:
        ``{module: [(name, show_value), ...]}`` for the modules that define any.
    """
    out = {}
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            constants = module_constants(path)
            if constants:
                out[name] = constants
    return out


def drop_inherited_docs(
    app: Any, what: str, name: str, obj: Any, options: Any, lines: list[str]
) -> None:
    """Drop the docstring a constant inherits from its type (``dict``, a sympy ``Symbol``)."""
    doc = getattr(type(obj), "__doc__", None)
    if what in ("data", "attribute") and isinstance(doc, str) and lines:
        if "\n".join(lines).strip() == inspect.cleandoc(doc).strip():
            lines.clear()


def factory_defaults(
    app: Any, what: str, name: str, obj: Any, options: Any, signature: Any, annotation: Any
) -> tuple[Any, Any]:
    """Show a dataclass field's ``default_factory`` as ``...`` in a signature."""
    if signature:
        signature = signature.replace("<factory>", "...")
    return signature, annotation


def _find(dotted: str) -> Any:
    """The object a dotted name denotes (its longest importable module, then attributes)."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except Exception:  # not a module, or one that fails to import: try a shorter prefix
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None
        return obj
    return None


def resolve_reexports(app: Any, env: Any, node: Any, contnode: Any) -> Any:
    """Resolve a Python reference to a re-exported name at the object's own definition.

    ``:func:`theory.dynamics.fit_divergence``` or, inside :mod:`synthetic.experiments`,
    ``:class:`ExperimentResult``` name objects that a module imports from where they are
    defined and documented. A type variable (``T`` in a signature) has no page: its name is
    shown as plain text.

    Args:
        app: the Sphinx application.
        env: the build environment.
        node: the unresolved ``pending_xref`` node.
        contnode: its content.

    Returns:
        The resolved reference node, ``contnode`` for a type variable, or None.
    """
    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"].lstrip("~.")
    module = node.get("py:module")
    for candidate in ([f"{module}.{target}"] if module else []) + [target]:
        obj = _find(candidate)
        if obj is None:
            continue
        if isinstance(obj, TypeVar):
            return contnode
        home = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
        if None in home or f"{home[0]}.{home[1]}" == candidate:
            return None
        return env.domains.python_domain.resolve_xref(
            env, node["refdoc"], app.builder, node["reftype"], ".".join(home), node, contnode
        )
    return None


def setup(app: Any) -> dict[str, Any]:
    """Register the hooks.

    Args:
        app: the Sphinx application.

    Returns:
        The extension's metadata.
    """
    app.connect("builder-inited", prune_api_stubs, priority=100)  # before autosummary's (500)
    app.connect("autodoc-process-docstring", drop_inherited_docs)
    app.connect("autodoc-process-signature", factory_defaults)
    app.connect("missing-reference", resolve_reexports)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
