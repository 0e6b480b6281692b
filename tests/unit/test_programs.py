"""Every program tests/ and bench/ run is on deploy/local/programs (issue 12, item 1).

`scripts/test` on a fresh machine failed because `bench --quick` ran `wrk`, which nothing
installed. deploy/local/programs is the one list of the programs tests and benchmarks
start, each with the Debian package that brings it, and `deploy/local/services up`
installs what is missing from it. This test reads the source of tests/ and bench/ and
fails when they start a program that is not on the list:

- Python: every subprocess.run/Popen/call/check_*, asyncio.create_subprocess_exec and
  os.exec*/spawn* call; its argv is followed through names, module constants, imports,
  dict lookups and wrapper functions (a wrapper's argv parameter is resolved at each
  call site of the wrapper) down to argv[0]. A literal is a program that must be listed;
  a path built on the interpreter (`sys.executable`, its bin/) is a console script of
  the venv, which must exist there; a path under the repository is a script of the
  repository, read as shell in turn. What cannot be followed fails too, naming the line.
- Shell: the scripts of the repository that tests and benchmarks run (bench/*.sh, scripts
  they start) and the README's command blocks (tests/integration/test_readme.py runs each).
"""

from __future__ import annotations

import ast
import re
import shlex
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import REPO

PROGRAMS_FILE = REPO / "deploy" / "local" / "programs"
SCANNED = ("tests", "bench")
VENV_BIN = Path(sys.executable).parent

# A call to one of these starts a process; the value is where its argv is.
SPAWNERS: dict[str, int] = {
    "subprocess.run": 0,
    "subprocess.Popen": 0,
    "subprocess.call": 0,
    "subprocess.check_call": 0,
    "subprocess.check_output": 0,
    "asyncio.create_subprocess_exec": -1,  # its argv is every positional argument
    "os.execv": 1,
    "os.execvp": 1,
    "os.execve": 1,
    "os.execvpe": 1,
    "os.spawnv": 2,
    "os.spawnvp": 2,
}
# asyncio.to_thread(subprocess.run, argv, ...) and loop.run_in_executor(None, subprocess.run,
# argv): the function comes first, its argv after it.
THREAD_RUNNERS = {"asyncio.to_thread": 0, "to_thread": 0, "run_in_executor": 1}
SHELLS = {"bash", "sh"}

# What a shell line runs that is no program: keywords, builtins, the scripts' own functions.
SHELL_WORDS = frozenset(
    [
        "if",
        "then",
        "else",
        "elif",
        "fi",
        "for",
        "while",
        "until",
        "do",
        "done",
        "case",
        "esac",
        "in",
        "function",
        "select",
        "time",
        "!",
        "{",
        "}",
        "[[",
        "]]",
        "(",
        ")",
        ".",
        ":",
        "[",
        "alias",
        "bg",
        "break",
        "builtin",
        "cd",
        "command",
        "continue",
        "declare",
        "echo",
        "eval",
        "exec",
        "exit",
        "export",
        "false",
        "fg",
        "getopts",
        "hash",
        "jobs",
        "kill",
        "let",
        "local",
        "mapfile",
        "printf",
        "pwd",
        "read",
        "readarray",
        "readonly",
        "return",
        "set",
        "shift",
        "shopt",
        "source",
        "test",
        "trap",
        "true",
        "type",
        "typeset",
        "ulimit",
        "umask",
        "unalias",
        "unset",
        "wait",
    ]
)
# After these, the next word is the program (`exec .venv/bin/jobline`, `setsid scripts/dev`).
SHELL_PREFIXES = frozenset({"exec", "command", "nohup", "setsid", "env", "sudo"})
LEADING_KEYWORDS = frozenset(
    {"if", "then", "do", "else", "elif", "while", "until", "!", "time", "{", "}"}
)
PUNCTUATION = "();<>|&\n"
REDIRECTIONS = frozenset({">", ">>", "<", "<<<", ">&", "<&", "&>", "&>>", ">|"})


@dataclass(frozen=True)
class Program:
    """What one spawn site runs: a listed program, a venv script, a repository script."""

    kind: str  # "system" | "venv" | "repo" | "unknown"
    name: str
    where: str


