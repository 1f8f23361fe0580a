"""``winnow export-model``: the downloaded file runs through the documented snippet and names
the label the service names."""

from __future__ import annotations

from pathlib import Path

import pytest
from winnow_client import Client
from winnow_client.cli import main as client_main

from bench.onnx_export import snippet
from tests.conftest import ADMIN_KEY, BLUE, RED, png_bytes


def test_export_model_writes_a_file_the_snippet_runs(
    live_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Client(live_url, api_key=ADMIN_KEY) as winnow:
        function = winnow.create_function("colours")
        for seed in range(6):
            winnow.create_sample(function.id, png_bytes(RED, seed=seed), "red")
            winnow.create_sample(function.id, png_bytes(BLUE, seed=seed), "blue")
        winnow.train(function.id)
        probe = tmp_path / "probe.png"
        probe.write_bytes(png_bytes(BLUE, seed=77))
        served = winnow.invoke(function.id, probe.read_bytes(), capture=False)
    connection = ["--url", live_url, "--key", ADMIN_KEY]
    out = tmp_path / "colours.onnx"

    assert client_main(["export-model", "--function", "colours", str(out), *connection]) == 0
    assert "colours (deployed): wrote" in capsys.readouterr().err
    assert out.stat().st_size > 0 and not out.with_name("colours.onnx.partial").exists()
    snippet().main(str(out), [str(probe)])
    assert capsys.readouterr().out.startswith(f"{probe}: {served.label_name} (")

    missing = ["export-model", "--function", "colours", "--version", "9", str(out), *connection]
    assert client_main(missing) == 1
    assert "404" in capsys.readouterr().err
