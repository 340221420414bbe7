"""The idle timeout, watched without waiting: the test API moves the server's clock and
Playwright's clock moves the page's (the idle warning counts down in the browser)."""

from playwright.sync_api import Page, expect

from flows import expect_signed_out_with, sign_in_as


def idle_countdown(page: Page) -> tuple[int, int]:
    """(seconds until the idle timeout, seconds of warning before it), as the server rendered them."""
    warning = page.get_by_test_id("idle-warning")
    return int(warning.get_attribute("data-idle-seconds-left")), int(warning.get_attribute("data-idle-warning-secs"))


def move_time(page: Page, hooks, secs: int) -> None:
    """Time passes for both: the server (its clock) and the page (its timers)."""
    hooks.advance_clock(secs)
    page.clock.fast_forward(secs * 1000)


def test_the_idle_warning_comes_first_then_the_session_ends_with_idle_timeout(page: Page, user, hooks):
    page.clock.install()
    sign_in_as(page, user)
    warning = page.get_by_test_id("idle-warning")
    expect(warning).to_be_hidden()
    seconds_left, warning_secs = idle_countdown(page)

    # Ten seconds into the warning period: the page warns and offers to stay.
    move_time(page, hooks, seconds_left - warning_secs + 10)
    expect(warning).to_be_visible()
    expect(page.get_by_test_id("stay-signed-in")).to_be_visible()

    # Past the timeout: the countdown runs out, the page asks the server, and goes where it says why.
    move_time(page, hooks, warning_secs)
    expect_signed_out_with(page, "idle_timeout")


def test_stay_signed_in_moves_the_deadline(page: Page, user, hooks):
    page.clock.install()
    sign_in_as(page, user)
    seconds_left, warning_secs = idle_countdown(page)
    move_time(page, hooks, seconds_left - warning_secs + 10)
    warning = page.get_by_test_id("idle-warning")
    expect(warning).to_be_visible()

    page.get_by_test_id("stay-signed-in").click()
    expect(warning).to_be_hidden()

    # Well past the first deadline, the session is still alive.
    move_time(page, hooks, warning_secs)
    page.reload()
    expect(page.get_by_test_id("account-username")).to_have_text(user.username)