def listed_programs(text: str | None = None) -> dict[str, str]:
    """deploy/local/programs: program -> Debian package."""
    text = PROGRAMS_FILE.read_text() if text is None else text
    out = {}
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if words:
            assert len(words) == 2, f"deploy/local/programs: {line!r} is not `program package`"
            out[words[0]] = words[1]
    return out


# ------------------------------------------------------------------------- Python


@dataclass
class Module:
    name: str
    path: Path
    tree: ast.Module
    parents: dict[ast.AST, ast.AST]

    def where(self, node: ast.AST) -> str:
        return f"{self.path.relative_to(REPO)}:{getattr(node, 'lineno', 0)}"


def which_literal(call: ast.Call) -> str | None:
    """The program of `shutil.which("name")` (or a bare `which("name")`), else None."""
    func = call.func
    name = (
        func.attr
        if isinstance(func, ast.Attribute)
        and isinstance(func.value, ast.Name)
        and func.value.id == "shutil"
        else func.id
        if isinstance(func, ast.Name)
        else None
    )
    if name != "which" or not call.args:
        return None
    first = call.args[0]
    return first.value if isinstance(first, ast.Constant) and isinstance(first.value, str) else None


class Scanner:
    """Finds every process a set of modules starts, and what program each one is."""

    def __init__(self, modules: dict[str, Module]) -> None:
        self.modules = modules
        self._seen: set[tuple[str, int, int]] = set()

    @classmethod
    def of_tree(cls, roots: tuple[str, ...] = SCANNED) -> Scanner:
        modules = {}
        for root in roots:
            for path in sorted((REPO / root).rglob("*.py")):
                if ".venv" in path.parts:
                    continue
                name = ".".join(path.relative_to(REPO).with_suffix("").parts)
                modules[name] = parse(name, path, path.read_text())
        return cls(modules)

    @classmethod
    def of_source(cls, source: str, name: str = "snippet") -> Scanner:
        path = REPO / "tests" / f"{name}.py"
        return cls({name: parse(name, path, source)})

    def programs(self) -> Iterator[Program]:
        for module in self.modules.values():
            for node in ast.walk(module.tree):
                if isinstance(node, ast.Call):
                    argv = spawned_argv(node)
                    if argv is not None:
                        yield from self.resolve_argv(argv, module, node)
                    elif (looked_up := which_literal(node)) is not None:
                        # shutil.which("chromedriver"): found to be started by a library
                        # (selenium starts chromedriver, which starts chromium).
                        yield Program("system", looked_up, module.where(node))

    # argv: a list-valued expression; its first element is the program.
    def resolve_argv(self, expr: ast.expr, module: Module, at: ast.AST) -> Iterator[Program]:
        key = (module.name, getattr(expr, "lineno", 0), getattr(expr, "col_offset", 0))
        if key in self._seen:  # a wrapper calling itself, or two names for one value
            return
        self._seen.add(key)
        try:
            if isinstance(expr, ast.List | ast.Tuple):
                if not expr.elts:
                    yield Program("unknown", "an empty argv", module.where(expr))
                    return
                head = expr.elts[0]
                if isinstance(head, ast.Starred):
                    yield from self.resolve_argv(head.value, module, head)
                    return
                yield from self.resolve_head(head, module, expr.elts[1:])
            elif isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Add):
                yield from self.resolve_argv(expr.left, module, expr)
            elif isinstance(expr, ast.Constant) and isinstance(expr.value, str):
                # A command line as one string: its first word.
                words = shlex.split(expr.value)
                yield from self.classify_literal(words[0] if words else "", module, expr)
            elif isinstance(expr, ast.Subscript):
                yield from self.resolve_collection(expr.value, module)
            elif isinstance(expr, ast.Name):
                for value, owner in self.values_of(expr, module):
                    yield from self.resolve_argv(value, owner, value)
            else:
                yield Program("unknown", ast.unparse(expr), module.where(expr))
        finally:
            self._seen.discard(key)

    def resolve_collection(self, expr: ast.expr, module: Module) -> Iterator[Program]:
        """`EXTERNAL[name]`: every argv the dict (or list) holds."""
        if isinstance(expr, ast.Dict):
            for value in expr.values:
                yield from self.resolve_argv(value, module, value)
        elif isinstance(expr, ast.List | ast.Tuple):
            for value in expr.elts:
                yield from self.resolve_argv(value, module, value)
        elif isinstance(expr, ast.Name):
            for value, owner in self.values_of(expr, module):
                yield from self.resolve_collection(value, owner)
        else:
            yield Program("unknown", ast.unparse(expr), module.where(expr))

    def resolve_head(
        self, head: ast.expr, module: Module, rest: list[ast.expr]
    ) -> Iterator[Program]:
        if isinstance(head, ast.Constant) and isinstance(head.value, str):
            yield from self.classify_literal(head.value, module, head)
            return
        if isinstance(head, ast.Name) and not is_path_expression(head):
            values = list(self.values_of(head, module))
            if values:
                for value, owner in values:
                    yield from self.resolve_head(value, owner, rest)
                return
        path = self.path_of(head, module)
        if path is None:
            yield Program("unknown", ast.unparse(head), module.where(head))
        else:
            yield path

    def classify_literal(self, word: str, module: Module, node: ast.AST) -> Iterator[Program]:
        if "/" in word:
            # A path written out: a script of the repository, or a system path.
            if (REPO / word).is_file():
                yield Program("repo", word, module.where(node))
            else:
                yield Program("system", Path(word).name, module.where(node))
        else:
            yield Program("system", word, module.where(node))

    def path_of(self, expr: ast.expr, module: Module) -> Program | None:
        """A path built in code: on the interpreter's bin/ (venv) or under the repository."""
        names, strings = self.path_parts(expr, module, depth=0)
        if names is None:
            return None
        where = module.where(expr)
        if "sys.executable" in names or "VENV_BIN" in names or "BIN" in names:
            # `Path(sys.executable).with_name("gunicorn")`, `BIN / "py-spy"`: the last name.
            return Program("venv", strings[-1] if strings else "python", where)
        if ".venv" in strings:
            after = strings[strings.index(".venv") + 1 :]
            return Program("venv", after[-1] if after else "python", where)
        if strings:
            relative = "/".join(strings)
            if (REPO / relative).is_file():
                return Program("repo", relative, where)
        return None

    def path_parts(
        self, expr: ast.expr, module: Module, depth: int
    ) -> tuple[set[str] | None, list[str]]:
        """The names and string constants a path expression is made of, in order."""
        if depth > 8:
            return None, []
        names: set[str] = set()
        strings: list[str] = []
        for node in in_order(expr):
            if isinstance(node, ast.Attribute) and ast.unparse(node) == "sys.executable":
                names.add("sys.executable")
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                strings.extend(part for part in node.value.split("/") if part)
            elif isinstance(node, ast.Name):
                names.add(node.id)
                for value, owner in self.values_of(node, module):
                    more_names, more = self.path_parts(value, owner, depth + 1)
                    if more_names is not None:
                        names |= more_names
                        strings.extend(more)
        return names, strings

    def values_of(self, name: ast.Name, module: Module) -> Iterator[tuple[ast.expr, Module]]:
        """Every value `name` is given where it is used: locals, module constants, imports,
        and, for a parameter of a function, the argument at each call of that function."""
        function = enclosing_function(name, module)
        if function is not None:
            local = assignments(function, name.id)
            if local:
                yield from ((value, module) for value in local)
                return
            position = parameter_position(function, name.id)
            if position is not None:
                yield from self.arguments_of(function.name, position, name.id)
                return
        found = assignments(module.tree, name.id, top_level=True)
        if found:
            yield from ((value, module) for value in found)
            return
        source = imported_from(module.tree, name.id)
        if source is not None and source[0] in self.modules:
            other = self.modules[source[0]]
            yield from (
                (value, other) for value in assignments(other.tree, source[1], top_level=True)
            )

    def arguments_of(
        self, function: str, position: int, parameter: str
    ) -> Iterator[tuple[ast.expr, Module]]:
        for module in self.modules.values():
            for node in ast.walk(module.tree):
                if not isinstance(node, ast.Call) or callee_name(node).split(".")[-1] != function:
                    continue
                for keyword in node.keywords:
                    if keyword.arg == parameter:
                        yield keyword.value, module
                        break
                else:
                    if position < len(node.args):
                        yield node.args[position], module


