"""B2's invoke bodies and its profile summary (bench/serving.py, bench/serving_profile.py)."""

from __future__ import annotations

import asyncio
import json

import pytest

from bench import serving, serving_profile
from bench.serving_profile import Sampled, summarise

SITE = "/venv/lib/python3.11/site-packages"
STDLIB = "/usr/lib/python3.11"


def stack(thread: str, *frames: str, count: int) -> str:
    """A line of py-spy's raw output; frames as ``function path`` from the root."""
    names = []
    for frame in frames:
        function, path = frame.split(" ")
        root = str(serving_profile.ROOT) if path.split("/")[0] in ("api", "service") else SITE
        root = STDLIB if path in ("threading.py", "asyncio/runners.py") else root
        names.append(f"{function} ({root}/{path})")
    return ";".join([thread, *names]) + f" {count}"


def test_a_multipart_body_is_read_by_starlette_as_its_file_parts() -> None:
    from starlette.requests import Request

    image = b"\xff\xd8 not really a JPEG, but bytes \r\n--almost a boundary\xff\xd9"
    other = b"\xff\xd8 another\xff\xd9"

    async def read(body: bytes) -> list[bytes]:
        async def receive() -> dict[str, object]:
            return {"type": "http.request", "body": body, "more_body": False}

        content_type = serving.BODY_TYPES["multipart"].encode()
        scope = {"type": "http", "method": "POST", "headers": [(b"content-type", content_type)]}
        form = await Request(scope, receive).form()
        uploads = form.getlist("file")
        assert not any(isinstance(upload, str) for upload in uploads)
        return [await upload.read() for upload in uploads]  # type: ignore[union-attr]

    assert asyncio.run(read(serving.multipart_body(image))) == [image]
    assert asyncio.run(read(serving.multipart_body(image, other))) == [image, other]
    assert serving.invoke_bodies([image], "data-uri")[0].startswith(b'{"data": "data:image/jpeg')
    # /invoke/batch bodies: consecutive images of the stream, wrapping round at its end
    batches = serving.invoke_bodies([image, other, image], "multipart", per_request=2)
    assert [asyncio.run(read(body)) for body in batches] == [[image, other], [image, image]]
    items = json.loads(serving.invoke_bodies([image, other], "data-uri", per_request=2)[0])
    assert [item["data"][:22] for item in items["items"]] == ["data:image/jpeg;base64"] * 2


def test_each_sample_counts_for_its_first_stage_and_cpu_is_shared_out_by_samples() -> None:
    main = "thread (100): MainThread"
    worker = "thread (101): AnyIO worker thread"
    encoder = "thread (102): winnow-encoder[efficientnet-lite0]"
    loop = ("main api/cli.py", "Runner.run asyncio/runners.py")
    invoke = ("WorkerThread.run anyio/_backends/_asyncio.py", "invoke service/invoke.py")
    stacks = "\n".join(
        [
            stack(main, *loop, count=60),  # uvloop's C work (or idle): HTTP
            stack(
                main,
                *loop,
                "Middleware.__call__ api/observability.py",
                "parse starlette/formparsers.py",
                count=30,
            ),  # fmt: skip
            # the middleware around every request takes only its own frames
            stack(
                main,
                *loop,
                "Middleware.__call__ api/observability.py",
                "Router.handle starlette/routing.py",
                count=5,
            ),  # fmt: skip
            stack(main, *loop, "Middleware.__call__ api/observability.py", count=5),
            # a database read made by capture counts as database
            stack(
                worker,
                *invoke,
                "maybe_capture service/capture.py",
                "execute sqlalchemy/engine/base.py",
                count=20,
            ),  # fmt: skip
            stack(worker, *invoke, "maybe_capture service/capture.py", count=20),
            # PIL under preprocessing is decoding, torch under it too
            stack(
                worker,
                *invoke,
                "ClipBackbone.preprocess embeddings/clip_backbone.py",
                "Module._call_impl torch/nn/modules/module.py",
                count=10,
            ),  # fmt: skip
            stack(
                worker,
                *invoke,
                "BatchingEncoder.encode embeddings/encoder.py",
                "Future.result concurrent/futures/_base.py",
                "Condition.wait threading.py",
                count=50,
            ),  # fmt: skip
            stack(
                encoder,
                "BatchingEncoder._run embeddings/encoder.py",
                "Module._call_impl torch/nn/modules/module.py",
                count=70,
            ),  # fmt: skip
            stack(
                encoder,
                "BatchingEncoder._run embeddings/encoder.py",
                "Condition.wait threading.py",
                count=30,
            ),  # fmt: skip
        ]
    )
    sampled = Sampled(
        stacks=stacks, cpu={100: 0.5, 101: 0.25, 102: 0.75, 103: 0.5}, seconds=1.0, rate=100
    )
    summary = summarise(sampled, invokes=10, header=["test"])
    cpu, on_stack, waits = (summary.ms_per_invoke[k] for k in ("cpu", "on_stack", "waits"))
    # 100 samples per thread in 1 s, 10 invokes: a sample is 1 ms of thread time per invoke
    assert on_stack["http"] == 65 and on_stack["body"] == 30 and on_stack["observe"] == 5
    assert on_stack["database"] == 20 and on_stack["capture"] == 20 and on_stack["decode"] == 10
    assert on_stack["encoder"] == 70
    assert waits["wait_batch"] == 50 and waits["wait_encoder_idle"] == 30
    # thread CPU (ms per invoke) shared out over each thread's working samples
    assert cpu["http"] == pytest.approx(50 * 0.65) and cpu["body"] == pytest.approx(50 * 0.3)
    assert cpu["database"] == pytest.approx(25 * 0.4) and cpu["decode"] == pytest.approx(25 * 0.2)
    assert cpu["encoder"] == pytest.approx(75) and cpu["native"] == pytest.approx(50)
    assert "AnyIO worker thread (x1)" in summary.text
    assert "Top 30 functions by self time" in summary.text


def test_a_library_in_the_checkouts_virtual_environment_is_named_from_site_packages() -> None:
    """make install puts .venv inside the checkout: its libraries must still match their stage
    (SQLAlchemy read by service/auth.py is database work, not service work)."""
    root = serving_profile.ROOT
    venv = f"{root}/.venv/lib/python3.11/site-packages"
    assert serving_profile.short_path(f"{venv}/sqlalchemy/engine/base.py") == (
        "sqlalchemy/engine/base.py"
    )
    assert serving_profile.short_path(f"{root}/service/auth.py") == "service/auth.py"
    assert serving_profile.short_path(f"{STDLIB}/threading.py") == "threading.py"
    auth_read = [
        serving_profile.Frame("authenticate", "service/auth.py"),
        serving_profile.Frame("execute", serving_profile.short_path(f"{venv}/sqlalchemy/x.py")),
    ]
    assert serving_profile.stage_of(auth_read, "thread (1): AnyIO worker thread") == "database"
