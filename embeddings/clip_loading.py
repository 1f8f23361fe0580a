"""Parse ``clip:`` specs and load their weights: local cache first, then a fail-fast download.

Spec forms (after the ``clip:`` prefix):

* ``<arch>/<tag>`` - a built-in open_clip architecture with a published tag, e.g.
  ``ViT-B-32/laion2b_s34b_b79k``; weights come from the Hugging Face cache or are downloaded once.
* ``<arch>/<checkpoint path>`` - split at the first ``/`` after the arch, so an absolute path
  reads ``clip:ViT-B-32//models/ckpt.pt``.
* ``hf-hub:<org>/<repo>`` - an open_clip model repo on the Hugging Face hub.

When weights are already cached they are loaded straight from disk with no network request, so a
machine that downloaded them once works offline. Otherwise the hub is probed with a short TCP
connect first: without network the load fails in seconds instead of after a minute of retries.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

import huggingface_hub
import open_clip
import torch

from embeddings.clip_backbone import ClipBackbone, build_clip_backbone
from embeddings.errors import BackboneUnavailable
from embeddings.tower_options import DEFAULT_TOWER, TowerOptions

CLIP_PREFIX = "clip:"
HF_HUB_SCHEMA = "hf-hub:"
HUB_PROBE_TIMEOUT_S = 3.0
_CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")
_HUB_WEIGHT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
_HUB_CONFIG_FILE = "open_clip_config.json"


@dataclass(frozen=True)
class ClipSource:
    """Where the model of a ``clip:`` spec comes from."""

    kind: Literal["tag", "file", "hf-hub"]
    arch: str  # built-in open_clip architecture; empty for hf-hub models
    weights: str  # pretrained tag, absolute checkpoint path, or hub repo id

    @property
    def spec(self) -> str:
        """Canonical spec string for this source."""
        if self.kind == "hf-hub":
            return f"{CLIP_PREFIX}{HF_HUB_SCHEMA}{self.weights}"
        return f"{CLIP_PREFIX}{self.arch}/{self.weights}"


def parse_clip_spec(spec: str) -> ClipSource:
    """Split a ``clip:`` spec into architecture and weights source.

    Args:
        spec: e.g. ``clip:ViT-B-32/laion2b_s34b_b79k`` or ``clip:ViT-B-32//abs/ckpt.pt``.

    Raises:
        ValueError: the spec is malformed, names an unknown architecture or an unknown tag.
    """
    if not spec.startswith(CLIP_PREFIX):
        raise ValueError(f"not a clip spec: {spec!r}")
    body = spec[len(CLIP_PREFIX) :]
    if body.startswith(HF_HUB_SCHEMA):
        repo_id = body[len(HF_HUB_SCHEMA) :].strip("/")
        if repo_id.count("/") != 1:
            raise ValueError(f"expected clip:hf-hub:<org>/<repo>, got {spec!r}")
        return ClipSource(kind="hf-hub", arch="", weights=repo_id)
    arch, _, weights = body.partition("/")
    if not arch or not weights:
        raise ValueError(f"expected clip:<arch>/<tag or checkpoint path>, got {spec!r}")
    if arch not in open_clip.list_models():
        raise ValueError(f"unknown open_clip architecture {arch!r} in {spec!r}")
    known_tags = open_clip.list_pretrained_tags_by_model(arch)
    if weights in known_tags:
        return ClipSource(kind="tag", arch=arch, weights=weights)
    if "/" in weights or os.sep in weights or weights.endswith(_CHECKPOINT_SUFFIXES):
        path = os.path.abspath(os.path.expanduser(weights))
        return ClipSource(kind="file", arch=arch, weights=path)
    raise ValueError(
        f"{weights!r} is neither a pretrained tag of {arch} ({', '.join(known_tags) or 'none'}) "
        "nor a checkpoint path"
    )


def load_clip(
    source: ClipSource,
    *,
    device: torch.device,
    cache_dir: str | None,
    tower: TowerOptions = DEFAULT_TOWER,
) -> ClipBackbone:
    """Load the CLIP model a parsed spec names.

    Args:
        source: result of :func:`parse_clip_spec`.
        device: where to run the model.
        cache_dir: Hugging Face / open_clip download cache; None for the library default.
        tower: precision and compilation of the image tower.

    Raises:
        BackboneUnavailable: the weights are missing, unreachable or do not fit the architecture.
    """
    try:
        if source.kind == "file":
            return _load_checkpoint_file(source, device=device, tower=tower)
        if source.kind == "tag":
            return _load_tag(source, device=device, cache_dir=cache_dir, tower=tower)
        return _load_hub_repo(source, device=device, cache_dir=cache_dir, tower=tower)
    except BackboneUnavailable:
        raise
    except Exception as error:
        raise BackboneUnavailable(
            f"cannot load {source.spec}: {type(error).__name__}: {error}"
        ) from error


def cached_clip_weights(arch: str, tag: str, cache_dir: str | None = None) -> str | None:
    """Path of the already downloaded weights for ``arch``/``tag``, or None; never uses the network.

    Args:
        arch: open_clip architecture, e.g. ``ViT-B-32``.
        tag: pretrained tag, e.g. ``laion2b_s34b_b79k``.
        cache_dir: cache directory passed to open_clip / huggingface_hub (None: their default).
    """
    config = open_clip.get_pretrained_cfg(arch, tag)
    hub_location = config.get("hf_hub", "")
    if hub_location:
        repo_id, filename = os.path.split(hub_location)  # "org/repo/" -> ("org/repo", "")
        candidates = [filename] if filename else list(_HUB_WEIGHT_FILES)
        for name in candidates:
            found = _cached_hub_file(repo_id, name, cache_dir)
            if found is not None:
                return found
    url = config.get("url", "")
    if url:
        url_cache = cache_dir or os.path.expanduser("~/.cache/clip")
        target = os.path.join(url_cache, os.path.basename(url))
        if os.path.isfile(target):
            return target
    return None


def hub_unreachable_reason(timeout: float = HUB_PROBE_TIMEOUT_S) -> str | None:
    """Why the Hugging Face hub cannot be reached (one short TCP connect), or None if it can.

    Args:
        timeout: seconds to wait for the connection.
    """
    endpoint = urlsplit(huggingface_hub.constants.ENDPOINT)
    host = endpoint.hostname or "huggingface.co"
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as error:
        return f"{host}:{port} is unreachable ({error})"


def _load_checkpoint_file(
    source: ClipSource, *, device: torch.device, tower: TowerOptions
) -> ClipBackbone:
    if not os.path.isfile(source.weights):
        raise BackboneUnavailable(f"checkpoint file {source.weights} does not exist")
    return build_clip_backbone(
        source.spec, source.arch, device=device, tower=tower, pretrained=source.weights
    )


def _load_tag(
    source: ClipSource, *, device: torch.device, cache_dir: str | None, tower: TowerOptions
) -> ClipBackbone:
    cached = cached_clip_weights(source.arch, source.weights, cache_dir)
    if cached is None:
        _require_hub(source)
        return build_clip_backbone(
            source.spec,
            source.arch,
            device=device,
            tower=tower,
            pretrained=source.weights,
            cache_dir=cache_dir,
        )
    # Loading the cached file directly skips open_clip's online freshness check, so the tag's
    # preprocessing and activation settings must be passed explicitly.
    config = open_clip.get_pretrained_cfg(source.arch, source.weights)
    return build_clip_backbone(
        source.spec,
        source.arch,
        device=device,
        tower=tower,
        pretrained=cached,
        force_quick_gelu=bool(config.get("quick_gelu", False)),
        image_mean=config.get("mean"),
        image_std=config.get("std"),
        image_interpolation=config.get("interpolation"),
        image_resize_mode=config.get("resize_mode"),
    )


def _load_hub_repo(
    source: ClipSource, *, device: torch.device, cache_dir: str | None, tower: TowerOptions
) -> ClipBackbone:
    config_path = _cached_hub_file(source.weights, _HUB_CONFIG_FILE, cache_dir)
    if config_path is not None:
        snapshot = os.path.dirname(config_path)
        if any(os.path.isfile(os.path.join(snapshot, name)) for name in _HUB_WEIGHT_FILES):
            return build_clip_backbone(
                source.spec, f"local-dir:{snapshot}", device=device, tower=tower
            )
    _require_hub(source)
    return build_clip_backbone(
        source.spec,
        f"{HF_HUB_SCHEMA}{source.weights}",
        device=device,
        tower=tower,
        cache_dir=cache_dir,
    )


def _require_hub(source: ClipSource) -> None:
    reason = hub_unreachable_reason()
    if reason is not None:
        raise BackboneUnavailable(
            f"weights for {source.spec} are not in the local cache and the hub is unreachable: "
            f"{reason}"
        )


def _cached_hub_file(repo_id: str, filename: str, cache_dir: str | None) -> str | None:
    found = huggingface_hub.try_to_load_from_cache(repo_id, filename, cache_dir=cache_dir)
    return found if isinstance(found, str) and os.path.isfile(found) else None
