"""B2's ceiling: the same model behind a bare HTTP endpoint, nothing of winnow's service around it.

One route, ``POST /invoke``, served the way ``winnow serve`` serves invokes (uvicorn, an async
route that reads the multipart ``file`` part with Starlette, then a thread of the thread pool that
decodes the image with winnow's ``decode_image`` and waits on winnow's ``BatchingEncoder``, at the
batch size, batch window, workers, threads and tower (runtime, precision) the service runs with); it
answers the index of the vector's largest component. No authentication, database, serving
snapshot, head, capture or response schema.

``python -m bench.serving --bare`` drives it with the same clients, bodies and rounds as the
service, so its ratio to the raw loop is the most any HTTP service can reach on this machine with
the load generator on the same cores; winnow's own layers cost the gap between it and the service.

Usage (started by bench.serving; by hand)::

    python -m bench.bare_http --port 8123 --backbone efficientnet-lite0 --runtime onnx \
        --precision int8 --batch-size 8
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np
import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from embeddings import BatchingEncoder, decode_image  # noqa: E402
from embeddings.pool import EncoderPool  # noqa: E402
from service.settings import Settings  # noqa: E402


def bare_app(encoder: BatchingEncoder, max_pixels: int) -> Starlette:
    """The one-route app over ``encoder``."""

    def answer(data: bytes) -> int:
        vector = encoder.encode([decode_image(data, max_pixels=max_pixels)])[0]
        return int(np.argmax(vector))

    async def invoke(request: Request) -> Response:
        form = await request.form()
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            return PlainTextResponse("a multipart 'file' part is required", status_code=422)
        data = await upload.read()
        return JSONResponse({"index": await run_in_threadpool(answer, data)})

    async def health(_request: Request) -> Response:
        return PlainTextResponse("ok")

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        encoder.close()

    return Starlette(
        routes=[Route("/invoke", invoke, methods=["POST"]), Route("/health", health)],
        lifespan=lifespan,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--backbone", default="efficientnet-lite0")
    parser.add_argument("--runtime", default="torch")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--queue-limit", type=int, default=Settings.queue_limit)
    parser.add_argument("--encoder-threads", type=int, default=Settings.encoder_threads)
    args = parser.parse_args(argv)
    encoder = EncoderPool(  # as service.runtime builds the service's
        args.backbone,
        max_batch=args.batch_size,
        max_wait_ms=Settings.batch_wait_ms,
        max_queue=args.queue_limit,
        torch_threads=args.encoder_threads or -1,
        precision=args.precision,
        runtime=args.runtime,
    ).get(args.backbone)
    app = bare_app(encoder, Settings.max_image_pixels)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
