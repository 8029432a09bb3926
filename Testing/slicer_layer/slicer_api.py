"""Checks the Slicer layer against the Python sources of a Slicer release, by parsing both.

A ``Release`` is read from a folder laid out as Slicer's source tree (``../shared/slicer-api/<tag>``):
the modules the Slicer layer imports (``DICOMLib``, ``DICOMLib.DICOMUtils``, ``slicer.util``,
``slicer.i18n``, ``slicer.ScriptedLoadableModule``, ``slicer.parameterNodeWrapper``), their
classes with their methods and attributes, the loadable's fields (``DICOMLoadable.__init__`` and
``vtkSlicerDICOMLoadable.h``), the attributes Slicer's own plugins and browser add to loadables,
the methods Slicer's code calls on ``slicer.dicomDatabase``, and the parameter-node wrapper's
serializers and validators (whose ``canSerialize`` and validator code is run, not imitated).

``check(release, sources)`` parses our files and returns every finding as a ``Finding``: a name
that does not exist, a call whose arguments the definition does not accept, an override whose
signature differs from the base method's, a parameter-node field the wrapper cannot serialize or
whose default its validators refuse, a loadable attribute Slicer does not know;
``gui_connector_findings`` runs the wrapper's GUI connectors on the .ui widgets bound to fields. ``Usage.checked``
holds every Slicer name found and checked: names in one release's set only exist in that release.
"""

from __future__ import annotations

import ast
import copy
import enum
import functools
import importlib
import pathlib
import re
import typing
import unittest
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

MODULE_FILES = {
    "DICOMLib": "Modules/Scripted/DICOMLib/__init__.py",
    "DICOMLib.DICOMUtils": "Modules/Scripted/DICOMLib/DICOMUtils.py",
    "slicer.util": "Base/Python/slicer/util.py",
    "slicer.i18n": "Base/Python/slicer/i18n.py",
    "slicer.ScriptedLoadableModule": "Base/Python/slicer/ScriptedLoadableModule.py",
    "slicer.parameterNodeWrapper": "Base/Python/slicer/parameterNodeWrapper/__init__.py",
}
"""The Slicer Python modules the Slicer layer may use, and where each is in Slicer's source tree.
Other ``slicer.*`` names (``slicer.app``, ``slicer.mrmlScene``, the ``vtkMRML*`` classes) come from
the application and its C++ libraries: the scene tests run those on the slicer-core wheel."""

LOADABLE_HEADER = "Modules/Scripted/DICOMLib/Logic/vtkSlicerDICOMLoadable.h"
PEER_FILES = (
    "Modules/Scripted/DICOMPlugins/DICOMScalarVolumePlugin.py",
    "Modules/Scripted/DICOMPlugins/DICOMVolumeSequencePlugin.py",
    "Modules/Scripted/DICOMLib/DICOMPlugin.py",
    "Modules/Scripted/DICOMLib/DICOMUtils.py",
    "Modules/Scripted/DICOMLib/DICOMBrowser.py",
    "Modules/Scripted/DICOM/DICOM.py",
)
"""Slicer's own plugins and the browser: what they set on loadables and call on the database."""

DATABASE = "slicer.dicomDatabase"


@dataclass(frozen=True)
class Finding:
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


# --- the release --------------------------------------------------------------------------------


@dataclass
class Definition:
    """A function, class or other top-level name of a release, and where it is."""

    name: str
    node: ast.AST
    module: "Module"


class Module:
    def __init__(self, release: "Release", name: str, path: Path) -> None:
        self.release = release
        self.name = name
        self.path = path
        self.tree = ast.parse(path.read_text(encoding="utf-8"), str(path))

    @cached_property
    def own(self) -> dict[str, ast.AST]:
        """Names bound at the top of the module itself."""
        names: dict[str, ast.AST] = {}
        for node in self.tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names[node.name] = node
            elif isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        names[target.id] = node
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names[node.target.id] = node
        return names

    @cached_property
    def all(self) -> list[str] | None:
        node = self.own.get("__all__")
        if isinstance(node, ast.Assign) and isinstance(node.value, (ast.List, ast.Tuple)):
            return [e.value for e in node.value.elts if isinstance(e, ast.Constant)]
        return None

    @cached_property
    def exports(self) -> dict[str, Definition]:
        """Every attribute the module has: its own names, the names it imports from its package
        (``from .x import *`` honours ``x.__all__``) and the submodules so imported."""
        names = {name: Definition(name, node, self) for name, node in self.own.items()}
        for node in self.tree.body:
            if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
                sibling = self.release.sibling(self, node.module)
                if sibling is None:
                    continue
                names[node.module] = Definition(node.module, sibling.tree, sibling)
                for alias in node.names:
                    if alias.name == "*":
                        public = sibling.all if sibling.all is not None else [
                            n for n in sibling.exports if not n.startswith("_")]
                        names.update({n: sibling.exports[n] for n in public if n in sibling.exports})
                    elif alias.name in sibling.exports:
                        names[alias.asname or alias.name] = sibling.exports[alias.name]
        return names


