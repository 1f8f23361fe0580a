"""A function's model as one ONNX file that runs where winnow does not.

The graph takes uint8 RGB pixels ``(n, crop, crop, 3)`` (input ``pixels``), scales them inside,
runs the function's backbone to unit-length vectors and the version's head to its calibrated
probabilities (output ``probabilities``, one column per label). The metadata carries what a
caller needs: ``winnow.labels`` (JSON list, in column order), ``winnow.model_version``,
``winnow.backbone``, ``winnow.function`` and ``winnow.preprocess`` (the resize and crop to make
the pixels, :class:`embeddings.onnx_graph.PixelRecipe`). ``docs/examples/run_exported.py`` runs it
with onnxruntime, Pillow and numpy alone. A tuned version (:mod:`service.finetune`) exports its own
tower, the frozen trunk and its tuned tail, and the linear layer it answers with.

Everything is exported in fp32, whatever precision the service runs its tower in.
"""

from __future__ import annotations

import json
import re
import threading
from typing import Any

import onnx
import torch

from embeddings import load_backbone
from embeddings.onnx_graph import OPSET, ExportableBackbone, PixelRecipe, pixel_graph
from embeddings.tuning import tuned_network
from learner.finetune import TunedHead
from learner.onnx_head import IR_VERSION, head_to_onnx
from service.errors import Conflict
from service.functions import get_function
from service.invoke import stored_model
from service.runtime import Runtime
from store import session_scope

FEATURES = "features"  # the edge joining the backbone graph to the head graph
_one_at_a_time = threading.Lock()


def export_model(rt: Runtime, function_id: str, version: int | None = None) -> tuple[bytes, str]:
    """The serialised ONNX model of ``version`` (default: the deployed one) of a function, and
    a file name for it (``<function name>-v<version>.onnx``, made safe).

    One export runs at a time in a process: a ViT-B-32 export holds a few GB while it runs.

    Raises:
        NotFound: no such function or version.
        Conflict: nothing deployed and no version asked for; the artifact is unreadable; the
            head or backbone has no ONNX form.
    """
    with session_scope(rt.engine) as session:
        function = get_function(session, function_id)
        if version is None:
            version = function.deployed_version
        name, spec = function.name, function.backbone
    if version is None:
        raise Conflict(f"function {function_id} has no deployed model to export; name a version")
    model = stored_model(rt, function_id, version)
    backbone = _backbone(rt, spec)
    try:
        with _one_at_a_time:
            tower = pixel_graph(backbone, _tuned_tower(model.head))
        data = joined_model(
            tower,
            model.head,
            backbone.dim,
            {
                "winnow.labels": json.dumps(list(model.labels)),
                "winnow.model_version": str(version),
                "winnow.backbone": spec,
                "winnow.function": json.dumps({"id": function_id, "name": name}),
            },
        )
    except ValueError as exc:
        raise Conflict(
            f"version {version} of function {function_id} cannot be exported: {exc}"
        ) from exc
    safe_name = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or function_id
    return data, f"{safe_name}-v{version}.onnx"


def joined_model(
    tower: tuple[bytes, PixelRecipe], head: Any, dim: int, metadata: dict[str, str]
) -> bytes:
    """The backbone graph (:func:`embeddings.onnx_graph.pixel_graph`'s answer) joined to the
    head's (:func:`learner.onnx_head.head_to_onnx`), with ``metadata`` and the pixel recipe
    (``winnow.preprocess``) in its properties.

    Raises:
        ValueError: the head has no ONNX form.
    """
    graph, recipe = tower
    backbone = onnx.load_from_string(graph)
    head_model = head_to_onnx(head, dim, opset=OPSET)
    backbone.ir_version = head_model.ir_version = IR_VERSION
    joined = onnx.compose.merge_models(
        onnx.compose.add_prefix(backbone, "backbone_", rename_inputs=False, rename_outputs=False),
        head_model,
        io_map=[(FEATURES, FEATURES)],
        producer_name="winnow",
        doc_string=(
            f"uint8 RGB pixels (n, {recipe.crop}, {recipe.crop}, 3) to probabilities over the "
            "labels in winnow.labels"
        ),
    )
    onnx.helper.set_model_props(
        joined, {**metadata, "winnow.preprocess": json.dumps(recipe.describe())}
    )
    return joined.SerializeToString()  # type: ignore[no-any-return]


def _tuned_tower(head: Any) -> torch.nn.Module | None:
    """A tuned version's own image tower (frozen trunk and tuned tail); None for a frozen head,
    whose version runs the backbone's."""
    if not isinstance(head, TunedHead):
        return None
    return tuned_network(head.spec, head.model.tail, head.tuned_blocks)


def _backbone(rt: Runtime, spec: str) -> ExportableBackbone:
    """The service's own backbone for ``spec`` when it runs in this process, else one loaded
    here on the CPU (a Ray encoder's model lives elsewhere)."""
    backbone = getattr(rt.encoders.get(spec), "backbone", None)
    if isinstance(backbone, ExportableBackbone):
        return backbone
    loaded = load_backbone(spec, device="cpu", cache_dir=rt.settings.weights_cache_dir or None)
    if not isinstance(loaded, ExportableBackbone):
        raise Conflict(f"backbone {spec} cannot be exported to ONNX")
    return loaded
