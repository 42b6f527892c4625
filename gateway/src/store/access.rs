//! What the store holds for the vault's access rules: audit log records and access grants.
//! The rules themselves live in the `recorder` crate; these are the stored shapes around them.

use crate::clock::Timestamp;
use crate::ids::{CustomerId, GrantId, UserId};
use recorder::grant::{Grant, ObjectKind, Status};

pub use recorder::audit::{
    ChainHash, Checkpoint as AuditCheckpoint, Entry as AuditEntry, Record as AuditRecord,
};

/// Which audit records to return, newest first. Every field narrows; none set means all.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    pub actor: Option<UserId>,
    pub customer: Option<CustomerId>,
    /// Object kind and id, e.g. `("ticket", 12)`; the kind alone matches every id.
    pub object_kind: Option<String>,
    pub object_id: Option<i64>,
    pub action: Option<String>,
    /// Any of these actions (with `action`, both must hold); empty: any.
    pub actions: Vec<String>,
    pub outcome: Option<String>,
    /// Inclusive lower bound of `at`.
    pub from: Option<Timestamp>,
    /// Exclusive upper bound of `at`.
    pub to: Option<Timestamp>,
    /// Only records before this sequence number (paging backwards).
    pub before: Option<i64>,
    pub limit: i64,
}

/// A grant as stored: the rules' view of it plus who reviewed or ended it.
#[derive(Clone, Debug)]
pub struct StoredGrant {
    pub id: GrantId,
    pub grant: Grant,
    pub reason: String,
    pub reviewer: Option<UserId>,
    pub reviewed_at: Option<Timestamp>,
    pub review_note: Option<String>,
    /// Who revoked it (none for expiry).
    pub ended_by: Option<UserId>,
    pub ended_at: Option<Timestamp>,
}

impl StoredGrant {
    pub fn requester(&self) -> UserId {
        UserId(self.grant.requester)
    }
}

/// A request to store, already checked by the rules.
#[derive(Clone, Debug)]
pub struct NewGrant {
    pub grant: Grant,
    pub reason: String,
}

/// A change of a grant's status. It applies only if the grant is still in `from`, so of two
/// racing reviews exactly one wins.
#[derive(Clone, Debug)]
pub struct GrantChange {
    pub from: Status,
    pub to: Status,
    /// The reviewer (approve, deny) or revoker; none when the clock expires it.
    pub by: Option<UserId>,
    pub at: Timestamp,
    pub note: Option<String>,
    /// Set on approval: until when access lasts.
    pub expires_at: Option<Timestamp>,
}

/// Which grants to list, newest first.
#[derive(Clone, Debug, Default)]
pub struct GrantFilter {
    pub requester: Option<UserId>,
    pub kind: Option<ObjectKind>,
    pub object_id: Option<i64>,
    pub limit: i64,
}
