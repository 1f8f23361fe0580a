"""The image tower in ONNX Runtime: close to torch's fp32, int8 only where the vectors survive."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch
from PIL import Image

import embeddings.precision as precision_module
from embeddings import Backbone, EncoderPool, load_backbone
from embeddings.backbone import frozen_graph
from embeddings.onnx_runtime import OnnxTower, onnx_tower, x86_without_vnni
from embeddings.precision import MIN_COSINE, build_tower, candidates, probe_batch
from embeddings.precision_memory import choice_key, recall
from embeddings.tower_options import TowerOptions, parse_label, served_label
from tests.fashion import fashion_test_split

CPU = torch.device("cpu")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


class _Masked(torch.nn.Module):
    """A linear layer whose one huge weight meets a zeroed input: exact in fp32, while int8's
    per-tensor scale (set by the huge weight) rounds every weight that matters to zero."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = torch.nn.Linear(12, 6, bias=False)
        with torch.no_grad():
            self.fc.weight.mul_(0.01)[0, 0] = 1000.0
        self.register_buffer("mask", torch.ones(12).index_fill(0, torch.tensor([0]), 0.0))
        self.requires_grad_(False)

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return self.fc(batch.flatten(1) * self.mask)  # type: ignore[operator,no-any-return]


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1)  # rows are unit length


def _images(backbone: Backbone, count: int) -> torch.Tensor:
    """Preprocessed probe images, shifted so they are not the probe batch itself."""
    return probe_batch(backbone.preprocess, count, CPU).flip(-1)


def test_onnx_fp32_matches_torch_at_any_batch_size(tiny_backbone: Backbone) -> None:
    served = load_backbone(
        "tiny-clip", device="cpu", tower=TowerOptions("fp32", probe_batch=4, runtime="onnx")
    )
    choice = served.precision  # type: ignore[attr-defined]
    assert (choice.label, choice.runtime, choice.candidates) == ("onnx-fp32", "onnx", ())
    for count in (3, 1, 9):  # none of them the probe's 4
        batch = _images(tiny_backbone, count)
        assert _cosines(served.encode(batch), tiny_backbone.encode(batch)).min() >= 0.999


def test_onnx_int8_is_served_when_forced_and_close_on_tiny_clip(tiny_backbone: Backbone) -> None:
    served = load_backbone(
        "tiny-clip", device="cpu", tower=TowerOptions("int8", probe_batch=4, runtime="onnx")
    )
    assert served.precision.describe()["serves"] == "onnx-int8"  # type: ignore[attr-defined]
    batch = _images(tiny_backbone, 5)
    assert _cosines(served.encode(batch), tiny_backbone.encode(batch)).min() >= MIN_COSINE["cpu"]


def test_measuring_refuses_int8_that_loses_the_vectors() -> None:
    module = _Masked().eval()
    probe = torch.rand(4, 3, 2, 2)
    tower, choice = build_tower(
        module, probe, finalise=frozen_graph, precision="auto", runtime="onnx", negligible_s=0.0
    )
    measured = {c.label: c for c in choice.candidates}
    assert set(measured) == {"onnx-fp32", "onnx-int8"}
    assert measured["onnx-int8"].min_cosine is not None
    assert measured["onnx-int8"].min_cosine < MIN_COSINE["cpu"]
    assert choice.label == "onnx-fp32" and isinstance(tower, OnnxTower)
    with torch.inference_mode():
        torch.testing.assert_close(tower(probe[:3]), module(probe[:3]), atol=1e-4, rtol=1e-4)
    forced = onnx_tower(module, probe, "int8")  # forced: built as asked, however poor
    assert float(forced(probe).abs().max()) < 0.1 * float(module(probe).abs().max())


def test_runtime_auto_measures_every_runtime_and_precision_against_torch_fp32() -> None:
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 8)).eval()
    _, choice = build_tower(
        module,
        torch.rand(4, 3, 2, 2),
        finalise=frozen_graph,
        precision="auto",
        runtime="auto",
        negligible_s=0.0,
    )
    labels = [c.label for c in choice.candidates]
    assert labels == ["fp32", "bf16", "int8", "onnx-fp32", "onnx-int8"]
    assert choice.label in labels and choice.requested_runtime == "auto"
    onnx_fp32 = choice.candidates[3]
    assert onnx_fp32.min_cosine is not None and onnx_fp32.min_cosine >= 0.999