class Release:
    """The Python sources of one Slicer release (see the module docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.tag = self.root.name
        self.modules = {name: Module(self, name, self.root / path) for name, path in MODULE_FILES.items()}
        self._siblings: dict[Path, Module] = {}

    def sibling(self, module: Module, name: str) -> Module | None:
        path = module.path.parent / f"{name}.py"
        if not path.is_file():
            return None
        if path not in self._siblings:
            known = [m for m in self.modules.values() if m.path == path]
            self._siblings[path] = known[0] if known else Module(self, f"{module.name}.{name}", path)
        return self._siblings[path]

    def lookup(self, qualified: str) -> Definition | None | str:
        """The definition of a dotted name under one of ``MODULE_FILES``; ``None`` when it does
        not exist there; the string "unchecked" for a name outside those modules."""
        module_name = max((m for m in self.modules if qualified == m or qualified.startswith(m + ".")),
                          key=len, default=None)
        if module_name is None:
            return "unchecked"
        module = self.modules[module_name]
        parts = qualified[len(module_name):].lstrip(".").split(".") if qualified != module_name else []
        if not parts:
            return Definition(module_name, module.tree, module)
        definition = module.exports.get(parts[0])
        for part in parts[1:]:
            if definition is None:
                return None
            if isinstance(definition.node, ast.ClassDef):
                definition = self.member(definition, part)
            elif isinstance(definition.node, ast.Module):
                definition = definition.module.exports.get(part)
            else:
                return "unchecked"  # an attribute of a function's result or of a value
        return definition

    def bases(self, definition: Definition) -> list[Definition | type]:
        """A class's base classes, as definitions in this release or Python classes (unittest...)."""
        found: list[Definition | type] = []
        for base in definition.node.bases:
            name = _dotted(base)
            if name is None:
                continue
            if name in definition.module.exports:
                found.append(definition.module.exports[name])
            elif name == "unittest.TestCase":
                found.append(unittest.TestCase)
        return found

    def member(self, definition: Definition | type, name: str) -> Definition | None:
        """A class attribute, method or ``self.<name>`` set in a method, searched through the bases."""
        if isinstance(definition, type):
            return Definition(name, ast.Pass(), None) if hasattr(definition, name) else None
        own = _class_members(definition.node)
        if name in own:
            return Definition(name, own[name], definition.module)
        for base in self.bases(definition):
            found = self.member(base, name)
            if found is not None:
                return found
        return None

    @cached_property
    def loadable_fields(self) -> set[str]:
        """What a loadable has: ``DICOMLoadable.__init__``'s attributes and the properties of the
        C++ ``vtkSlicerDICOMLoadable`` (``vtkGet...Macro(Name, ...)`` read as ``name``)."""
        loadable = self.modules["DICOMLib"].exports["DICOMLoadable"].node
        fields = set(_self_attributes(_class_members(loadable)["__init__"]))
        header = (self.root / LOADABLE_HEADER).read_text(encoding="utf-8")
        fields |= {name[0].lower() + name[1:] for name in re.findall(r"vtkGet\w*Macro\((\w+)", header)}
        return fields

    @cached_property
    def loadable_conventions(self) -> dict[str, str]:
        """Attributes Slicer's own plugins and browser set on loadables (any variable whose name
        says loadable), beyond ``loadable_fields``: attribute -> the file that sets it."""
        found: dict[str, str] = {}
        for relative in PEER_FILES:
            tree = ast.parse((self.root / relative).read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if (isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store)
                        and isinstance(node.value, ast.Name) and "loadable" in node.value.id.lower()):
                    found.setdefault(node.attr, Path(relative).name)
        return {name: where for name, where in found.items() if name not in self.loadable_fields}

    @cached_property
    def database_methods(self) -> set[str]:
        """What Slicer's own Python code calls on ``slicer.dicomDatabase`` (a C++ object: its
        methods are known from their use)."""
        pattern = re.compile(re.escape(DATABASE) + r"\.(\w+)")
        return {name for path in self.root.rglob("*.py") for name in pattern.findall(path.read_text(encoding="utf-8"))}

    @cached_property
    def validators(self) -> dict[str, type]:
        """The wrapper's validator classes, made by running this release's ``validators.py``."""
        path = self.modules["slicer.parameterNodeWrapper"].path.parent / "validators.py"
        namespace: dict[str, object] = {"__name__": f"slicer_{self.tag}_validators"}
        exec(compile(path.read_text(encoding="utf-8"), str(path), "exec"), namespace)
        return {name: value for name, value in namespace.items() if isinstance(value, type)}

    @cached_property
    def serializers(self) -> dict[str, typing.Callable[[object], bool]]:
        """``canSerialize`` of every registered serializer (``@parameterNodeSerializer``), compiled
        from this release's ``serializers.py``; they run against the real ``slicer`` of the
        slicer-core wheel (``NodeSerializer`` asks ``issubclass(type_, slicer.vtkMRMLNode)``)."""
        import slicer

        path = self.modules["slicer.parameterNodeWrapper"].path.parent / "serializers.py"
        tree = ast.parse(path.read_text(encoding="utf-8"))
        namespace = {"typing": typing, "pathlib": pathlib, "enum": enum, "slicer": slicer}
        found = {}
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and any(_dotted(d) == "parameterNodeSerializer" for d in node.decorator_list):
                can = _class_members(node).get("canSerialize")
                if isinstance(can, ast.FunctionDef):
                    function = copy.deepcopy(can)
                    function.decorator_list = []  # @staticmethod: a plain function here
                    module = ast.Module([function], [])
                    local = dict(namespace)
                    exec(compile(module, str(path), "exec"), local)
                    found[node.name] = local[can.name]
        return found

    def serializable(self, type_: object) -> list[str]:
        """The serializers of this release that take ``type_``."""
        names = []
        for name, can in self.serializers.items():
            try:
                if can(type_):
                    names.append(name)
            except (NameError, AttributeError, TypeError):
                continue  # e.g. QColorSerializer needs qt, which is not here: it cannot take our types
        return names


