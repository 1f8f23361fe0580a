"""Run a model exported by ``winnow export-model`` with onnxruntime alone (no torch, no winnow).

    pip install onnxruntime pillow numpy
    python run_exported.py model.onnx photo.jpg [more.jpg ...]

The graph takes uint8 RGB pixels ``(n, crop, crop, 3)``; :func:`pixels` makes them the way winnow
does (shorter side resized, centre crop), reading the sizes from the model's metadata.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import onnxruntime
from PIL import Image, ImageOps

_RESAMPLE = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR}


def pixels(image: Image.Image, recipe: dict) -> np.ndarray:
    """``(crop, crop, 3)`` uint8 pixels of ``image``, resized and cropped as winnow does."""
    image = ImageOps.exif_transpose(image)
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")  # winnow composites transparency on white
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba)
    image = image.convert("RGB")
    short, crop = recipe["resize_shorter_side"], recipe["center_crop"]
    width, height = image.size
    if width <= height:
        size = (short, int(short * height / width))
    else:
        size = (int(short * width / height), short)
    image = image.resize(size, _RESAMPLE[recipe["interpolation"]])
    left = int(round((size[0] - crop) / 2.0))
    top = int(round((size[1] - crop) / 2.0))
    return np.asarray(image.crop((left, top, left + crop, top + crop)), dtype=np.uint8)


def main(model_path: str, image_paths: list[str]) -> None:
    session = onnxruntime.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    labels = json.loads(meta["winnow.labels"])
    recipe = json.loads(meta["winnow.preprocess"])
    batch = np.stack([pixels(Image.open(path), recipe) for path in image_paths])
    probabilities = session.run(["probabilities"], {"pixels": batch})[0]
    for path, row in zip(image_paths, probabilities, strict=True):
        best = int(np.argmax(row))
        print(f"{path}: {labels[best]} ({row[best]:.3f})")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
