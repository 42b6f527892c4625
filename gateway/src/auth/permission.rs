//! Roles and what they permit: one [`Permission`] per kind of act, one matrix deciding which
//! role holds which. Every REST handler and every WebSocket frame asks the matrix through
//! [`require`] (or [`Role::can`]) with the caller's current role; nothing else decides.
//!
//! | permission       | agent | lead | supervisor | approver | admin |
//! |------------------|:-----:|:----:|:----------:|:--------:|:-----:|
//! | WorkTickets      |   ✓   |  ✓   |     ✓      |          |   ✓   |
//! | ViewQueue        |   ✓   |  ✓   |     ✓      |          |   ✓   |
//! | ReadAllTickets   |       |  ✓   |     ✓      |          |   ✓   |
//! | RevealPii        |       |  ✓   |     ✓      |          |   ✓   |
//! | RequestGrant     |       |      |     ✓      |          |       |
//! | ReviewGrant      |       |      |            |    ✓     |       |
//! | ViewAllGrants    |       |      |            |    ✓     |   ✓   |
//! | RevokeGrant      |       |      |            |    ✓     |   ✓   |
//! | ReadAudit        |       |      |            |    ✓     |   ✓   |
//! | ManageUsers      |       |      |            |          |   ✓   |
//!
//! Closed transcripts are outside the matrix on purpose: nobody reads one except through an
//! approved grant ([`crate::api::grants`]).

use crate::store::{Role, User};

/// One kind of act a staff member may be permitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Permission {
    /// Claim, reply, note, transfer, resolve; typing indicators and read receipts.
    WorkTickets,
    /// See the live queue of waiting tickets.
    ViewQueue,
    /// Read any open or resolved ticket, not only queued ones and one's own.
    ReadAllTickets,
    /// Reveal a customer's full email or phone (with a reason; audited).
    RevealPii,
    /// Ask for access to a closed object (a transcript).
    RequestGrant,
    /// Approve or deny someone else's access request.
    ReviewGrant,
    /// See every access request and grant, not only one's own.
    ViewAllGrants,
    /// End a pending request or an active grant.
    RevokeGrant,
    /// Query the audit log.
    ReadAudit,
    /// Create users, change roles, deactivate accounts.
    ManageUsers,
    /// Put a transcript on legal hold (kept past its retention) or release it.
    SetLegalHold,
}

impl Permission {
    /// The matrix above.
    pub fn granted_to(self, role: Role) -> bool {
        use Permission::*;
        use Role::*;
        match self {
            WorkTickets | ViewQueue => matches!(role, Agent | Lead | Supervisor | Admin),
            ReadAllTickets | RevealPii => matches!(role, Lead | Supervisor | Admin),
            RequestGrant => matches!(role, Supervisor),
            ReviewGrant => matches!(role, Approver),
            ViewAllGrants | RevokeGrant | ReadAudit => matches!(role, Approver | Admin),
            ManageUsers | SetLegalHold => matches!(role, Admin),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Permission::WorkTickets => "work_tickets",
            Permission::ViewQueue => "view_queue",
            Permission::ReadAllTickets => "read_all_tickets",
            Permission::RevealPii => "reveal_pii",
            Permission::RequestGrant => "request_grant",
            Permission::ReviewGrant => "review_grant",
            Permission::ViewAllGrants => "view_all_grants",
            Permission::RevokeGrant => "revoke_grant",
            Permission::ReadAudit => "read_audit",
            Permission::ManageUsers => "manage_users",
            Permission::SetLegalHold => "set_legal_hold",
        }
    }
}

impl Role {
    /// Whether this role holds the permission.
    pub fn can(self, p: Permission) -> bool {
        p.granted_to(self)
    }
}

/// The caller's role does not hold the permission.
#[derive(Debug, thiserror::Error)]
#[error("role {role} lacks permission {}", permission.as_str())]
pub struct Denied {
    pub role: Role,
    pub permission: Permission,
}

/// Checks a permission against the user's current role.
pub fn require(user: &User, permission: Permission) -> Result<(), Denied> {
    if user.role.can(permission) {
        Ok(())
    } else {
        Err(Denied {
            role: user.role,
            permission,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROLES: [Role; 5] = [
        Role::Agent,
        Role::Lead,
        Role::Supervisor,
        Role::Approver,
        Role::Admin,
    ];

    fn holders(p: Permission) -> Vec<Role> {
        ROLES.into_iter().filter(|r| r.can(p)).collect()
    }

    #[test]
    fn the_matrix_is_as_documented() {
        use Permission::*;
        use Role::*;
        assert_eq!(holders(WorkTickets), vec![Agent, Lead, Supervisor, Admin]);
        assert_eq!(holders(ReadAllTickets), vec![Lead, Supervisor, Admin]);
        assert_eq!(holders(RevealPii), vec![Lead, Supervisor, Admin]);
        assert_eq!(holders(RequestGrant), vec![Supervisor]);
        assert_eq!(holders(ReviewGrant), vec![Approver]);
        assert_eq!(holders(ReadAudit), vec![Approver, Admin]);
        assert_eq!(holders(ManageUsers), vec![Admin]);
        assert_eq!(holders(SetLegalHold), vec![Admin]);
    }

    #[test]
    fn agents_cannot_reveal_review_or_read_the_audit_log() {
        for p in [
            Permission::RevealPii,
            Permission::ReviewGrant,
            Permission::ReadAudit,
            Permission::ReadAllTickets,
        ] {
            assert!(!Role::Agent.can(p), "{p:?}");
        }
    }
}
