from __future__ import annotations

import pytest

from charrnn import rundir
from charrnn.errors import CharRNNError
from charrnn.rundir import read_metrics

from conftest import run_cli


def test_plot_writes_a_png_of_a_run(trained_run, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "c.png"
    result = run_cli("plot", trained_run, "--out", out)
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5000
    again = run_cli("plot", trained_run, "--out", out)  # an existing file is kept unless --force
    assert again.exit_code == 1 and "exists: --force replaces it" in again.output
    assert run_cli("plot", trained_run, "--out", out, "--force").exit_code == 0


def test_metrics_reading(trained_run):
    metrics = trained_run / rundir.METRICS
    assert [r["step"] for r in read_metrics(trained_run)] == [10, 20]
    metrics.write_text(metrics.read_text() + '{"step": 3')  # a line torn by a crash
    assert len(read_metrics(trained_run)) == 2
    metrics.write_text("not json\n" + metrics.read_text())
    with pytest.raises(CharRNNError, match="line 1 is not JSON"):
        read_metrics(trained_run)
