"""Error messages name only options that exist (issue 15, item 7).

Messages told users to set ``palette='infer'`` (the key is ``label_palette``), ``dont_care_id`` and
``max_bad_fraction`` (no config has them). This test reads the source of gauguin/ with ``ast``:
the string constants of every ``raise`` (and of ``warnings.warn`` / ``logger.warning`` /
``logger.error``), of the helpers such a message calls and of the variables it is built in. Each
``name=`` (``name=N``, ``name='infer'``, ...) and each "set / raise / lower NAME" in them must be

- a field of some registered family's config class (what ``key=value`` and YAML accept), or
- in the short ``ALLOWED`` list below, or
- outside the config-facing code (``CONFIG_FACING``, and any ``raise ConfigError``), a parameter
  of the function that raises it or of its class's ``__init__``: such a message speaks to that
  function's caller (``got k=0``, ``pass z=None`` to a network's ``forward``).

Datasets count as config-facing: runs build them with the config's values only, so a hint naming
one of their constructor's other parameters cannot be followed. Each ``--option`` a message names
must be an option of the ``gauguin`` command line (``gauguin.cli.build_parser``).
"""
from __future__ import annotations

import argparse
import ast
import dataclasses
import re
from pathlib import Path
from typing import NamedTuple

import pytest

import gauguin
from gauguin.cli import build_parser
from gauguin.models import FAMILIES, get_family

SOURCE = Path(gauguin.__file__).resolve().parent

# Names messages may use that no config class has.
ALLOWED = {
    "key",  # the ``key=value`` syntax of ``gauguin train ... key=value`` itself ("must look like key=value")
}
# Code whose errors reach users of a run config or of the command line: names there must be config
# keys (or ALLOWED) even when they are parameters of the raising function.
CONFIG_FACING = ("data/", "config.py", "cli.py", "training/")

KEY_IS = re.compile(r"(?<![\w.\-/])([a-z_][a-z0-9_]*)=(?!=)")  # num_labels=15, label_palette=infer
SET_KEY = re.compile(r"\b(?:set|raise|lower|increase|decrease|reduce)\s+`?([a-z][a-z0-9]*_[a-z0-9_]+)\b")
CLI_OPTION = re.compile(r"(?<![\w-])--([a-z][a-z0-9-]*)")
MESSAGE_CALLS = {"warn", "warning", "error", "critical"}  # warnings.warn, logger.warning, ...


class Finding(NamedTuple):
    where: str  # file:line
    name: str
    text: str

    def __str__(self) -> str:
        return f"{self.where}: {self.name!r} in {self.text!r}"


def config_keys() -> set[str]:
    return {f.name for name in FAMILIES for f in dataclasses.fields(get_family(name).config_class)}


def cli_options() -> set[str]:
    options: set[str] = set()
    parsers = [build_parser()]
    while parsers:
        parser = parsers.pop()
        for action in parser._actions:
            options.update(s[2:] for s in action.option_strings if s.startswith("--"))
            if isinstance(action, argparse._SubParsersAction):
                parsers.extend(action.choices.values())
    return options


# ------------------------------------------------------------------------------- the checker
class _Module(NamedTuple):
    rel: str
    tree: ast.Module
    parents: dict[ast.AST, ast.AST]


def parse(source: str, rel: str) -> _Module:
    tree = ast.parse(source)
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    return _Module(rel, tree, parents)


def _enclosing(module: _Module, node: ast.AST, kind) -> ast.AST | None:
    while node in module.parents:
        node = module.parents[node]
        if isinstance(node, kind):
            return node
    return None


def _params(function: ast.AST | None) -> set[str]:
    if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return set()
    a = function.args
    return {arg.arg for arg in [*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg] if arg is not None}


def _callers_params(module: _Module, node: ast.AST) -> set[str]:
    """Parameters of the function around ``node`` and of its class's ``__init__`` (and the class's
    annotated fields, for dataclasses)."""
    function = _enclosing(module, node, (ast.FunctionDef, ast.AsyncFunctionDef))
    names = _params(function)
    cls = _enclosing(module, function, ast.ClassDef) if function is not None else None
    if cls is not None:
        for item in cls.body:
            if isinstance(item, ast.FunctionDef) and item.name == "__init__":
                names |= _params(item)
            elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                names.add(item.target.id)
    return names


def _strings(node: ast.AST) -> list[ast.Constant]:
    return [n for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def _message_nodes(module: _Module):
    """``(message expression, is a raise of ConfigError)`` of every raise and warning call."""
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Raise) and node.exc is not None:
            call = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            name = call.id if isinstance(call, ast.Name) else getattr(call, "attr", "")
            yield node.exc, name == "ConfigError"
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in MESSAGE_CALLS:
            if node.args:
                yield node.args[0], False


