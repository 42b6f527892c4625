//! Access grants to closed objects, as pure rules (no store, no clock of its own; times are
//! milliseconds since the Unix epoch).
//!
//! A supervisor asks for one object (a closed ticket's transcript, or a finished call's recording)
//! with a reason and a duration. A different person with the approver role approves or denies
//! it; nobody reviews their own request. A request nobody reviewed expires; an approved grant
//! lets its requester, and only them, read that object until it expires or is revoked. The
//! model follows Teleport's access requests (reason, reviewer, TTL, no self-approval).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// What a grant opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ObjectKind {
    /// The messages of a closed ticket; the object id is the ticket's id.
    Transcript,
    /// A finished call's recording; the object id is the recording's id.
    Recording,
}

impl ObjectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Transcript => "transcript",
            ObjectKind::Recording => "recording",
        }
    }
}

impl FromStr for ObjectKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "transcript" => Ok(ObjectKind::Transcript),
            "recording" => Ok(ObjectKind::Recording),
            other => Err(format!("unknown object kind {other:?}")),
        }
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a grant stands. `Pending` and `Approved` become `Expired` by the clock alone; see
/// [`Grant::status_at`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    Pending,
    Approved,
    Denied,
    Expired,
    Revoked,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Approved => "approved",
            Status::Denied => "denied",
            Status::Expired => "expired",
            Status::Revoked => "revoked",
        }
    }

    /// No further change is possible.
    pub fn is_final(self) -> bool {
        matches!(self, Status::Denied | Status::Expired | Status::Revoked)
    }
}

impl FromStr for Status {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "pending" => Status::Pending,
            "approved" => Status::Approved,
            "denied" => Status::Denied,
            "expired" => Status::Expired,
            "revoked" => Status::Revoked,
            other => return Err(format!("unknown grant status {other:?}")),
        })
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The limits grants are held to.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Access granted when the request names no duration.
    pub default_duration: Duration,
    /// The longest access one request can ask for.
    pub max_duration: Duration,
    /// How long a request waits for review before it expires.
    pub pending_ttl: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            default_duration: Duration::from_secs(3600),
            max_duration: Duration::from_secs(8 * 3600),
            pending_ttl: Duration::from_secs(24 * 3600),
        }
    }
}

/// Shortest and longest stated reason, in characters.
pub const REASON_MIN: usize = 10;
pub const REASON_MAX: usize = 500;

/// Why someone asks for access or reveals a value: required, trimmed, 10–500 characters, no
/// control characters (it is shown to reviewers and kept in the audit log).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reason(String);

