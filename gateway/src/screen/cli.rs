//! `deskgate scan`: screens chat messages given as JSON lines and writes one JSON
//! verdict line per input line, in order.
//!
//! ```text
//! in:  {"text": "my card is 4111 1111 1111 1111", "conversation": "c-42"}
//! out: {"blocked":true,"findings":[{"brand":"visa","start":11,"end":30,"masked":"411111******1111"}]}
//! ```
//!
//! Offsets count characters (Unicode scalar values) of `text`. Lines with the same
//! `conversation` are consecutive messages of one conversation, so a card number
//! split across them is found; lines without one stand alone. A line that is not
//! such an object gets `{"error": "..."}` and the scan goes on. Error messages
//! describe the line's shape, never its content, so they cannot repeat a card
//! number.

use std::collections::HashMap;
use std::io::{self, BufRead, BufWriter, Write};

use serde::{Deserialize, Serialize};

use super::{ConversationTail, Finding, Screen};

#[derive(Deserialize)]
struct Message {
    text: String,
    #[serde(default)]
    conversation: Option<String>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Line<'a> {
    Verdict {
        blocked: bool,
        findings: &'a [Finding],
    },
    Error {
        error: String,
    },
}

/// Reads JSON lines from `input` until it ends, writing one line per input line to
/// `output`. Output is flushed whenever all input read so far has been answered,
/// before waiting for more, so a caller may talk to it one line at a time; a
/// caller piping many lines gets them answered in large writes.
pub fn run(mut input: impl BufRead, output: impl Write) -> io::Result<()> {
    let mut output = BufWriter::new(output);
    let mut session = Session::default();
    // A line that straddles two reads.
    let mut partial = Vec::new();
    loop {
        let chunk = input.fill_buf()?;
        if chunk.is_empty() {
            break;
        }
        let read = chunk.len();
        let mut rest = chunk;
        while let Some(newline) = rest.iter().position(|&b| b == b'\n') {
            let line = &rest[..newline];
            if partial.is_empty() {
                session.answer(line, &mut output)?;
            } else {
                partial.extend_from_slice(line);
                session.answer(&partial, &mut output)?;
                partial.clear();
            }
            rest = &rest[newline + 1..];
        }
        partial.extend_from_slice(rest);
        input.consume(read);
        output.flush()?;
    }
    if !partial.is_empty() {
        session.answer(&partial, &mut output)?;
    }
    output.flush()
}

/// The screen and the tails of the conversations seen so far.
#[derive(Default)]
struct Session {
    screen: Screen,
    tails: HashMap<String, ConversationTail>,
}

impl Session {
    fn answer(&mut self, line: &[u8], output: &mut impl Write) -> io::Result<()> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match parse(line) {
            Ok(message) => {
                let verdict = match message.conversation {
                    Some(id) => self
                        .screen
                        .scan_continuing(self.tails.entry(id).or_default(), &message.text),
                    None => self.screen.scan(&message.text),
                };
                let answer = Line::Verdict {
                    blocked: verdict.is_blocked(),
                    findings: verdict.findings(),
                };
                write_line(output, &answer)
            }
            Err(error) => write_line(output, &Line::Error { error }),
        }
    }
}

fn parse(line: &[u8]) -> Result<Message, String> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Err("empty line: expected a JSON object".to_owned());
    }
    if std::str::from_utf8(line).is_err() {
        return Err("line is not valid UTF-8".to_owned());
    }
    // serde would also take `["text"]` for the struct; only an object is the format.
    if line.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err("expected a JSON object".to_owned());
    }
    serde_json::from_slice(line).map_err(|e| {
        // serde_json's own messages may quote the input (`invalid type: integer
        // `4111…``), so only its category and position are used.
        match e.classify() {
            serde_json::error::Category::Data => format!(
                "expected an object with a string \"text\" and an optional string \
                 \"conversation\" (column {})",
                e.column()
            ),
            _ => format!("line is not valid JSON (column {})", e.column()),
        }
    })
}

fn write_line(output: &mut impl Write, line: &Line<'_>) -> io::Result<()> {
    serde_json::to_writer(&mut *output, line)?;
    output.write_all(b"\n")
}
