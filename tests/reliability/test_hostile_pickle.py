"""Controls for the hostile_model cases of the matrix: the hostile pickle is live.

The matrix asserts that a marker file never appears when revcli is handed a pickle whose
unpickling creates it. That proves something only if unpickling it really does create the marker,
and if ``--trust`` (the one way to load such a file on purpose) really loads it. Both are checked
here, so a broken fixture cannot make the matrix pass.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from revcli.cli import app
from tests.reliability import setups as S
from tests.workspaces import seed_store

pytestmark = pytest.mark.reliability


def test_unpickling_the_hostile_file_runs_code(tmp_path: Path) -> None:
    import joblib

    marker = tmp_path / S.MARKER
    path = tmp_path / "model.joblib"
    S.write_evil(path, marker)
    assert not marker.exists()
    joblib.load(path)
    assert marker.exists()


def test_trust_does_load_it(tmp_path: Path, isolated: Path) -> None:
    seed_store(isolated)
    data = tmp_path / "t.parquet"
    S.frame().to_parquet(data, index=False)
    marker = tmp_path / S.MARKER
    path = tmp_path / "evil" / "model.joblib"
    S.write_evil(path, marker)
    result = CliRunner().invoke(app, ["evaluate", "--model", str(path), "--data", str(data),
                                      "--trust", "--no-track", "--no-plots"])
    assert marker.exists(), result.output  # --trust unpickles: the code ran
    assert result.exit_code == 2, result.output  # ... and the result is refused as not a model
