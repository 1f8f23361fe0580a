"""Service settings: one dataclass, filled from CLI flags or ``WINNOW_<NAME>`` variables.

Only the composition root reads these; every other package gets plain values.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Settings:
    # Interface the HTTP server binds to.
    host: str = "127.0.0.1"
    # TCP port of the HTTP server.
    port: int = 8000
    # Directory for the SQLite database, image blobs and model artifacts.
    data_dir: Path = Path("./winnow-data")
    # Default backbone for new functions: auto | efficientnet-lite0 | clip:<arch>/<pretrained>.
    backbone: str = "auto"
    # SQLAlchemy URL of the state database; empty means SQLite inside data_dir.
    database_url: str = ""
    # Where image blobs and model artifacts live: file:///ROOT (empty: data_dir; ROOT/blobs and
    # ROOT/models) or s3://BUCKET[/PREFIX], with boto3's standard endpoint (AWS_ENDPOINT_URL) and
    # credentials, so replicas with separate data dirs share them.
    blob_store: str = ""
    # Redis URL (redis://host:6379/0) where replicas share per-key rate limits; empty: per process.
    redis_url: str = ""
    # Failed authentications allowed per client address, and per key id, in a minute; beyond it
    # 429 (service.auth_throttle). Shared through redis_url when set. 0: no limit.
    auth_failures_per_minute: int = 20
    # Base URL clients reach this service at (https://winnow.example.com), used in the URLs it
    # hands out; empty: the request's Host when it names this server's bound address or
    # localhost, else a path without scheme and host (a hostile Host header is never echoed).
    public_url: str = ""
    # Largest accepted request body in megabytes (413 above it).
    max_body_mb: float = 20.0
    # Largest accepted image in pixels (width x height), checked before decoding.
    max_image_pixels: int = 40_000_000
    # Most decoded image pixels held at once by all requests together (decoding to encoding);
    # beyond it a request waits up to 2 s, then answers 503 with Retry-After. 0: auto, from the
    # machine's memory (service.runtime.decode_pixel_budget); else at least max_image_pixels.
    decode_pixel_budget: int = 0
    # Most images the encoder embeds in one batch: a number, or auto (256 on a GPU, 8 on CPU).
    batch_size: str = "auto"
    # Numeric precision of the image tower: auto (the fastest of fp32 / bf16 / int8 that keeps
    # every probe image's cosine to fp32 >= 0.99, 0.999 on a GPU; measured at a backbone's first
    # load on this machine, then remembered in <data_dir>/precision.json: delete it to measure
    # again) | fp32 | bf16 | int8 (CPU only).
    precision: str = "auto"
    # What runs the image tower on the in-process encoder: torch | onnx (ONNX Runtime: fp32, or
    # int8 quantised where every probe vector keeps its cosine to torch fp32) | auto (measured
    # with the precisions at a backbone's first load, like precision auto).
    runtime: str = "torch"
    # Serve the image tower through torch.compile (falls back with a warning if it fails).
    compile: bool = False
    # How long the encoder waits for more requests to fill a batch, in milliseconds.
    batch_wait_ms: float = 5.0
    # Torch threads of each encoder worker on CPU; 0: measured per batch (embeddings.threads).
    encoder_threads: int = 0
    # Forward passes the in-process encoder runs at once, each on its own batch (0: 2 on a CPU,
    # 1 on an accelerator).
    encoder_workers: int = 0
    # Most images waiting for the encoder before invoke answers 503.
    queue_limit: int = 64
    # Most images one batch invoke takes (POST .../invoke/batch; more is a 413).
    max_batch_invoke: int = 64
    # Where images are embedded: local (in this process) | ray (Ray Serve encoder deployments
    # shared by every replica, batching across them; needs the `ray` extra).
    encoder: str = "local"
    # Ray cluster address (host:port of its head, or auto) with encoder=ray; empty: this node's
    # running Ray if any, else a local Ray started by this process.
    ray_address: str = ""
    # Seconds between automatic retraining checks (0 disables the scheduler).
    retrain_interval: float = 60.0
    # New annotations since the last training that trigger an automatic retrain.
    retrain_min_annotations: int = 10
    # Seconds without a new annotation before a due retrain starts, so an upload burst trains
    # once; continuous arrivals wait at most retrain_interval seconds.
    retrain_debounce: float = 2.0
    # Fine-tuned challengers (service.finetune): off | auto (the scheduler tunes a function's
    # backbone tail when it has finetune_min_per_label labelled samples of each label, on a
    # backbone that can be cut (EfficientNet-Lite0); with encoder=ray on a Ray worker).
    finetune: str = "off"
    # Labelled samples each label needs before the scheduler queues a fine-tune.
    finetune_min_per_label: int = 20
    # Trailing backbone blocks a fine-tune tunes (of EfficientNet-Lite0's 16): the depth B13
    # measured best (docs/models.md); fewer tune faster and gain less.
    finetune_blocks: int = 13
    # Longest fine-tune (minutes) --finetune auto starts, estimated for the function's labelled
    # samples from a few training steps measured on this machine (0: no limit; the in-process
    # encoder only, a Ray worker's hardware is not measured).
    finetune_max_minutes: float = 120.0
    # Memory (MiB) the resident functions' serving state may hold (heads, capture indexes,
    # traffic windows); the least recently invoked are evicted beyond it. 0: a quarter of memory.
    snapshot_memory_mb: float = 0.0
    # Seconds between checks of the resident functions against the database: how soon a replica
    # serves what another deployed, or labels and capture policies changed elsewhere.
    snapshot_poll: float = 1.0
    # Invoke inputs kept per function in the database (a ring every replica writes into: the
    # recent unlabelled traffic semi-supervised training learns from); 0: none kept.
    traffic_sample_size: int = 2000
    # Seconds between writes of the inputs buffered in memory into that sample.
    traffic_flush_seconds: float = 10.0
    # Accuracy (0..1) a retrained model may lose against the deployed one and still be deployed;
    # a larger loss rejects it only when significant (learner.champion).
    deploy_tolerance: float = 0.01
    # Seconds allowed for fetching an image from a URL.
    url_timeout: float = 10.0
    # Allow image URLs that resolve to loopback/private addresses (off: SSRF protection).
    allow_private_urls: bool = False
    # Directory for downloaded backbone weights (empty: the library's default cache).
    weights_cache_dir: str = ""
    # Seed for the capture policy's random slice (empty: nondeterministic).
    seed: str = ""
    # Serve Prometheus metrics at GET /metrics (admin key); off: no endpoint (404).
    metrics: bool = True
    # Admin API key (all scopes on every function). Empty: generate one at first start, store its
    # hash, log it once and write it to <data_dir>/admin-key (mode 0600). Kept out of repr.
    admin_key: str = field(default="", repr=False)
    # Extra fields for tests; not settable from the command line.
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def database(self) -> str:
        return self.database_url or f"sqlite:///{(Path(self.data_dir) / 'winnow.db').resolve()}"

    @property
    def max_body_bytes(self) -> int:
        return int(self.max_body_mb * 1024 * 1024)


def settable_fields() -> list[dataclasses.Field[Any]]:
    """The fields a user can set with a flag or environment variable."""
    return [f for f in dataclasses.fields(Settings) if f.name != "extra"]


def env_name(name: str) -> str:
    return f"WINNOW_{name.upper()}"


def parse_value(f: dataclasses.Field[Any], raw: str) -> Any:
    """Convert a flag or env-var string into the field's type, with a clear error."""
    kind = f.type if isinstance(f.type, str) else f.type.__name__
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "bool":
            lowered = raw.strip().lower()
            if lowered in {"1", "true", "yes", "on"}:
                return True
            if lowered in {"0", "false", "no", "off", ""}:
                return False
            raise ValueError(raw)
        if kind == "Path":
            return Path(raw)
    except ValueError as exc:
        raise ValueError(f"invalid value {raw!r} for {f.name} (expected {kind})") from exc
    return raw


def settings_from_env(environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
    """Settings from ``WINNOW_<NAME>`` variables, then explicit overrides (e.g. CLI flags)."""
    environ = dict(os.environ if environ is None else environ)
    values: dict[str, Any] = {}
    for f in settable_fields():
        if env_name(f.name) in environ:
            values[f.name] = parse_value(f, environ[env_name(f.name)])
    values.update({k: v for k, v in overrides.items() if v is not None})
    return Settings(**values)
