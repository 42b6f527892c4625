//! The part of the `deskgate.v1` protocol (docs/protocol.md) the generator speaks. Incoming
//! frames are parsed leniently (unknown fields and types are ignored) so that a gateway that
//! adds fields does not break a measurement; a frame that does not parse is counted and shown.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Ids are numbers in the protocol's examples; strings are accepted too, and an id is sent
/// back exactly as it was received.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Id {
    Num(u64),
    Text(String),
}

impl Id {
    /// A number to spread tickets over agents by; stable for either form.
    pub fn spread_key(&self) -> u64 {
        match self {
            Id::Num(n) => *n,
            Id::Text(s) => s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
            }),
        }
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Id::Num(n) => n.fmt(f),
            Id::Text(s) => s.fmt(f),
        }
    }
}

/// Client → gateway.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Out<'a> {
    Hello {
        token: &'a str,
        /// Where each conversation left off, after a lost connection.
        #[serde(skip_serializing_if = "<[_]>::is_empty")]
        resume: &'a [ResumeAt],
    },
    Send {
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<&'a str>,
        /// Agents name the ticket; customers do not.
        #[serde(skip_serializing_if = "Option::is_none")]
        ticket: Option<&'a Id>,
        client_id: &'a str,
        text: &'a str,
    },
    Claim {
        #[serde(rename = "ref")]
        reference: &'a str,
        ticket: &'a Id,
    },
}

/// One entry of `hello.resume`: the last `seq` held of a conversation.
#[derive(Debug, Serialize)]
pub struct ResumeAt {
    pub conversation: Id,
    pub after: u64,
}

impl Out<'_> {
    pub fn to_json(&self) -> String {
        // Serialising these plain structs cannot fail; an empty frame would show up as an
        // `invalid_frame` error in the report rather than vanish.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Gateway → client, the frames the generator acts on.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum In {
    Welcome(Welcome),
    Message(MessageFrame),
    Ack(Ack),
    Ticket {
        ticket: Ticket,
    },
    /// `upsert` and `remove` carry `ticket`; `reset` carries the whole queue in `tickets`.
    Queue {
        op: String,
        #[serde(default)]
        ticket: Option<Ticket>,
        #[serde(default)]
        tickets: Vec<Ticket>,
    },
    Ok {
        #[serde(rename = "ref")]
        reference: Option<String>,
    },
    Error(ErrorFrame),
    Pong {},
    /// The replay a `hello.resume` asked for is complete.
    Resumed {},
    Typing {},
    Read {},
    Note {},
    #[serde(other)]
    Unknown,
}

impl In {
    pub fn parse(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }
}

