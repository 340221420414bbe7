//! A sensitive action that waits for the password confirmation it needs, and resumes once after it.

use time::Duration;
use uuid::Uuid;

/// How long an action waits for its confirmation: one abandoned longer ago is never resumed.
pub const PENDING_ACTION_LIFETIME: Duration = Duration::minutes(10);

/// What a session asked for while its confirmation had lapsed. Recorded only by a request that
/// passed its CSRF check, so no other site can queue one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PendingAction {
    /// From the account page, about the person's own devices.
    Account(AccountAction),
    /// From the admin page, about the account with this user id: the target is part of the
    /// action, so the confirmation cannot point it at another account.
    Admin(AdminAction, i64),
}

/// A sign-out on the account page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountAction {
    /// "Sign out" on one other device (or API token family), by its public id.
    SignOut(Uuid),
    /// "Sign out all other devices".
    SignOutOthers,
}

/// An administrator's action on one account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminAction {
    Disable,
    Enable,
    /// "Sign out everywhere".
    SignOutEverywhere,
}

impl PendingAction {
    /// The stored form, also carried by the confirmation form so that only the action the
    /// page named can resume.
    pub fn code(self) -> String {
        match self {
            PendingAction::Account(AccountAction::SignOut(id)) => format!("sign_out:{id}"),
            PendingAction::Account(AccountAction::SignOutOthers) => "sign_out_others".to_owned(),
            PendingAction::Admin(action, user_id) => {
                format!("{}:{user_id}", action.code())
            }
        }
    }

    pub fn parse(code: &str) -> Option<PendingAction> {
        let Some((kind, target)) = code.split_once(':') else {
            return (code == "sign_out_others")
                .then_some(PendingAction::Account(AccountAction::SignOutOthers));
        };
        if kind == "sign_out" {
            let id = Uuid::parse_str(target).ok()?;
            return Some(PendingAction::Account(AccountAction::SignOut(id)));
        }
        let action = [
            AdminAction::Disable,
            AdminAction::Enable,
            AdminAction::SignOutEverywhere,
        ]
        .into_iter()
        .find(|action| action.code() == kind)?;
        // Only the canonical spelling of an id (no sign, no leading zero): one action, one code.
        let user_id: i64 = target.parse().ok()?;
        (user_id.to_string() == target).then_some(PendingAction::Admin(action, user_id))
    }

    /// The page the action was asked from: the confirmation resumes it only on its way back there.
    pub fn home(self) -> &'static str {
        match self {
            PendingAction::Account(_) => "/account",
            PendingAction::Admin(..) => "/admin",
        }
    }
}

impl AdminAction {
    fn code(self) -> &'static str {
        match self {
            AdminAction::Disable => "admin_disable",
            AdminAction::Enable => "admin_enable",
            AdminAction::SignOutEverywhere => "admin_sign_out",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_parses_back_to_itself_and_nothing_else_parses() {
        let id = Uuid::new_v4();
        for action in [
            PendingAction::Account(AccountAction::SignOut(id)),
            PendingAction::Account(AccountAction::SignOutOthers),
            PendingAction::Admin(AdminAction::Disable, 7),
            PendingAction::Admin(AdminAction::Enable, 12),
            PendingAction::Admin(AdminAction::SignOutEverywhere, 1),
        ] {
            assert_eq!(PendingAction::parse(&action.code()), Some(action));
        }
        for code in [
            "",
            "sign_out",
            "sign_out:",
            "sign_out:x",
            "sign_out_others:1",
            "admin",
            "admin_disable",
            "admin_disable:",
            "admin_disable:x",
            "admin_disable:+7",
            "admin_disable:07",
            "admin_enable:1:2",
            "admin_delete:1",
        ] {
            assert_eq!(PendingAction::parse(code), None, "{code:?}");
        }
    }

    #[test]
    fn each_action_resumes_only_on_the_page_it_was_asked_from() {
        assert_eq!(
            PendingAction::Account(AccountAction::SignOutOthers).home(),
            "/account"
        );
        assert_eq!(
            PendingAction::Admin(AdminAction::Enable, 3).home(),
            "/admin"
        );
    }
}
