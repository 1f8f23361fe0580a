"""The image tower run by ONNX Runtime (``--runtime onnx``), in fp32 or int8.

The eager fp32 module is exported once (:func:`embeddings.onnx_graph.module_to_onnx`) and served
by an ``onnxruntime.InferenceSession``; its ``run`` releases the GIL, as torch's forward does.
``int8`` quantises the graph with ``onnxruntime.quantization``, the way that keeps the vectors:

- a transformer (a ViT's one patch-embedding convolution) dynamically, its MatMul and Gemm
  weights in int8 and activations quantised per batch;
- a convolutional network statically (QDQ, weights per channel, uint8 activations calibrated on
  the probe batch), leaving its first :data:`FP32_CONVOLUTIONS` convolutions in fp32 (for
  EfficientNet-Lite0 the stem and the first two blocks, at the two highest resolutions). On 64
  Fashion-MNIST images, quantising every convolution kept a per-image cosine to fp32 of only
  0.93, the first two left in fp32 0.948 (0.996 on the probe images: calibrated or not on
  them, photo-like probes miss it), the first five 0.982, the first six 0.995; other
  calibrations (entropy, percentile, Fashion-MNIST images themselves) did not help, and dynamic
  quantisation of convolutions ran at a tenth of fp32's speed.

Whether the result is close enough and fast enough is measured by the caller
(:func:`embeddings.precision.build_tower`), which compares it to torch's fp32 tower.
"""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path

import numpy as np
import onnxruntime
import torch

from embeddings.cpu_info import cpu_info
from embeddings.onnx_graph import module_to_onnx
from embeddings.tower_options import ONNX_PRECISIONS

FP32_CONVOLUTIONS = 6  # a CNN's first convolutions left in fp32 by static quantisation
_VNNI_FLAGS = ("avx512_vnni", "avx_vnni")
_INPUT, _OUTPUT = "images", "features"


def providers_for(device: torch.device) -> list[str]:
    """ONNX Runtime's execution providers for ``device``.

    Raises:
        ValueError: a CUDA device and an onnxruntime without its CUDA provider, or another
            accelerator.
    """
    if device.type == "cpu":
        return ["CPUExecutionProvider"]
    if device.type == "cuda":
        if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
            raise ValueError(
                "runtime onnx on a CUDA device needs onnxruntime's CUDA provider (the "
                "onnxruntime-gpu package); use runtime torch, or run on the CPU"
            )
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    raise ValueError(f"runtime onnx runs on the CPU or CUDA, not on {device.type}")


def check_onnx_precision(precision: str, device: torch.device) -> None:
    """Raise ValueError unless ONNX Runtime can serve ``precision`` on ``device``."""
    if precision not in ONNX_PRECISIONS:
        raise ValueError(
            f"runtime onnx serves {' or '.join(ONNX_PRECISIONS)}, not {precision} "
            "(use runtime torch for bf16)"
        )
    if precision == "int8" and device.type != "cpu":
        raise ValueError("int8 runs on the CPU only")
    providers_for(device)


class OnnxTower:
    """An ONNX graph served by ONNX Runtime as a tower: fp32 ``(n, C, H, W)`` in, features out.

    The session's intra-op threads follow torch's thread count in the calling thread (the
    encoder's per-worker setting), so one session is opened per count seen, from the same graph.
    """

    def __init__(self, graph: bytes, device: torch.device) -> None:
        """Open a session for the calling thread's torch thread count.

        Args:
            graph: a serialised ONNX model with one input and one output.
            device: where inputs come from and outputs go (its provider runs the graph).
        """
        self._graph = graph
        self._device = device
        self._providers = providers_for(device)
        self._sessions: dict[int, onnxruntime.InferenceSession] = {}
        self._lock = threading.Lock()
        self._session(torch.get_num_threads())

    def _session(self, threads: int) -> onnxruntime.InferenceSession:
        session = self._sessions.get(threads)
        if session is None:
            with self._lock:
                session = self._sessions.get(threads)
                if session is None:
                    options = onnxruntime.SessionOptions()
                    options.intra_op_num_threads = threads
                    options.inter_op_num_threads = 1
                    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
                    options.log_severity_level = 3  # errors only
                    # idle pool threads sleep instead of spinning: spinning ones took the cores
                    # from torch's threads in the same process (its fp32 tower ran 30x slower)
                    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
                    session = onnxruntime.InferenceSession(
                        self._graph, options, providers=self._providers
                    )
                    self._sessions[threads] = session
        return session

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        pixels = batch.detach().to("cpu", torch.float32).numpy()
        (features,) = self._session(torch.get_num_threads()).run([_OUTPUT], {_INPUT: pixels})
        return torch.from_numpy(np.asarray(features)).to(batch.device)