# --- our sources ----------------------------------------------------------------------------------


@dataclass
class Use:
    file: str
    line: int
    name: str
    call: ast.Call | None = None
    bound: bool = False  # called on an instance (``self`` is passed implicitly)


@dataclass
class Usage:
    """Every Slicer name our files use, and the findings about them in one release."""

    uses: list[Use] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    checked: set[str] = field(default_factory=set)


def parse_sources(paths: Iterable[Path], root: Path) -> dict[str, ast.Module]:
    return {str(Path(p).relative_to(root)): ast.parse(Path(p).read_text(encoding="utf-8"), str(p)) for p in paths}


def check(release: Release, sources: dict[str, ast.Module]) -> Usage:
    usage = Usage()
    for file, tree in sources.items():
        _Checker(release, file, usage).run(tree)
    return usage


class _Checker:
    def __init__(self, release: Release, file: str, usage: Usage) -> None:
        self.release = release
        self.file = file
        self.usage = usage

    def finding(self, node: ast.AST, message: str) -> None:
        self.usage.findings.append(Finding(self.file, getattr(node, "lineno", 0), f"[{self.release.tag}] {message}"))

    def run(self, tree: ast.Module) -> None:
        aliases = _aliases(tree)
        for scope in [tree] + [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]:
            aliases.update(_aliases(scope))  # imports inside functions (the self-test's)
        self.aliases = aliases
        self._names(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                self._class(node)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                self._loadables(node)
                self._database(node)

    def resolve(self, node: ast.AST) -> str | None:
        name = _dotted(node)
        if name is None:
            return None
        head, _, rest = name.partition(".")
        if head not in self.aliases:
            return None
        return self.aliases[head] + ("." + rest if rest else "")

    # every dotted Slicer name, and every call of one
    def _names(self, tree: ast.Module) -> None:
        calls = {id(n.func): n for n in ast.walk(tree) if isinstance(n, ast.Call)}
        seen_inner: set[int] = set()
        for node in ast.walk(tree):  # outer attributes first: slicer.util.x, not slicer.util
            if not isinstance(node, (ast.Attribute, ast.Name)) or id(node) in seen_inner:
                continue
            qualified = self.resolve(node)
            if qualified is None or isinstance(getattr(node, "ctx", None), ast.Store):
                continue
            seen_inner.update(id(inner) for inner in ast.walk(node) if inner is not node)
            use = Use(self.file, node.lineno, qualified, calls.get(id(node)))
            self.usage.uses.append(use)
            self._check_use(node, use)

    def _check_use(self, node: ast.AST, use: Use) -> None:
        definition = self.release.lookup(use.name)
        if definition == "unchecked":
            return
        self.usage.checked.add(use.name)
        if definition is None:
            self.finding(node, f"{use.name} does not exist")
        elif use.call is not None:
            self._check_call(use.call, definition, use.name, bound=False)

    def _check_call(self, call: ast.Call, definition: Definition, name: str, *, bound: bool) -> None:
        target = definition.node
        drop_self = bound
        if isinstance(target, ast.ClassDef):
            init = self.release.member(definition, "__init__")
            if init is None or not isinstance(init.node, ast.FunctionDef):
                return  # object.__init__: no arguments (nothing we call passes any)
            target, drop_self = init.node, True
        if not isinstance(target, (ast.FunctionDef, ast.AsyncFunctionDef)):
            return
        if bound and any(_dotted(d) == "staticmethod" for d in target.decorator_list):
            drop_self = False
        problem = _fits(target.args, call, drop_self)
        if problem:
            self.finding(call, f"{name}(...): {problem} (defined as {_signature(target.args)})")

    # classes of ours built on Slicer's: self.<name>, super().<name>(), overrides
    def _class(self, node: ast.ClassDef) -> None:
        bases = []
        for base in node.bases:
            qualified = self.resolve(base)
            definition = self.release.lookup(qualified) if qualified else None
            if isinstance(definition, Definition) and isinstance(definition.node, ast.ClassDef):
                bases.append((qualified, definition))
        if not bases:
            return
        own = _class_members(node)

        def base_member(name: str) -> tuple[str, Definition] | None:
            for qualified, base in bases:
                found = self.release.member(base, name)
                if found is not None:
                    return f"{qualified}.{name}", found
            return None

        for method in [m for m in node.body if isinstance(m, ast.FunctionDef)]:
            found = base_member(method.name)
            if found and isinstance(found[1].node, ast.FunctionDef) and method.name != "__init__":
                self.usage.checked.add(found[0])
                problem = _override_problem(method, found[1].node)
                if problem:
                    self.finding(method, f"{node.name}.{method.name} overrides {found[0]}: {problem}")
            for inner in ast.walk(method):
                if isinstance(inner, ast.Attribute) and isinstance(inner.ctx, ast.Load):
                    via_self = isinstance(inner.value, ast.Name) and inner.value.id == "self"
                    via_super = (isinstance(inner.value, ast.Call) and _dotted(inner.value.func) == "super")
                    if not (via_self or via_super) or (via_self and inner.attr in own):
                        continue
                    found = base_member(inner.attr)
                    if found is None:
                        self.finding(inner, f"{node.name}: no {inner.attr} in {', '.join(q for q, _ in bases)}")
                        continue
                    self.usage.checked.add(found[0])
                    self.usage.uses.append(Use(self.file, inner.lineno, found[0]))
                    call = _call_of(method, inner)
                    if call is not None and found[1].module is not None:
                        self._check_call(call, found[1], found[0], bound=True)

    # attributes set on DICOMLoadable instances
    def _loadables(self, function: ast.FunctionDef) -> None:
        loadables = set()
        for node in ast.walk(function):
            if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
                    and self.resolve(node.value.func) == "DICOMLib.DICOMLoadable"):
                loadables |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        allowed = self.release.loadable_fields | set(self.release.loadable_conventions)
        for node in ast.walk(function):
            if (isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store)
                    and isinstance(node.value, ast.Name) and node.value.id in loadables):
                self.usage.checked.add(f"DICOMLoadable.{node.attr}")
                if node.attr not in allowed:
                    self.finding(node, f"DICOMLoadable.{node.attr} is neither a loadable field nor one Slicer's plugins add")

    # methods called on the DICOM database
    def _database(self, function: ast.FunctionDef) -> None:
        names = {a.arg for a in function.args.args if a.arg == "database"}
        for node in ast.walk(function):
            if isinstance(node, ast.With):
                for item in node.items:
                    if (isinstance(item.context_expr, ast.Call) and isinstance(item.optional_vars, ast.Name)
                            and self.resolve(item.context_expr.func) == "DICOMLib.DICOMUtils.TemporaryDICOMDatabase"):
                        names.add(item.optional_vars.id)
            if isinstance(node, ast.Assign) and self.resolve(node.value) == DATABASE:
                names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) and _is_getattr_database(node.value):
                names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        for node in ast.walk(function):
            if not isinstance(node, ast.Attribute):
                continue
            on = node.value
            if (isinstance(on, ast.Name) and on.id in names) or self.resolve(on) == DATABASE:
                self.usage.checked.add(f"{DATABASE}.{node.attr}")
                self.usage.uses.append(Use(self.file, node.lineno, f"{DATABASE}.{node.attr}"))
                if node.attr not in self.release.database_methods:
                    self.finding(node, f"{DATABASE}.{node.attr}: Slicer's own code never calls it")


