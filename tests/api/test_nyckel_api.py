"""The Nyckel-compatible API's contract, in process: wire shapes, ids with and without prefixes,
Nyckel's status codes, paging links, tenants, and a clear 4xx for what winnow does not do."""

from __future__ import annotations

import dataclasses

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from service.settings import Settings
from tests.conftest import ADMIN_KEY, BLUE, RED, data_uri, png_bytes

pytestmark = pytest.mark.databases

N = "/nyckel"


def bare(prefixed: str) -> str:
    return prefixed.split("_", 1)[1]


def token(client: TestClient, client_id: str, secret: str) -> str:
    form = {"client_id": client_id, "client_secret": secret, "grant_type": "client_credentials"}
    response = client.post(f"{N}/connect/token", data=form, headers={"Authorization": ""})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] > 600
    # a credential: never cached (RFC 6749, 5.1)
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"
    return str(body["access_token"])


def nyckel_function(client: TestClient, name: str = "colours") -> str:
    response = client.post(
        f"{N}/v1/functions", json={"name": name, "input": "Image", "output": "Classification"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["id"].startswith("function_")
    return bare(response.json()["id"])


def add_sample(client: TestClient, fid: str, colour, seed: int, label: str | None, **extra):  # type: ignore[no-untyped-def]
    body = {"data": data_uri(png_bytes(colour, seed=seed)), "externalId": None, "sampleSets": []}
    if label is not None:
        body["annotation"] = {"labelName": label}
    return client.post(f"{N}/v1/functions/{fid}/samples", json={**body, **extra})


def train(client: TestClient, fid: str) -> None:
    for seed in range(4):
        for name, colour in (("red", RED), ("blue", BLUE)):
            response = add_sample(client, fid, colour, seed, name)
            assert response.status_code == 200, response.text
    assert client.post(f"/v1/functions/function_{fid}/train").status_code == 200


def test_token_exchange_maps_onto_api_keys(client: TestClient) -> None:
    assert token(client, "key_admin", ADMIN_KEY) == ADMIN_KEY
    assert token(client, "admin", ADMIN_KEY) == ADMIN_KEY  # the SDK strips prefixes
    form = {"client_id": "key_admin", "client_secret": "wrong", "grant_type": "client_credentials"}
    assert client.post(f"{N}/connect/token", data=form).status_code == 401
    created = client.post("/v1/keys", json={"scopes": ["invoke"]}).json()
    form = {"client_id": "key_admin", "client_secret": created["key"]}
    response = client.post(f"{N}/connect/token", data={**form, "grant_type": "client_credentials"})
    assert response.status_code == 401 and "client_id" in response.json()["message"]
    response = client.post(f"{N}/connect/token", data={**form, "grant_type": "password"})
    assert response.status_code == 400
    assert client.post(f"{N}/connect/token", data={"client_id": "x"}).status_code == 422


def test_functions_take_bare_or_prefixed_ids(client: TestClient) -> None:
    fid = nyckel_function(client)
    for ref in (fid, f"function_{fid}"):
        response = client.get(f"{N}/v1/functions/{ref}")
        assert response.status_code == 200
        assert response.json() == {
            "id": f"function_{fid}",
            "name": "colours",
            "input": "Image",
            "output": "Classification",
        }
    assert [f["id"] for f in client.get(f"{N}/v1/functions").json()] == [f"function_{fid}"]
    state = client.get(f"{N}/v0.9/functions/{fid}").json()["state"]
    assert state == "Annotating"
    assert client.delete(f"{N}/v1/functions/{fid}").status_code == 200
    assert client.get(f"{N}/v1/functions/{fid}").status_code == 404
    assert client.get(f"/v1/functions/function_{fid}").status_code == 404  # the same function


def test_what_winnow_does_not_do_is_a_clear_4xx(client: TestClient) -> None:
    for change, word in ({"input": "Text"}, "Image"), ({"output": "Tags"}, "Classification"):
        body = {"name": "f", "input": "Image", "output": "Classification", **change}
        response = client.post(f"{N}/v1/functions", json=body)
        assert response.status_code == 422 and word in response.json()["message"]
    fid = nyckel_function(client)
    response = add_sample(client, fid, RED, 0, "red", sampleSets=[{"sampleSetId": "s"}])
    assert response.status_code == 422 and "sample sets" in response.json()["message"]
    response = client.post(
        f"{N}/v1/functions/{fid}/labels", json={"name": "x", "metadata": {"a": "b"}}
    )
    assert response.status_code == 422 and "metadata" in response.json()["message"]
    response = client.get(f"{N}/v1/functions/{fid}/fields")
    assert response.status_code == 404 and "Coming from Nyckel" in response.json()["message"]
    assert add_sample(client, fid, RED, 0, None, data="not an image").status_code == 400
    assert client.get(f"{N}/v1/functions/{fid}/samples").json() == []  # nothing half-written


def test_samples_follow_nyckels_duplicate_rule_and_shapes(client: TestClient) -> None:
    fid = nyckel_function(client)
    first = add_sample(client, fid, RED, 0, "red", externalId="a")
    assert first.status_code == 200, first.text
    sample = first.json()
    assert sample["externalId"] == "a" and sample["annotation"]["labelId"].startswith("label_")
    assert "prediction" not in sample  # absent, not null: the SDK tests keys with `in`
    assert sample["data"].endswith(f"/v1/functions/function_{fid}/samples/{sample['id']}/image")
    assert client.get(sample["data"]).content == png_bytes(RED, seed=0)

    for again in (
        add_sample(client, fid, RED, 0, "red"),  # the same image
        add_sample(client, fid, BLUE, 5, "blue", externalId="a"),  # the same externalId
    ):
        assert again.status_code == 409
        assert again.json()["existingSampleId"] == sample["id"]
    unlabelled = add_sample(client, fid, BLUE, 1, None).json()
    assert "annotation" not in unlabelled
    got = client.get(f"{N}/v1/functions/{fid}/samples/{bare(unlabelled['id'])}").json()
    assert got == unlabelled


def test_sample_pages_link_to_the_next_by_path(client: TestClient) -> None:
    fid = nyckel_function(client)
    created = [add_sample(client, fid, RED, seed, "red").json()["id"] for seed in range(5)]
    url = f"{N}/v1/functions/{fid}/samples?batchSize=2&sortBy=creation&sortOrder=descending"
    seen = []
    while url:
        response = client.get(url)
        assert response.status_code == 200
        seen += [s["id"] for s in response.json()]
        url = response.links.get("next", {}).get("url")
        assert url is None or url.startswith(f"{N}/v1/functions/{fid}/samples?")
    assert seen == created[::-1]


def test_training_state_metrics_and_invoke(client: TestClient) -> None:
    fid = nyckel_function(client)
    image = {"data": data_uri(png_bytes(RED, seed=42))}
    response = client.post(f"{N}/v1/functions/{fid}/invoke", json=image)
    assert response.status_code == 409 and "No model available" in response.json()["message"]
    train(client, fid)
    metrics = client.get(f"{N}/v0.9/functions/{fid}/metrics").json()
    assert metrics["sampleCount"] == metrics["predictionCount"] == 8
    assert metrics["annotatedSampleCount"] == 8 and len(metrics["annotatedLabelCounts"]) == 2
    assert metrics["isTraining"] is False
    assert client.get(f"{N}/v0.9/functions/{fid}").json()["state"] == "Tuning"

    result = client.post(f"{N}/v1/functions/{fid}/invoke?modelId=", json=image).json()
    assert set(result) == {"labelName", "labelId", "confidence"}
    assert result["labelName"] == "red" and result["labelId"].startswith("label_")
    assert client.post(f"{N}/v1/functions/{fid}/invoke?modelId=1", json=image).status_code == 200
    assert client.post(f"{N}/v1/functions/{fid}/invoke?modelId=9", json=image).status_code == 404
    assert client.post(f"{N}/v1/functions/{fid}/invoke?modelId=x", json=image).status_code == 422
    listed = client.get(f"{N}/v1/functions/{fid}/samples").json()
    assert all(s["prediction"]["labelId"].startswith("label_") for s in listed)


def test_annotations_set_by_name_or_id_and_removed(client: TestClient) -> None:
    fid = nyckel_function(client)
    sid = bare(add_sample(client, fid, RED, 0, None).json()["id"])
    blue = client.post(f"{N}/v1/functions/{fid}/labels", json={"name": "blue"}).json()
    url = f"{N}/v1/functions/{fid}/samples/{sid}/annotation"
    response = client.put(url, json={"labelId": bare(blue["id"])})
    assert response.status_code == 200 and response.json()["annotation"]["labelId"] == blue["id"]
    response = client.put(url, json={"labelName": "red"})
    red_id = response.json()["annotation"]["labelId"]
    assert red_id != blue["id"]  # the label was created, as Nyckel does
    assert client.put(url, json={"labelName": "red", "labelId": "x"}).status_code == 422
    assert client.delete(url).status_code == 200
    assert "annotation" not in client.get(f"{N}/v1/functions/{fid}/samples/{sid}").json()
    assert client.delete(f"{N}/v1/functions/{fid}/samples/{sid}").status_code == 200
    assert client.get(f"{N}/v1/functions/{fid}/samples/{sid}").status_code == 404


def test_label_changes_through_the_adapter_name_the_key_reviewer(client: TestClient) -> None:
    fid = nyckel_function(client)
    created = client.post(
        "/v1/keys",
        json={"scopes": ["annotate", "admin"], "functionId": f"function_{fid}", "reviewer": "eve"},
    ).json()
    eve = {"Authorization": f"Bearer {token(client, created['id'], created['key'])}"}
    sample = add_sample(client, fid, RED, 0, "red")
    response = client.post(
        f"{N}/v1/functions/{fid}/samples",
        json={"data": data_uri(png_bytes(BLUE)), "annotation": {"labelName": "red"}},
        headers=eve,
    )
    assert response.status_code == 200, response.text
    sid = bare(response.json()["id"])
    url = f"{N}/v1/functions/{fid}/samples/{sid}"
    assert client.put(f"{url}/annotation", json={"labelName": "blue"}, headers=eve).is_success
    assert client.delete(f"{url}/annotation", headers=eve).is_success
    assert client.put(f"{url}/annotation", json={"labelName": "red"}).is_success  # admin
    assert client.delete(url, headers=eve).is_success

    history = client.get(f"/v1/functions/function_{fid}/samples/sample_{sid}/history").json()
    steps = [(e["labelBefore"], e["labelAfter"], e["actors"], e["via"]) for e in history["data"]]
    assert steps == [
        (None, "red", ["eve"], "nyckel"),
        ("red", "blue", ["eve"], "nyckel"),
        ("blue", None, ["eve"], "nyckel"),
        (None, "red", ["admin"], "nyckel"),
        ("red", None, ["eve"], "nyckel"),
    ]
    first = sample.json()["id"]
    history = client.get(f"/v1/functions/function_{fid}/samples/{first}/history").json()
    assert [(e["actors"], e["via"]) for e in history["data"]] == [(["admin"], "nyckel")]


def test_labels_a_model_learnt_keep_their_names(client: TestClient) -> None:
    fid = nyckel_function(client)
    train(client, fid)
    labels = {
        label["name"]: bare(label["id"])
        for label in client.get(f"{N}/v1/functions/{fid}/labels").json()
    }
    url = f"{N}/v1/functions/{fid}/labels/{labels['red']}"
    assert client.get(url).json()["name"] == "red"
    response = client.put(url, json={"name": "red", "description": "warm"})
    assert response.status_code == 200 and response.json()["description"] == "warm"
    response = client.put(url, json={"name": "crimson"})
    assert response.status_code == 409 and "version(s) 1" in response.json()["message"]
    assert client.delete(url).status_code == 409
    spare = client.post(f"{N}/v1/functions/{fid}/labels", json={"name": "green"}).json()
    assert client.post(f"{N}/v1/functions/{fid}/labels", json={"name": "green"}).status_code == 409
    spare_url = f"{N}/v1/functions/{fid}/labels/{bare(spare['id'])}"
    assert client.put(spare_url, json={"name": "teal"}).json()["name"] == "teal"
    assert client.delete(spare_url).status_code == 200
    assert client.get(spare_url).status_code == 404


def test_sample_urls_never_echo_an_untrusted_host(client: TestClient, settings: Settings) -> None:
    fid = nyckel_function(client)
    sid = bare(add_sample(client, fid, RED, 0, "red").json()["id"])
    path = f"/v1/functions/function_{fid}/samples/sample_{sid}/image"

    def urls(http: TestClient, host: str) -> set[str]:
        one = http.get(f"{N}/v1/functions/{fid}/samples/{sid}", headers={"Host": host})
        listed = http.get(f"{N}/v1/functions/{fid}/samples", headers={"Host": host})
        return {one.json()["data"], *(s["data"] for s in listed.json())}

    # a forged Host is not echoed: the path, resolved against the server the client reached
    for hostile in ("evil.example.com:5000", "localhost:5000", "127.0.0.1.evil.example.com:8000"):
        assert urls(client, hostile) == {path}, hostile
    # this server's own bound address and localhost on its port are trusted
    for own in ("127.0.0.1:8000", "localhost:8000", "[::1]:8000"):
        assert urls(client, own) == {f"http://{own}{path}"}, own
    assert client.get(path).content == png_bytes(RED, seed=0)

    public = dataclasses.replace(settings, public_url="https://winnow.example.com/")
    with TestClient(create_app(public), headers=client.headers) as http:
        assert urls(http, "evil.example.com:5000") == {f"https://winnow.example.com{path}"}
    with pytest.raises(ValueError, match="public_url"):
        create_app(dataclasses.replace(settings, public_url="winnow.example.com"))


def test_function_scoped_keys_see_only_their_function(settings: Settings) -> None:
    with TestClient(create_app(settings)) as client:
        admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
        client.headers.update(admin)
        mine, other = nyckel_function(client, "mine"), nyckel_function(client, "other")
        key = client.post(
            "/v1/keys", json={"functionId": f"function_{mine}", "scopes": ["invoke", "annotate"]}
        ).json()
        client.headers.update({"Authorization": f"Bearer {token(client, key['id'], key['key'])}"})
        assert client.get(f"{N}/v1/functions/{mine}").status_code == 200  # a bare id
        assert client.get(f"{N}/v1/functions/{other}").status_code == 404
        assert [f["id"] for f in client.get(f"{N}/v1/functions").json()] == [f"function_{mine}"]
        response = client.post(
            f"{N}/v1/functions", json={"name": "x", "input": "Image", "output": "Classification"}
        )
        assert response.status_code == 403
        client.headers.update({"Authorization": "Bearer wn_x_wrong"})
        assert client.get(f"{N}/v1/functions/{mine}").status_code == 401
