"""README.md works as written: every ```sh and ```python block, in order, after `make demo`.

In a temporary copy of the repository's README.md, Makefile and examples/, with small samples
written by the simulator at data/'s paths (the shipped ones would take minutes to train on),
the commands of the Makefile's `demo` target run first, then every block of the README in real
subprocesses: `sh` blocks with bash (`set -e`: the first failing line fails the block), after
the activate step once the README has said it, and `python` blocks with this interpreter. A
failure names the block (its first line in README.md) and shows its output.

Needs the lab (the demo trains a router) and bash; about a minute. `.venv` in the copy is this
interpreter's virtualenv (a link), or a stand-in whose `bin/` holds its console scripts.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from aco_lab.simulate.generate import write_simulated_traces

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
MAKEFILE = REPO / "Makefile"
ACTIVATE = ". .venv/bin/activate"
RUN_LANGUAGES = ("sh", "python")
SAMPLE_SEED = 20260101  # data/README.md's seed
SAMPLE_REQUESTS = {"counterfactual": 400, "logs": 300}  # small: the demo trains in seconds
COMMAND = re.compile(r"(?:\$ )?(aco|aco-lab)\s")
needs_bash = pytest.mark.skipif(shutil.which("bash") is None, reason="runs the README with bash")


@dataclass(frozen=True)
class Block:
    """A fenced code block of README.md."""

    language: str
    line: int  # 1-based line of its opening fence
    code: str

    @property
    def name(self) -> str:
        first = self.code.strip().splitlines()[0] if self.code.strip() else ""
        return f"README.md:{self.line} ({self.language}: {first[:60]})"


def read_blocks(text: str) -> tuple[list[Block], list[tuple[int, str]]]:
    """The fenced blocks, and the aco / aco-lab command lines outside `sh` blocks (unchecked)."""
    blocks, loose = [], []
    fence: tuple[str, int, list[str]] | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        if fence is None and line.startswith("```"):
            fence = (line[3:].strip(), number, [])
        elif fence is not None and line.startswith("```"):
            blocks.append(Block(fence[0], fence[1], "\n".join(fence[2]) + "\n"))
            fence = None
        elif fence is not None:
            fence[2].append(line)
            if fence[0] != "sh" and COMMAND.match(line.strip()):
                loose.append((number, line))
        elif COMMAND.match(line.strip()):
            loose.append((number, line))
    assert fence is None, f"README.md:{fence[1]}: a code block is never closed"
    return blocks, loose


def demo_commands(makefile: str) -> list[str]:
    """The recipe of the Makefile's `demo` target, its variables filled in."""
    variables = dict(re.findall(r"^(\w+)\s*[:?]?=\s*(.*?)\s*$", makefile, re.MULTILINE))
    recipe = re.search(r"^demo:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE).group(1)
    lines = recipe.replace("\\\n", " ").splitlines()
    commands = []
    for line in lines:
        command = line.strip()
        for _ in range(3):  # variables that name variables
            command = re.sub(r"\$\((\w+)\)", lambda m: variables[m.group(1)], command)
        commands.append(command)
    return commands


def _venv(root: Path) -> None:
    """`.venv` in the copy: this interpreter's virtualenv, else a stand-in with its scripts."""
    prefix = Path(sys.prefix)
    if (prefix / "pyvenv.cfg").exists() and (prefix / "bin" / "activate").exists():
        (root / ".venv").symlink_to(prefix, target_is_directory=True)
        return
    bin_dir = root / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    for script in ("aco", "aco-lab"):
        (bin_dir / script).symlink_to(Path(sys.executable).with_name(script))
    (bin_dir / "activate").write_text(f'export PATH="{bin_dir}:$PATH"\n', encoding="utf-8")


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of what the README uses, with small samples at the shipped samples' paths."""
    root = tmp_path_factory.mktemp("clone")
    for name in ("README.md", "Makefile"):
        shutil.copy(REPO / name, root / name)
    shutil.copytree(REPO / "examples", root / "examples")
    (root / "data").mkdir()
    for mode, n in SAMPLE_REQUESTS.items():
        name = "sample_traces.jsonl.gz" if mode == "counterfactual" else "sample_logs.jsonl.gz"
        write_simulated_traces(root / "data" / name, n, seed=SAMPLE_SEED, mode=mode)
    _venv(root)
    return root


def _run(args: list[str], cwd: Path, what: str, stdin: str | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    done = subprocess.run(
        args, cwd=cwd, env=env, input=stdin, capture_output=True, text=True, timeout=600
    )
    output = done.stdout + done.stderr
    if done.returncode != 0:
        pytest.fail(f"{what} failed (exit {done.returncode}):\n{output[-4000:]}", pytrace=False)
    return output


def test_every_command_line_of_the_readme_is_in_a_checked_block() -> None:
    blocks, loose = read_blocks(README.read_text(encoding="utf-8"))
    assert not loose, "aco commands outside ```sh blocks are never run: " + "; ".join(
        f"README.md:{n}: {line.strip()}" for n, line in loose
    )
    languages = {block.language for block in blocks}
    assert {"sh", "python"} <= languages, languages
    activations = [b for b in blocks for line in b.code.splitlines() if line.strip() == ACTIVATE]
    assert len(activations) == 1, f"the README says `{ACTIVATE}` once, before the commands"


def test_the_demo_commands_are_the_makefiles() -> None:
    commands = demo_commands(MAKEFILE.read_text(encoding="utf-8"))
    assert commands[0] == "rm -rf out"
    assert any(c.startswith(".venv/bin/aco-lab train out/split/train.jsonl.gz") for c in commands)
    assert all("$(" not in c for c in commands)


@needs_bash
def test_the_readme_runs_as_written_after_the_demo(checkout: Path) -> None:
    for command in demo_commands((checkout / "Makefile").read_text(encoding="utf-8")):
        _run(["bash", "-e", "-c", command], checkout, f"make demo: {command}")
    assert (checkout / "out" / "router_models" / "router_bundle_v1.pkl").exists()
    blocks, _ = read_blocks((checkout / "README.md").read_text(encoding="utf-8"))
    activated = False
    for block in (b for b in blocks if b.language in RUN_LANGUAGES):
        if block.language == "python":
            _run([sys.executable, "-"], checkout, block.name, stdin=block.code)
            continue
        prefix = ACTIVATE + "\n" if activated else ""
        _run(["bash", "-e", "-o", "pipefail", "-c", prefix + block.code], checkout, block.name)
        activated = activated or ACTIVATE in block.code.splitlines()
    bundle = checkout / "router_models" / "router_bundle_v1.pkl"
    assert bundle.exists() and (checkout / "evaluation" / "report.html").exists()
