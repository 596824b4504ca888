"""README.md and docs/ tell the truth: every command in them is run, every path and Python name they mention exists.

"Run" means, per kind of command: an entry point (`python -m vae_lab.train|evaluate|sample ...`) is composed by Hydra
with exactly its overrides (what `--cfg job` does), in-process; the report's and the benchmarks' options are parsed by
their own argument parsers (the benchmarks' are looked up in their source); a `make` target exists in the Makefile
(and `make train ARGS=...` composes); a tool (`tensorboard`) is installed; a script is valid bash. A command of any
other kind fails the test, so a new kind of command cannot go in untested.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import re
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser

from tests.conftest import CONF_DIR, REPO_ROOT

DOCS = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
CONFIG_OF = {"vae_lab.train": "train", "vae_lab.evaluate": "eval", "vae_lab.sample": "sample"}
PYTHONS = ("python", "python3")  # also .venv/bin/python, ../.venv/bin/python, /some/venv/bin/python
PLACEHOLDER = re.compile(r"<[^<>]+>")


@dataclass
class Command:
    doc: str
    line: str
    words: list[str]
    cwd: Path = REPO_ROOT
    env: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.doc}: {' '.join(self.words)}"[:90]


def commands() -> list[Command]:
    """Every command of every ```bash block, split at `&&`, with `VAR=value` prefixes and `cd DIR` applied."""
    found = []
    for doc in DOCS:
        for block in re.findall(r"```bash\n(.*?)```", doc.read_text(), flags=re.DOTALL):
            for line in block.splitlines():
                words, cwd = shlex.split(line, comments=True), REPO_ROOT
                while words:
                    end = words.index("&&") if "&&" in words else len(words)
                    part_words, words = words[:end], words[end + 1:]
                    env = {}
                    while part_words and re.fullmatch(r"[A-Z_]+=\S*", part_words[0]):
                        key, value = part_words.pop(0).split("=", 1)
                        env[key] = value
                    if not part_words:
                        continue
                    if part_words[0] == "cd":
                        cwd = (cwd / part_words[1]).resolve()
                        continue
                    found.append(Command(doc.relative_to(REPO_ROOT).as_posix(), line, part_words, cwd, env))
    return found


def fill(word: str) -> str:
    """A placeholder like <run dir> or <date> becomes a plain value; $PWD the repository root."""
    return PLACEHOLDER.sub("x", word).replace("$PWD", str(REPO_ROOT))


def one_job(overrides: list[str]) -> list[str]:
    """A sweep's overrides (`model.latent_dim=2,10,50`) as the overrides of its first job, through Hydra's parser."""
    jobs = []
    for override in OverridesParser.create().parse_overrides(overrides):
        if override.is_sweep_override():
            first = next(iter(override.sweep_string_iterator()))
            jobs.append(f"{override.get_key_element()}={first}")
        else:
            jobs.append(override.input_line)
    return jobs


def compose_entry_point(module: str, overrides: list[str]) -> None:
    overrides = [fill(word) for word in overrides if word not in ("-m", "--multirun")]
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose(config_name=CONFIG_OF[module], overrides=one_job(overrides), return_hydra_config=True)
    finally:
        GlobalHydra.instance().clear()
    assert cfg.task_name in ("train", "evaluate", "sample")


class Parsed(Exception):
    def __init__(self, namespace: argparse.Namespace) -> None:
        self.namespace = namespace


def parse_report_arguments(arguments: list[str], monkeypatch: pytest.MonkeyPatch) -> argparse.Namespace:
    """The report's own parser applied to `arguments`, stopping before any folder is read."""
    from vae_lab import report

    original = argparse.ArgumentParser.parse_args

    def parse_then_stop(self: argparse.ArgumentParser, args: list[str] | None = None, namespace: object = None):
        raise Parsed(original(self, args, namespace))

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
    with pytest.raises(Parsed) as parsed:
        report.main([fill(word) for word in arguments])
    return parsed.value.namespace


def check_benchmark(script: Path, arguments: list[str]) -> None:
    """The script exists and defines every option the command gives it."""
    assert script.is_file(), f"{script} does not exist"
    source = script.read_text()
    for option in (word.split("=")[0] for word in arguments if word.startswith("--")):
        assert f'"{option}"' in source, f"{script.name} has no option {option}"


def run_command(command: Command, monkeypatch: pytest.MonkeyPatch) -> None:
    words = command.words
    program = Path(words[0]).name
    if program in PYTHONS and words[1:2] == ["-m"]:
        module, arguments = words[2], words[3:]
        if module in CONFIG_OF:
            return compose_entry_point(module, arguments)
        if module == "vae_lab.report":
            namespace = parse_report_arguments(arguments, monkeypatch)
            assert namespace.folders
            return None
        if module == "venv":
            assert len(arguments) == 1
            return None
        raise AssertionError(f"no test runs `python -m {module}`")
    if program in PYTHONS:
        return check_benchmark(command.cwd / words[1], words[2:])
    if program == "pip" and words[1:3] == ["install", "-r"]:
        assert (command.cwd / words[3]).is_file()
        return None
    if program == "make":
        target, *assignments = words[1:]
        makefile = (REPO_ROOT / "Makefile").read_text()
        assert re.search(rf"^{re.escape(target)}:", makefile, flags=re.MULTILINE), f"the Makefile has no {target}"
        args = [a.split("=", 1)[1] for a in assignments if a.startswith("ARGS=")]
        if target == "train" and args:
            compose_entry_point("vae_lab.train", shlex.split(args[0]))
        if target == "bench" and args:
            check_benchmark(REPO_ROOT / "benchmarks" / "train_speed.py", shlex.split(args[0]))
        return None
    if program == "tensorboard":
        assert words[1] == "--logdir" and importlib.util.find_spec("tensorboard") is not None
        return None
    if program == "bash":
        script = command.cwd / words[1]
        assert script.is_file()
        assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
        return None
    raise AssertionError(f"no test runs this kind of command: {command.line}")


@pytest.mark.parametrize("command", commands(), ids=str)
def test_every_command_in_readme_and_docs_runs(command: Command, monkeypatch: pytest.MonkeyPatch) -> None:
    run_command(command, monkeypatch)


def test_the_checks_catch_a_wrong_command(monkeypatch: pytest.MonkeyPatch) -> None:
    """The checks above refuse what they should: a misspelt key, a missing make target or option, an unknown kind."""
    bad = [["python", "-m", "vae_lab.train", "model.latnt_dim=2"], ["python", "-m", "vae_lab.train", "model=nope"],
           ["make", "no-such-target"], ["python", "benchmarks/levers.py", "--no-such-option"],
           ["python", "-m", "vae_lab.report"], ["rm", "-r", "outputs"]]
    for words in bad:
        with pytest.raises((AssertionError, SystemExit, Exception)):
            run_command(Command("test", " ".join(words), words), monkeypatch)


# ------------------------------------------------------------------------------- paths and Python names that exist
PATH = re.compile(r"(?<![\w./<$~-])((?:src|conf|docs|benchmarks|tests)/[\w./<>{},*-]*[\w/])")
PYTHON_NAME = re.compile(r"(?<![\w./])(vae_lab(?:\.[A-Za-z_]\w*)+)")
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def mentioned(pattern: re.Pattern[str]) -> list[tuple[str, str]]:
    return sorted({(doc.relative_to(REPO_ROOT).as_posix(), match) for doc in DOCS
                   for match in pattern.findall(doc.read_text())})


def existing_prefix(path: str) -> Path:
    """The part of a path before its first placeholder (`conf/callbacks/<name>.yaml` -> conf/callbacks)."""
    parts = []
    for part in path.split("/"):
        if any(mark in part for mark in "<>{}*"):
            break
        parts.append(part)
    return REPO_ROOT.joinpath(*parts)


@pytest.mark.parametrize(("doc", "path"), mentioned(PATH), ids=lambda value: value)
def test_every_path_mentioned_exists(doc: str, path: str) -> None:
    assert existing_prefix(path).exists(), f"{doc} mentions {path}, which does not exist"


@pytest.mark.parametrize(("doc", "link"), mentioned(LINK), ids=lambda value: value)
def test_every_relative_link_leads_to_a_file(doc: str, link: str) -> None:
    if re.match(r"\w+://", link):
        return
    assert (REPO_ROOT / doc).parent.joinpath(link).exists(), f"{doc} links {link}, which does not exist"


def resolve(name: str) -> object:
    """Import the longest module prefix of a dotted name, then follow the rest as attributes."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:end]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[end:]:
            obj = getattr(obj, attribute)
        return obj
    raise ModuleNotFoundError(name)


@pytest.mark.parametrize(("doc", "name"), mentioned(PYTHON_NAME), ids=lambda value: value)
def test_every_python_name_mentioned_imports(doc: str, name: str) -> None:
    try:
        resolve(name)
    except (ImportError, AttributeError) as error:
        raise AssertionError(f"{doc} mentions {name}: {error}") from None


# --------------------------------------------------------------------- the dependency direction docs/design.md states
SRC = REPO_ROOT / "src" / "vae_lab"
LOW = ("vae_lab.networks", "vae_lab.priors", "vae_lab.likelihoods", "vae_lab.posteriors", "vae_lab.objectives")
ENTRY_POINTS = ("vae_lab.train", "vae_lab.evaluate", "vae_lab.sample", "vae_lab.report")


def vae_lab_imports(path: Path) -> set[str]:
    """The vae_lab modules a file imports, outside `if TYPE_CHECKING:` blocks."""
    tree = ast.parse(path.read_text())
    skipped = {id(node) for block in ast.walk(tree) if isinstance(block, ast.If)
               and "TYPE_CHECKING" in ast.unparse(block.test) for node in ast.walk(block)}
    names = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {name for name in names if name == "vae_lab" or name.startswith("vae_lab.")}


def module_files(*modules: str) -> list[Path]:
    files = []
    for module in modules:
        path = SRC.joinpath(*module.split(".")[1:])
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path.with_suffix(".py")]
    return [file for file in files if file.exists()]


def within(name: str, modules: tuple[str, ...]) -> bool:
    return any(name == module or name.startswith(module + ".") for module in modules)


def test_dependencies_point_one_way() -> None:
    for file in module_files(*LOW):
        outside = {n for n in vae_lab_imports(file) if not within(n, (*LOW, "vae_lab.errors"))}
        assert not outside, f"{file.relative_to(REPO_ROOT)} imports {outside}: networks and distributions know torch"
    for file in module_files("vae_lab.data", "vae_lab.callbacks"):
        upward = {n for n in vae_lab_imports(file) if within(n, ("vae_lab.models", *ENTRY_POINTS))}
        assert not upward, f"{file.relative_to(REPO_ROOT)} imports {upward}: data and callbacks know only the contract"
