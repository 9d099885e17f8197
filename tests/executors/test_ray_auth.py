"""How a driver authenticates to a Ray cluster it joins (Ray 2.60 token authentication), without
starting one: the token mode is set where a token is found and the user set no mode, an
explicit mode is kept, and a refused join is one user error that says how to fix it."""

from __future__ import annotations

import pytest

pytest.importorskip("ray")

from repainter.errors import UserError, user_message  # noqa: E402
from repainter.executors import ray_cluster  # noqa: E402
from repainter.executors.ray_cluster import ClusterAuthError, join_auth  # noqa: E402


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A HOME of the test's own and no Ray authentication setting in the environment; Ray's
    cached config is read again afterwards, so the process leaves as it came."""
    from ray._raylet import Config

    for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    yield tmp_path
    monkeypatch.undo()
    Config.initialize("")


def test_a_token_on_the_machine_turns_token_mode_on_for_the_join(home):
    (home / ".ray").mkdir()
    (home / ".ray" / "auth_token").write_text("t" * 32)  # what any local ray.init() leaves
    auth = join_auth()
    assert auth["mode"] == "token" and auth["token"] == str(home / ".ray" / "auth_token")
    assert auth["set_by"].startswith("repainter")
    assert ray_cluster.os.environ["RAY_AUTH_MODE"] == "token"  # inherited by what it starts


def test_a_token_in_the_environment_counts_and_a_mode_set_by_the_user_is_kept(home, monkeypatch):
    monkeypatch.setenv("RAY_AUTH_TOKEN", "t" * 32)
    assert join_auth()["token"] == "RAY_AUTH_TOKEN"
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    assert join_auth() == {"mode": "disabled", "token": None, "set_by": "RAY_AUTH_MODE"}


def test_no_token_no_mode(home):
    assert join_auth() == {"mode": "disabled", "token": None, "set_by": None}


def test_a_refused_join_is_one_user_error_naming_the_fix(home):
    class AuthenticationError(Exception):  # Ray's, deep in the chain of a ConnectionError
        pass

    try:
        try:
            raise AuthenticationError("Authentication token is missing or incorrect")
        except AuthenticationError as inner:
            raise ConnectionError("Failed to connect to Ray cluster at 10.0.0.1:6379") from inner
    except ConnectionError as exc:
        assert ray_cluster._caused_by_authentication(exc)
    error = ClusterAuthError("10.0.0.1:6379", {"mode": "disabled", "token": None})
    assert isinstance(error, UserError)
    message = user_message(error)
    assert "10.0.0.1:6379" in message and "RAY_AUTH_TOKEN" in message
    assert "~/.ray/auth_token" in message