def check_modules(modules: list[_Module], keys: set[str], options: set[str]) -> list[Finding]:
    """Every name a message of ``modules`` uses that does not exist (see the module docstring)."""
    helpers: dict[str, list[tuple[_Module, ast.AST]]] = {}  # function name -> its definitions
    for module in modules:
        for node in ast.walk(module.tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                helpers.setdefault(node.name, []).append((module, node))

    findings: list[Finding] = []
    seen: set[tuple[int, int]] = set()

    def check(module: _Module, expression: ast.AST, strict: bool, context: ast.AST) -> None:
        if (id(module), id(expression)) in seen:
            return
        seen.add((id(module), id(expression)))
        strict = strict or module.rel.startswith(CONFIG_FACING)
        allowed = keys | ALLOWED | (set() if strict else _callers_params(module, context))
        for constant in _strings(expression):
            text = constant.value
            for name in dict.fromkeys([*KEY_IS.findall(text), *SET_KEY.findall(text)]):
                if name not in allowed:
                    findings.append(Finding(f"{module.rel}:{constant.lineno}", name, text))
            for option in CLI_OPTION.findall(text):
                if option not in options:
                    findings.append(Finding(f"{module.rel}:{constant.lineno}", f"--{option}", text))
        function = _enclosing(module, context, (ast.FunctionDef, ast.AsyncFunctionDef))
        for node in ast.walk(expression):
            if isinstance(node, ast.Call):  # a helper building (part of) the message
                name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
                for helper_module, helper in helpers.get(name, []):
                    for ret in ast.walk(helper):
                        if isinstance(ret, ast.Return) and ret.value is not None:
                            check(helper_module, ret.value, strict, ret)
            elif isinstance(node, ast.Name) and function is not None:  # a variable holding (part of) it
                for assign in ast.walk(function):
                    if isinstance(assign, ast.Assign):
                        targets = assign.targets
                    elif isinstance(assign, (ast.AugAssign, ast.AnnAssign)) and assign.value is not None:
                        targets = [assign.target]
                    else:
                        continue
                    if any(isinstance(t, ast.Name) and t.id == node.id for t in targets):
                        check(module, assign.value, strict, assign)

    for module in modules:
        for expression, config_error in _message_nodes(module):
            check(module, expression, config_error, expression)
    return findings


def package_modules() -> list[_Module]:
    return [parse(path.read_text(encoding="utf-8"), path.relative_to(SOURCE).as_posix())
            for path in sorted(SOURCE.rglob("*.py"))]


@pytest.fixture(scope="module")
def names() -> tuple[set[str], set[str]]:
    return config_keys(), cli_options()


# ------------------------------------------------------------------------------------- tests
def test_error_messages_name_only_existing_keys(names):
    modules = package_modules()
    assert len(modules) > 50 and any(m.rel == "data/label_folder.py" for m in modules)
    findings = check_modules(modules, *names)
    assert not findings, "messages name config keys or options that do not exist:\n" + "\n".join(map(str, findings))


OLD_MESSAGES = {  # what the messages said before issue 15
    "palette='infer'": ("data/label_folder.py", '''
def _no_palette(path):
    return (f"label map {path} is an RGB colour image and no palette was given. Fix: pass "
            "palette='infer' (distinct colours sorted, ids 0..K-1) or palette=FILE (a JSON/YAML file")

class LabelFolder:
    def __init__(self, root, palette=None):
        raise BadDataError(_no_palette(root))
''', {"palette"}),
    "dont_care_id": ("data/label_folder.py", '''
class LabelFolder:
    def __init__(self, root, num_labels=None, dont_care_id=None):
        raise ValueError(f"dont_care_id={dont_care_id} collides with the inferred palette's ids")
''', {"dont_care_id"}),
    "max_bad_fraction": ("data/folder.py", '''
class ImageFolder:
    def __init__(self, root, image_size, channels, max_bad_fraction=0.05):
        listing = "..."
        message = f"{root} cannot be read (max_bad_fraction={max_bad_fraction:g}):\\n{listing}\\n"
        raise BadDataError(message + "Fix: delete or re-export these files, or raise max_bad_fraction.")
''', {"max_bad_fraction"}),
    "unknown option": ("serve/engine.py", '''
def export(path):
    raise ValueError(f"{path} has no graph: run gauguin export --formats onnx")
''', {"--formats"}),
}


@pytest.mark.parametrize("case", list(OLD_MESSAGES))
def test_the_check_catches_the_old_messages(names, case):
    rel, source, expected = OLD_MESSAGES[case]
    found = {f.name for f in check_modules([parse(source, rel)], *names)}
    assert found == expected


def test_what_the_check_accepts(names):
    source = '''
def knn(real, fake, k):
    raise ValueError(f"k must be < the number of samples, got k={k}")  # a parameter, outside the data module

class Generator:
    def __init__(self, label_nc):
        self.label_nc = label_nc
    def forward(self, segmap, z=None):
        raise ValueError(f"expects label_nc={self.label_nc}; with use_vae=False pass z=None")

def folder(root):
    raise BadDataError("ids >= num_labels=11; fix the files or set num_labels=15, label_palette=infer. "
                       "Overrides must look like key=value; see gauguin paint --port 7860 and N=3")
'''
    assert check_modules([parse(source, "models/nets.py")], *names) == []
    # in config-facing code a parameter is not enough, and a ConfigError is config-facing anywhere
    source = '''
def knn(real, fake, k):
    raise ValueError(f"got k={k}")

def train(cfg, spade_width):
    raise ConfigError(f"set spade_width=64")
'''
    assert [f.name for f in check_modules([parse(source, "data/knn.py")], *names)] == ["k", "spade_width"]
    assert [f.name for f in check_modules([parse(source, "models/x.py")], *names)] == ["spade_width"]
