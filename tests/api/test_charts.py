"""Charts draw user text (label names) literally: never as math text, TeX or markup."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from learner import confusion_matrix_png
from service.charts import activity_png, label_counts_png, model_history_png
from service.schemas import ActivityHour, LabelCount
from tests.conftest import data_uri, png_bytes

# Names a label may have (they pass the label-name rules) that matplotlib would read as math
# text, TeX, format strings or markup if it parsed them.
HOSTILE_NAMES = [
    r"$\foo{$",
    "$x$",
    "$",
    r"a\$b$",
    "%s %d",
    "{}{0}",
    "<b>bold</b>",
    r"\textbf{x}",
    "^_{}~#&",
    "_nolegend_",
    "שלום עולם",  # right to left
    "مرحبا",
    "界" * 200,  # very long
]
# Text that no label name can hold any more, but existing rows or other callers might.
UNNAMEABLE = ["a\nb", "\x1b[31mred", "\u202eevil", "zero\u200bwidth", "\t"]


def _is_png(data: bytes) -> bool:
    with Image.open(io.BytesIO(data)) as image:
        return image.format == "PNG" and image.width > 100


@pytest.mark.parametrize("name", HOSTILE_NAMES + UNNAMEABLE)
def test_chart_functions_draw_any_text(name: str) -> None:
    counts = [LabelCount(label_name=name, count=3), LabelCount(label_name="plain", count=1)]
    assert _is_png(label_counts_png(counts))
    metrics = {"labels": [name, "plain"], "confusion_matrix": [[2, 1], [0, 3]]}
    assert _is_png(confusion_matrix_png(metrics, title=name))


def test_other_charts_still_draw() -> None:
    hour = datetime(2026, 5, 1, 12, tzinfo=UTC)
    hours = [
        ActivityHour(
            hour=hour,
            captured=1,
            resolved=0,
            queue_depth=1,
            invokes=0,
            scored=0,
            novel=0,
            capture_rate=None,
        ),
        ActivityHour(  # invokes before a novelty model: a capture rate, no novel share
            hour=hour + timedelta(hours=1),
            captured=1,
            resolved=0,
            queue_depth=2,
            invokes=4,
            scored=0,
            novel=0,
            capture_rate=0.25,
        ),
    ]
    assert _is_png(activity_png(hours)) and _is_png(model_history_png([]))


def test_every_chart_endpoint_answers_a_png_with_hostile_label_names(client: TestClient) -> None:
    names = HOSTILE_NAMES
    fid = client.post("/v1/functions", json={"name": "$\\foo{$", "labels": names}).json()["id"]
    for i, name in enumerate(names):
        colour = (i * 19 % 256, i * 71 % 256, 255 - i * 19 % 256)
        for seed in range(3):
            body = {
                "data": data_uri(png_bytes(colour, seed=seed)),
                "annotation": {"labelName": name},
            }
            response = client.post(f"/v1/functions/{fid}/samples", json=body)
            assert response.status_code == 201, response.text
    assert client.post(f"/v1/functions/{fid}/train").status_code == 200
    urls = [f"/v1/functions/{fid}/charts/{c}.png" for c in ("model-history", "activity", "labels")]
    for url in [*urls, f"/v1/functions/{fid}/metrics/confusion-matrix.png"]:
        response = client.get(url)
        assert response.status_code == 200, (url, response.text)
        assert response.headers["content-type"] == "image/png" and _is_png(response.content)
