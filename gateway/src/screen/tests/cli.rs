//! `deskgate scan` over in-memory input.

use super::super::cli::run;

fn run_lines(input: &str) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    run(input.as_bytes(), &mut out).expect("in-memory io");
    String::from_utf8(out)
        .expect("utf-8 output")
        .lines()
        .map(|l| serde_json::from_str(l).expect("each output line is JSON"))
        .collect()
}

#[test]
fn one_verdict_line_per_input_line_in_order() {
    let out = run_lines(concat!(
        "{\"text\": \"my card is 4111 1111 1111 1111\"}\n",
        "{\"text\": \"hello\"}\n",
        "{\"text\": \"卡号 ٤١١١١١١١١١١١١١١١ ok\"}\n",
    ));
    assert_eq!(out.len(), 3);
    assert_eq!(
        out[0],
        serde_json::json!({"blocked": true, "findings": [
            {"brand": "visa", "start": 11, "end": 30, "masked": "411111******1111"}
        ]})
    );
    assert_eq!(
        out[1],
        serde_json::json!({"blocked": false, "findings": []})
    );
    assert_eq!(out[2]["findings"][0]["start"], 3);
    assert_eq!(out[2]["findings"][0]["end"], 19);
}

#[test]
fn malformed_lines_get_an_error_and_the_scan_goes_on() {
    let out = run_lines(concat!(
        "not json 4111111111111111\n",
        "{\"text\": 4111111111111111}\n",
        "{\"conversation\": \"c\"}\n",
        "\n",
        "[\"4111111111111111\"]\n",
        "{\"text\": \"4111111111111111\"}\r\n",
    ));
    assert_eq!(out.len(), 6);
    for line in &out[..5] {
        let error = line["error"].as_str().expect("an error line");
        assert!(!error.contains("4111"), "{error}");
    }
    assert_eq!(out[5]["blocked"], true);
}

#[test]
fn invalid_utf8_is_an_error_line() {
    let mut input = b"{\"text\": \"\xff\"}\n".to_vec();
    input.extend_from_slice(b"{\"text\": \"fine\"}\n");
    let mut out = Vec::new();
    run(&input[..], &mut out).expect("in-memory io");
    let text = String::from_utf8(out).expect("utf-8 output");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2);
    assert!(lines[0].contains("error"));
    assert!(lines[1].contains("\"blocked\":false"));
}

#[test]
fn conversations_keep_their_own_tails() {
    let out = run_lines(concat!(
        "{\"text\": \"card 4111 1111\", \"conversation\": \"a\"}\n",
        "{\"text\": \"card 5555 5555\", \"conversation\": \"b\"}\n",
        "{\"text\": \"1111 1111\"}\n",
        "{\"text\": \"5555 4444\", \"conversation\": \"b\"}\n",
        "{\"text\": \"1111 1111\", \"conversation\": \"a\"}\n",
    ));
    let blocked: Vec<bool> = out.iter().map(|l| l["blocked"] == true).collect();
    assert_eq!(blocked, [false, false, false, true, true]);
    assert_eq!(out[3]["findings"][0]["brand"], "mastercard");
    assert_eq!(out[3]["findings"][0]["start"], 0);
}
