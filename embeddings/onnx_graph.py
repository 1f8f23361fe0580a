"""Torch modules as ONNX graphs: the one export path, shared by serving and model export.

:func:`module_to_onnx` runs PyTorch's ``torch.export``-based exporter (the default since 2.9; the
TorchScript one is deprecated) with the batch dimension left free, so one graph serves any batch
size, and returns the serialised model. ONNX Runtime serving (:mod:`embeddings.onnx_runtime`) and
``winnow export-model`` (:mod:`service.model_export`) both call it.
"""

from __future__ import annotations

import logging
import warnings

import torch

OPSET = 18
"""The ONNX opset of every graph winnow writes (heads converted by skl2onnx use the same)."""

logger = logging.getLogger(__name__)


def module_to_onnx(
    module: torch.nn.Module,
    example: torch.Tensor,
    *,
    input_name: str = "images",
    output_name: str = "features",
) -> bytes:
    """The serialised ONNX model of eval-mode ``module`` on batches shaped like ``example``.

    Every dimension but the first (the batch) is fixed to ``example``'s.

    Args:
        module: takes one batch tensor, returns one tensor; exported as is (its dtype included).
        example: a batch of at least two rows (a batch of one would be specialised to one).
        input_name: the graph input's name.
        output_name: the graph output's name.

    Raises:
        ValueError: ``example`` has fewer than two rows.
    """
    if example.shape[0] < 2:
        raise ValueError("export needs an example batch of at least two rows")
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the exporter's deprecation and tracing chatter
        program = torch.onnx.export(
            module.eval(),
            (example,),
            input_names=[input_name],
            output_names=[output_name],
            dynamic_shapes=({0: torch.export.Dim("batch")},),
            opset_version=OPSET,
            dynamo=True,
            verbose=False,
        )
    assert program is not None  # dynamo export always returns its program
    return program.model_proto.SerializeToString()  # type: ignore[no-any-return]
