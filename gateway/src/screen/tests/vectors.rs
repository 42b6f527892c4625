//! The shared vectors (`../vectors.json`), which the browser widget's tests run too.

use serde::Deserialize;

use super::{scan, scan_conversation, Brand};

#[derive(Deserialize)]
struct Vectors {
    cases: Vec<Case>,
    conversations: Vec<Conversation>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    text: String,
    blocked: bool,
    #[serde(default)]
    brand: Option<String>,
}

#[derive(Deserialize)]
struct Conversation {
    name: String,
    messages: Vec<String>,
    blocked: Vec<bool>,
}

fn vectors() -> Vectors {
    serde_json::from_str(include_str!("../vectors.json")).expect("vectors.json parses")
}

#[test]
fn every_case_gets_its_verdict() {
    let vectors = vectors();
    assert!(vectors.cases.len() >= 100);
    let mut wrong = Vec::new();
    for case in &vectors.cases {
        let verdict = scan(&case.text);
        if verdict.is_blocked() != case.blocked {
            wrong.push(format!(
                "{}: expected blocked={}, got {:?}",
                case.name, case.blocked, verdict
            ));
            continue;
        }
        if let Some(brand) = &case.brand {
            let expected = Brand::from_id(brand).expect("known brand id");
            let got = verdict.findings().first().map(|f| f.brand());
            if got != Some(expected) {
                wrong.push(format!("{}: expected {brand}, got {got:?}", case.name));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[test]
fn every_conversation_gets_its_verdicts() {
    let mut wrong = Vec::new();
    for conversation in vectors().conversations {
        let messages: Vec<&str> = conversation.messages.iter().map(String::as_str).collect();
        let got: Vec<bool> = scan_conversation(&messages)
            .iter()
            .map(|v| v.is_blocked())
            .collect();
        if got != conversation.blocked {
            wrong.push(format!(
                "{}: expected {:?}, got {:?}",
                conversation.name, conversation.blocked, got
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn every_brand_has_a_vector() {
    let vectors = vectors();
    for brand in Brand::ALL {
        assert!(
            vectors
                .cases
                .iter()
                .any(|c| c.brand.as_deref() == Some(brand.id())),
            "no vector for {brand}"
        );
    }
}
