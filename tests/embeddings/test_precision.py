"""The image tower's precision: forced ones as asked, ``auto`` the fastest that keeps the vectors."""

from __future__ import annotations

import dataclasses
import json
import logging
import time

import numpy as np
import pytest
import torch

import embeddings.precision as precision_module
from embeddings import load_backbone
from embeddings.backbone import frozen_graph, to_device
from embeddings.clip_backbone import ClipBackbone
from embeddings.precision import (
    MIN_COSINE,
    REQUIRED_SPEEDUP,
    PrecisionChoice,
    build_tower,
    compiling,
    convert,
    probe_batch,
    probe_images,
)
from embeddings.tower_options import (
    CPU_BATCH_SIZE,
    GPU_BATCH_SIZE,
    TowerOptions,
    auto_batch_size,
    parse_batch_size,
    validate_precision,
)

CPU = torch.device("cpu")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


class _Convolutional(torch.nn.Module):
    """A small CNN with BatchNorm, the shape of EfficientNet's blocks."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(8)
        self.fc = torch.nn.Linear(8, 4)

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.bn(self.conv(batch))).mean(dim=(2, 3)))


class _Cancelling(torch.nn.Module):
    """Adds and removes a large constant: exact in fp32, the signal is lost in bf16."""

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        big = torch.full_like(batch, 4096.0)
        return ((batch + big) - big).flatten(1)


def _eval(module: torch.nn.Module) -> torch.nn.Module:
    torch.manual_seed(0)
    return module.eval().requires_grad_(False)


def _slow_fp32(finalise_delay_s: float):  # type: ignore[no-untyped-def]
    """A finaliser whose fp32 tower sleeps per call, so any lower precision is 'faster'."""

    def finalise(module: torch.nn.Module, probe: torch.Tensor):  # type: ignore[no-untyped-def]
        is_fp32 = all(p.dtype == torch.float32 for p in module.parameters()) and not any(
            "Cast" in type(m).__name__ or "quantized" in type(m).__module__
            for m in module.modules()
        )
        if not is_fp32:
            return module

        def slow(batch: torch.Tensor) -> torch.Tensor:
            time.sleep(finalise_delay_s)
            return module(batch)

        return slow

    return finalise


def test_settings_values_are_checked() -> None:
    assert validate_precision(" BF16 ") == "bf16"
    with pytest.raises(ValueError, match="precision must be one of"):
        validate_precision("fp8")
    assert parse_batch_size("auto") is None and parse_batch_size(" 32") == 32
    assert parse_batch_size(4) == 4
    for bad in ("0", "-3", "many"):
        with pytest.raises(ValueError, match="batch size must be auto or a positive integer"):
            parse_batch_size(bad)
    assert auto_batch_size(CPU) == CPU_BATCH_SIZE == 8
    assert auto_batch_size(torch.device("cuda")) == GPU_BATCH_SIZE == 256
    assert TowerOptions("Auto").precision == "auto"
    with pytest.raises(ValueError):
        TowerOptions(probe_batch=0)


def test_convert_makes_bf16_and_int8_copies_and_refuses_what_cannot_work() -> None:
    module = _eval(_Convolutional())
    batch = torch.randn(2, 3, 8, 8)
    assert convert(module, "fp32", CPU) is module
    bf16 = convert(module, "bf16", CPU)
    assert next(module.parameters()).dtype == torch.float32  # the original is untouched
    with torch.inference_mode():
        assert bf16(batch).dtype == torch.float32  # fp32 in, fp32 out
        int8 = convert(module, "int8", CPU)
        torch.testing.assert_close(int8(batch), module(batch), atol=0.05, rtol=0.05)
    with pytest.raises(ValueError, match="CPU only"):
        convert(module, "int8", torch.device("cuda"))
    with pytest.raises(ValueError, match="no linear layers"):
        convert(_eval(_Cancelling()), "int8", CPU)


def test_probe_images_are_seeded_distinct_and_tiled_to_the_batch() -> None:
    first, again = probe_images(3), probe_images(3)
    assert [np.asarray(i).tobytes() for i in first] == [np.asarray(i).tobytes() for i in again]
    assert len({np.asarray(i).tobytes() for i in first}) == 3
    batch = probe_batch(lambda image: torch.from_numpy(np.asarray(image, np.float32)), 10, CPU)
    assert batch.shape == (10, 256, 256, 3)
    torch.testing.assert_close(batch[8], batch[0])  # 8 distinct images, repeated


def test_a_forced_precision_is_used_as_asked() -> None:
    module = _eval(_Convolutional())
    probe = torch.randn(4, 3, 8, 8)
    tower, choice = build_tower(module, probe, finalise=frozen_graph, precision="bf16")
    assert choice.precision == choice.requested == "bf16" and choice.candidates == ()
    with torch.inference_mode():
        cosine = torch.nn.functional.cosine_similarity(tower(probe), module(probe))
    assert float(cosine.min()) >= MIN_COSINE["cpu"]


def test_auto_takes_a_faster_precision_that_keeps_the_vectors() -> None:
    module = _eval(_Convolutional())
    probe = torch.randn(4, 3, 8, 8)
    _, choice = build_tower(
        module, probe, finalise=_slow_fp32(0.3), precision="auto", negligible_s=0.0
    )
    measured = {c.precision: c for c in choice.candidates}
    assert set(measured) == {"fp32", "bf16", "int8"}
    assert choice.precision in ("bf16", "int8")
    winner = measured[choice.precision]
    assert winner.min_cosine is not None and winner.min_cosine >= MIN_COSINE["cpu"]
    assert winner.images_per_s >= REQUIRED_SPEEDUP * measured["fp32"].images_per_s  # type: ignore[operator]


def test_auto_keeps_fp32_when_the_faster_precision_loses_the_signal(
    caplog: pytest.LogCaptureFixture,
) -> None:
    probe = torch.rand(4, 3, 8, 8)
    with caplog.at_level(logging.INFO, logger="embeddings.precision"):
        tower, choice = build_tower(
            _eval(_Cancelling()),
            probe,
            finalise=_slow_fp32(0.1),
            precision="auto",
            name="cancelling",
        )
    measured = {c.precision: c for c in choice.candidates}
    assert choice.precision == "fp32"
    assert measured["bf16"].min_cosine is not None and measured["bf16"].min_cosine < 0.99
    assert measured["int8"].images_per_s is None and "no linear layers" in str(
        measured["int8"].error
    )
    assert "cancelling: image tower runs in fp32" in caplog.text
    torch.testing.assert_close(tower(probe), probe.flatten(1), atol=1e-3, rtol=0)


def test_auto_does_not_try_others_when_fp32_is_already_negligible() -> None:
    module = _eval(_Convolutional())
    probe = torch.randn(2, 3, 8, 8)
    _, choice = build_tower(
        module, probe, finalise=frozen_graph, precision="auto", negligible_s=1.0
    )
    assert [c.precision for c in choice.candidates] == ["fp32"]


def test_a_failing_compilation_falls_back_to_the_usual_tower(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def refuse(module: torch.nn.Module) -> None:
        raise RuntimeError("no compiler here")

    monkeypatch.setattr(torch, "compile", refuse)
    module = _eval(_Convolutional())
    probe = torch.randn(2, 3, 8, 8)
    with caplog.at_level(logging.WARNING, logger="embeddings.precision"):
        tower = compiling(frozen_graph, name="cnn")(module, probe)
    assert "cnn: torch.compile failed (no compiler here)" in caplog.text
    assert isinstance(tower, torch.jit.ScriptModule)


def test_backbones_report_their_precision_and_serve_close_vectors() -> None:
    exact = load_backbone("tiny-clip", device="cpu")
    assert exact.precision.precision == "fp32"  # type: ignore[attr-defined]
    halved = load_backbone("tiny-clip", device="cpu", tower=TowerOptions("bf16"))
    assert halved.precision.describe()["precision"] == "bf16"  # type: ignore[attr-defined]
    batch = probe_batch(exact.preprocess, 8, CPU)
    cosines = np.sum(exact.encode(batch) * halved.encode(batch), axis=1)
    assert cosines.min() >= MIN_COSINE["cpu"]


def test_to_device_on_the_cpu_is_a_plain_move() -> None:
    batch = torch.randn(2, 3)
    assert to_device(batch, CPU) is batch


def _tiny_clip_choice(tower: TowerOptions) -> PrecisionChoice:
    backbone = load_backbone("tiny-clip", device="cpu", tower=tower)
    assert isinstance(backbone, ClipBackbone)
    return backbone.precision


def test_auto_remembers_its_choice_per_machine_and_backbone(tmp_path, monkeypatch) -> None:
    memory = tmp_path / "precision.json"
    tower = TowerOptions("auto", probe_batch=2, precision_memory=memory)
    first = _tiny_clip_choice(tower)
    assert first.candidates  # measured
    [(key, chosen)] = json.loads(memory.read_text()).items()
    assert "tiny-clip" in key and "batch 2" in key and torch.__version__ in key

    def no_measuring(*args: object, **kwargs: object) -> None:
        raise AssertionError("measured again")

    monkeypatch.setattr(precision_module, "_time_tower", no_measuring)
    again = _tiny_clip_choice(tower)
    assert (again.precision, again.candidates) == (chosen, ())

    other_batch = dataclasses.replace(tower, probe_batch=3)  # another key: measures
    with pytest.raises(AssertionError, match="measured again"):
        _tiny_clip_choice(other_batch)
    monkeypatch.setattr(precision_module.precision_memory, "_cpu_model", lambda: "Other CPU")
    with pytest.raises(AssertionError, match="measured again"):
        _tiny_clip_choice(tower)


def test_an_unreadable_memory_is_measured_again_and_rewritten(tmp_path, caplog) -> None:
    memory = tmp_path / "precision.json"
    memory.write_text("{not json")
    tower = TowerOptions("auto", probe_batch=2, precision_memory=memory)
    with caplog.at_level(logging.WARNING):
        backbone = _tiny_clip_choice(tower)
    assert backbone.candidates and "unreadable" in caplog.text
    assert list(json.loads(memory.read_text()).values()) == [backbone.precision]
    memory.write_text(json.dumps({next(iter(json.loads(memory.read_text()))): "fp64"}))
    assert _tiny_clip_choice(tower).candidates
    assert [p.name for p in tmp_path.iterdir()] == ["precision.json"]  # no temporary left
