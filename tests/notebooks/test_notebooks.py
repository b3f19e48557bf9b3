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
MACHINE_PATH = re.compile(r"(/home/|/Users/|/tmp/|/private/|[A-Z]:\\)")


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
    assert _text_outputs(code[0]).startswith("data: ")  # it names the data it ran on
    # Results come with comments in words: at most two code cells in a row, prose at both ends.
    kinds = "".join("c" if c.cell_type == "code" else "m" for c in nb.cells)
    assert kinds[0] == kinds[-1] == "m" and "ccc" not in kinds


def test_the_notebooks_run_in_order_on_the_sample(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each notebook in a fresh kernel, in order, on a seeded subsample of the shipped sample,
    writing into tmp_path. Without ../shared that is what they pick by themselves; with it they
    are pointed at the sample, to stay quick. One test, so that parallel workers (-n 2) never
    run the notebooks twice."""
    # The kernel inherits this process's environment.
    monkeypatch.setenv("ACO_NOTEBOOK_OUT", str(tmp_path))
    monkeypatch.setenv("ACO_NOTEBOOK_MAX_REQUESTS", str(SMALL_REQUESTS))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.delenv("ACO_NOTEBOOK_CONFIG", raising=False)
    if (ROUTERBENCH / "traces.jsonl.gz").exists():
        monkeypatch.setenv("ACO_NOTEBOOK_TRACES", str(SAMPLE))
    else:
        monkeypatch.delenv("ACO_NOTEBOOK_TRACES", raising=False)
    first_outputs = {}
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        NotebookClient(
            nb,
            kernel_name="python3",
            timeout=CELL_TIMEOUT_S,
            resources={"metadata": {"path": str(NOTEBOOK_DIR)}},
        ).execute()
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert not [o for c in code for o in c.outputs if o.output_type == "error"], path.name
        assert all(c.outputs for c in code), path.name
        assert "sample" in _text_outputs(code[0]), path.name  # it names the data it ran on
        first_outputs[path.name] = [_text_outputs(c) for c in code]
    # 03 routes with the bundle 02 wrote, and the optimizer runs in bundle mode.
    runtime = first_outputs["03_use_the_runtime.ipynb"]
    assert str(tmp_path / "router_models" / "router_bundle_v1.pkl") in runtime[0]
    assert "in mode 'bundle'" in "".join(runtime)
