//! A sensitive action that waits for the password confirmation it needs, and resumes once after it.

use time::Duration;
use uuid::Uuid;

/// How long an action waits for its confirmation: one abandoned longer ago is never resumed.
pub const PENDING_ACTION_LIFETIME: Duration = Duration::minutes(10);

/// What a session asked for while its confirmation had lapsed. Recorded only by a request that
/// passed its CSRF check, so no other site can queue one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PendingAction {
    /// "Sign out" on one other device (or API token family), by its public id.
    SignOut(Uuid),
    /// "Sign out all other devices".
    SignOutOthers,
}

impl PendingAction {
    /// The stored form, also carried by the confirmation form so that only the action the
    /// page named can resume.
    pub fn code(self) -> String {
        match self {
            PendingAction::SignOut(id) => format!("sign_out:{id}"),
            PendingAction::SignOutOthers => "sign_out_others".to_owned(),
        }
    }

    pub fn parse(code: &str) -> Option<PendingAction> {
        match code.split_once(':') {
            Some(("sign_out", id)) => Uuid::parse_str(id).ok().map(PendingAction::SignOut),
            None if code == "sign_out_others" => Some(PendingAction::SignOutOthers),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_parses_back_to_itself_and_nothing_else_parses() {
        let id = Uuid::new_v4();
        for action in [PendingAction::SignOut(id), PendingAction::SignOutOthers] {
            assert_eq!(PendingAction::parse(&action.code()), Some(action));
        }
        for code in [
            "",
            "sign_out",
            "sign_out:",
            "sign_out:x",
            "sign_out_others:1",
            "admin",
        ] {
            assert_eq!(PendingAction::parse(code), None, "{code:?}");
        }
    }
}
