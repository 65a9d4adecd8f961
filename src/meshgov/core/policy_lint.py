"""Structural lint of a policy bundle: the Regal conventions meshgov relies on and regopy limits.

Pure: it reads the module texts of a ``PolicyBundle`` and never compiles them (the CLI compiles
with the engine afterwards). The Rego is read line by line, as ``opa fmt`` lays it out: rule heads
start at column 0 and bodies are indented.

Rules (all errors unless noted):

- ``package-missing``: a module without a ``package`` line.
- ``directory-package-mismatch``: the directory must mirror the package (``meshgov/pii/pii.rego``
  holds ``meshgov.pii``; a ``_test`` package suffix is ignored).
- ``test-package-name``: a ``*_test.rego`` file must hold a ``<package>_test`` package.
- ``file-missing-test-suffix``: a ``_test`` package must live in a ``*_test.rego`` file.
- ``test-outside-test-package``: ``test_*`` rules only in ``_test`` packages.
- ``missing-test-package``: every package has a ``<package>_test`` package.
- ``missing-metadata``: every non-test package and each of its public rules has a ``# METADATA``
  block.
- ``invalid-metadata``: a ``# METADATA`` block must be a YAML mapping (OPA rejects the module
  otherwise; regopy does not look).
- ``unsupported-builtin``: builtins the embedded engine (regopy) lacks or answers differently.
- ``unsupported-syntax``: ``some k, v in x`` (regopy 1.5 rejects the two-variable form).
- ``function-arity-clash``: one function name with different arities anywhere in the bundle;
  regopy 1.5 fails to compile the bundle ("Unable to unify due to cycle") or crashes.
- ``line-too-long`` (warning): lines over ``MAX_LINE_LENGTH`` characters (Regal's default 120).
- ``with-input`` (warning): ``with input as`` fails in regopy 1.5 once the rule body calls a
  function; pass the input as an argument or replace a path (``with input.product as``).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Literal

from meshgov.core.policy import PACKAGE_LINE, PolicyBundle
from meshgov.core.yaml_source import load_yaml
from meshgov.errors import InputError

Severity = Literal["error", "warning"]

# Builtins that regopy 1.5 does not implement (rego.metadata.* and rego.parse_module exist only as
# failing placeholders), plus opa.runtime, whose answer differs between engines.
UNSUPPORTED_BUILTINS: frozenset[str] = frozenset(
    {
        "rego.metadata.chain",
        "rego.metadata.rule",
        "rego.parse_module",
        "http.send",
        "opa.runtime",
        "net.lookup_ip_addr",
        "net.cidr_expand",
        "net.cidr_contains",
        "net.cidr_merge",
        "net.cidr_is_valid",
        "json.verify_schema",
        "json.match_schema",
        "graphql.parse",
        "providers.aws.sign_req",
        "strings.render_template",
        "trace",
        "print",
    }
)

MAX_LINE_LENGTH = 120

_KEYWORDS = frozenset({"package", "import", "default", "else", "not", "some", "every", "with"})
_HEAD = re.compile(
    r"^(?:default\s+)?(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"(?P<rest>\s*(?:\(|:=|=|\{|\[|\bcontains\b|\bif\b).*)$"
)
_SOME_KEY_VALUE = re.compile(r"\bsome\s+[A-Za-z_][A-Za-z0-9_]*\s*,\s*[A-Za-z_][A-Za-z0-9_]*\s+in\b")
_WITH_INPUT = re.compile(r"\bwith\s+input\s+as\b")
_BUILTIN_CALL = re.compile(r"(?<![\w.])(?P<name>[a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)*)\s*\(")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|`[^`]*`')


@dataclass(frozen=True)
class LintFinding:
    """One broken convention: rule id, what is wrong, where."""

    rule: str
    message: str
    path: str
    line: int
    severity: Severity = "error"

    def describe(self) -> str:
        return f"{self.path}:{self.line}: {self.severity} {self.rule}: {self.message}"


@dataclass(frozen=True)
class _RuleHead:
    name: str
    line: int
    arity: int | None  # None for a rule, the argument count for a function
    has_metadata: bool
    is_default: bool


@dataclass(frozen=True)
class _Module:
    path: str
    package: str | None
    package_line: int
    package_metadata: bool
    heads: tuple[_RuleHead, ...]
    lines: tuple[str, ...]

    @property
    def is_test_file(self) -> bool:
        return self.path.endswith("_test.rego")

    @property
    def is_test_package(self) -> bool:
        return bool(self.package and self.package.endswith("_test"))


def _code_of(line: str) -> str:
    """The line without string literals and its trailing comment."""
    code = _STRING.sub('""', line)
    hash_at = code.find("#")
    return code[:hash_at] if hash_at >= 0 else code


def _arity(rest: str) -> int | None:
    """Argument count of a function head (``rest`` starts after the name), None for a rule."""
    text = rest.lstrip()
    if not text.startswith("("):
        return None
    depth = 0
    args = 0
    seen_token = False
    for char in text:
        if char in "([{":
            depth += 1
            if depth == 1:
                continue
        elif char in ")]}":
            depth -= 1
            if depth == 0:
                break
        elif char == "," and depth == 1:
            args += 1
            continue
        if depth >= 1 and not char.isspace():
            seen_token = True
    return args + 1 if seen_token else 0


def _comment_block_above(lines: list[str], index: int) -> list[str]:
    block: list[str] = []
    cursor = index - 1
    while cursor >= 0 and lines[cursor].lstrip().startswith("#"):
        block.append(lines[cursor].strip())
        cursor -= 1
    return block


def _has_metadata(lines: list[str], index: int) -> bool:
    return any(c.startswith("# METADATA") for c in _comment_block_above(lines, index))


def _parse(path: str, text: str) -> _Module:
    lines = text.splitlines()
    match = PACKAGE_LINE.search(text)
    package = match.group(1) if match else None
    package_line = text.count("\n", 0, match.start()) + 1 if match else 1
    heads: list[_RuleHead] = []
    for index, raw in enumerate(lines):
        if not raw or raw[0].isspace() or raw.startswith(("#", "}", "]", ")")):
            continue
        head = _HEAD.match(_code_of(raw).rstrip())
        if head is None or head.group("name") in _KEYWORDS:
            continue
        heads.append(
            _RuleHead(
                name=head.group("name"),
                line=index + 1,
                arity=_arity(head.group("rest")),
                has_metadata=_has_metadata(lines, index),
                is_default=raw.startswith("default"),
            )
        )
    return _Module(
        path=path,
        package=package,
        package_line=package_line,
        package_metadata=bool(match) and _has_metadata(lines, package_line - 1),
        heads=tuple(heads),
        lines=tuple(lines),
    )


def _expected_package(path: str) -> str | None:
    parts = path.split("/")[:-1]
    return ".".join(parts) if parts else None


def _structure(module: _Module) -> Iterator[LintFinding]:
    path = module.path
    if module.package is None:
        yield LintFinding("package-missing", "no `package` line", path, 1)
        return
    expected = _expected_package(path)
    declared = module.package.removesuffix("_test") if module.is_test_file else module.package
    if expected is not None and declared != expected:
        yield LintFinding(
            "directory-package-mismatch",
            f"package '{module.package}' lives in '{path}'; its directory says '{expected}'",
            path,
            module.package_line,
        )
    if module.is_test_file and not module.is_test_package:
        yield LintFinding(
            "test-package-name",
            f"test file holds package '{module.package}'; use '{module.package}_test'",
            path,
            module.package_line,
        )
    if module.is_test_package and not module.is_test_file:
        yield LintFinding(
            "file-missing-test-suffix",
            f"package '{module.package}' is a test package; name the file *_test.rego",
            path,
            module.package_line,
        )


def _tests_outside(module: _Module) -> Iterator[LintFinding]:
    if module.is_test_package or module.is_test_file:
        return
    for head in module.heads:
        if head.name.startswith("test_"):
            yield LintFinding(
                "test-outside-test-package",
                f"test rule '{head.name}' in package '{module.package}'; move it to "
                f"'{module.package}_test' in a *_test.rego file",
                module.path,
                head.line,
            )


def _metadata(modules: list[_Module]) -> Iterator[LintFinding]:
    """A package (possibly split over files) and each public rule need METADATA once."""
    by_package: dict[str, list[_Module]] = defaultdict(list)
    for module in modules:
        if module.package and not (module.is_test_file or module.is_test_package):
            by_package[module.package].append(module)
    for package, group in sorted(by_package.items()):
        if not any(m.package_metadata for m in group):
            yield LintFinding(
                "missing-metadata",
                f"package '{package}' has no `# METADATA` block (title, description)",
                group[0].path,
                group[0].package_line,
            )
        by_name: dict[str, list[tuple[_Module, _RuleHead]]] = defaultdict(list)
        for module in group:
            for head in module.heads:
                if not head.name.startswith("_"):
                    by_name[head.name].append((module, head))
        for name, defs in by_name.items():
            if any(h.has_metadata for _, h in defs):
                continue
            module, first = next(((m, h) for m, h in defs if not h.is_default), defs[0])
            yield LintFinding(
                "missing-metadata",
                f"public rule '{name}' has no `# METADATA` block (title, description); "
                "make it a `_helper` if it is not part of the package's interface",
                module.path,
                first.line,
            )


def _calls(module: _Module) -> Iterator[LintFinding]:
    for index, raw in enumerate(module.lines):
        if len(raw) > MAX_LINE_LENGTH:
            yield LintFinding(
                "line-too-long",
                f"line is {len(raw)} characters long (at most {MAX_LINE_LENGTH})",
                module.path,
                index + 1,
                "warning",
            )
        if raw.lstrip().startswith("#"):
            continue
        code = _code_of(raw)
        for call in _BUILTIN_CALL.finditer(code):
            name = call.group("name")
            if name in UNSUPPORTED_BUILTINS:
                yield LintFinding(
                    "unsupported-builtin",
                    f"'{name}' is not available in the embedded engine (regopy)",
                    module.path,
                    index + 1,
                )
        if _SOME_KEY_VALUE.search(code):
            yield LintFinding(
                "unsupported-syntax",
                "`some key, value in x` is rejected by regopy; write `some key` then "
                "`value := x[key]`",
                module.path,
                index + 1,
            )
        if _WITH_INPUT.search(code):
            yield LintFinding(
                "with-input",
                "`with input as` fails in regopy once the rule calls a function; pass the input "
                "as an argument, or replace a path (`with input.product as`)",
                module.path,
                index + 1,
                "warning",
            )


def _metadata_yaml(module: _Module) -> Iterator[LintFinding]:
    lines = module.lines
    for index, line in enumerate(lines):
        if line.strip() != "# METADATA":
            continue
        block: list[str] = []
        for following in lines[index + 1 :]:
            if not following.startswith("#"):
                break
            block.append(following[2:] if following.startswith("# ") else following[1:])
        text = "\n".join(block)
        try:
            # The guarded loader: an impossible date or value is a finding, not a ValueError.
            value = load_yaml(text, module.path).data if text.strip() else None
        except InputError as exc:
            offset = exc.location.line if exc.location and exc.location.line else 0
            yield LintFinding(
                "invalid-metadata",
                f"METADATA is not YAML: {exc.message}",
                module.path,
                index + 1 + offset,
            )
            continue
        if not isinstance(value, dict):
            yield LintFinding(
                "invalid-metadata",
                "METADATA must be a YAML mapping (title:, description:, ...)",
                module.path,
                index + 1,
            )


def _arity_clashes(modules: list[_Module]) -> Iterator[LintFinding]:
    arities: dict[str, dict[int, list[tuple[_Module, _RuleHead]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for module in modules:
        for head in module.heads:
            if head.arity is not None:
                arities[head.name][head.arity].append((module, head))
    for name, by_arity in sorted(arities.items()):
        if len(by_arity) < 2:
            continue
        summary = ", ".join(
            f"{arity} in {sorted({m.package or m.path for m, _ in defs})[0]}"
            for arity, defs in sorted(by_arity.items())
        )
        for defs in by_arity.values():
            module, head = defs[0]
            yield LintFinding(
                "function-arity-clash",
                f"function '{name}' is defined with different arities ({summary}); regopy "
                "cannot compile the bundle: rename one of them",
                module.path,
                head.line,
            )


def _missing_tests(modules: list[_Module]) -> Iterator[LintFinding]:
    packages = {m.package for m in modules if m.package}
    for module in modules:
        if module.package is None or module.is_test_file or module.is_test_package:
            continue
        if f"{module.package}_test" not in packages:
            yield LintFinding(
                "missing-test-package",
                f"package '{module.package}' has no tests: add "
                f"{module.path.removesuffix('.rego')}_test.rego (package {module.package}_test)",
                module.path,
                module.package_line,
            )


def lint_modules(modules: Mapping[str, str]) -> list[LintFinding]:
    """Every broken convention in ``{relative path: Rego text}``, sorted by path and line.

    >>> [f.rule for f in lint_modules({"meshgov/pii/pii.rego": "package meshgov.other\\n"})]
    ['directory-package-mismatch', 'missing-metadata', 'missing-test-package']
    """
    parsed = [_parse(path, text) for path, text in sorted(modules.items())]
    findings: list[LintFinding] = []
    for module in parsed:
        findings.extend(_structure(module))
        findings.extend(_tests_outside(module))
        findings.extend(_calls(module))
        findings.extend(_metadata_yaml(module))
    findings.extend(_metadata(parsed))
    findings.extend(_arity_clashes(parsed))
    findings.extend(_missing_tests(parsed))
    unique = {(f.path, f.line, f.rule, f.message): f for f in findings}
    return sorted(unique.values(), key=lambda f: (f.path, f.line, f.rule))


def lint_bundle(bundle: PolicyBundle) -> list[LintFinding]:
    """Lint every module of ``bundle`` (see the module docstring for the rules)."""
    return lint_modules(bundle.modules)


def crash_risks(findings: list[LintFinding]) -> list[LintFinding]:
    """Findings that make regopy fail or crash when the bundle is compiled: fix these first."""
    return [f for f in findings if f.rule == "function-arity-clash"]


# `#     pii/undeclared-name: warning` under a METADATA block's `custom: rules:`.
_DECLARED_RULE = re.compile(r"^#\s+([a-z0-9_.-]+/[a-z0-9_.-]+):\s*(error|warning|info)\s*$")


# Rule ids are string literals where violations are built (`result.violation("pii/x", …)`).
_RULE_LITERAL = re.compile(r'"([a-z0-9_.-]+/[a-z0-9_.-]+)"')


def declared_rules(modules: Mapping[str, str]) -> set[str]:
    """The rule ids the modules can report: declared in METADATA (``custom.rules``) or written
    as a literal (where the violation is built)."""
    rules: set[str] = set()
    for path, text in modules.items():
        if path.endswith("_test.rego"):
            continue
        for line in text.splitlines():
            declared = _DECLARED_RULE.match(line)
            if declared:
                rules.add(declared.group(1))
            elif not line.lstrip().startswith("#"):
                rules.update(_RULE_LITERAL.findall(line))
    return rules
