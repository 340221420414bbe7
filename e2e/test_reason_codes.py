"""The sign-in page's `reason=` codes: a public contract, never renamed."""

from playwright.sync_api import Page, expect

REASON_CODES = [
    "login_required",
    "signed_out",
    "idle_timeout",
    "session_expired",
    "fingerprint_mismatch",
    "revoked",
    "password_changed",
    "session_limit",
]


def test_every_reason_code_has_a_message_of_its_own(page: Page):
    messages = {}
    for code in REASON_CODES:
        page.goto(f"/login?reason={code}")
        message = page.get_by_test_id("login-reason")
        expect(message, f"reason={code}").to_be_visible()
        expect(message, f"reason={code}").not_to_be_empty()
        expect(page.get_by_test_id("login-form")).to_be_visible()
        messages[code] = message.inner_text()
    assert len(set(messages.values())) == len(REASON_CODES), messages


def test_an_unknown_reason_shows_nothing_and_is_not_echoed(page: Page):
    for code in ["no_such_reason", "<script>alert(1)</script>", ""]:
        response = page.goto(f"/login?reason={code}")
        assert response is not None and response.ok
        expect(page.get_by_test_id("login-reason"), f"reason={code}").to_have_count(0)
        expect(page.get_by_test_id("login-form")).to_be_visible()
        if code:
            assert code not in page.content()
