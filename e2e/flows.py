"""What a person does on the pages, written with the app's stable names only: form field names
inside the forms' `data-testid` hooks."""

import re

from playwright.sync_api import Page, expect


def sign_in(page: Page, username: str, password: str, path: str = "/login") -> None:
    """Fills in and submits the sign-in form; does not check where it leads."""
    page.goto(path)
    form = page.get_by_test_id("login-form")
    form.locator('[name="username"]').fill(username)
    form.locator('[name="password"]').fill(password)
    form.locator('[type="submit"]').click()


def sign_in_as(page: Page, user) -> None:
    """Signs in and waits for the account page."""
    sign_in(page, user.username, user.password)
    expect(page.get_by_test_id("account-username")).to_have_text(user.username)


def confirm_password(page: Page, password: str) -> None:
    """Answers the "confirm it's you" page that sensitive actions lead to."""
    form = page.get_by_test_id("confirm-form")
    form.locator('[name="password"]').fill(password)
    form.locator('[type="submit"]').click()


def expect_signed_out_with(page: Page, reason: str) -> None:
    """The sign-in page, with the message for `reason`."""
    expect(page).to_have_url(re.compile(rf"/login\?reason={reason}(&|$)"))
    expect(page.get_by_test_id("login-reason")).to_be_visible()
    expect(page.get_by_test_id("login-form")).to_be_visible()


def this_device_row(page: Page):
    return page.locator('[data-testid="session-row"][data-current="true"]')


def other_device_rows(page: Page):
    return page.locator('[data-testid="session-row"][data-current="false"]')
