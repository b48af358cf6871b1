def test_health_answers_ok_with_every_check(api_client, db):
    response = api_client.get("/api/v1/health/")

    assert response.status_code == 200
    assert response.json()["checks"] == {
        "database": "ok",
        "cache": "ok",
        "channel_layer": "ok",
        "broker": "ok",
    }
