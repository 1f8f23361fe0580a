"""The asyncio client against a live service: the same surface as Client, concurrent uploads."""

import asyncio

import pytest
from winnow_client import AsyncClient, NotFound, Prediction, SampleUpload, WinnowError

from tests.conftest import ADMIN_KEY, BLUE, RED, png_bytes


def test_async_client_workflow(live_url: str) -> None:
    items = [
        SampleUpload(png_bytes(colour, seed=i), name, f"{name}/{i}.png")
        for i in range(4)
        for name, colour in (("red", RED), ("blue", BLUE))
    ]

    async def main() -> None:
        async with AsyncClient(live_url, api_key=ADMIN_KEY) as winnow:
            fn = await winnow.ensure_function("IsRed", ["red", "blue"])
            report = await winnow.upload_samples(fn.id, items, concurrency=3, progress=False)
            assert report.uploaded == 8 and not report.failed
            again = await winnow.upload_samples(fn.id, items, progress=False)
            assert again.uploaded == 0 and len(again.skipped) == 8
            assert len([s async for s in winnow.iter_samples(fn.id, page_size=3)]) == 8

            version = await winnow.train(fn.id)
            assert version.version == 1
            # Concurrent invokes through one client.
            answers = await asyncio.gather(
                *(
                    winnow.invoke(fn.id, png_bytes(RED, seed=20 + i), capture=False)
                    for i in range(4)
                )
            )
            assert {a.label_name for a in answers} == {"red"}
            many = await winnow.invoke_many(
                fn.id, [png_bytes(BLUE, seed=30), b"junk", png_bytes(RED, seed=31)], batch_size=2
            )
            assert isinstance(many[0], Prediction) and many[0].label_name == "blue"
            assert isinstance(many[1], WinnowError) and many[1].status == 400
            assert isinstance(many[2], Prediction) and many[2].label_name == "red"
            assert (await winnow.training_status(fn.id)).last_version == 1
            with pytest.raises(NotFound):
                await winnow.get_function("function_missing")

    asyncio.run(main())


def test_async_reviewer_keys_and_history(live_url: str) -> None:
    async def main() -> None:
        async with AsyncClient(live_url, api_key=ADMIN_KEY) as winnow:
            fn = await winnow.create_function("IsRed", ["red", "blue"])
            key = await winnow.create_key(["annotate"], function_id=fn.id, reviewer="ana")
            assert key.reviewer == "ana"
            async with AsyncClient(live_url, api_key=key.key) as ana:
                uploads = [SampleUpload(png_bytes(RED), "red", "red/0.png")]
                report = await ana.upload_samples(fn.id, uploads, progress=False, via="import")
                [sample] = report.created
                history = await ana.sample_history(fn.id, sample.id)
            assert [(e.label_after, e.actors, e.via) for e in history] == [
                ("red", ["ana"], "import")
            ]

    asyncio.run(main())


def test_both_clients_have_the_same_methods() -> None:
    from winnow_client import Client

    def public(cls: type) -> set[str]:
        return {name for name in dir(cls) if not name.startswith("_")}

    assert public(Client) - {"close"} == public(AsyncClient) - {"aclose"}
