"""The notebooks under notebooks/: committed without outputs, and each runs headless, top to
bottom, on small simulated data (nbclient with the venv's python kernel)."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.aco_lab.eval_case import eval_case  # noqa: F401 - the fixture

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))
CELL_TIMEOUT_S = 600  # a loaded 2-core machine trains the small router in well under this
SMALL_REQUESTS = 120


def test_there_are_at_least_three_notebooks() -> None:
    assert len(NOTEBOOKS) >= 3


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_without_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, cell.source[:60]


@pytest.fixture(scope="module")
def small_traces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from aco_lab.simulate.generate import write_simulated_traces

    path = tmp_path_factory.mktemp("nb_data") / "sim.jsonl.gz"
    write_simulated_traces(path, SMALL_REQUESTS, seed=9)
    return path


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_headless(path: Path, small_traces: Path, eval_case, tmp_path,  # noqa: F811
                                monkeypatch: pytest.MonkeyPatch) -> None:
    # The kernel inherits this process's environment: point the notebooks at small data.
    monkeypatch.setenv("ACO_NOTEBOOK_TRACES", str(small_traces))
    monkeypatch.setenv("ACO_NOTEBOOK_WORK", str(tmp_path / "work"))
    monkeypatch.setenv("ACO_NOTEBOOK_BUNDLE", str(eval_case.bundle))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, kernel_name="python3", timeout=CELL_TIMEOUT_S,
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert not errors
    assert any(c.outputs for c in nb.cells if c.cell_type == "code")
