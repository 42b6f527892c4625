//! What a scan reports: the card numbers found in a message, each with its brand,
//! where it is, and its masked form. Nothing here holds a full card number, so
//! every type may be printed, logged or sent as it is.

use std::fmt;

use serde::Serialize;

use super::brands::Brand;
use super::pan::MaskedPan;

/// One card number found in a message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    brand: Brand,
    start: usize,
    end: usize,
    masked: MaskedPan,
}

impl Finding {
    pub(super) fn new(brand: Brand, start: usize, end: usize, masked: MaskedPan) -> Finding {
        Finding {
            brand,
            start,
            end,
            masked,
        }
    }

    pub fn brand(&self) -> Brand {
        self.brand
    }

    /// Offset, in characters of the scanned text, of the first digit. For a number
    /// that began in an earlier message of the conversation, 0.
    pub fn start(&self) -> usize {
        self.start
    }

    /// Offset, in characters of the scanned text, just after the last digit.
    pub fn end(&self) -> usize {
        self.end
    }

    /// At most the first six and the last four digits (PCI DSS 3.4.1).
    pub fn masked(&self) -> &MaskedPan {
        &self.masked
    }

    /// The last four digits, for telling a person which card was refused.
    pub fn last4(&self) -> &str {
        self.masked.last4()
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} card {} at characters {}..{}",
            self.brand, self.masked, self.start, self.end
        )
    }
}

/// The result of screening one message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    findings: Vec<Finding>,
}

impl Verdict {
    pub(super) fn new(findings: Vec<Finding>) -> Verdict {
        Verdict { findings }
    }

    /// A message with any card number in it must not be stored in clear or delivered.
    pub fn is_blocked(&self) -> bool {
        !self.findings.is_empty()
    }

    /// The card numbers found, in the order they appear.
    pub fn findings(&self) -> &[Finding] {
        &self.findings
    }

    pub fn into_findings(self) -> Vec<Finding> {
        self.findings
    }
}