/// Both forms of `welcome`: customers get `customer` and `conversation`, staff get `user`,
/// `assigned` and `queue`.
#[derive(Debug, Default, Deserialize)]
pub struct Welcome {
    #[serde(default)]
    pub customer: Option<serde_json::Value>,
    #[serde(default)]
    pub user: Option<Party>,
    #[serde(default)]
    pub assigned: Vec<Ticket>,
    #[serde(default)]
    pub queue: Vec<Ticket>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Party {
    pub id: Option<Id>,
    #[serde(default)]
    pub kind: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Ticket {
    pub id: Id,
    pub conversation: Id,
    pub status: String,
    #[serde(default)]
    pub agent: Option<Party>,
}

impl Ticket {
    pub fn is_assigned_to(&self, user: &Id) -> bool {
        self.status == "assigned"
            && self
                .agent
                .as_ref()
                .and_then(|a| a.id.as_ref())
                .is_some_and(|id| id == user)
    }
}

#[derive(Debug, Deserialize)]
pub struct MessageFrame {
    /// Not used, but required by the protocol: a frame without it is reported as unreadable.
    #[allow(dead_code)]
    pub ticket: Id,
    pub conversation: Id,
    pub seq: u64,
    pub from: Party,
    pub text: String,
}

#[derive(Debug, Deserialize)]
pub struct Ack {
    pub client_id: String,
    /// Not used, but required by the protocol: a frame without it is reported as unreadable.
    #[allow(dead_code)]
    pub ticket: Id,
    pub conversation: Id,
    pub seq: u64,
    #[serde(default)]
    pub duplicate: bool,
}

#[derive(Debug, Deserialize)]
pub struct ErrorFrame {
    #[serde(rename = "ref")]
    pub reference: Option<String>,
    pub code: String,
}

/// The `type` of a frame that failed to parse as [`In`], for the report.
pub fn type_of(text: &str) -> String {
    #[derive(Deserialize)]
    struct Typed {
        #[serde(rename = "type")]
        kind: String,
    }
    serde_json::from_str::<Typed>(text)
        .map(|t| t.kind)
        .unwrap_or_else(|_| "(no type)".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outgoing_frames_match_the_protocol() {
        assert_eq!(
            Out::Hello {
                token: "vt_1",
                resume: &[]
            }
            .to_json(),
            r#"{"type":"hello","token":"vt_1"}"#
        );
        assert_eq!(
            Out::Hello {
                token: "st_1",
                resume: &[ResumeAt {
                    conversation: Id::Num(4),
                    after: 9
                }]
            }
            .to_json(),
            r#"{"type":"hello","token":"st_1","resume":[{"conversation":4,"after":9}]}"#
        );
        assert_eq!(
            Out::Send {
                reference: Some("1"),
                ticket: None,
                client_id: "c-1",
                text: "hi"
            }
            .to_json(),
            r#"{"type":"send","ref":"1","client_id":"c-1","text":"hi"}"#
        );
        assert_eq!(
            Out::Claim {
                reference: "k",
                ticket: &Id::Num(3)
            }
            .to_json(),
            r#"{"type":"claim","ref":"k","ticket":3}"#
        );
    }

    #[test]
    fn ids_round_trip_in_their_own_form() {
        let n: Id = serde_json::from_str("7").unwrap();
        let s: Id = serde_json::from_str(r#""t_7""#).unwrap();
        assert_eq!(n, Id::Num(7));
        assert_eq!(serde_json::to_string(&s).unwrap(), r#""t_7""#);
        assert_ne!(s.spread_key(), Id::Text("t_8".into()).spread_key());
    }

    #[test]
    fn the_documented_session_parses() {
        let welcome = In::parse(
            r#"{"type":"welcome","customer":{"id":7,"name":"Ada","verified":false},"conversation":null}"#,
        )
        .unwrap();
        assert!(matches!(welcome, In::Welcome(w) if w.customer.is_some() && w.user.is_none()));

        let ack = In::parse(
            r#"{"type":"ack","ref":"1","client_id":"5f1c","ticket":3,"conversation":3,"seq":1,"at":"2026-11-21T10:00:00.120Z","duplicate":false}"#,
        )
        .unwrap();
        let In::Ack(ack) = ack else { panic!() };
        assert_eq!(
            (ack.seq, ack.conversation, ack.duplicate),
            (1, Id::Num(3), false)
        );

        let ticket = In::parse(
            r#"{"type":"ticket","ticket":{"id":3,"conversation":3,"status":"assigned","agent":{"id":2,"name":"Grace"},"last_seq":1}}"#,
        )
        .unwrap();
        let In::Ticket { ticket } = ticket else {
            panic!()
        };
        assert!(ticket.is_assigned_to(&Id::Num(2)));
        assert!(!ticket.is_assigned_to(&Id::Num(5)));

        let message = In::parse(
            r#"{"type":"message","ticket":3,"conversation":3,"seq":2,"from":{"kind":"agent","id":2,"name":"Grace"},"text":"Hi","at":"x"}"#,
        )
        .unwrap();
        assert!(
            matches!(message, In::Message(m) if m.seq == 2 && m.from.kind.as_deref() == Some("agent"))
        );
    }

    #[test]
    fn agent_welcome_and_unknown_types() {
        let welcome = In::parse(
            r#"{"type":"welcome","user":{"id":2,"username":"a","name":"A","role":"agent","capacity":5},"assigned":[],"queue":[{"id":4,"conversation":9,"status":"queued"}]}"#,
        )
        .unwrap();
        let In::Welcome(w) = welcome else { panic!() };
        assert_eq!(w.user.unwrap().id, Some(Id::Num(2)));
        assert_eq!(w.queue[0].conversation, Id::Num(9));

        assert!(matches!(
            In::parse(r#"{"type":"presence","x":1}"#).unwrap(),
            In::Unknown
        ));
        assert!(matches!(
            In::parse(r#"{"type":"pong","ref":"p"}"#).unwrap(),
            In::Pong {}
        ));
        assert!(In::parse(r#"{"type":"ack"}"#).is_err());
        assert_eq!(type_of(r#"{"type":"ack"}"#), "ack");
        assert_eq!(type_of("[]"), "(no type)");
    }
}
