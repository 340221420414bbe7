"""Two browsers are two devices: one is signed out from the other, by an administrator, or by a
password change, and learns why at its next click."""

from playwright.sync_api import Page, expect

from flows import (
    confirm_password,
    expect_signed_out_with,
    other_device_rows,
    sign_in,
    sign_in_as,
    this_device_row,
)


def test_a_device_signed_out_from_another_is_told_why(new_context, user):
    phone = new_context().new_page()
    sign_in_as(phone, user)
    laptop = new_context().new_page()
    sign_in_as(laptop, user)
    expect(other_device_rows(laptop)).to_have_count(1)

    # Signing another device out asks for the password first, then is carried out and said.
    other_device_rows(laptop).get_by_test_id("revoke-session").click()
    confirm_password(laptop, user.password)
    expect(laptop.get_by_test_id("notice")).to_have_text("Signed out 1 device.")
    expect(laptop.get_by_test_id("session-row")).to_have_count(1)

    phone.reload()
    expect_signed_out_with(phone, "revoked")


def test_an_administrator_signing_one_device_out_leaves_the_others(new_context, user, hooks):
    phone = new_context().new_page()
    sign_in_as(phone, user)
    laptop = new_context().new_page()
    sign_in_as(laptop, user)
    phone_session = this_device_row(phone).get_attribute("data-session-id")

    assert hooks.revoke_sessions(session_id=phone_session) == 1

    phone.reload()
    expect_signed_out_with(phone, "revoked")
    laptop.reload()
    expect(laptop.get_by_test_id("account-username")).to_have_text(user.username)
    expect(laptop.get_by_test_id("session-row")).to_have_count(1)


def test_changing_the_password_signs_the_other_device_out(new_context, user):
    phone = new_context().new_page()
    sign_in_as(phone, user)
    laptop = new_context().new_page()
    sign_in_as(laptop, user)

    laptop.get_by_test_id("change-password").click()
    form = laptop.get_by_test_id("password-form")
    new_password = "correct-horse-battery-staple-42"
    form.locator('[name="current_password"]').fill(user.password)
    form.locator('[name="new_password"]').fill(new_password)
    form.locator('[name="new_password_confirm"]').fill(new_password)
    form.locator('[type="submit"]').click()
    expect(laptop.get_by_test_id("password-changed")).to_be_visible()

    phone.reload()
    expect_signed_out_with(phone, "password_changed")
    sign_in(phone, user.username, user.password)
    expect(phone.get_by_test_id("login-error")).to_be_visible()
    sign_in(phone, user.username, new_password)
    expect(phone.get_by_test_id("account-username")).to_have_text(user.username)

    laptop.goto("/account")
    expect(laptop.get_by_test_id("account-username")).to_have_text(user.username)
