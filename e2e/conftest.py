"""Fixtures for an end-to-end suite against secure-sessions running in test mode.

The suite uses only the app's public contract: form field names, `data-testid` hooks, the
`reason=` codes of the sign-in page, and the `/__test/` API (docs/test-mode.md). Point it at
an instance with `--base-url` (or PYTEST_BASE_URL):

    pytest e2e --base-url http://127.0.0.1:8000
"""

import os
import secrets
from dataclasses import dataclass

import pytest
from playwright.sync_api import APIRequestContext, Playwright

# Debian's Chromium, so Playwright's own browser download is never needed. Set CHROMIUM to
# use another build; with neither, Playwright's own browser is used.
CHROMIUM = os.environ.get("CHROMIUM") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)

# Quiet, container-friendly Chromium: no sandbox (CI runs as root), no GPU, no /dev/shm
# (small in containers), and none of the background traffic a first run makes.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """pytest-playwright's launch options, with the browser to use."""
    if CHROMIUM is None:
        return browser_type_launch_args
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


@dataclass(frozen=True)
class User:
    username: str
    password: str


class TestHooks:
    """The app's `/__test/` API. Every call is JSON in and out."""

    __test__ = False  # a helper, not a test class

    def __init__(self, request: APIRequestContext):
        self._request = request

    def _post(self, path: str, body: dict, expected: int = 200):
        response = self._request.post(f"/__test/{path}", data=body)
        if response.status == 404 and path == "reset":
            pytest.exit("POST /__test/reset: 404. Is the app in test mode (test_hooks = true), and on this machine?", 4)
        assert response.status == expected, f"POST /__test/{path}: {response.status} {response.text()}"
        return response.json() if response.status != 204 else None

    def advance_clock(self, secs: int) -> str:
        """Moves the app's clock forward (never back); returns its new time."""
        return self._post("clock/advance", {"secs": secs})["now"]

    def create_user(self, username: str, password: str, role: str = "user") -> dict:
        return self._post("users", {"username": username, "password": password, "role": role}, expected=201)

    def revoke_sessions(self, *, username: str | None = None, session_id: str | None = None) -> int:
        """Signs out every session of an account, or one by its id, as an administrator would."""
        body = {"username": username} if username is not None else {"session_id": session_id}
        return self._post("sessions/revoke", body)["revoked"]

    def reset(self) -> None:
        """Empties the database: no accounts, sessions, activity or throttle counts remain."""
        self._post("reset", {}, expected=204)


@pytest.fixture(scope="session")
def hooks(playwright: Playwright, base_url: str | None):
    if not base_url:
        pytest.exit("give the app's address: pytest e2e --base-url http://127.0.0.1:8000", returncode=4)
    request = playwright.request.new_context(base_url=base_url, extra_http_headers={"Accept": "application/json"})
    yield TestHooks(request)
    request.dispose()


@pytest.fixture(autouse=True)
def empty_app(hooks: TestHooks) -> None:
    """Every test starts from an empty database: no test sees another's accounts or counts."""
    hooks.reset()


@pytest.fixture
def make_user(hooks: TestHooks):
    """Creates accounts through the test API rather than the sign-up form."""

    def make(role: str = "user") -> User:
        user = User(username=f"user-{secrets.token_hex(4)}", password=f"pw-{secrets.token_urlsafe(12)}")
        hooks.create_user(user.username, user.password, role)
        return user

    return make


@pytest.fixture
def user(make_user) -> User:
    return make_user()
