//! Attachments: what a file must be to be accepted. Its type is one of an allow-list and its
//! first bytes must match the type the uploader declared; text must be UTF-8; its name is made
//! safe to show and to send back in a header. Sealing and storage are the store's
//! (`store::sqlite`), delivery the API's (`api::attachments`).

use crate::store::NewAttachment;
use std::fmt;

/// The types a file may have: common screenshots and photos, PDF, plain text.
pub const ALLOWED_TYPES: [&str; 6] = [
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "application/pdf",
    "text/plain",
];

/// Characters of a file name kept at most (its extension included).
pub const NAME_MAX_CHARS: usize = 120;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AttachmentError {
    #[error("the file is larger than {max} bytes")]
    TooLarge { max: usize },
    #[error("the file is empty")]
    Empty,
    #[error("files of type {0} are not accepted; allowed: png, jpeg, gif, webp, pdf, plain text")]
    Unsupported(String),
    #[error("the file's content is not a valid {0} (its first bytes do not match the type)")]
    Mismatch(&'static str),
}

/// A file name fit to show and to put in `Content-Disposition`: the last path component,
/// without control or bidirectional-override characters (which can make `gpj.exe` read as
/// `exe.jpg`) or characters that mean something in a path or a header, at most
/// [`NAME_MAX_CHARS`] characters with its extension kept.
#[derive(Clone, PartialEq, Eq)]
pub struct FileName(String);

impl fmt::Debug for FileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Customer-typed: never in a log.
        f.write_str("FileName(***)")
    }
}

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200E}' | '\u{200F}' | '\u{061C}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

impl FileName {
    /// Cleans what the uploader sent; an empty result becomes `attachment`.
    pub fn sanitise(raw: &str) -> FileName {
        let base = raw.rsplit(['/', '\\']).next().unwrap_or("");
        let mut clean = String::with_capacity(base.len());
        let mut space = false;
        for c in base.chars() {
            let c = if c.is_whitespace() { ' ' } else { c };
            if c.is_control()
                || is_bidi_control(c)
                || matches!(
                    c,
                    '"' | '<' | '>' | ':' | '|' | '?' | '*' | ';' | '\u{FEFF}'
                )
            {
                continue;
            }
            if c == ' ' {
                if space {
                    continue;
                }
                space = true;
            } else {
                space = false;
            }
            clean.push(c);
        }
        let clean = clean.trim_matches(|c: char| c == ' ' || c == '.');
        if clean.is_empty() {
            return FileName("attachment".into());
        }
        if clean.chars().count() <= NAME_MAX_CHARS {
            return FileName(clean.to_string());
        }
        // Too long: shorten the stem, keep a short extension.
        let (stem, ext) = match clean.rsplit_once('.') {
            Some((s, e)) if !s.is_empty() && e.chars().count() <= 10 => (s, Some(e)),
            _ => (clean, None),
        };
        let room = NAME_MAX_CHARS - ext.map_or(0, |e| e.chars().count() + 1);
        let mut out: String = stem.chars().take(room).collect();
        if let Some(e) = ext {
            out.push('.');
            out.push_str(e);
        }
        FileName(out)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The allowed type named by a `Content-Type` value (parameters such as `charset` aside).
pub fn allowed_type(declared: &str) -> Result<&'static str, AttachmentError> {
    let essence = declared
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    ALLOWED_TYPES
        .iter()
        .find(|t| **t == essence)
        .copied()
        .ok_or_else(|| {
            let shown: String = essence.chars().take(64).collect();
            AttachmentError::Unsupported(if shown.is_empty() {
                "(none)".into()
            } else {
                shown
            })
        })
}

/// Whether `bytes` begin as a file of `content_type` does; text must be UTF-8 without NUL or
/// other control characters than tab, line breaks and form feed.
pub fn content_matches(content_type: &str, bytes: &[u8]) -> bool {
    match content_type {
        "image/png" => bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "image/jpeg" => bytes.starts_with(&[0xFF, 0xD8, 0xFF]),
        "image/gif" => bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a"),
        "image/webp" => bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP",
        "application/pdf" => bytes.starts_with(b"%PDF-"),
        "text/plain" => std::str::from_utf8(bytes).is_ok_and(|t| {
            !t.chars()
                .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r' | '\u{0C}'))
        }),
        _ => false,
    }
}

/// A file as uploaded, checked: an allowed type its content matches, within the size limit,
/// with a clean name. Its clear bytes are wiped when it is dropped.
#[derive(Debug)]
pub struct Upload {
    pub name: FileName,
    pub file: NewAttachment,
}

impl Upload {
    pub fn check(
        raw_name: &str,
        declared: &str,
        bytes: zeroize::Zeroizing<Vec<u8>>,
        max: usize,
    ) -> Result<Upload, AttachmentError> {
        if bytes.len() > max {
            return Err(AttachmentError::TooLarge { max });
        }
        let content_type = allowed_type(declared)?;
        if bytes.is_empty() {
            return Err(AttachmentError::Empty);
        }
        if !content_matches(content_type, &bytes) {
            return Err(AttachmentError::Mismatch(content_type));
        }
        Ok(Upload {
            name: FileName::sanitise(raw_name),
            file: NewAttachment {
                content_type,
                bytes,
            },
        })
    }