# --- parameter nodes ----------------------------------------------------------------------------------


@dataclass
class Field:
    name: str
    line: int
    type_: object
    validators: list[object]
    default: object


def parameter_node_findings(release: Release, file: str, tree: ast.Module) -> list[Finding]:
    """Fields of ``@parameterNodeWrapper`` classes: a type some serializer of the release takes,
    validators of the release built as annotated, and a default they accept."""
    aliases = _aliases(tree)
    module_globals = _our_imports(tree)
    findings = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.ClassDef) and any(
                aliases.get(_dotted(d) or "", "") == "slicer.parameterNodeWrapper.parameterNodeWrapper"
                for d in node.decorator_list)):
            continue
        for item in node.body:
            if not (isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)):
                continue
            where = f"{node.name}.{item.target.id}"
            try:
                field_ = _field(release, item, aliases, module_globals)
            except Exception as error:  # a validator that does not take these arguments, say
                findings.append(Finding(file, item.lineno, f"[{release.tag}] {where}: {error}"))
                continue
            if not release.serializable(field_.type_):
                findings.append(Finding(file, item.lineno, f"[{release.tag}] {where}: no serializer takes {field_.type_!r}"))
            for validator in field_.validators:
                if field_.default is not None:
                    try:
                        validator.validate(field_.default)
                    except Exception as error:
                        findings.append(Finding(file, item.lineno, f"[{release.tag}] {where}: default refused: {error}"))
    return findings