def parse(name: str, path: Path, source: str) -> Module:
    tree = ast.parse(source)
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    return Module(name, path, tree, parents)


def in_order(node: ast.AST) -> Iterator[ast.AST]:
    """The node and its descendants in source order (ast.walk goes breadth first)."""
    yield node
    for child in ast.iter_child_nodes(node):
        yield from in_order(child)


def callee_name(call: ast.Call) -> str:
    try:
        return ast.unparse(call.func)
    except Exception:
        return ""


def spawned_argv(call: ast.Call) -> ast.expr | None:
    """The argv of a call that starts a process, or None for any other call."""
    name = callee_name(call)
    short = name.split(".")[-1]
    for runner, index in THREAD_RUNNERS.items():
        if (name == runner or short == runner) and len(call.args) > index + 1:
            inner = ast.unparse(call.args[index])
            if inner in SPAWNERS:
                return call.args[index + 1]
    if name not in SPAWNERS:
        return None
    index = SPAWNERS[name]
    if index == -1:
        return ast.List(elts=list(call.args), ctx=ast.Load(), lineno=call.lineno, col_offset=0)
    for keyword in call.keywords:
        if keyword.arg in ("args", "argv"):
            return keyword.value
    return call.args[index] if index < len(call.args) else None


def enclosing_function(node: ast.AST, module: Module) -> ast.FunctionDef | None:
    current = module.parents.get(node)
    while current is not None:
        if isinstance(current, ast.FunctionDef | ast.AsyncFunctionDef):
            return current  # type: ignore[return-value]
        current = module.parents.get(current)
    return None


