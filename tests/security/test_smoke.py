"""The attack harness itself: tokens work and separate users."""

from tests.security.conftest import Attacked


def test_users_are_separate(target: Attacked) -> None:
    job = target.alice.post("/processes/echo/execution", json={"inputs": {"stringInput": "mine"}},
                            headers={"Prefer": "respond-async"}).json()["jobID"]
    assert target.bob.get(f"/jobs/{job}").status_code == 404
    assert target.alice.get(f"/jobs/{job}").status_code == 200