def _field(release: Release, item: ast.AnnAssign, aliases: dict[str, str], module_globals: dict) -> Field:
    annotation = item.annotation
    validators = []
    if isinstance(annotation, ast.Subscript) and _dotted(annotation.value) in ("Annotated", "typing.Annotated"):
        elements = annotation.slice.elts if isinstance(annotation.slice, ast.Tuple) else [annotation.slice]
        annotation, extras = elements[0], elements[1:]
        for extra in extras:
            if not isinstance(extra, ast.Call):
                raise ValueError(f"annotation {ast.unparse(extra)} is not a validator call")
            name = aliases.get(_dotted(extra.func) or "", "")
            cls = release.validators.get(name.rpartition(".")[2]) if name.startswith("slicer.parameterNodeWrapper.") else None
            if cls is None:
                raise ValueError(f"{ast.unparse(extra.func)} is not a validator of this release")
            args = [_value(a, module_globals) for a in extra.args]
            kwargs = {k.arg: _value(k.value, module_globals) for k in extra.keywords}
            validators.append(cls(*args, **kwargs))
    type_ = _type_of(annotation, aliases, module_globals)
    default = _value(item.value, module_globals) if item.value is not None else None
    return Field(item.target.id, item.lineno, type_, validators, default)


def _value(node: ast.expr, module_globals: dict) -> object:
    """A literal, or an expression of what the file imports from this package (the choices of a
    policy enum, say), evaluated with those names only."""
    try:
        return ast.literal_eval(node)
    except ValueError:
        return eval(compile(ast.Expression(node), "<annotation>", "eval"), {"__builtins__": {}, **module_globals})