impl Reason {
    pub fn parse(s: &str) -> Result<Reason, GrantError> {
        let t = s.trim();
        let n = t.chars().count();
        if !(REASON_MIN..=REASON_MAX).contains(&n) || t.chars().any(char::is_control) {
            return Err(GrantError::Reason);
        }
        Ok(Reason(t.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A grant as the rules see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    pub kind: ObjectKind,
    pub object_id: i64,
    pub requester: i64,
    /// The stored status; [`Grant::status_at`] applies the clock to it.
    pub status: Status,
    pub requested_at: i64,
    /// Until when the request may be reviewed.
    pub review_by: i64,
    /// The access asked for, in milliseconds.
    pub duration_ms: i64,
    /// Until when an approved grant opens the object.
    pub expires_at: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    #[error("a reason of {REASON_MIN}-{REASON_MAX} characters is required")]
    Reason,
    #[error("duration must be between 1 minute and the maximum of {max_minutes} minutes")]
    Duration { max_minutes: u64 },
    #[error("nobody may review their own request")]
    SelfReview,
    #[error("the request is {0}, not pending")]
    NotPending(Status),
    #[error("the grant is {0}")]
    NotActive(Status),
    #[error("the grant belongs to someone else")]
    NotRequester,
}

impl Policy {
    /// The access duration of a new request: the default when absent, at least a minute, at
    /// most the maximum.
    pub fn duration(&self, asked: Option<Duration>) -> Result<Duration, GrantError> {
        let d = asked.unwrap_or(self.default_duration);
        if d < Duration::from_secs(60) || d > self.max_duration {
            return Err(GrantError::Duration {
                max_minutes: self.max_duration.as_secs() / 60,
            });
        }
        Ok(d)
    }

    /// A new pending request.
    pub fn request(
        &self,
        kind: ObjectKind,
        object_id: i64,
        requester: i64,
        duration: Duration,
        now: i64,
    ) -> Grant {
        Grant {
            kind,
            object_id,
            requester,
            status: Status::Pending,
            requested_at: now,
            review_by: now.saturating_add(millis(self.pending_ttl)),
            duration_ms: millis(duration),
            expires_at: None,
        }
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Grant {
    /// The status at `now`: a pending request past its review time and an approved grant past
    /// its expiry are expired, whatever is stored.
    pub fn status_at(&self, now: i64) -> Status {
        match self.status {
            Status::Pending if now >= self.review_by => Status::Expired,
            Status::Approved if self.expires_at.is_none_or(|e| now >= e) => Status::Expired,
            s => s,
        }
    }

    /// Whether `reviewer` may approve or deny this request now. The caller has checked that
    /// the reviewer holds the approver role.
    pub fn check_review(&self, reviewer: i64, now: i64) -> Result<(), GrantError> {
        if reviewer == self.requester {
            return Err(GrantError::SelfReview);
        }
        match self.status_at(now) {
            Status::Pending => Ok(()),
            s => Err(GrantError::NotPending(s)),
        }
    }

    /// Until when access lasts if approved at `now`.
    pub fn expiry_if_approved(&self, now: i64) -> i64 {
        now.saturating_add(self.duration_ms)
    }

    /// Whether `reader` may read the object through this grant now.
    pub fn check_read(&self, reader: i64, now: i64) -> Result<(), GrantError> {
        if reader != self.requester {
            return Err(GrantError::NotRequester);
        }
        match self.status_at(now) {
            Status::Approved => Ok(()),
            s => Err(GrantError::NotActive(s)),
        }
    }

    /// Whether the grant can still be revoked (it is pending or active).
    pub fn check_revoke(&self, now: i64) -> Result<(), GrantError> {
        match self.status_at(now) {
            Status::Pending | Status::Approved => Ok(()),
            s => Err(GrantError::NotActive(s)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000;
    const HOUR: i64 = 3_600_000;

    fn pending() -> Grant {
        Policy::default().request(
            ObjectKind::Transcript,
            12,
            7,
            Duration::from_secs(3600),
            NOW,
        )
    }

    #[test]
    fn durations_default_to_an_hour_and_are_capped() {
        let p = Policy::default();
        assert_eq!(p.duration(None).unwrap(), Duration::from_secs(3600));
        assert!(p.duration(Some(Duration::from_secs(9 * 3600))).is_err());
        assert!(p.duration(Some(Duration::from_secs(10))).is_err());
        assert!(p.duration(Some(Duration::from_secs(8 * 3600))).is_ok());
    }

    #[test]
    fn nobody_reviews_their_own_request() {
        let g = pending();
        assert_eq!(g.check_review(7, NOW), Err(GrantError::SelfReview));
        assert_eq!(g.check_review(8, NOW), Ok(()));
    }

    #[test]
    fn a_pending_request_expires_after_a_day() {
        let g = pending();
        assert_eq!(g.status_at(NOW + 24 * HOUR - 1), Status::Pending);
        assert_eq!(g.status_at(NOW + 24 * HOUR), Status::Expired);
        assert_eq!(
            g.check_review(8, NOW + 24 * HOUR),
            Err(GrantError::NotPending(Status::Expired))
        );
    }

    #[test]
    fn an_approved_grant_opens_the_object_to_its_requester_until_it_expires() {
        let mut g = pending();
        g.status = Status::Approved;
        g.expires_at = Some(g.expiry_if_approved(NOW + HOUR));
        assert_eq!(g.check_read(7, NOW + HOUR), Ok(()));
        assert_eq!(g.check_read(8, NOW + HOUR), Err(GrantError::NotRequester));
        assert_eq!(g.check_read(7, NOW + 2 * HOUR - 1), Ok(()));
        assert_eq!(
            g.check_read(7, NOW + 2 * HOUR),
            Err(GrantError::NotActive(Status::Expired))
        );
    }

    #[test]
    fn denied_and_revoked_grants_open_nothing() {
        for s in [Status::Denied, Status::Revoked, Status::Pending] {
            let mut g = pending();
            g.status = s;
            g.expires_at = Some(NOW + HOUR);
            assert_eq!(g.check_read(7, NOW), Err(GrantError::NotActive(s)));
        }
        let mut g = pending();
        g.status = Status::Revoked;
        assert!(g.check_revoke(NOW).is_err());
    }

    #[test]
    fn reasons_are_required_and_bounded() {
        assert!(Reason::parse("").is_err());
        assert!(Reason::parse("   short   ").is_err());
        assert!(Reason::parse(&"x".repeat(501)).is_err());
        assert!(Reason::parse("complaint\u{0}about agent").is_err());
        assert_eq!(
            Reason::parse("  chargeback dispute #4411 ")
                .unwrap()
                .as_str(),
            "chargeback dispute #4411"
        );
    }
}
