//! The voice channel: calls over WebSocket, relayed live between the caller and the agent,
//! recorded into the vault.
//!
//! - [`media`]: the one internal format (PCM16, 20 ms frames) and G.711 μ-law, 8 ↔ 16 kHz.
//! - [`token`]: the signed media token a site's backend hands its telephony provider.
//! - [`signature`]: Twilio's own request signature, the other admission of a phone stream.
//! - [`twilio`]: `/media/twilio`, the Twilio Media Streams protocol (and Telnyx's variant):
//!   the customer's phone leg.
//! - [`pcm`]: `/media/pcm`, a JSON start frame then binary PCM16: the agent's leg, or a
//!   browser customer's ([`browser`]: the widget's call button places a call).
//! - [`call`]: a live call (the registry, the relay between legs, PCI pause) and its
//!   recorder task, which ticks every 20 ms and writes through [`recording`].
//! - [`recording`]: the sealed dual-channel stream, its manifest, the check and the WAV export.
//! - [`directory`] and [`relay`]: with many nodes, where each call is held, and how a node
//!   hands the agent's leg and the call API on to the node holding the call.
//!
//! docs/voice.md describes the protocols, the token, the recording format and what is not
//! built yet.

pub mod browser;
pub mod call;
pub mod directory;
pub mod keypad;
pub mod media;
pub mod pcm;
pub mod recording;
pub mod relay;
pub mod signature;
pub mod token;
pub mod twilio;

pub use call::{Call, Calls};

use std::time::Duration;

/// Calls and their recordings.
#[derive(Clone, Debug)]
pub struct VoiceConfig {
    /// A PCI pause longer than this resumes by itself (audited as `auto`).
    pub max_pause: Duration,
    /// A media socket that has not authenticated by then is closed.
    pub start_timeout: Duration,
    /// Step-up actions that take card details: asking the customer to verify for one during a
    /// call pauses its recording (PCI).
    pub pause_on_actions: Vec<String>,
}

impl Default for VoiceConfig {
    fn default() -> Self {
        VoiceConfig {
            max_pause: Duration::from_secs(180),
            start_timeout: Duration::from_secs(10),
            pause_on_actions: vec!["take_payment".into()],
        }
    }
}

/// Largest text frame a media socket accepts (a `media` event of 200 ms is about 2.2 KiB).
pub const MAX_TEXT_FRAME: usize = 16 * 1024;
/// The reason a socket is closed for a text frame over [`MAX_TEXT_FRAME`].
pub const FRAME_TOO_BIG: &str = "frame over 16384 bytes";
/// Longest reason a WebSocket close frame can carry (RFC 6455, 5.5: 125 bytes less the code).
pub const MAX_CLOSE_REASON: usize = 123;
/// Largest binary frame on `/media/pcm`: ten 20 ms frames at 16 kHz.
pub const MAX_BINARY_FRAME: usize = 10 * 640;
/// Frames a leg may queue towards the other before the oldest are dropped (200 ms).
pub const LEG_QUEUE: usize = 10;

/// Where recordings are written.
pub fn recordings_dir(config: &crate::config::Config) -> std::path::PathBuf {
    config.data.join("recordings")
}

/// The close codes media sockets use, with a reason that says what was wrong.
pub mod close {
    /// A frame that is not the protocol (bad JSON, a wrong field, an odd PCM length).
    pub const MALFORMED: u16 = 1007;
    /// The media token is missing, forged, expired or for another call.
    pub const POLICY: u16 = 1008;
    /// A frame over the size limit.
    pub const TOO_BIG: u16 = 1009;
    pub const INTERNAL: u16 = 1011;
    /// The staff member may not take this call (not theirs, or no such call).
    pub const FORBIDDEN: u16 = 4403;
    pub const NOT_FOUND: u16 = 4404;
}

/// Sends a close frame with `reason` and waits briefly for the peer's reply. The reason is
/// fixed text, never what the peer sent.
pub(crate) async fn close_with(
    socket: &mut axum::extract::ws::WebSocket,
    code: u16,
    reason: &'static str,
) {
    use axum::extract::ws::{CloseFrame, Message};
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    if socket.send(Message::Close(Some(frame))).await.is_err() {
        return;
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(Ok(m)) = socket.recv().await {
            if matches!(m, Message::Close(_)) {
                return;
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Calls whose string arguments end up in a close frame, in `voice/` and `ws/`.
    const CLOSING_CALLS: &[&str] = &[
        "closing(",
        "close_socket(",
        "reject(",
        "refuse(",
        "gone(",
        "malformed(",
        "policy(",
        "too_big(",
        "close_with(",
        "reason: \"",
    ];

    /// Every string literal inside such a call (to its closing parenthesis).
    fn reasons(source: &str) -> Vec<String> {
        let mut found = Vec::new();
        for call in CLOSING_CALLS {
            for (at, _) in source.match_indices(call) {
                let mut depth = 0i32;
                let mut in_str = false;
                let mut lit = String::new();
                let mut chars = source[at + call.len() - 1..].chars();
                while let Some(c) = chars.next() {
                    if in_str {
                        match c {
                            '\\' => {
                                lit.push(chars.next().unwrap_or(' '));
                            }
                            '"' => {
                                found.push(std::mem::take(&mut lit));
                                in_str = false;
                                if call.starts_with("reason") {
                                    break;
                                }
                            }
                            _ => lit.push(c),
                        }
                        continue;
                    }
                    match c {
                        '"' => in_str = true,
                        '(' => depth += 1,
                        ')' => {
                            depth -= 1;
                            if depth <= 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
        found
    }

    #[test]
    fn every_close_reason_fits_a_close_frame() {
        let sources = [
            include_str!("mod.rs"),
            include_str!("pcm.rs"),
            include_str!("browser.rs"),
            include_str!("twilio.rs"),
            include_str!("call.rs"),
            include_str!("../ws/mod.rs"),
            include_str!("../ws/conn.rs"),
            include_str!("../ws/customer.rs"),
            include_str!("../ws/agent.rs"),
        ];
        // The code, not its tests (this scanner's own literals are no reasons).
        let code = sources
            .iter()
            .map(|s| s.split("#[cfg(test)]").next().unwrap_or(s));
        let all: Vec<String> = code.flat_map(reasons).collect();
        // The scan finds the reasons it is meant to check.
        assert!(all.len() > 40, "{all:?}");
        assert!(all.iter().any(|r| r == "media token refused"));
        assert!(all.iter().any(|r| r == "rate limit exceeded"));
        for r in all.iter().map(String::as_str).chain([FRAME_TOO_BIG]) {
            assert!(r.len() <= MAX_CLOSE_REASON, "{} bytes: {r}", r.len());
        }
        assert_eq!(FRAME_TOO_BIG, format!("frame over {MAX_TEXT_FRAME} bytes"));
    }
}