def assignments(scope: ast.AST, name: str, top_level: bool = False) -> list[ast.expr]:
    """Values assigned to `name` in a scope (the module's own statements when top_level)."""
    nodes = scope.body if top_level and isinstance(scope, ast.Module) else ast.walk(scope)
    found: list[ast.expr] = []
    for node in nodes:
        targets: list[ast.expr]
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign):
            targets = [node.target]
        else:
            continue
        if node.value is not None and any(
            isinstance(t, ast.Name) and t.id == name for t in targets
        ):
            found.append(node.value)
    return found


def parameter_position(function: ast.FunctionDef, name: str) -> int | None:
    params = [*function.args.posonlyargs, *function.args.args, *function.args.kwonlyargs]
    for i, arg in enumerate(params):
        if arg.arg == name:
            return i
    return None


def imported_from(tree: ast.Module, name: str) -> tuple[str, str] | None:
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                if (alias.asname or alias.name) == name:
                    return node.module, alias.name
    return None


def is_path_expression(name: ast.Name) -> bool:
    return name.id in ("VENV_BIN", "BIN")


# -------------------------------------------------------------------------- shell


def shell_commands(text: str, where: str) -> Iterator[Program]:
    """The programs a shell script starts (its own functions, keywords and builtins aside)."""
    functions = set(re.findall(r"^\s*([\w-]+)\s*\(\)\s*\{", text, re.M))
    # Heredoc bodies are data, comments prose; `pattern)` of a case is no command.
    text = re.sub(r"<<-?\s*'?(\w+)'?([^\n]*)\n.*?\n\1\n", r"\2\n", text, flags=re.S)
    text = re.sub(r"(^|[ \t])#[^\n]*", r"\1", text, flags=re.M)
    # (alternatives may be spaced: `-h | --help)`).
    text = re.sub(r"^(\s*)[\w*.-]+(\s*\|\s*[\w*.-]+)*\)", r"\1", text, flags=re.M)
    text = re.sub(r"\(\((.*?)\)\)", "true", text)  # arithmetic: ((SECONDS >= deadline))
    for line, chunk in logical_lines(text):
        for word in command_words(chunk):
            if word not in functions:
                kind = "path" if "/" in word else "system"
                yield Program(kind, word, f"{where}:{line}")


def logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """(first line number, text) of each logical line: continued by a backslash or a quote."""
    start, buffer = 1, ""
    for number, line in enumerate(text.splitlines(), 1):
        if not buffer:
            start = number
        buffer += line + "\n"
        if line.endswith("\\"):
            continue
        try:
            shlex.split(buffer, comments=False)
        except ValueError:
            continue  # a quote still open: the string goes on
        yield start, buffer.replace("\\\n", " ")
        buffer = ""
    assert not buffer, f"unbalanced quotes from line {start}: {buffer[:200]!r}"


def command_words(text: str) -> Iterator[str]:
    """The first word of each command in a shell text, `$(...)` inside words included."""
    lex = shlex.shlex(text, posix=True, punctuation_chars=PUNCTUATION)
    lex.whitespace, lex.whitespace_split, lex.commenters = " \t\r", True, ""
    expecting, skip_next, after_prefix = True, False, False
    array, previous = False, ""
    try:
        for token in lex:
            for inner in substitutions(token):
                yield from command_words(inner)
            array, previous = array or (previous.endswith("=") and token.startswith("(")), token
            if array:  # NAMES=(a b c): words, no commands
                array = ")" not in token
                expecting = False
            elif token and set(token) <= set(PUNCTUATION):
                if token in REDIRECTIONS:
                    skip_next = True  # the file name
                elif token == ")":
                    expecting = False
                else:  # a newline, ; | & && || ( or a run of them
                    expecting, after_prefix, skip_next = True, False, False
            elif skip_next:
                skip_next = False
            elif not expecting:
                continue
            elif re.fullmatch(r"\w+=.*", token, re.S) or token in LEADING_KEYWORDS:
                continue  # an assignment before the command, or `if`, `then`, `!`
            elif token in SHELL_PREFIXES:
                after_prefix = True
                if token not in ("exec", "command"):
                    yield token  # setsid, env, nohup: programs themselves
            elif after_prefix and token.startswith("-"):
                continue  # the prefix's own option
            else:
                expecting = after_prefix = False
                # `"$PYTHON"`: a program named by a variable; its default is a word elsewhere.
                if token not in SHELL_WORDS and re.fullmatch(r"[\w./+-]+", token):
                    yield token
    except ValueError:
        raise AssertionError(f"unbalanced quotes in shell text: {text[:200]!r}") from None


def substitutions(word: str) -> Iterator[str]:
    """The commands inside each `$(...)` of a word (balanced: nested ones are found inside).

    Backticks are not read: inside double quotes they are often escaped SQL quoting."""
    i = word.find("$(")
    while i != -1:
        depth, j = 0, i + 1
        while j < len(word):
            depth += {"(": 1, ")": -1}.get(word[j], 0)
            if depth == 0:
                break
            j += 1
        yield word[i + 2 : j]
        i = word.find("$(", j)


def readme_command_blocks() -> Iterator[tuple[str, str]]:
    """The README's marked shell blocks (test_readme runs every one of them)."""
    text = (REPO / "README.md").read_text()
    pattern = re.compile(r"<!-- test: ([\w-]+) -->\n```(sh|bash|shell)\n(.*?)```", re.S)
    for match in pattern.finditer(text):
        line = text.count("\n", 0, match.start()) + 2
        yield f"README.md:{line} ({match.group(1)})", match.group(3)


# ------------------------------------------------------------------- the whole tree


def everything_run() -> list[Program]:
    """Every program tests/ and bench/ start, directly or through the scripts they run."""
    found = list(Scanner.of_tree().programs())
    scripts = {p.name for p in found if p.kind == "repo"}
    scripts |= {str(p.relative_to(REPO)) for p in (REPO / "bench").rglob("*.sh")}
    done: set[str] = set()
    while scripts - done:
        script = sorted(scripts - done)[0]
        done.add(script)
        for program in shell_commands((REPO / script).read_text(), script):
            if program.kind == "path":
                relative = program.name.removeprefix("./")
                if (REPO / relative).is_file() and not relative.startswith(".venv/"):
                    scripts.add(relative)
                    continue
                venv = re.fullmatch(r"(?:\./)?\.venv/bin/([\w.+-]+)", program.name)
                kind, name = ("venv", venv.group(1)) if venv else ("system", program.name)
                program = Program(kind, name, program.where)
            found.append(program)
    for where, text in readme_command_blocks():
        for program in shell_commands(text, where):
            venv = re.fullmatch(r"(?:\./)?\.venv/bin/([\w.+-]+)", program.name)
            if venv:
                program = Program("venv", venv.group(1), program.where)
            elif program.kind == "path":
                relative = program.name.removeprefix("./")
                kind = "repo" if (REPO / relative).is_file() else "system"
                program = Program(kind, relative, program.where)
            found.append(program)
    return found