def _type_of(node: ast.AST, aliases: dict[str, str], module_globals: dict) -> object:
    name = _dotted(node)
    if name in ("str", "int", "float", "bool"):
        return {"str": str, "int": int, "float": float, "bool": bool}[name]
    qualified = aliases.get(name.partition(".")[0], "") if name else ""
    if qualified.startswith("slicer") and name:
        import slicer

        return getattr(slicer, name.rpartition(".")[2])  # a node class of the slicer-core wheel
    if name and name in module_globals:
        return module_globals[name]
    if qualified:
        module, _, attr = qualified.rpartition(".")
        return getattr(importlib.import_module(module), attr)
    raise ValueError(f"cannot resolve the annotation {ast.unparse(node)}")


# --- helpers --------------------------------------------------------------------------------------


def _our_imports(tree: ast.Module) -> dict[str, object]:
    """The names a file imports from this package (``from irregular_series... import x``), imported."""
    found = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "irregular_series":
            module = importlib.import_module(node.module)
            for alias in node.names:
                value = getattr(module, alias.name, None)
                if value is None:  # a submodule not imported yet
                    value = importlib.import_module(f"{node.module}.{alias.name}")
                found[alias.asname or alias.name] = value
    return found


def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = _dotted(node.value)
        return f"{inner}.{node.attr}" if inner else None
    return None


def _aliases(scope: ast.AST) -> dict[str, str]:
    """Local name -> the Slicer module or name it is bound to by the imports directly in ``scope``."""
    found = {}
    body = scope.body if hasattr(scope, "body") else []
    for node in body:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in ("slicer", "DICOMLib"):
                    found[alias.asname or alias.name.split(".")[0]] = alias.asname and alias.name or alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in ("slicer", "DICOMLib"):
            for alias in node.names:
                found[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, (ast.Try, ast.If, ast.With)):
            found.update(_aliases(node))
    return found


def _is_getattr_database(call: ast.Call) -> bool:
    return (_dotted(call.func) == "getattr" and len(call.args) >= 2 and _dotted(call.args[0]) == "slicer"
            and isinstance(call.args[1], ast.Constant) and call.args[1].value == "dicomDatabase")


@functools.cache
def _class_members(node: ast.ClassDef) -> dict[str, ast.AST]:
    members: dict[str, ast.AST] = {}
    for item in node.body:
        if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            members[item.name] = item
        elif isinstance(item, ast.Assign):
            members.update({t.id: item for t in item.targets if isinstance(t, ast.Name)})
        elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
            members[item.target.id] = item
    for item in node.body:
        if isinstance(item, ast.FunctionDef):
            for name, store in _self_attributes(item).items():
                members.setdefault(name, store)
    return members


def _self_attributes(function: ast.FunctionDef) -> dict[str, ast.AST]:
    return {n.attr: n for n in ast.walk(function) if isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Store)
            and isinstance(n.value, ast.Name) and n.value.id == "self"}


def _call_of(scope: ast.AST, func: ast.AST) -> ast.Call | None:
    for node in ast.walk(scope):
        if isinstance(node, ast.Call) and node.func is func:
            return node
    return None


def _fits(args: ast.arguments, call: ast.Call, drop_self: bool) -> str:
    """Why ``call`` does not fit the parameters ``args`` ("" when it does)."""
    positional = [a.arg for a in args.posonlyargs + args.args]
    if drop_self and positional:
        positional = positional[1:]
    defaults = len(args.defaults)
    required = positional[: len(positional) - defaults] if defaults else positional
    keyword_names = {a.arg for a in args.args} | {a.arg for a in args.kwonlyargs}
    starred = any(isinstance(a, ast.Starred) for a in call.args) or any(k.arg is None for k in call.keywords)
    given = len(call.args)
    if not args.vararg and given > len(positional) and not starred:
        return f"{given} positional arguments, at most {len(positional)} accepted"
    filled = set(positional[:given])
    for keyword in call.keywords:
        if keyword.arg is None:
            continue
        if keyword.arg not in keyword_names and not args.kwarg:
            return f"no parameter {keyword.arg}"
        if keyword.arg in filled:
            return f"{keyword.arg} given twice"
        filled.add(keyword.arg)
    if starred:
        return ""
    missing = [p for p in required if p not in filled]
    missing += [a.arg for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is None and a.arg not in filled]
    return f"missing {', '.join(missing)}" if missing else ""