    /// The content as text, for a text file (the card-number screen reads it).
    pub fn text(&self) -> Option<&str> {
        if self.file.content_type == "text/plain" {
            std::str::from_utf8(&self.file.bytes).ok()
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zeroize::Zeroizing;

    fn check(name: &str, ty: &str, bytes: &[u8]) -> Result<Upload, AttachmentError> {
        Upload::check(name, ty, Zeroizing::new(bytes.to_vec()), 1024)
    }

    #[test]
    fn names_are_cleaned_and_capped_with_their_extension() {
        let n = |s: &str| FileName::sanitise(s).as_str().to_string();
        assert_eq!(n("../../etc/passwd"), "passwd");
        assert_eq!(n("C:\\Users\\me\\shot.png"), "shot.png");
        assert_eq!(n("evil\u{202E}gnp.exe"), "evilgnp.exe");
        assert_eq!(n("a\"b\r\nc;d\u{7}.txt"), "ab cd.txt");
        assert_eq!(n("  many   spaces  .pdf"), "many spaces .pdf");
        assert_eq!(n("..."), "attachment");
        assert_eq!(n(""), "attachment");
        let long = format!("{}.jpeg", "x".repeat(300));
        let capped = n(&long);
        assert_eq!(capped.chars().count(), NAME_MAX_CHARS);
        assert!(capped.ends_with("x.jpeg"));
        assert_eq!(n(&"й".repeat(200)).chars().count(), NAME_MAX_CHARS);
        assert_eq!(
            format!("{:?}", FileName::sanitise("secret.png")),
            "FileName(***)"
        );
    }

    #[test]
    fn the_type_must_be_allowed_and_match_the_content() {
        let png = b"\x89PNG\r\n\x1a\n rest";
        assert_eq!(
            check("a.png", "image/png", png).unwrap().file.content_type,
            "image/png"
        );
        assert_eq!(
            check("a.png", "IMAGE/PNG; x=y", png)
                .unwrap()
                .file
                .content_type,
            "image/png"
        );
        assert_eq!(
            check("a.png", "image/jpeg", png).unwrap_err(),
            AttachmentError::Mismatch("image/jpeg")
        );
        assert!(matches!(
            check("a.html", "text/html", b"<html>").unwrap_err(),
            AttachmentError::Unsupported(_)
        ));
        assert!(matches!(
            check("a.svg", "image/svg+xml", b"<svg>").unwrap_err(),
            AttachmentError::Unsupported(_)
        ));
        assert!(check("a.jpg", "image/jpeg", &[0xFF, 0xD8, 0xFF, 0xE0]).is_ok());
        assert!(check("a.gif", "image/gif", b"GIF89a..").is_ok());
        assert!(check("a.webp", "image/webp", b"RIFF\0\0\0\0WEBPVP8 ").is_ok());
        assert!(check("a.webp", "image/webp", b"RIFF\0\0\0\0WAVE").is_err());
        assert!(check("a.pdf", "application/pdf", b"%PDF-1.7\n").is_ok());
        assert!(check(
            "a.txt",
            "text/plain; charset=utf-8",
            "привет\n\tok".as_bytes()
        )
        .is_ok());
        assert_eq!(
            check("a.txt", "text/plain", b"MZ\x90\0binary").unwrap_err(),
            AttachmentError::Mismatch("text/plain")
        );
        assert_eq!(
            check("a.txt", "text/plain", b"").unwrap_err(),
            AttachmentError::Empty
        );
        assert_eq!(
            Upload::check(
                "a.txt",
                "text/plain",
                Zeroizing::new(vec![b'a'; 1025]),
                1024
            )
            .unwrap_err(),
            AttachmentError::TooLarge { max: 1024 }
        );
    }

    #[test]
    fn only_text_files_are_read_as_text() {
        assert_eq!(
            check("a.txt", "text/plain", b"hi").unwrap().text(),
            Some("hi")
        );
        assert_eq!(
            check("a.pdf", "application/pdf", b"%PDF-hi")
                .unwrap()
                .text(),
            None
        );
    }
}