DECLARED = re.compile(r"#\s*runs:\s*((?:(?:venv|system):[\w.+-]+[,\s]*)+)")


def declared_programs(where: str) -> list[Program]:
    """A spawn whose argv is built at run time names its programs in a comment at most two
    lines above its argv (`# runs: venv:jobline, system:psql`), and they are checked like the rest:
    e.g. the console scripts of a virtualenv that a test makes itself."""
    path, _, line = where.rpartition(":")
    if not (REPO / path).is_file() or not line.isdigit():
        return []
    lines = (REPO / path).read_text().splitlines()
    number = int(line)
    # The argv's line, the call's, or the comment's line above the call.
    for text in lines[max(0, number - 3) : number]:
        if match := DECLARED.search(text):
            return [
                Program(kind, name, where)
                for kind, name in re.findall(r"(venv|system):([\w.+-]+)", match.group(1))
            ]
    return []


def problems(found: list[Program], listed: dict[str, str], venv_bin: Path) -> list[str]:
    """What is wrong with what the tree runs: unlisted, absent from the venv, unreadable."""
    out = []
    expanded: list[Program] = []
    for program in found:
        declared = declared_programs(program.where) if program.kind == "unknown" else []
        expanded.extend(declared or [program])
    for program in expanded:
        if program.kind == "unknown":
            out.append(
                f"{program.where}: cannot tell which program `{program.name}` is; "
                "start it with a literal argv or a module constant"
            )
        elif program.kind == "system" and program.name not in listed:
            out.append(
                f"{program.where}: runs `{program.name}`, which is not on deploy/local/programs "
                "(add a line: program, Debian package)"
            )
        elif program.kind == "venv" and not (venv_bin / program.name).exists():
            out.append(
                f"{program.where}: runs `{program.name}` from the venv, which has none "
                "(add its package to pyproject.toml)"
            )
    return out


def test_every_program_tests_and_benchmarks_run_is_listed() -> None:
    found = everything_run()
    assert not problems(found, listed_programs(), VENV_BIN), "\n".join(
        problems(found, listed_programs(), VENV_BIN)
    )
    # The scan sees the programs issue 12 named, so it is looking in the right places.
    system = {p.name for p in found if p.kind == "system"}
    assert {"wrk", "rabbitmqctl", "mariadb-admin", "git", "curl", "bash"} <= system, system
    venv = {p.name for p in found if p.kind == "venv"}
    assert {"jobline", "gunicorn", "celery", "uvicorn", "py-spy", "python"} <= venv, venv


def test_every_listed_program_is_run_somewhere() -> None:
    """No stale lines: each program on the list is started by tests/, bench/ or a script."""
    run = {p.name for p in everything_run() if p.kind == "system"}
    stale = set(listed_programs()) - run
    assert not stale, f"on deploy/local/programs but run by nothing: {sorted(stale)}"