def _override_problem(ours: ast.FunctionDef, base: ast.FunctionDef) -> str:
    """How an override's signature differs from the base method's ("" when it matches): the same
    parameters in the same order, taken the same way (static or not); ours may add defaults."""
    def shape(f: ast.FunctionDef) -> tuple[bool, list[str], bool, bool]:
        static = any(_dotted(d) == "staticmethod" for d in f.decorator_list)
        names = [a.arg for a in f.args.posonlyargs + f.args.args]
        return static, names if static else names[1:], f.args.vararg is not None, f.args.kwarg is not None

    ours_shape, base_shape = shape(ours), shape(base)
    if ours_shape[0] != base_shape[0]:
        return "static in one, not in the other"
    if len(ours_shape[1]) != len(base_shape[1]):
        return f"parameters ({', '.join(ours_shape[1])}) where the base has ({', '.join(base_shape[1])})"
    if base_shape[2] and not ours_shape[2] or base_shape[3] and not ours_shape[3]:
        return "the base takes *args/**kwargs, the override does not"
    required_ours = len(ours.args.args) - len(ours.args.defaults)
    required_base = len(base.args.args) - len(base.args.defaults)
    if required_ours > required_base:
        return "the override requires arguments the base does not"
    return ""


def _signature(args: ast.arguments) -> str:
    return f"({ast.unparse(args)})"


# --- how the DICOM module calls a plugin ----------------------------------------------------------

DICOM_MODULE = "Modules/Scripted/DICOM/DICOM.py"


def hook_findings(release: Release, sources: dict[str, ast.Module]) -> list[Finding]:
    """Our plugin classes (registered in ``slicer.modules.dicomPlugins``) against the DICOM
    module's calls: it makes each plugin with the arguments it passes, and calls
    ``settingsPanelEntry`` on the class with the arguments it passes."""
    dicom = ast.parse((release.root / DICOM_MODULE).read_text(encoding="utf-8"))
    makes = [n for n in ast.walk(dicom) if isinstance(n, ast.Call) and isinstance(n.func, ast.Subscript)
             and _dotted(n.func.value) == "slicer.modules.dicomPlugins"]
    panels = [n for n in ast.walk(dicom) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
              and n.func.attr == "settingsPanelEntry"]
    findings = []
    for file, tree in sources.items():
        registered = {_dotted(n.value) for n in ast.walk(tree) if isinstance(n, ast.Assign)
                      and any(isinstance(t, ast.Subscript) and _dotted(t.value) == "slicer.modules.dicomPlugins"
                              for t in n.targets)}
        for node in ast.walk(tree):
            if not (isinstance(node, ast.ClassDef) and node.name in registered):
                continue
            methods = {m.name: m for m in node.body if isinstance(m, ast.FunctionDef)}
            where = f"[{release.tag}] {node.name}"
            if not makes:
                findings.append(Finding(file, node.lineno, f"{where}: {DICOM_MODULE} no longer makes plugins from dicomPlugins"))
            for call in makes:
                init = methods.get("__init__")
                problem = _fits(init.args, call, drop_self=True) if init else ""
                if problem:
                    findings.append(Finding(file, node.lineno, f"{where}(...): {problem}, as {DICOM_MODULE} makes it"))
            entry = methods.get("settingsPanelEntry")
            for call in panels if entry else []:
                if not any(_dotted(d) == "staticmethod" for d in entry.decorator_list):
                    findings.append(Finding(file, entry.lineno,
                                            f"{where}.settingsPanelEntry: called on the class, must be static"))
                problem = _fits(entry.args, call, drop_self=False)
                if problem:
                    findings.append(Finding(file, entry.lineno,
                                            f"{where}.settingsPanelEntry: {problem}, as {DICOM_MODULE} calls it"))
            if entry and not panels:
                findings.append(Finding(file, entry.lineno, f"{where}.settingsPanelEntry: {DICOM_MODULE} never calls it"))
    return findings


# --- the module panel's .ui -----------------------------------------------------------------------

DESIGNER_CLASSES = Path(__file__).with_name("slicer_designer_widgets.json")


