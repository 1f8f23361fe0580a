"""The numeric precision an image tower runs in, chosen by measuring it on this machine.

Whether bf16 or int8 beats fp32 depends on the processor more than on the model: a CPU with
AVX-512 bf16 or AMX runs bf16 convolutions and matrix products natively, one without emulates
them slowly, while dynamic int8 (fbgemm) helps the linear layers of a transformer on most x86
CPUs. So with ``auto`` each candidate precision is built, checked and timed on a probe batch when
the backbone loads, and the fastest whose every probe vector keeps a cosine of at least
:data:`MIN_COSINE` to fp32's serves (fp32 unless another is :data:`REQUIRED_SPEEDUP` faster);
given a memory file, the choice is measured once per machine and backbone, then reused.
``bf16`` converts the weights and the inputs (``module.to(torch.bfloat16)``; ``torch.autocast``
on CPU measured far slower), ``int8`` quantises the linear layers dynamically (CPU only). A
forced precision is used as asked. With runtime ``onnx`` the candidates are ONNX Runtime's
(``onnx-fp32``, ``onnx-int8``: :mod:`embeddings.onnx_runtime`), with ``auto`` both runtimes';
every candidate is compared with torch's fp32 tower.

This is the one place the choice is made; backbones call :func:`build_tower` with their own way of
finalising a module (tracing and freezing it, see :func:`embeddings.backbone.frozen_graph`).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter

from embeddings import precision_memory
from embeddings.onnx_runtime import (
    FP32_CONVOLUTIONS,
    check_onnx_precision,
    onnx_tower,
    providers_for,
)
from embeddings.tower_options import served_label, validate_precision, validate_runtime

logger = logging.getLogger(__name__)


MIN_COSINE = {"cpu": 0.99, "cuda": 0.999}  # per device type; others use the CPU bound
REQUIRED_SPEEDUP = 1.1  # a lower precision must beat fp32 by this factor (beyond timing noise)
PROBE_WARMUP = 2  # untimed passes first: TorchScript optimises a graph on its second run
PROBE_RUNS = 3  # timed forward passes per candidate; the fastest counts
NEGLIGIBLE_BATCH_S = 0.01  # auto keeps fp32 untested when its probe batch is this quick: the
# tower is not what limits throughput (the test backbone), and each candidate costs a trace
_SLOW_FACTOR = 3.0  # a candidate whose warm-up takes this many times fp32's is not timed further

Tower = Callable[[torch.Tensor], torch.Tensor]
# Turns an eager module (taking fp32 batches) into what is served, e.g. a frozen TorchScript graph.
Finalise = Callable[[torch.nn.Module, torch.Tensor], Tower]
_TORCH_FP32 = ("torch", "fp32")  # the reference every candidate's vectors are compared to


@dataclass(frozen=True)
class CandidateResult:
    """How one runtime and precision did on the probe batch."""

    precision: str
    images_per_s: float | None  # None: failed to build or run
    min_cosine: float | None  # lowest per-image cosine to torch's fp32 on the probe batch
    error: str | None = None
    runtime: str = "torch"

    @property
    def label(self) -> str:
        """``fp32``, ``bf16``, ``int8``, ``onnx-fp32`` or ``onnx-int8``."""
        return served_label(self.runtime, self.precision)

    def passed(self, min_cosine: float) -> bool:
        return self.images_per_s is not None and (self.min_cosine or 0.0) >= min_cosine


@dataclass(frozen=True)
class PrecisionChoice:
    """What runs a backbone's tower and in which precision, and why (the measurements of
    ``auto``)."""

    precision: str
    requested: str
    candidates: tuple[CandidateResult, ...] = field(default=())
    runtime: str = "torch"
    requested_runtime: str = "torch"

    @property
    def label(self) -> str:
        """What serves, e.g. ``bf16`` (torch) or ``onnx-int8``."""
        return served_label(self.runtime, self.precision)

    def describe(self) -> dict[str, object]:
        """JSON-safe summary for logs, health and benchmark reports."""
        return {
            "serves": self.label,
            "runtime": self.runtime,
            "precision": self.precision,
            "requested_runtime": self.requested_runtime,
            "requested": self.requested,
            "candidates": [vars(candidate) for candidate in self.candidates],
        }


class _CastTower(torch.nn.Module):
    """Runs ``module`` (already converted to ``dtype``) on fp32 batches, answering in fp32.

    A convolutional network also gets its weights and inputs in channels-last order, the layout
    oneDNN's bf16 convolutions run fastest in: on 2 EPYC cores EfficientNet-Lite0 in bf16 ran
    2.5x fp32's speed, and 4.4x in channels-last (same run, per-image cosine 0.9996 either way).
    """

    def __init__(self, module: torch.nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        convolutions = sum(isinstance(part, torch.nn.Conv2d) for part in module.modules())
        self.channels_last = convolutions > 1  # a CNN, not a ViT's single patch embedding
        self.module = module.to(memory_format=torch.channels_last) if self.channels_last else module
        self.dtype = dtype

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        batch = batch.to(self.dtype)
        if self.channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        return self.module(batch).float()  # type: ignore[no-any-return]


def convert(module: torch.nn.Module, precision: str, device: torch.device) -> torch.nn.Module:
    """A copy of eval-mode ``module`` that computes in ``precision`` (fp32 returns ``module``).

    Args:
        module: takes and returns fp32 tensors on ``device``.
        precision: ``fp32``, ``bf16`` or ``int8``.
        device: where ``module`` lives.

    Raises:
        ValueError: ``int8`` on an accelerator, or for a model without linear layers (nothing to
            quantise), or an unknown precision.
    """
    if precision == "fp32":
        return module
    if precision == "bf16":
        return _CastTower(copy.deepcopy(module).to(torch.bfloat16), torch.bfloat16).eval()
    if precision == "int8":
        if device.type != "cpu":
            raise ValueError("int8 (dynamic quantisation) runs on the CPU only")
        if not any(isinstance(part, torch.nn.Linear) for part in module.modules()):
            raise ValueError("the model has no linear layers to quantise")
        with warnings.catch_warnings():  # torch.ao.quantization is deprecated in favour of torchao
            warnings.simplefilter("ignore")
            return torch.ao.quantization.quantize_dynamic(
                copy.deepcopy(module), {torch.nn.Linear}, dtype=torch.qint8
            ).eval()
    raise ValueError(f"unknown precision {precision!r}")


def build_tower(
    module: torch.nn.Module,
    probe: torch.Tensor,
    *,
    finalise: Finalise,
    precision: str = "fp32",
    runtime: str = "torch",
    name: str = "backbone",
    negligible_s: float = NEGLIGIBLE_BATCH_S,
    memory: Path | None = None,
) -> tuple[Tower, PrecisionChoice]:
    """The served tower of ``module`` in the requested (or, for ``auto``, measured) runtime and
    precision.

    The candidates are the asked runtime's (both with runtime ``auto``) in the asked precision
    (all that apply with ``auto``). One candidate is built as asked; of several, the first is
    the default and serves unless another keeps every probe vector's cosine to torch's fp32
    tower at :data:`MIN_COSINE` and runs :data:`REQUIRED_SPEEDUP` times as fast.

    Args:
        module: eval-mode model taking a fp32 ``(n, C, H, W)`` batch on its device.
        probe: a batch of preprocessed real-looking images on that device, of the size the
            encoder will run (timings depend on it); ``auto`` compares candidates on it.
        finalise: turns a (converted) module into the served callable, e.g. traces it (torch
            candidates only).
        precision: one of :data:`embeddings.tower_options.PRECISIONS`.
        runtime: one of :data:`embeddings.tower_options.RUNTIMES` (``onnx``: ONNX Runtime, see
            :mod:`embeddings.onnx_runtime`).
        name: how log lines name the backbone.
        negligible_s: measuring keeps the default untested when torch's fp32 runs the probe
            batch faster.
        memory: JSON file of earlier measured choices (:mod:`embeddings.precision_memory`):
            one made for this machine, backbone, probe batch and request is reused without
            measuring, a new one is added. None: measure at every load.

    Raises:
        ValueError: unknown runtime or precision, or a forced one that cannot be built for this
            model or device.
    """
    precision, runtime = validate_precision(precision), validate_runtime(runtime)
    device = probe.device
    options = candidates(runtime, precision, device)

    def build(option: tuple[str, str]) -> Tower:
        return build_candidate(module, probe, *option, finalise=finalise)

    def chosen(
        option: tuple[str, str], results: tuple[CandidateResult, ...] = ()
    ) -> PrecisionChoice:
        return PrecisionChoice(option[1], precision, results, option[0], runtime)

    if len(options) == 1:
        return build(options[0]), chosen(options[0])
    key = precision_memory.choice_key(
        device, name, probe.shape[0], runtime=runtime, precision=precision
    )
    remembered = None if memory is None else precision_memory.recall(memory, key)
    if remembered in options:
        assert remembered is not None
        label = served_label(*remembered)
        logger.info("%s: image tower runs in %s (remembered in %s)", name, label, memory)
        return build(remembered), chosen(remembered)
    threshold = MIN_COSINE.get(device.type, MIN_COSINE["cpu"])
    fp32_tower = finalise(module, probe)
    reference, fp32_rate = _time_tower(fp32_tower, probe, slow_after=None)
    fp32_seconds = probe.shape[0] / fp32_rate
    measured: list[tuple[Tower, CandidateResult]] = []
    for option in options if fp32_seconds >= negligible_s else options[:1]:
        if option == _TORCH_FP32:
            measured.append((fp32_tower, CandidateResult("fp32", fp32_rate, 1.0)))
            continue
        try:
            tower = build(option)
            output, rate = _time_tower(tower, probe, slow_after=_SLOW_FACTOR * fp32_seconds)
            cosine = float(
                torch.nn.functional.cosine_similarity(output.float(), reference.float()).min()
            )
        except Exception as error:  # an unsupported kernel on this machine rules it out
            if option == options[0]:
                raise
            failed = CandidateResult(
                option[1], None, None, f"{type(error).__name__}: {error}", option[0]
            )
            measured.append((fp32_tower, failed))
            continue
        measured.append((tower, CandidateResult(option[1], rate, cosine, runtime=option[0])))
    (best_tower, best), rivals = measured[0], measured[1:]
    passing = [(tower, result) for tower, result in rivals if result.passed(threshold)]
    if passing:  # time the default again, as late as its rivals: the first runs in a process lag
        again = _time_tower(best_tower, probe, slow_after=None)[1]
        best = dataclasses.replace(best, images_per_s=max(best.images_per_s or 0.0, again))
    results = (best, *(result for _, result in rivals))
    default_rate = best.images_per_s or 0.0
    for tower, result in passing:
        rate = result.images_per_s or 0.0
        if rate >= REQUIRED_SPEEDUP * default_rate and rate > (best.images_per_s or 0.0):
            best_tower, best = tower, result
    choice = chosen((best.runtime, best.precision), results)
    if memory is not None:
        precision_memory.remember(memory, key, choice.label)
    logger.info(
        "%s: image tower runs in %s (measured at batch %d on %s: %s)",
        name,
        choice.label,
        probe.shape[0],
        device,
        "; ".join(_summary(result) for result in results),
    )
    return best_tower, choice


def build_candidate(
    module: torch.nn.Module,
    probe: torch.Tensor,
    runtime: str,
    precision: str,
    *,
    finalise: Finalise,
    fp32_convolutions: int = FP32_CONVOLUTIONS,
) -> Tower:
    """``module``'s tower in one runtime and precision, built as asked (nothing measured).

    Args:
        module: as :func:`build_tower`'s.
        probe: the export's example and int8 calibration batch (ONNX Runtime), the trace's
            example (torch).
        runtime: ``torch`` or ``onnx``.
        precision: ``fp32``, ``bf16`` or ``int8``.
        finalise: as :func:`build_tower`'s (torch only).
        fp32_convolutions: a convolutional network's first convolutions that ONNX Runtime's
            int8 leaves in fp32 (:func:`embeddings.onnx_runtime.quantise`).

    Raises:
        ValueError: a runtime and precision that cannot be built for this model or device.
    """
    if runtime == "onnx":
        return onnx_tower(module, probe, precision, fp32_convolutions=fp32_convolutions)
    return finalise(convert(module, precision, probe.device), probe)


def candidates(runtime: str, precision: str, device: torch.device) -> list[tuple[str, str]]:
    """The ``(runtime, precision)`` towers a request means on ``device``, the default first.

    A single one is forced (built as asked, errors included); of several, those that cannot run
    on ``device`` are left out (torch's int8 and ONNX Runtime's off the CPU, ONNX Runtime on
    CUDA without its provider).

    Args:
        runtime: one of :data:`embeddings.tower_options.RUNTIMES`.
        precision: one of :data:`embeddings.tower_options.PRECISIONS`.
        device: where the tower runs.

    Raises:
        ValueError: a forced ONNX Runtime tower that cannot run (bf16, CUDA without provider),
            or nothing left to run.
    """
    runtimes = ["torch", "onnx"] if runtime == "auto" else [runtime]
    precisions = ["fp32", "bf16", "int8"] if precision == "auto" else [precision]
    if runtime == "onnx" and precision != "auto":
        check_onnx_precision(precision, device)
    if runtime == "onnx":
        providers_for(device)
    options = [(r, p) for r in runtimes for p in precisions]
    if len(options) == 1:
        return options
    runnable = [option for option in options if _runs_on(option, device)]
    if not runnable:
        raise ValueError(f"runtime {runtime} cannot run {precision} on {device}")
    return runnable


def _runs_on(option: tuple[str, str], device: torch.device) -> bool:
    runtime, precision = option
    if runtime == "torch":
        return precision != "int8" or device.type == "cpu"
    try:
        check_onnx_precision(precision, device)
    except ValueError:
        return False
    return True


def compiling(finalise: Finalise, *, name: str = "backbone") -> Finalise:
    """A finaliser that serves ``torch.compile`` of the module instead of ``finalise``'s result.

    The compilation happens on a first call with the probe batch; if it fails (no compiler
    toolchain, an unsupported operator) the module is finalised the usual way and a warning says
    why. Each new batch size may compile again once (then shapes are treated as dynamic).

    Args:
        finalise: the usual finaliser, the fallback.
        name: how log lines name the backbone.
    """

    def compile_or_fall_back(module: torch.nn.Module, probe: torch.Tensor) -> Tower:
        try:
            compiled: Tower = torch.compile(module)  # type: ignore[assignment]
            with torch.inference_mode():
                compiled(probe)
            return compiled
        except Exception as error:
            logger.warning("%s: torch.compile failed (%s); serving without it", name, error)
            return finalise(module, probe)

    return compile_or_fall_back


def probe_images(count: int = 8, *, size: int = 256, seed: int = 0) -> list[Image.Image]:
    """Distinct, seeded, photo-like RGB images to compare precisions on.

    Noise alone is a poor probe (real images have smooth regions, edges and texture), so each is
    a colour gradient with a few filled shapes, slightly blurred, plus mild noise.

    Args:
        count: number of images.
        size: width and height in pixels.
        seed: seed of the generator (same seed, same images).
    """
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0.0, 1.0, size)
    images = []
    for _ in range(count):
        start, end = rng.uniform(0, 255, size=(2, 3))
        angle = rng.uniform(0, np.pi)
        mix = np.clip(
            np.outer(ramp, np.ones(size)) * np.cos(angle)
            + np.outer(np.ones(size), ramp) * np.sin(angle),
            0.0,
            1.0,
        )
        pixels = start + (end - start) * mix[:, :, None]
        picture = Image.fromarray(pixels.astype(np.uint8))
        draw = ImageDraw.Draw(picture)
        for _ in range(int(rng.integers(2, 6))):
            box = sorted(rng.uniform(0, size, size=2)), sorted(rng.uniform(0, size, size=2))
            colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
            shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
            shape([box[0][0], box[1][0], box[0][1] + 1, box[1][1] + 1], fill=colour)
        picture = picture.filter(ImageFilter.GaussianBlur(radius=1.5))
        noisy = np.asarray(picture, dtype=np.float64) + rng.normal(0, 6, size=(size, size, 3))
        images.append(Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)))
    return images


def probe_batch(
    preprocess: Callable[[Image.Image], torch.Tensor], batch_size: int, device: torch.device
) -> torch.Tensor:
    """A ``(batch_size, C, H, W)`` batch of :func:`probe_images` (8 distinct, repeated) on
    ``device``, preprocessed by the backbone's own ``preprocess``."""
    distinct = torch.stack([preprocess(image) for image in probe_images(min(8, batch_size))])
    repeats = -(-batch_size // distinct.shape[0])
    return distinct.repeat(repeats, 1, 1, 1)[:batch_size].to(device)


def _time_tower(
    tower: Tower, batch: torch.Tensor, *, slow_after: float | None
) -> tuple[torch.Tensor, float]:
    """Output of the first pass and the best images/s of :data:`PROBE_RUNS` passes timed after
    :data:`PROBE_WARMUP` (the last warm-up counts instead when one took over ``slow_after`` s)."""
    seconds: list[float] = []
    with torch.inference_mode():
        for run in range(PROBE_WARMUP + PROBE_RUNS):
            started = time.perf_counter()
            output = tower(batch)
            if batch.device.type == "cuda":
                torch.cuda.synchronize(batch.device)
            seconds.append(time.perf_counter() - started)
            if run == 0:
                first = output
            elif run < PROBE_WARMUP and slow_after is not None and seconds[-1] > slow_after:
                break
    timed = seconds[PROBE_WARMUP:] or seconds[-1:]
    return first, batch.shape[0] / min(timed)


def _summary(result: CandidateResult) -> str:
    if result.images_per_s is None:
        return f"{result.label} unavailable ({result.error})"
    return f"{result.label} {result.images_per_s:.1f} img/s, cosine {result.min_cosine:.4f}"
