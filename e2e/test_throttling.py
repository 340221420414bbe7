"""Password guessing is slowed down, never locked out for good: the test API's clock shows the
wait passing without waiting for it."""

import re

from playwright.sync_api import Page, expect

from flows import sign_in

ACCOUNT_FAILURES_ALLOWED = 5  # throttle_account_failures, the default
FIRST_WAIT_SECS = 60  # the wait at the threshold (docs/security.md, "Sign-in throttling")


def is_sign_in_post(response) -> bool:
    return response.request.method == "POST" and response.url.endswith("/login")


def test_after_five_wrong_passwords_even_the_right_one_waits_until_the_wait_has_passed(page: Page, user, hooks):
    for _ in range(ACCOUNT_FAILURES_ALLOWED):
        sign_in(page, user.username, "a-wrong-guess")
        expect(page.get_by_test_id("login-error")).to_be_visible()

    with page.expect_response(is_sign_in_post) as throttled:
        sign_in(page, user.username, user.password)
    assert throttled.value.status == 429
    assert int(throttled.value.headers["retry-after"]) <= FIRST_WAIT_SECS
    expect(page.get_by_test_id("login-error")).to_be_visible()
    expect(page.get_by_test_id("account-username")).to_have_count(0)

    hooks.advance_clock(FIRST_WAIT_SECS)
    sign_in(page, user.username, user.password)
    expect(page).to_have_url(re.compile(r"/account$"))
    expect(page.get_by_test_id("account-username")).to_have_text(user.username)