def designer_classes() -> dict[str, set[str]]:
    """Class names per .ui element kind ("widget", "layout") that Qt, CTK and Slicer's designer
    plugins provide in both supported releases (see ``slicer_designer_widgets.json``)."""
    import json

    data = json.loads(DESIGNER_CLASSES.read_text(encoding="utf-8"))
    return {"layout": set(data["layout"]), "widget": set().union(*data["widget"].values())}


def ui_classes(path: Path) -> dict[str, str]:
    """Every class a .ui file instantiates, with its element kind ("widget" or "layout")."""
    import xml.etree.ElementTree as ElementTree

    root = ElementTree.parse(path).getroot()
    return {e.get("class"): e.tag for e in root.iter() if e.tag in ("widget", "layout") and e.get("class")}


# --- the .ui widgets bound to parameter-node fields --------------------------------------------------


class _WidgetNames:
    """``qt``, ``ctk`` (and the widget part of ``slicer``) for running the wrapper's
    ``canRepresent`` without Qt: each class name stands for itself, one Python class per name, so
    ``type(widget) in (qt.QComboBox, ...)`` asks exactly whether the .ui's class is one of those."""

    classes: dict[str, type] = {}

    def __init__(self, real=None) -> None:
        self._real = real

    def __getattr__(self, name: str):
        if self._real is not None and hasattr(self._real, name):
            return getattr(self._real, name)  # vtkMRML node classes: the slicer-core wheel's
        return self.classes.setdefault(name, type(name, (), {}))


def gui_connector_findings(release: Release, ui_path: Path, file: str, tree: ast.Module) -> list[Finding]:
    """Every .ui widget with a ``SlicerParameterName`` names a field of the file's parameter node,
    and one of the release's registered GUI connectors (``canRepresent``, run from its source)
    takes that widget class and the field's type."""
    import xml.etree.ElementTree as ElementTree

    import slicer

    folder = release.modules["slicer.parameterNodeWrapper"].path.parent
    helpers: dict[str, object] = {"__name__": f"slicer_{release.tag}_pnw_util"}
    exec(compile((folder / "util.py").read_text(encoding="utf-8"), str(folder / "util.py"), "exec"), helpers)
    namespace = {**{k: v for k, v in helpers.items() if not k.startswith("__")}, "enum": enum, "typing": typing,
                 "pathlib": pathlib, "qt": _WidgetNames(), "ctk": _WidgetNames(), "slicer": _WidgetNames(slicer)}
    connectors = {}
    for node in ast.parse((folder / "guiConnectors.py").read_text(encoding="utf-8")).body:
        if isinstance(node, ast.ClassDef) and any(_dotted(d) == "parameterNodeGuiConnector" for d in node.decorator_list):
            can = copy.deepcopy(_class_members(node)["canRepresent"])
            can.decorator_list = []
            local = dict(namespace)
            exec(compile(ast.Module([can], []), str(folder / "guiConnectors.py"), "exec"), local)
            connectors[node.name] = local["canRepresent"]

    aliases = _aliases(tree)
    fields = {}
    for cls in ast.walk(tree):
        if isinstance(cls, ast.ClassDef) and any(
                aliases.get(_dotted(d) or "", "") == "slicer.parameterNodeWrapper.parameterNodeWrapper"
                for d in cls.decorator_list):
            for item in cls.body:
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    fields[item.target.id] = _field(release, item, aliases, _our_imports(tree))

    findings = []
    for widget in ElementTree.parse(ui_path).getroot().iter("widget"):
        bound = widget.find("property[@name='SlicerParameterName']/string")
        if bound is None:
            continue
        where = f"[{release.tag}] {ui_path.name}: {widget.get('name')} ({widget.get('class')})"
        field_ = fields.get(bound.text)
        if field_ is None:
            findings.append(Finding(file, 0, f"{where} is bound to {bound.text}, which the parameter node lacks"))
            continue
        datatype = typing.Annotated[(field_.type_, *field_.validators)] if field_.validators else field_.type_
        instance = _WidgetNames().__getattr__(widget.get("class"))()
        taking = []
        for name, can in connectors.items():
            try:
                if can(instance, datatype):
                    taking.append(name)
            except (NameError, AttributeError, TypeError):
                continue  # a connector needing what is not here (parameter packs): not one for our fields
        if not taking:
            findings.append(Finding(file, field_.line, f"{where}: no GUI connector takes it for {field_.name}: {datatype!r}"))
    return findings
