from fastapi.testclient import TestClient


def test_crud_round_trip(client: TestClient) -> None:
    created = client.post("/items", json={"name": "widget"})
    assert created.status_code == 201
    item = created.json()
    assert item["name"] == "widget"
    assert item["description"] is None
    assert item["created_at"]

    url = f"/items/{item['id']}"
    assert client.get(url).json() == item
    assert item in client.get("/items").json()

    patched = client.patch(url, json={"description": "blue"})
    assert patched.status_code == 200
    assert patched.json() == {**item, "description": "blue"}

    assert client.delete(url).status_code == 204
    assert client.get(url).status_code == 404


def test_missing_item_is_404(client: TestClient) -> None:
    for method in ("GET", "PATCH", "DELETE"):
        response = client.request(method, "/items/999999", json={"name": "x"})
        assert response.status_code == 404
        assert response.json() == {"detail": "Item not found"}


def test_invalid_payloads_are_422(client: TestClient) -> None:
    assert client.post("/items", json={"name": ""}).status_code == 422
    item = client.post("/items", json={"name": "gadget"}).json()
    assert client.patch(f"/items/{item['id']}", json={"name": None}).status_code == 422