@pytest.mark.parametrize(
    ("source", "program"),
    [
        ('import shutil\nDRIVER = shutil.which("geckodriver")\n', "geckodriver"),
        ('import subprocess\nsubprocess.run(["htop", "-d", "1"])\n', "htop"),
        ('import subprocess\nsubprocess.Popen("jq .id", shell=True)\n', "jq"),
        (
            "import subprocess\nTOOL = 'ab'\ndef go():\n    subprocess.check_call([TOOL, '-n', '1'])\n",
            "ab",
        ),
        (
            "import asyncio, subprocess\n"
            "async def go():\n    await asyncio.to_thread(subprocess.run, ['nc', '-z', 'x', '1'])\n",
            "nc",
        ),
        (
            "import asyncio\nasync def go():\n    await asyncio.create_subprocess_exec('socat', '-')\n",
            "socat",
        ),
        (
            "import subprocess\n"
            "def spawn(name, argv):\n    return subprocess.Popen(argv)\n"
            "def main():\n    cmd = ['vegeta', 'attack']\n    spawn('load', cmd)\n",
            "vegeta",
        ),
        (
            "import subprocess, sys\n"
            "EXTERNAL = {'a': [sys.executable, '-m', 'x'], 'b': ['k6', 'run']}\n"
            "def go(name):\n    subprocess.run([*EXTERNAL[name], '--quick'])\n",
            "k6",
        ),
    ],
)
def test_a_program_not_on_the_list_fails(source: str, program: str) -> None:
    found = list(Scanner.of_source(source).programs())
    out = problems(found, listed_programs(), VENV_BIN)
    assert any(f"runs `{program}`, which is not on deploy/local/programs" in p for p in out), out
    # ... and the same program, once listed, passes.
    assert not problems(found, {**listed_programs(), program: "some-package"}, VENV_BIN)


def test_a_venv_script_needs_no_line_but_must_be_installed() -> None:
    source = (
        "import subprocess, sys\nfrom pathlib import Path\n"
        "BIN = Path(sys.executable).parent\n"
        "subprocess.run([str(BIN / 'jobline'), 'migrate'])\n"
        "subprocess.run([sys.executable, '-m', 'bench'])\n"
        "subprocess.run([str(Path(sys.executable).with_name('no-such-tool'))])\n"
    )
    found = list(Scanner.of_source(source).programs())
    assert [(p.kind, p.name) for p in found] == [
        ("venv", "jobline"),
        ("venv", "python"),
        ("venv", "no-such-tool"),
    ]
    (only,) = problems(found, {}, VENV_BIN)
    assert "runs `no-such-tool` from the venv, which has none" in only


def test_an_argv_the_scan_cannot_follow_fails() -> None:
    source = "import subprocess\ndef go(make):\n    subprocess.run(make())\n"
    out = problems(list(Scanner.of_source(source).programs()), {}, VENV_BIN)
    assert len(out) == 1 and "cannot tell which program `make()` is" in out[0], out


def test_a_shell_line_names_its_programs() -> None:
    script = (
        "#!/usr/bin/env bash\n"
        "say() { printf '%s\\n' \"$*\"; }\n"
        "X=1 jq -r .id < f | sort -u  # a comment naming notaprogram\n"
        "if ! curl -sf http://x; then say no; fi\n"
        "JOB=$(python3 -c 'print(1)')\n"
        "setsid scripts/dev > out 2>&1 &\n"
        "exec .venv/bin/jobline dev\n"
    )
    names = [p.name for p in shell_commands(script, "x.sh")]
    assert names == ["jq", "sort", "curl", "python3", "setsid", "scripts/dev", ".venv/bin/jobline"]


def test_the_list_reads_as_program_and_package() -> None:
    assert listed_programs("# c\nwrk  wrk  # load\n\ncurl curl\n") == {"wrk": "wrk", "curl": "curl"}
    with pytest.raises(AssertionError, match="is not `program package`"):
        listed_programs("wrk\n")


def test_a_declared_program_is_checked_like_the_rest(tmp_path: Path) -> None:
    """`# runs:` names what a run-time argv starts; an unlisted program so named still fails."""
    source = REPO / "tests" / "integration" / "test_as_dependency.py"
    declared = [p for p in everything_run() if p.where.startswith(str(source.relative_to(REPO)))]
    assert declared, "the scan should see test_as_dependency's spawns"
    assert not problems(declared, listed_programs(), VENV_BIN)
    where = next(p.where for p in declared if p.kind == "unknown")
    fake = [Program("unknown", "argv", where)]
    named = declared_programs(where)
    assert named and all(p.kind == "venv" for p in named)
    assert problems(fake, listed_programs(), tmp_path), "a venv without those scripts must fail"