def onnx_tower(
    module: torch.nn.Module,
    probe: torch.Tensor,
    precision: str = "fp32",
    *,
    fp32_convolutions: int = FP32_CONVOLUTIONS,
) -> OnnxTower:
    """``module`` exported to ONNX and served by ONNX Runtime in ``precision``.

    Args:
        module: eval-mode fp32 model taking a ``(n, C, H, W)`` batch on ``probe``'s device.
        probe: a batch of preprocessed images: the export's example (any batch size is served
            afterwards) and, for a convolutional network in int8, the calibration data.
        precision: ``fp32`` or ``int8`` (CPU only).
        fp32_convolutions: how many of a convolutional network's first convolutions int8
            leaves in fp32 (fewer for the tail of a network cut after its first ones).

    Raises:
        ValueError: a precision or device ONNX Runtime cannot serve here, or int8 for a model
            with nothing to quantise.
    """
    check_onnx_precision(precision, probe.device)
    example = probe if probe.shape[0] >= 2 else probe.repeat(2, 1, 1, 1)
    graph = module_to_onnx(module, example, input_name=_INPUT, output_name=_OUTPUT)
    if precision == "int8":
        graph = quantise(graph, probe, fp32_convolutions)
    return OnnxTower(graph, probe.device)


def x86_without_vnni(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """An x86 CPU without VNNI (AVX2 only, or AVX-512 without it), as Linux describes it.

    There ONNX Runtime multiplies uint8 activations by int8 weights with an instruction whose
    16-bit sums saturate: on such a machine (an AMD EPYC with AVX2 only) EfficientNet-Lite0's
    int8 vectors kept a per-image cosine to fp32 of only 0.955 on Fashion-MNIST images, 0.992 with
    uint8 weights, which avoid it (onnxruntime's quantisation guide advises them there). Other
    systems and architectures: False.
    """
    flags = cpu_info(cpuinfo).flags
    return "avx2" in flags and not any(f in flags for f in _VNNI_FLAGS)


def quantise(
    graph: bytes, calibration: torch.Tensor, fp32_convolutions: int = FP32_CONVOLUTIONS
) -> bytes:
    """The int8 version of ``graph``: static QDQ for a CNN, dynamic MatMul/Gemm otherwise.

    Args:
        graph: a serialised fp32 ONNX model whose input is ``images``.
        calibration: input batch whose activation ranges a CNN's static quantisation uses.
        fp32_convolutions: a CNN's first convolutions left in fp32.

    Raises:
        ValueError: the graph has neither several convolutions nor matrix products.
    """
    # imported here: onnx and the quantiser take ~0.8 s to import, and only int8 needs them
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    class Calibration(CalibrationDataReader):
        """The calibration batch, once (the graph's batch dimension is free)."""

        def __init__(self) -> None:
            pixels = calibration.detach().to("cpu", torch.float32).numpy()
            self._batches = iter([{_INPUT: pixels}])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._batches, None)

    weights = QuantType.QUInt8 if x86_without_vnni() else QuantType.QInt8
    model = onnx.load_from_string(graph)
    convolutions = [node.name for node in model.graph.node if node.op_type == "Conv"]
    products = [node for node in model.graph.node if node.op_type in ("MatMul", "Gemm")]
    with tempfile.TemporaryDirectory(prefix="winnow-int8-") as folder:
        output = Path(folder) / "int8.onnx"
        if len(convolutions) > max(1, fp32_convolutions):
            quantize_static(
                model,
                output,
                Calibration(),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=weights,
                nodes_to_exclude=convolutions[:fp32_convolutions],
            )
        elif products:
            quantize_dynamic(
                model, output, weight_type=weights, op_types_to_quantize=["MatMul", "Gemm"]
            )
        else:
            raise ValueError("the model has no convolutions or matrix products to quantise")
        return output.read_bytes()
