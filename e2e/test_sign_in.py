"""Signing in and out, as a person does it."""

import re

from playwright.sync_api import Page, expect

from flows import expect_signed_out_with, sign_in, sign_in_as, this_device_row


def test_signing_in_shows_the_account_and_this_device(page: Page, user):
    sign_in_as(page, user)
    expect(page).to_have_url(re.compile(r"/account$"))
    # An ordinary account shows no role; only another role (admin) is named.
    expect(page.get_by_test_id("account-username")).to_have_text(user.username)
    expect(page.get_by_test_id("account-role")).to_have_count(0)
    expect(page.get_by_test_id("session-row")).to_have_count(1)
    expect(this_device_row(page)).to_have_count(1)


def test_signing_out_ends_the_session_and_the_account_page_asks_to_sign_in(page: Page, user):
    sign_in_as(page, user)
    page.get_by_test_id("logout").click()
    expect_signed_out_with(page, "signed_out")

    page.goto("/account")
    expect_signed_out_with(page, "login_required")
    expect(page.get_by_test_id("account-username")).to_have_count(0)


def test_a_wrong_password_and_an_unknown_user_get_the_same_answer(page: Page, user):
    sign_in(page, user.username, "not-the-password")
    wrong_password = page.get_by_test_id("login-error").inner_text()
    sign_in(page, "nobody-by-this-name", "not-the-password")
    expect(page.get_by_test_id("login-error")).to_have_text(wrong_password)
    expect(page.get_by_test_id("account-username")).to_have_count(0)


def test_an_admin_created_through_the_test_api_signs_in_with_that_role(page: Page, make_user):
    admin = make_user(role="admin")
    sign_in_as(page, admin)
    expect(page.get_by_test_id("account-role")).to_have_text("admin")
