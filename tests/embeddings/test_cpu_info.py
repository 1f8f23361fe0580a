"""Reading /proc/cpuinfo: the first processor's model and flags, nothing when unreadable."""

from __future__ import annotations

from pathlib import Path

from embeddings.cpu_info import CpuInfo, cpu_info


def test_the_first_processors_model_and_flags(tmp_path: Path) -> None:
    path = tmp_path / "cpuinfo"
    path.write_text(
        "processor\t: 0\nmodel name\t: AMD EPYC 7B12\nflags\t\t: fpu avx2 fma\n"
        "vmx flags\t: ept\n\nprocessor\t: 1\nmodel name\t: AMD EPYC 7B12\nflags\t\t: fpu avx2 fma\n"
    )
    assert cpu_info(path) == CpuInfo("AMD EPYC 7B12", frozenset({"fpu", "avx2", "fma"}))


def test_an_arm_or_missing_file_tells_nothing(tmp_path: Path) -> None:
    arm = tmp_path / "cpuinfo"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd\n")
    assert cpu_info(arm) == CpuInfo(None, frozenset())
    assert cpu_info(tmp_path / "missing") == CpuInfo(None, frozenset())
