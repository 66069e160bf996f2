from __future__ import annotations

import pytest

from charrnn import checkpoint as ckpt
from charrnn.curves import main, read_metrics
from charrnn.errors import CharRNNError


def test_curves_png_from_a_run(trained_run, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "c.png"
    main([str(trained_run), "--out", str(out)])
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5000


def test_metrics_reading(trained_run):
    metrics = trained_run / ckpt.METRICS
    assert [r["step"] for r in read_metrics(trained_run)] == [10, 20]
    metrics.write_text(metrics.read_text() + '{"step": 3')  # a line torn by a crash
    assert len(read_metrics(trained_run)) == 2
    metrics.write_text("not json\n" + metrics.read_text())
    with pytest.raises(CharRNNError, match="line 1 is not JSON"):
        read_metrics(trained_run)