def test_impossible_combinations_fail_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    cuda = torch.device("cuda")
    with pytest.raises(ValueError, match="runtime onnx serves fp32 or int8, not bf16"):
        candidates("onnx", "bf16", CPU)
    with pytest.raises(ValueError, match="runtime onnx serves fp32 or int8, not bf16"):
        EncoderPool("tiny-clip", device="cpu", precision="bf16", runtime="onnx")
    with pytest.raises(ValueError, match="runtime must be one of"):
        TowerOptions(runtime="tensorrt")
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])
    with pytest.raises(ValueError, match="needs onnxruntime's CUDA provider"):
        candidates("onnx", "auto", cuda)
    # auto only leaves out what cannot run here
    assert candidates("auto", "auto", cuda) == [("torch", "fp32"), ("torch", "bf16")]
    assert candidates("onnx", "auto", CPU) == [("onnx", "fp32"), ("onnx", "int8")]
    assert candidates("auto", "bf16", CPU) == [("torch", "bf16")]  # one: forced
    assert candidates("torch", "int8", cuda) == [("torch", "int8")]  # forced: convert refuses
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CUDAExecutionProvider"])
    with pytest.raises(ValueError, match="int8 runs on the CPU only"):
        candidates("onnx", "int8", cuda)
    assert candidates("onnx", "auto", cuda) == [("onnx", "fp32")]


def test_labels_and_memory_keys_name_the_runtime(tmp_path, monkeypatch) -> None:
    assert served_label("torch", "bf16") == "bf16" and served_label("onnx", "int8") == "onnx-int8"
    assert parse_label("onnx-int8") == ("onnx", "int8") and parse_label("bf16") == ("torch", "bf16")
    for bad in ("onnx-bf16", "auto", "auto-fp32", "fp64", "onnx-"):
        assert parse_label(bad) is None
    torch_key = choice_key(CPU, "tiny-clip", 8)
    assert "runtime" not in torch_key  # the key torch's auto had before runtimes were a choice
    onnx_key = choice_key(CPU, "tiny-clip", 8, runtime="onnx")
    assert onnx_key.startswith(torch_key) and onnxruntime.__version__ in onnx_key
    assert choice_key(CPU, "tiny-clip", 8, runtime="auto", precision="fp32") not in (
        torch_key,
        onnx_key,
    )

    memory = tmp_path / "precision.json"
    memory.write_text(json.dumps({torch_key: "bf16"}))  # a torch choice: not onnx's
    module = _Masked().eval()
    probe = torch.rand(8, 3, 2, 2)
    _, first = build_tower(
        module,
        probe,
        finalise=frozen_graph,
        precision="auto",
        runtime="onnx",
        name="tiny-clip",
        memory=memory,
        negligible_s=0.0,
    )
    assert first.candidates and first.label == "onnx-fp32"
    assert recall(memory, onnx_key) == ("onnx", "fp32") and recall(memory, torch_key) == (
        "torch",
        "bf16",
    )

    def no_measuring(*args: object, **kwargs: object) -> None:
        raise AssertionError("measured again")

    monkeypatch.setattr(precision_module, "_time_tower", no_measuring)
    _, again = build_tower(
        module,
        probe,
        finalise=frozen_graph,
        precision="auto",
        runtime="onnx",
        name="tiny-clip",
        memory=memory,
    )
    assert (again.label, again.candidates) == ("onnx-fp32", ())


def test_sessions_follow_the_calling_threads_torch_thread_count() -> None:
    module = _Masked().eval()
    probe = torch.rand(2, 3, 2, 2)
    tower = onnx_tower(module, probe)
    torch.set_num_threads(2)
    tower(probe)
    sessions = tower._sessions  # one per thread count seen
    assert set(sessions) == {1, 2}
    assert sessions[2].get_session_options().intra_op_num_threads == 2


@pytest.mark.slow
def test_efficientnet_lite0_in_onnx_runtime_keeps_the_vectors_of_real_images() -> None:
    images, _ = fashion_test_split()  # grayscale, flat backgrounds: unlike the probe images
    reference = load_backbone("efficientnet-lite0", device="cpu")
    batch = torch.stack(
        [reference.preprocess(Image.fromarray(pixels).convert("RGB")) for pixels in images[:24]]
    )
    expected = reference.encode(batch)
    for precision, bound in (("fp32", 0.999), ("int8", MIN_COSINE["cpu"])):
        served = load_backbone(
            "efficientnet-lite0",
            device="cpu",
            tower=TowerOptions(precision, probe_batch=4, runtime="onnx"),
        )
        assert _cosines(served.encode(batch), expected).min() >= bound, precision


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ("fpu sse4_2 avx avx2 fma", True),  # AVX2 only: uint8 weights
        ("avx2 avx512f avx512bw", True),  # AVX-512 without VNNI
        ("avx2 avx512f avx512_vnni", False),
        ("avx2 avx_vnni", False),
        ("fp asimd", False),  # not x86
    ],
)
def test_int8_weights_avoid_the_saturating_kernel_on_x86_without_vnni(
    tmp_path: Path, flags: str, expected: bool
) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
    assert x86_without_vnni(cpuinfo) is expected
    assert x86_without_vnni(tmp_path / "missing") is False
