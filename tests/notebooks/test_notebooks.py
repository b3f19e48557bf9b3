"""The notebooks under notebooks/: committed executed, with their outputs (saved on the real
RouterBench traces when ../shared was present), and still running top to bottom, in order
(03 loads the bundle 02 writes), headless with nbclient and the venv's python kernel."""

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import REPO, ROUTERBENCH

NOTEBOOK_DIR = REPO / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
SAMPLE = REPO / "data" / "sample_traces.jsonl.gz"
CELL_TIMEOUT_S = 600  # a loaded 2-core machine trains the small router in well under this
SMALL_REQUESTS = 200  # of the shipped sample: 100 to train on, 100 held out
# An absolute path of the machine that saved the outputs (a home, a temporary folder).
MACHINE_PATH = re.compile(r"(/home/|/Users/|/tmp/|/private/|[A-Z]:\\\\)")


def test_there_are_at_least_three_notebooks() -> None:
    assert len(NOTEBOOKS) >= 3


def _text_outputs(cell: nbformat.NotebookNode) -> str:
    parts = []
    for out in cell.outputs:
        parts.append(out.get("text", ""))
        parts += [v for k, v in out.get("data", {}).items() if k.startswith("text/")]
    return "".join(p if isinstance(p, str) else "".join(p) for p in parts)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_with_its_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    # Every code cell ran, once, top to bottom in one kernel, without an error.
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1))
    assert not [o for c in code for o in c.outputs if o.output_type == "error"]
    assert all(c.outputs for c in code)  # each cell shows its result
    for cell in code:
        assert not MACHINE_PATH.search(_text_outputs(cell)), cell.source[:60]
        assert "execution" not in cell.metadata  # no timing noise in the diff
    # Every result is followed by a comment on it, in words.
    kinds = [c.cell_type for c in nb.cells]
    assert kinds[0] == "markdown" and kinds[-1] == "markdown"


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, nbformat.NotebookNode]:
    """Each notebook run in order in a fresh kernel, on the shipped sample (a seeded subsample
    of it), writing into a temporary folder. Without ../shared that is what the notebooks pick
    by themselves; with it they are pointed at the sample, to stay quick."""
    out = tmp_path_factory.mktemp("notebooks_out")
    env = {"ACO_NOTEBOOK_OUT": str(out), "ACO_NOTEBOOK_MAX_REQUESTS": str(SMALL_REQUESTS),
           "MPLBACKEND": "Agg"}
    if (ROUTERBENCH / "traces.jsonl.gz").exists():
        env["ACO_NOTEBOOK_TRACES"] = str(SAMPLE)
    with pytest.MonkeyPatch.context() as mp:  # the kernel inherits this process's environment
        for key, value in env.items():
            mp.setenv(key, value)
        mp.delenv("ACO_NOTEBOOK_CONFIG", raising=False)
        results = {}
        for path in NOTEBOOKS:
            nb = nbformat.read(path, as_version=4)
            NotebookClient(nb, kernel_name="python3", timeout=CELL_TIMEOUT_S,
                           resources={"metadata": {"path": str(NOTEBOOK_DIR)}}).execute()
            results[path.name] = nb
    return results


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_headless_on_the_sample(path: Path, executed) -> None:
    nb = executed[path.name]
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert not [o for c in code for o in c.outputs if o.output_type == "error"]
    assert "sample" in _text_outputs(code[0])  # the data it ran on, named


def test_the_runtime_notebook_uses_the_bundle_the_training_notebook_wrote(executed) -> None:
    first = _text_outputs([c for c in executed["03_use_the_runtime.ipynb"].cells
                           if c.cell_type == "code"][0])
    assert "router_bundle_v1.pkl" in first
    runs = _text_outputs([c for c in executed["03_use_the_runtime.ipynb"].cells
                          if c.cell_type == "code"][2])
    assert "in mode 'bundle'" in runs
