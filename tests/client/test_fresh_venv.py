"""``pip install ./client`` in a fresh venv: the client imports and runs without PyTorch (or any
server package), and its dependencies stay few. Prints the installed packages with their sizes
(the table in docs/client.md)."""

import json
import shutil
import subprocess
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# What pip itself brings into a venv; everything else was installed by `pip install ./client`.
VENV_BASE = {"pip", "setuptools", "wheel"}
EXPECTED = {"winnow-client", "httpx", "httpcore", "anyio", "idna", "certifi", "h11", "tqdm"}
# Small helpers those pull in depending on the Python version (sniffio, typing-extensions, ...).
TOLERATED = {"sniffio", "typing-extensions", "typing_extensions", "exceptiongroup"}

REPORT = """
import importlib.metadata as md, importlib.util, json
sizes = {}
for dist in md.distributions():
    files = dist.files or []
    size = sum(f.locate().stat().st_size for f in files if f.locate().exists())
    sizes[dist.metadata["Name"].lower()] = [dist.version, size]
from winnow_client import AsyncClient, Client, WinnowError
print(json.dumps({"sizes": sizes, "found": {n: importlib.util.find_spec(n) is not None
    for n in ("torch", "numpy", "api", "store", "embeddings", "PIL")}}))
"""


@pytest.mark.slow  # a venv and a pip install: about 20 s
def test_client_installs_without_torch(tmp_path: Path) -> None:
    source = tmp_path / "client"
    shutil.copytree(REPO / "client", source, ignore=shutil.ignore_patterns("*.egg-info", "build"))
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    install = subprocess.run(
        [python, "-m", "pip", "install", "--quiet", str(source)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if install.returncode != 0:
        pytest.skip(f"pip could not install ./client here (no index?): {install.stderr[-500:]}")

    report = subprocess.run(
        [python, "-c", REPORT], capture_output=True, text=True, cwd=tmp_path, check=True
    )
    result = json.loads(report.stdout)
    assert result["found"] == {n: False for n in result["found"]}, result["found"]
    installed = set(result["sizes"]) - VENV_BASE
    assert installed >= EXPECTED, installed
    assert installed - EXPECTED <= TOLERATED, installed - EXPECTED

    total = 0
    print("\npackage | version | size on disk")
    for name in sorted(installed):
        version, size = result["sizes"][name]
        total += size
        print(f"{name} | {version} | {size / 1e6:.2f} MB")
    print(f"total {total / 1e6:.2f} MB ({len(installed)} packages besides pip)")

    usage = subprocess.run(
        [env_dir / "bin" / "winnow-client", "--help"], capture_output=True, text=True, check=True
    )
    assert "import" in usage.stdout and "export" in usage.stdout and "invoke" in usage.stdout
