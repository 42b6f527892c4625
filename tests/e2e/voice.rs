//! The voice channel through the real server: a Python peer acting as Twilio
//! (tests/support/voice/twilio_peer.py, `websockets` from PyPI) calls in with a 440 Hz tone and
//! DTMF; the call lands in the queue as a ticket of kind `call`; an agent claims it and joins
//! over `/media/pcm` with a 1000 Hz tone at 16 kHz; each side hears the other; the agent
//! pauses the recording for card details and the REST API resumes it, a second pause runs out
//! by itself; after the call a supervisor gets the recording through an approved grant, and
//! the test decodes it: customer left at 440 Hz, agent right at 1000 Hz, silence in each
//! pause, no clear audio on disk, and a cut-off file refused.

use deskgate_tests::{files_under, Staff, TestApp};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("DESKGATE_VOICE_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/voice-venv/bin/python");
    assert!(
        venv.exists(),
        "the voice tests need websockets: run tests/run.sh, or `python3 -m venv target/voice-venv && target/voice-venv/bin/pip install websockets==17.4`"
    );
    venv
}

/// The Python peer acting as the provider (`tests/support/voice/twilio_peer.py`), started and
/// past its `start` event.
struct Peer {
    child: tokio::process::Child,
    out: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    stdin: tokio::process::ChildStdin,
}

impl Peer {
    async fn start(args: &[&str]) -> Peer {
        let mut child = tokio::process::Command::new(python())
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("support/voice/twilio_peer.py"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start the provider's peer");
        let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
        let stdin = child.stdin.take().unwrap();
        assert_eq!(out.next_line().await.unwrap().as_deref(), Some("started"));
        Peer { child, out, stdin }
    }

    /// A line on the peer's stdin: `go`, or `keys DIGITS`.
    async fn say(&mut self, line: &str) {
        self.stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
    }

    /// What the peer saw, once the call is over.
    async fn seen(mut self) -> Value {
        let line = self.out.next_line().await.unwrap().unwrap();
        let _ = self.child.wait().await;
        serde_json::from_str(&line).unwrap()
    }
}

fn media_token(app: &TestApp, call: &str) -> String {
    let secret = std::fs::read_to_string(app.data_dir().join("sites/demo.identity-secret"))
        .expect("the demo site's secret");
    use deskgate::clock::Clock;
    let exp = app.clock.now().millis() / 1000 + 600;
    deskgate::voice::token::sign(secret.trim().as_bytes(), "demo", call, exp)
}

/// `seconds` of a sine at `hz`, raw μ-law at 8 kHz, made with sox; returns the file's path.
fn sox_tone(app: &TestApp, hz: u32, seconds: f64) -> String {
    // Outside the data dir, whose files the test searches for clear audio.
    let path = std::env::temp_dir().join(format!("deskgate-caller-{}-{hz}.ul", app.addr.port()));
    let out = std::process::Command::new("sox")
        .args(["-n", "-r", "8000", "-c", "1", "-e", "mu-law", "-t", "ul"])
        .arg(&path)
        .args([
            "synth",
            &seconds.to_string(),
            "sine",
            &hz.to_string(),
            "vol",
            "0.25",
        ])
        .output()
        .expect("the voice tests need sox: run tests/run.sh, or apt-get install sox");
    assert!(
        out.status.success(),
        "sox: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    path.to_string_lossy().into_owned()
}

/// Power of `hz` in `s` (Goertzel).
pub(crate) fn goertzel(s: &[f64], rate: f64, hz: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * hz / rate;
    let c = 2.0 * w.cos();
    let (mut a, mut b) = (0.0, 0.0);
    for &x in s {
        let n = x + c * a - b;
        b = a;
        a = n;
    }
    a * a + b * b - c * a * b
}

pub(crate) fn rms(s: &[f64]) -> f64 {
    (s.iter().map(|x| x * x).sum::<f64>() / s.len().max(1) as f64).sqrt()
}

fn tone16(hz: f64, frame: usize) -> Vec<u8> {
    (0..320)
        .flat_map(|i| {
            let t = (frame * 320 + i) as f64 / 16000.0;
            ((6000.0 * (2.0 * std::f64::consts::PI * hz * t).sin()) as i16).to_le_bytes()
        })
        .collect()
}

/// The ticket of a live call, as the queue shows it.
async fn call_ticket(app: &TestApp, agent: &Staff, call: &str) -> Value {
    for _ in 0..100 {
        let (s, c) = app
            .get(&format!("/api/calls/{call}"), Some(&agent.token))
            .await;
        if s == 200 {
            let (_, q) = app.get("/api/queue", Some(&agent.token)).await;
            let t = q["tickets"]
                .as_array()
                .and_then(|ts| ts.iter().find(|t| t["id"] == c["ticket"]).cloned());
            return t.unwrap_or_else(|| panic!("the call's ticket is not queued: {q}"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no live call {call}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_call_is_relayed_recorded_paused_and_played_through_a_grant() {
    let app = TestApp::builder()
        .config(|c| c.voice.max_pause = Duration::from_millis(800))
        .start()
        .await;
    let agent = app.agent("grace").await;
    let call = "CA0123456789abcdef";
    let token = media_token(&app, call);

    // The provider's side: seconds of 440 Hz made by sox as the phone network carries it
    // (μ-law at 8 kHz); DTMF 5 while recording, 9 while paused.
    let audio = sox_tone(&app, 440, 4.4);
    let mut peer = Peer::start(&[
        "--url",
        &app.ws_url("/media/twilio"),
        "--token",
        &token,
        "--call",
        call,
        "--audio",
        &audio,
        "--seconds",
        "4.4",
        "--dtmf",
        "5@0.4,9@1.3",
    ])
    .await;

    // The call waits in the queue like a chat, as a ticket of kind "call".
    let t = call_ticket(&app, &agent, call).await;
    assert_eq!(t["kind"], "call", "{t}");
    assert_eq!(t["status"], "queued", "{t}");
    let ticket = t["id"].as_i64().unwrap();
    let (mut desk, _) = app.agent_ws(&agent).await;
    let ok = desk
        .request(json!({"type": "claim", "ticket": ticket}))
        .await;
    assert_eq!(ok["type"], "ok", "{ok}");

    // The agent's leg: JSON start, then binary PCM16 at 16 kHz.
    let (mut leg, _) = tokio_tungstenite::connect_async(app.ws_url("/media/pcm"))
        .await
        .unwrap();
    let start = json!({"type": "start", "token": agent.token, "call": call, "codec": "pcm16", "rate": 16000});
    leg.send(Message::Text(start.to_string().into()))
        .await
        .unwrap();
    let started: Value = match leg.next().await.unwrap().unwrap() {
        Message::Text(t) => serde_json::from_str(&t).unwrap(),
        other => panic!("{other:?}"),
    };
    assert_eq!(started["type"], "started", "{started}");
    assert_eq!(started["ticket"], ticket);
    let recording = {
        let (s, c) = app
            .get(&format!("/api/calls/{call}"), Some(&agent.token))
            .await;
        assert_eq!(s, 200, "{c}");
        c["recording"].as_i64().unwrap()
    };

    peer.say("go").await;
    let (mut tx, rx) = leg.split();
    let app_url = app.url("");
    let http = app.http.clone();
    let agent_token = agent.token.clone();
    let call_id = call.to_string();
    // The agent talks for 4.4 s: pauses by its leg at 1.0 s, the API resumes at 1.6 s and
    // pauses again at 2.4 s, which runs out after 0.8 s.
    let speaker = tokio::spawn(async move {
        let t0 = tokio::time::Instant::now();
        for i in 0..220usize {
            let at = i * 20;
            if at == 1000 {
                let p = json!({"type": "pause", "reason": "card payment"});
                tx.send(Message::Text(p.to_string().into())).await.unwrap();
            }
            if at == 1600 || at == 2400 {
                let verb = if at == 1600 { "resume" } else { "pause" };
                let r = http
                    .post(format!("{app_url}/api/calls/{call_id}/{verb}"))
                    .bearer_auth(&agent_token)
                    .json(&json!({"reason": "card details taken"}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200, "{verb}");
            }
            if at == 200 {
                let m = json!({"type": "mark", "name": "greeting"});
                tx.send(Message::Text(m.to_string().into())).await.unwrap();
                tx.send(Message::Text(json!({"type": "clear"}).to_string().into()))
                    .await
                    .unwrap();
            }
            // The call may end first (the provider hung up): the leg is closed then.
            if tx
                .send(Message::Binary(tone16(1000.0, i).into()))
                .await
                .is_err()
            {
                break;
            }
            tokio::time::sleep_until(t0 + Duration::from_millis((at + 20) as u64)).await;
        }
        tx
    });
    // What the agent hears and is told.
    let (heard, events) = hear(rx).await;
    let _tx = speaker.await.unwrap();
    let seen = peer.seen().await;

    // The provider got the agent's voice back as μ-law media, the mark, and the clear.
    assert!(seen["media"].as_u64().unwrap() > 150, "{seen}");
    let hz = seen["received_hz"].as_f64().unwrap();
    assert!(
        (hz - 1000.0).abs() < 30.0,
        "the caller hears 1000 Hz: {seen}"
    );
    assert_eq!(seen["marks"], json!(["greeting"]), "{seen}");
    assert_eq!(seen["clears"], 1, "{seen}");
    // The agent heard 440 Hz (through the live pauses too), the echoed mark, DTMF 5 only.
    let loud = loud(&heard);
    assert!(loud.len() > 16000 * 3, "{} samples", loud.len());
    assert!(goertzel(&loud, 16000.0, 440.0) > 20.0 * goertzel(&loud, 16000.0, 1000.0));
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    let dtmf: Vec<&Value> = events.iter().filter(|e| e["type"] == "dtmf").collect();
    assert_eq!(
        dtmf,
        vec![&json!({"type": "dtmf", "digit": "5"})],
        "{events:?}"
    );
    assert!(
        events.contains(&json!({"type": "mark", "name": "greeting"})),
        "{events:?}"
    );
    assert_eq!(
        kinds.iter().filter(|k| **k == "paused").count(),
        2,
        "{kinds:?}"
    );
    assert_eq!(kinds.iter().filter(|k| **k == "resumed").count(), 2);

    // The recording: finished, its pauses as they happened.
    let rec = finished_recording(&app, &agent, recording).await;
    assert_eq!(rec["rate"], 8000);
    assert_eq!(rec["channels"], json!(["customer", "agent"]));
    let pauses = rec["pauses"].as_array().unwrap().clone();
    assert_eq!(pauses.len(), 2, "{rec}");
    assert_eq!(pauses[0]["by"], format!("user:{}", agent.id));
    assert_eq!(pauses[0]["resumed_by"], format!("user:{}", agent.id));
    assert_eq!(pauses[1]["resumed_by"], "auto");
    let audit = app.audit("action=recording_paused").await;
    assert_eq!(audit.len(), 2, "{audit:?}");
    assert!(audit[0]["detail"].as_str().unwrap().contains("reason=card"));
    let resumed = app.audit("action=recording_resumed").await;
    assert!(resumed.iter().any(|e| e["role"] == "system"), "{resumed:?}");

    // The ticket is worked like a chat: resolved by its agent.
    let ok = desk
        .request(json!({"type": "resolve", "ticket": ticket}))
        .await;
    assert_eq!(ok["type"], "ok", "{ok}");

    // Playback only through an approved grant.
    let sam = app.staff("sam", "supervisor", 5).await;
    let april = app.staff("april", "approver", 5).await;
    let wav_url = |g: i64| format!("{}/api/grants/{g}/recording", app.url(""));
    let (s, g) = app
        .post(
            "/api/grants",
            Some(&sam.token),
            json!({"kind": "recording", "object": recording, "reason": "quality review of call CA0123"}),
        )
        .await;
    assert_eq!(s, 201, "{g}");
    let grant = g["id"].as_i64().unwrap();
    let early = app
        .http
        .get(wav_url(grant))
        .bearer_auth(&sam.token)
        .send()
        .await
        .unwrap();
    assert_eq!(early.status(), 409, "pending grants play nothing");
    let (s, _) = app
        .post(
            &format!("/api/grants/{grant}/approve"),
            Some(&april.token),
            json!({"note": "ok"}),
        )
        .await;
    assert_eq!(s, 200);
    let resp = app
        .http
        .get(wav_url(grant))
        .bearer_auth(&sam.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "audio/wav");
    let wav = resp.bytes().await.unwrap().to_vec();
    assert_eq!(&wav[..4], b"RIFF");
    assert_eq!(u16::from_le_bytes([wav[22], wav[23]]), 2, "stereo");
    assert_eq!(
        u32::from_le_bytes([wav[24], wav[25], wav[26], wav[27]]),
        8000
    );
    let pcm: Vec<i16> = wav[44..]
        .chunks_exact(2)
        .map(|c| i16::from_le_bytes([c[0], c[1]]))
        .collect();
    let left: Vec<f64> = pcm.iter().step_by(2).map(|&s| f64::from(s)).collect();
    let right: Vec<f64> = pcm
        .iter()
        .skip(1)
        .step_by(2)
        .map(|&s| f64::from(s))
        .collect();
    assert_eq!(
        left.len() as u64 * 1000 / 8000,
        rec["duration_ms"].as_u64().unwrap()
    );

    // Silence in every pause, on both channels.
    for p in &pauses {
        let a = p["start_ms"].as_u64().unwrap() as usize * 8;
        let b = p["end_ms"].as_u64().unwrap() as usize * 8;
        assert!(b - a >= 8 * 500, "{p}");
        assert!(
            left[a..b].iter().chain(&right[a..b]).all(|&x| x == 0.0),
            "{p}"
        );
    }
    // Outside them, in every 100 ms where a side talked: left is the caller, right the agent.
    let (mut l_windows, mut r_windows) = (0, 0);
    for w in 0..left.len() / 800 {
        let (a, b) = (w * 800, w * 800 + 800);
        let (l, r) = (&left[a..b], &right[a..b]);
        if rms(l) > 1000.0 {
            l_windows += 1;
            assert!(
                goertzel(l, 8000.0, 440.0) > 20.0 * goertzel(l, 8000.0, 1000.0),
                "left {w}"
            );
        }
        if rms(r) > 1000.0 {
            r_windows += 1;
            assert!(
                goertzel(r, 8000.0, 1000.0) > 20.0 * goertzel(r, 8000.0, 440.0),
                "right {w}"
            );
        }
    }
    assert!(
        l_windows >= 20 && r_windows >= 20,
        "{l_windows} {r_windows}"
    );
    let played = app.audit("action=grant_used").await;
    assert!(
        played
            .iter()
            .any(|e| e["object_kind"] == "recording" && e["outcome"] == "allowed"),
        "{played:?}"
    );

    // No clear audio on disk: no 32-byte run of the recording is in any file.
    let data = &wav[44..];
    let files = files_under(app.data_dir());
    for off in (0..data.len() - 32).step_by(data.len() / 40) {
        let needle = &data[off..off + 32];
        if needle.iter().all(|&b| b == 0) {
            continue;
        }
        for (path, bytes) in &files {
            assert!(
                !bytes.windows(32).any(|w| w == needle),
                "clear audio in {path:?}"
            );
        }
    }

    // A cut-off recording is refused, and the refusal audited.
    let file = app.data_dir().join(format!("recordings/{recording}.dgs"));
    let len = std::fs::metadata(&file).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
    f.set_len(len - 100).unwrap();
    let resp = app
        .http
        .get(wav_url(grant))
        .bearer_auth(&sam.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 409);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("integrity"),
        "{body}"
    );
    let refused = app.audit("action=grant_used&outcome=denied").await;
    assert!(
        refused
            .iter()
            .any(|e| e["detail"].as_str().unwrap_or("").contains("integrity")),
        "{refused:?}"
    );
}

async fn closed_with(
    ws: &mut (impl StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin),
) -> (u16, String) {
    while let Ok(Some(m)) = tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
        if let Ok(Message::Close(Some(f))) = m {
            return (u16::from(f.code), f.reason.to_string());
        }
        if m.is_err() {
            break;
        }
    }
    (0, String::new())
}

async fn twilio_session(app: &TestApp, frames: &[String]) -> (u16, String) {
    let (mut ws, _) = tokio_tungstenite::connect_async(app.ws_url("/media/twilio"))
        .await
        .unwrap();
    for f in frames {
        ws.send(Message::Text(f.clone().into())).await.unwrap();
    }
    closed_with(&mut ws).await
}

fn start_frame(call: &str, token: &str) -> String {
    json!({"event": "start", "sequenceNumber": "1", "streamSid": "MZ1",
        "start": {"streamSid": "MZ1", "callSid": call, "customParameters": {"token": token},
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}})
    .to_string()
}

#[tokio::test]
async fn bad_media_frames_are_refused_with_a_reason() {
    let app = TestApp::start().await;
    let token = media_token(&app, "CA1");
    // A caller's identity the site did not sign.
    let forged = app.identity_token_signed_with("not the site's secret", "c-7", "a@b.c", json!({}));
    let mut forged_start: Value = serde_json::from_str(&start_frame("CA1", &token)).unwrap();
    forged_start["start"]["customParameters"]["identity"] = json!(forged);
    let cases: Vec<(Vec<String>, u16, &str)> = vec![
        (
            vec![forged_start.to_string()],
            1008,
            "identity token refused",
        ),
        (vec!["{".into()], 1007, "frame is not JSON"),
        (vec![r#"{"event":"dance"}"#.into()], 1007, "unknown event"),
        // What the peer sent is never quoted back, however long: a close reason has room
        // for 123 bytes, and the same reason is what the log gets.
        (
            vec![format!(
                r#"{{"event":"{}"}}"#,
                "4111111111111111".repeat(10)
            )],
            1007,
            "unknown event",
        ),
        (
            vec![format!(
                r#"{{"event":"start","streamSid":"MZ1","start":{{"callSid":"CA1","mediaFormat":{{"encoding":"{}","sampleRate":8000}}}}}}"#,
                "4111111111111111".repeat(10)
            )],
            1007,
            "media format must be μ-law 8000 Hz mono (audio/x-mulaw or PCMU)",
        ),
        (
            vec![r#"{"event":"media","media":{"payload":""}}"#.into()],
            1008,
            "media before start",
        ),
        (vec!["x".repeat(20 * 1024)], 1009, "frame over 16384 bytes"),
        (
            vec![start_frame("CA2", &token)],
            1008,
            "media token refused",
        ),
        (
            vec![start_frame("CA1", "v1.demo.CA1.99999999999.00")],
            1008,
            "media token refused",
        ),
        (
            vec![
                start_frame("CA1", &token),
                r#"{"event":"media","sequenceNumber":"2","media":{"payload":"@@@"}}"#.into(),
            ],
            1007,
            "media payload is not base64",
        ),
    ];
    for (frames, code, reason) in cases {
        let (c, r) = twilio_session(&app, &frames).await;
        assert_eq!((c, r.as_str()), (code, reason), "{frames:?}");
    }
    // A sequence number must be a string of digits, and the same call cannot start twice.
    let token3 = media_token(&app, "CA3");
    let (c, r) = twilio_session(
        &app,
        &[
            start_frame("CA3", &token3),
            r#"{"event":"media","sequenceNumber":2,"media":{"payload":""}}"#.into(),
        ],
    )
    .await;
    assert_eq!((c, r.as_str()), (1007, "bad media event"));
    let (c, r) = twilio_session(&app, &[start_frame("CA3", &token3)]).await;
    assert_eq!(
        (c, r.as_str()),
        (1008, "this call is live or recorded already")
    );
    // The replay opened no ticket of its own.
    let (_, all) = app
        .get("/api/tickets", Some(&app.admin().await.token))
        .await;
    let calls = all
        .as_array()
        .map(|a| a.iter().filter(|t| t["kind"] == "call").count());
    assert_eq!(calls, Some(2), "one ticket each for CA1 and CA3: {all}");

    // The agent's leg: a bad start frame, a call not theirs, an odd PCM frame.
    let agent = app.agent("grace").await;
    let pcm = |start: Value| {
        let url = app.ws_url("/media/pcm");
        async move {
            let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
            ws.send(Message::Text(start.to_string().into()))
                .await
                .unwrap();
            ws
        }
    };
    let mut ws = pcm(json!({"type": "start", "token": agent.token, "call": "CA1", "codec": "opus", "rate": 16000})).await;
    assert_eq!(
        closed_with(&mut ws).await,
        (1007, "codec must be \"pcm16\"".into())
    );
    let mut ws = pcm(
        json!({"type": "start", "token": "nope", "call": "CA1", "codec": "pcm16", "rate": 16000}),
    )
    .await;
    assert_eq!(closed_with(&mut ws).await.0, 1008);
    let mut ws = pcm(json!({"type": "start", "token": agent.token, "call": "CA404", "codec": "pcm16", "rate": 8000})).await;
    assert_eq!(
        closed_with(&mut ws).await,
        (4404, "no such live call".into())
    );
    // A live call whose ticket is someone else's (nobody claimed it).
    let token5 = media_token(&app, "CA5");
    let (mut phone, _) = tokio_tungstenite::connect_async(app.ws_url("/media/twilio"))
        .await
        .unwrap();
    phone
        .send(Message::Text(start_frame("CA5", &token5).into()))
        .await
        .unwrap();
    let t = call_ticket(&app, &agent, "CA5").await;
    let mut ws = pcm(json!({"type": "start", "token": agent.token, "call": "CA5", "codec": "pcm16", "rate": 8000})).await;
    assert_eq!(
        closed_with(&mut ws).await,
        (4403, "claim the call's ticket first".into())
    );
    let (mut desk, _) = app.agent_ws(&agent).await;
    desk.request(json!({"type": "claim", "ticket": t["id"]}))
        .await;
    // A caller the site did not identify has no verified email: no code can reach them.
    let r = desk
        .request(
            json!({"type": "request_verification", "ticket": t["id"], "action": "change_address"}),
        )
        .await;
    assert_eq!(r["code"], "cannot_verify", "{r}");
    let mut ws = pcm(json!({"type": "start", "token": agent.token, "call": "CA5", "codec": "pcm16", "rate": 8000})).await;
    let first = ws.next().await.unwrap().unwrap();
    assert!(first.to_text().unwrap().contains("started"), "{first:?}");
    ws.send(Message::Binary(vec![0u8; 321].into()))
        .await
        .unwrap();
    let (c, r) = closed_with(&mut ws).await;
    assert_eq!(c, 1007, "{r}");
    assert_eq!(r, "PCM16 frames have an even number of bytes");
    let _ = phone
        .send(Message::Close(Some(
            tokio_tungstenite::tungstenite::protocol::CloseFrame {
                code: CloseCode::Normal,
                reason: "".into(),
            },
        )))
        .await;
}

/// Telnyx's spelling of the same protocol (`stream_id`, `call_control_id`, `PCMU`), with the
/// token in the stream URL: the call is queued as a call, and each side hears the other, the
/// provider in its own spelling.
#[tokio::test]
async fn a_telnyx_stream_with_the_token_in_its_url_is_a_call_too() {
    let app = TestApp::start().await;
    let agent = app.agent("grace").await;
    let call = "v3:telnyx-call-1";
    let token = media_token(&app, call);
    // The token is only in the URL; the peer counts only replies spelled `stream_id`.
    let url = format!("{}?token={token}", app.ws_url("/media/twilio"));
    let mut peer = Peer::start(&[
        "--url",
        &url,
        "--dialect",
        "telnyx",
        "--call",
        call,
        "--hz",
        "440",
        "--seconds",
        "1.0",
    ])
    .await;
    let t = call_ticket(&app, &agent, call).await;
    assert_eq!(t["kind"], "call");
    let (mut desk, _) = app.agent_ws(&agent).await;
    desk.request(json!({"type": "claim", "ticket": t["id"]}))
        .await;
    let (mut leg, _) = tokio_tungstenite::connect_async(app.ws_url("/media/pcm"))
        .await
        .unwrap();
    let start = json!({"type": "start", "token": agent.token, "call": call, "codec": "pcm16", "rate": 8000});
    leg.send(Message::Text(start.to_string().into()))
        .await
        .unwrap();
    assert!(leg
        .next()
        .await
        .unwrap()
        .unwrap()
        .to_text()
        .unwrap()
        .contains("started"));
    peer.say("go").await;
    // 8 kHz on the agent's leg: 320 bytes a frame, no resampling.
    let frame: Vec<u8> = (0..160)
        .flat_map(|i| {
            let t = i as f64 / 8000.0;
            ((6000.0 * (2.0 * std::f64::consts::PI * 1000.0 * t).sin()) as i16).to_le_bytes()
        })
        .collect();
    let mut heard = 0;
    for _ in 0..50 {
        if leg
            .send(Message::Binary(frame.clone().into()))
            .await
            .is_err()
        {
            break;
        }
        if let Ok(Some(Ok(Message::Binary(b)))) =
            tokio::time::timeout(Duration::from_millis(20), leg.next()).await
        {
            assert_eq!(b.len(), 320);
            heard += 1;
        }
    }
    let seen = peer.seen().await;
    assert!(heard > 10, "the agent heard {heard} frames");
    assert!(seen["media"].as_u64().unwrap() > 10, "{seen}");
    let (_, c) = app
        .get(&format!("/api/tickets/{}", t["id"]), Some(&agent.token))
        .await;
    assert_eq!(c["ticket"]["kind"], "call", "{c}");
}

/// Opens `/media/pcm` with `start` as the first frame, from a page at `origin` if given.
async fn pcm_leg(
    app: &TestApp,
    start: Value,
    origin: Option<&str>,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = app.ws_url("/media/pcm").into_client_request().unwrap();
    if let Some(o) = origin {
        req.headers_mut().insert("origin", o.parse().unwrap());
    }
    let (mut ws, _) =
        tokio_tungstenite::connect_async_tls_with_config(req, None, false, app.ws_connector())
            .await
            .unwrap();
    ws.send(Message::Text(start.to_string().into()))
        .await
        .unwrap();
    ws
}

/// The first text frame of a leg, as JSON.
async fn first_text<S>(ws: &mut S) -> Value
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => return serde_json::from_str(&t).unwrap(),
            Some(Ok(Message::Close(c))) => panic!("closed: {c:?}"),
            Some(Ok(_)) => continue,
            other => panic!("{other:?}"),
        }
    }
}

/// A verified customer's chat on `chat_node`, its ticket claimed by `agent` on `desk_node`: the
/// customer, their chat socket, the ticket, and the agent's socket.
async fn claimed_chat(
    chat_node: &TestApp,
    desk_node: &TestApp,
    agent: &Staff,
) -> (
    deskgate_tests::Visitor,
    deskgate_tests::WsClient,
    i64,
    deskgate_tests::WsClient,
) {
    let visitor = chat_node
        .verified_visitor_with("cust-1", "ada@example.com", json!({}), json!({}))
        .await;
    let (mut chat, _) = chat_node.customer_ws(&visitor).await;
    let ack = chat.send_text(None, "m1", "Can I pay by phone?").await;
    let ticket = ack["ticket"].as_i64().unwrap();
    let (mut desk, _) = desk_node.agent_ws(agent).await;
    let ok = desk
        .request(json!({"type": "claim", "ticket": ticket}))
        .await;
    assert_eq!(ok["type"], "ok", "{ok}");
    (visitor, chat, ticket, desk)
}

/// The first node of a cluster: a `redis-server` of its own and a PostgreSQL database of its
/// own, both shared by the nodes started with `node_of` it.
async fn first_of_two_nodes(smtp: &deskgate_tests::smtp::SmtpServer) -> TestApp {
    TestApp::builder()
        .smtp(smtp)
        .redis()
        .on_postgres()
        .await
        .start()
        .await
}

/// Waits for the ticket frame saying the agent's ticket is a call now (the "Voice call"
/// message updates the ticket first, as a chat).
async fn told_it_is_a_call(desk: &mut deskgate_tests::WsClient) {
    let mut kinds = Vec::new();
    while kinds.last() != Some(&json!("call")) && kinds.len() < 3 {
        kinds.push(desk.recv_type("ticket").await["ticket"]["kind"].clone());
    }
    assert_eq!(kinds.last(), Some(&json!("call")), "{kinds:?}");
}

/// Both legs talk for 3 s, the customer at 440 Hz and the agent at 1000 Hz, the agent sending
/// each control frame at its time (ms from the start); then the customer hangs up. The task
/// returns both senders, so the sockets stay open until the test drops them.
fn talk<C, A>(
    mut customer: C,
    mut agent: A,
    controls: Vec<(usize, Value)>,
) -> tokio::task::JoinHandle<(C, A)>
where
    C: futures_util::Sink<Message> + Unpin + Send + 'static,
    A: futures_util::Sink<Message> + Unpin + Send + 'static,
    A::Error: std::fmt::Debug,
{
    tokio::spawn(async move {
        let t0 = tokio::time::Instant::now();
        for i in 0..150usize {
            let at = i * 20;
            for (_, c) in controls.iter().filter(|(when, _)| *when == at) {
                agent
                    .send(Message::Text(c.to_string().into()))
                    .await
                    .unwrap();
            }
            let _ = customer
                .send(Message::Binary(tone16(440.0, i).into()))
                .await;
            let _ = agent.send(Message::Binary(tone16(1000.0, i).into())).await;
            tokio::time::sleep_until(t0 + Duration::from_millis((at + 20) as u64)).await;
        }
        let _ = customer
            .send(Message::Text(json!({"type": "hangup"}).to_string().into()))
            .await;
        (customer, agent)
    })
}

/// What a leg hears until the call ends, its socket closes, or 10 s pass with nothing: its
/// audio and its JSON events.
async fn hear<S>(mut rx: S) -> (Vec<f64>, Vec<Value>)
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    let mut heard = Vec::new();
    let mut events = Vec::new();
    while let Ok(Some(Ok(m))) = tokio::time::timeout(Duration::from_secs(10), rx.next()).await {
        match m {
            Message::Binary(b) => {
                assert_eq!(b.len(), 640, "20 ms at 16 kHz");
                heard.extend(samples(&b));
            }
            Message::Text(t) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                let end = v["type"] == "ended";
                events.push(v);
                if end {
                    break;
                }
            }
            Message::Close(_) => break,
            _ => {}
        }
    }
    (heard, events)
}

/// The 20 ms frames at 16 kHz in `s` that carry sound, joined.
fn loud(s: &[f64]) -> Vec<f64> {
    s.chunks(320)
        .filter(|f| rms(f) > 1000.0)
        .flatten()
        .copied()
        .collect()
}

/// What both legs heard across the nodes: the agent the customer's 440 Hz, and the customer
/// the agent's 1000 Hz, each well above the other tone.
fn heard_each_other(heard: &[f64], customer_heard: &[f64]) {
    let (heard, customer_heard) = (loud(heard), loud(customer_heard));
    assert!(
        heard.len() > 16000 && customer_heard.len() > 16000,
        "{} {}",
        heard.len(),
        customer_heard.len()
    );
    assert!(goertzel(&heard, 16000.0, 440.0) > 20.0 * goertzel(&heard, 16000.0, 1000.0));
    assert!(
        goertzel(&customer_heard, 16000.0, 1000.0)
            > 20.0 * goertzel(&customer_heard, 16000.0, 440.0)
    );
}

/// The pauses and resumes a leg was told of, with who made each.
fn pauses_told(events: &[Value]) -> Vec<(String, String)> {
    events
        .iter()
        .filter(|e| e["type"] == "paused" || e["type"] == "resumed")
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap().to_string();
            (s("type"), s("by"))
        })
        .collect()
}

/// A recording played through a grant holds `pauses` pauses, silent on both channels, and
/// sound around them.
fn silent_in_its_pauses(rec: &Value, left: &[f64], right: &[f64], pauses: usize) {
    let intervals = rec["pauses"].as_array().unwrap();
    assert_eq!(intervals.len(), pauses, "{rec}");
    for p in intervals {
        let from = p["start_ms"].as_u64().unwrap() as usize * 16;
        let to = p["end_ms"].as_u64().unwrap() as usize * 16;
        assert!(to > from, "{rec}");
        assert!(left[from..to]
            .iter()
            .chain(&right[from..to])
            .all(|&x| x == 0.0));
    }
    assert!(rms(left) > 1000.0 && rms(right) > 1000.0);
}

/// Samples of the little-endian PCM16 in `b`.
fn samples(b: &[u8]) -> impl Iterator<Item = f64> + '_ {
    b.chunks_exact(2)
        .map(|c| f64::from(i16::from_le_bytes([c[0], c[1]])))
}

/// A call placed from the browser (the widget's leg on `/media/pcm` with the visitor token)
/// joins the customer's chat ticket, which becomes a call; the agent holding it finds the
/// call through the ticket and joins; each hears the other at 16 kHz. Asking the customer to
/// verify for a payment pauses the recording by itself; the agent resumes it. The recording is
/// 16 kHz stereo, customer left and agent right, silent in the pause.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_from_the_browser_joins_the_chat_and_a_payment_verification_pauses_its_recording() {
    let smtp = deskgate_tests::smtp::SmtpServer::start().await;
    let app = TestApp::builder().smtp(&smtp).start().await;
    let agent = app.agent("grace").await;
    let (visitor, _chat, ticket, mut desk) = claimed_chat(&app, &app, &agent).await;
    let (s, _) = app
        .get(&format!("/api/tickets/{ticket}/call"), Some(&agent.token))
        .await;
    assert_eq!(s, 404, "no call yet");

    // The customer presses the call button.
    let start = json!({"type": "start", "leg": "customer", "token": visitor.token, "codec": "pcm16", "rate": 16000});
    let mut customer = pcm_leg(&app, start, None).await;
    let started = first_text(&mut customer).await;
    assert_eq!(started["type"], "started", "{started}");
    assert_eq!(started["ticket"], ticket, "the call joins the open chat");
    let call = started["call"].as_str().unwrap().to_string();
    assert!(call.starts_with("web-"), "{call}");
    // The agent's console is told the ticket is a call now, and finds the call through it.
    told_it_is_a_call(&mut desk).await;
    let (s, c) = app
        .get(&format!("/api/tickets/{ticket}/call"), Some(&agent.token))
        .await;
    assert_eq!(s, 200, "{c}");
    assert_eq!(
        (c["call"].as_str(), c["rate"].as_u64()),
        (Some(call.as_str()), Some(16000))
    );
    let recording = c["recording"].as_i64().unwrap();
    // Another agent may not look at it.
    let other = app.agent("hopper").await;
    let (s, _) = app
        .get(&format!("/api/tickets/{ticket}/call"), Some(&other.token))
        .await;
    assert_eq!(s, 403);
    // A second call of the same customer is refused while this one is live.
    let again = json!({"type": "start", "leg": "customer", "token": visitor.token, "codec": "pcm16", "rate": 16000});
    let mut second = pcm_leg(&app, again, None).await;
    assert_eq!(
        closed_with(&mut second).await,
        (1008, "a call of yours is live already".into())
    );

    let start = json!({"type": "start", "token": agent.token, "call": call, "codec": "pcm16", "rate": 16000});
    let mut leg = pcm_leg(&app, start, None).await;
    assert_eq!(first_text(&mut leg).await["recording"], "on");

    // Both talk for 3 s. At 1.0 s the agent asks the customer to verify for a payment, which
    // pauses the recording; at 2.0 s the agent resumes it; at 3.0 s the customer hangs up.
    let (ctx_, crx) = customer.split();
    let (atx, arx) = leg.split();
    let resume = json!({"type": "resume", "reason": "payment taken"});
    let talker = talk(ctx_, atx, vec![(2000, resume)]);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let ok = desk
        .request(
            json!({"type": "request_verification", "ticket": ticket, "action": "take_payment"}),
        )
        .await;
    assert_eq!(ok["type"], "ok", "{ok}");
    let customer_hears = tokio::spawn(hear(crx));
    let (heard, events) = hear(arx).await;
    let _ = talker.await.unwrap();
    let (customer_heard, said) = customer_hears.await.unwrap();
    assert_eq!(
        said.last().map(|e| e["type"].clone()),
        Some(json!("ended")),
        "the customer's leg says the call ended"
    );

    // Each heard the other, at 16 kHz.
    let (a, c) = (loud(&heard), loud(&customer_heard));
    assert!(
        a.len() > 16000 * 2 && c.len() > 16000 * 2,
        "{} {}",
        a.len(),
        c.len()
    );
    assert!(goertzel(&a, 16000.0, 440.0) > 20.0 * goertzel(&a, 16000.0, 1000.0));
    assert!(goertzel(&c, 16000.0, 1000.0) > 20.0 * goertzel(&c, 16000.0, 440.0));
    let paused: Vec<&Value> = events.iter().filter(|e| e["type"] == "paused").collect();
    assert_eq!(paused.len(), 1, "{events:?}");
    assert_eq!(paused[0]["by"], "step-up");
    assert_eq!(paused[0]["reason"], "verification for take_payment");
    assert!(events.iter().any(|e| e["type"] == "resumed"), "{events:?}");
    let audit = app.audit("action=recording_paused").await;
    assert_eq!(audit.len(), 1, "{audit:?}");
    let detail = audit[0]["detail"].as_str().unwrap();
    assert!(
        detail.contains("by=step-up") && detail.contains("take_payment"),
        "{detail}"
    );
    assert_eq!(
        audit[0]["actor"], agent.id,
        "the agent who asked is the actor: {audit:?}"
    );

    // The recording: 16 kHz, one pause, begun by the step-up flow and ended by the agent.
    let (rec, left, right) = played_through_grant(&app, recording).await;
    assert_eq!(rec["rate"], 16000);
    let pauses = rec["pauses"].as_array().unwrap();
    assert_eq!(pauses.len(), 1, "{rec}");
    assert_eq!(pauses[0]["by"], "step-up");
    assert_eq!(pauses[0]["resumed_by"], format!("user:{}", agent.id));
    let a = pauses[0]["start_ms"].as_u64().unwrap() as usize * 16;
    let b = pauses[0]["end_ms"].as_u64().unwrap() as usize * 16;
    assert!(b - a >= 16 * 500, "{rec}");
    assert!(left[a..b].iter().chain(&right[a..b]).all(|&x| x == 0.0));
    let (mut l_windows, mut r_windows) = (0, 0);
    for w in 0..left.len() / 1600 {
        let (l, r) = (
            &left[w * 1600..w * 1600 + 1600],
            &right[w * 1600..w * 1600 + 1600],
        );
        if rms(l) > 1000.0 {
            l_windows += 1;
            assert!(
                goertzel(l, 16000.0, 440.0) > 20.0 * goertzel(l, 16000.0, 1000.0),
                "left {w}"
            );
        }
        if rms(r) > 1000.0 {
            r_windows += 1;
            assert!(
                goertzel(r, 16000.0, 1000.0) > 20.0 * goertzel(r, 16000.0, 440.0),
                "right {w}"
            );
        }
    }
    assert!(
        l_windows >= 12 && r_windows >= 12,
        "{l_windows} {r_windows}"
    );
    // "Voice call" is in the conversation, where the chat went on.
    let (_, msgs) = app
        .get(
            &format!("/api/tickets/{ticket}/messages"),
            Some(&agent.token),
        )
        .await;
    assert!(msgs.to_string().contains("Voice call"), "{msgs}");
}

/// Waits for the recording to finish, has a supervisor ask for it and an approver approve, and
/// plays it: the recording's view and its left and right channels.
pub(crate) async fn played_through_grant(
    app: &TestApp,
    recording: i64,
) -> (Value, Vec<f64>, Vec<f64>) {
    let sam = app.staff("sam", "supervisor", 5).await;
    let april = app.staff("april", "approver", 5).await;
    let rec = finished_recording(app, &sam, recording).await;
    let (s, g) = app
        .post(
            "/api/grants",
            Some(&sam.token),
            json!({"kind": "recording", "object": recording, "reason": "quality review of a call"}),
        )
        .await;
    assert_eq!(s, 201, "{g}");
    let grant = g["id"].as_i64().unwrap();
    let (s, _) = app
        .post(
            &format!("/api/grants/{grant}/approve"),
            Some(&april.token),
            json!({"note": "ok"}),
        )
        .await;
    assert_eq!(s, 200);
    let resp = app
        .http
        .get(format!("{}/api/grants/{grant}/recording", app.url("")))
        .bearer_auth(&sam.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let wav = resp.bytes().await.unwrap().to_vec();
    assert_eq!(u16::from_le_bytes([wav[22], wav[23]]), 2, "stereo");
    let rate = u32::from_le_bytes([wav[24], wav[25], wav[26], wav[27]]);
    assert_eq!(u64::from(rate), rec["rate"].as_u64().unwrap());
    let pcm: Vec<f64> = samples(&wav[44..]).collect();
    let left = pcm.iter().step_by(2).copied().collect();
    let right = pcm.iter().skip(1).step_by(2).copied().collect();
    (rec, left, right)
}

/// A customer's leg is checked like the agent's: its token, its page's origin, and a start
/// frame that places a call rather than naming one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_leg_is_refused_a_bad_token_a_foreign_page_and_a_call_id() {
    let app = TestApp::start().await;
    let agent = app.agent("grace").await;
    let visitor = app.visitor().await;
    let cases = [
        (
            json!({"type": "start", "leg": "customer", "token": "nope", "codec": "pcm16", "rate": 16000}),
            None,
            (1008, "the visitor token is not valid"),
        ),
        (
            json!({"type": "start", "leg": "customer", "token": visitor.token, "call": "CA1", "codec": "pcm16", "rate": 16000}),
            None,
            (1007, "a customer's leg places a new call and names none"),
        ),
        (
            json!({"type": "start", "leg": "customer", "token": visitor.token, "codec": "pcm16", "rate": 16000}),
            Some("https://elsewhere.example"),
            (1008, "origin not allowed"),
        ),
        (
            json!({"type": "start", "token": agent.token, "codec": "pcm16", "rate": 16000}),
            None,
            (1007, "the agent's leg names its call"),
        ),
        (
            json!({"type": "start", "token": agent.token, "call": "CA1", "codec": "pcm16", "rate": 16000}),
            Some("https://elsewhere.example"),
            (1008, "this page may not open a staff session"),
        ),
        (
            json!({"type": "start", "leg": "caller", "token": visitor.token, "codec": "pcm16", "rate": 16000}),
            None,
            (
                1007,
                "the first frame must be the start frame: type, token, call, codec, rate, leg",
            ),
        ),
    ];
    for (start, origin, (code, reason)) in cases {
        let mut ws = pcm_leg(&app, start.clone(), origin).await;
        assert_eq!(closed_with(&mut ws).await, (code, reason.into()), "{start}");
    }
    // None of them placed a call or opened a ticket.
    let (_, all) = app
        .get("/api/tickets", Some(&app.admin().await.token))
        .await;
    assert_eq!(all.as_array().map(Vec::len), Some(0), "{all}");

    // A leg that started is refused an odd frame, and its call ends with it.
    let start = json!({"type": "start", "leg": "customer", "token": visitor.token, "codec": "pcm16", "rate": 8000});
    let mut ws = pcm_leg(&app, start, None).await;
    let started = first_text(&mut ws).await;
    let call = started["call"].as_str().unwrap().to_string();
    assert_eq!(started["rate"], 8000);
    ws.send(Message::Text(
        json!({"type": "pause", "reason": "card"})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    let err = first_text(&mut ws).await;
    assert_eq!(
        err["message"], "unknown control frame; expected hangup or mark",
        "a caller cannot pause"
    );
    ws.send(Message::Binary(vec![0u8; 330].into()))
        .await
        .unwrap();
    let (c, r) = closed_with(&mut ws).await;
    assert_eq!(
        (c, r.as_str()),
        (
            1007,
            "binary frames are whole 20 ms frames: multiples of 320 bytes at 8000 Hz"
        )
    );
    for _ in 0..100 {
        let (s, _) = app
            .get(
                &format!("/api/calls/{call}"),
                Some(&app.admin().await.token),
            )
            .await;
        if s == 404 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the call is still live");
}

/// Past its retention a recording is crypto-shredded: its data key destroyed, its file
/// deleted, the shredding audited, and it no longer plays through any grant. A recording whose
/// ticket is on legal hold is kept, and still plays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_past_its_retention_is_shredded_unless_its_ticket_is_held() {
    use recorder::retention::{Retention, RECORDING};
    let day = Duration::from_secs(24 * 3600);
    let app = TestApp::builder()
        .config(move |c| c.retention = Retention::none().with(RECORDING, day))
        .start()
        .await;
    let (_, gone) = browser_call(&app, 50, None).await;
    let (held_ticket, held) = browser_call(&app, 50, None).await;
    let admin = app.admin().await;
    let (s, b) = app
        .put(
            &format!("/api/tickets/{held_ticket}/legal-hold"),
            Some(&admin.token),
            json!({"hold": true, "reason": "litigation matter 2026-118"}),
        )
        .await;
    assert_eq!(s, 204, "{b}");
    let file = |id: i64| app.data_dir().join(format!("recordings/{id}.dgs"));
    assert!(file(gone).exists() && file(held).exists());

    // Within its retention nothing happens.
    app.clock.advance(Duration::from_secs(3600));
    deskgate::server::sweep(&app.app).await;
    assert!(file(gone).exists());
    assert!(app.audit("action=recording_shredded").await.is_empty());

    app.clock.advance(2 * day);
    deskgate::server::sweep(&app.app).await;
    assert!(
        !file(gone).exists(),
        "the shredded recording's file is deleted"
    );
    assert!(file(held).exists(), "the held one stays");
    let shredded = app.audit("action=recording_shredded").await;
    assert_eq!(shredded.len(), 1, "{shredded:?}");
    assert_eq!(shredded[0]["object_id"], gone, "{shredded:?}");
    assert_eq!(shredded[0]["role"], "system");
    // A second sweep finds nothing more to do.
    deskgate::server::sweep(&app.app).await;
    assert_eq!(app.audit("action=recording_shredded").await.len(), 1);

    // The held recording still plays; the shredded one cannot, whoever approves.
    let (_, left, _) = played_through_grant(&app, held).await;
    let loud: Vec<f64> = left
        .chunks(320)
        .filter(|f| rms(f) > 1000.0)
        .flatten()
        .copied()
        .collect();
    assert!(goertzel(&loud, 16000.0, 440.0) > 20.0 * goertzel(&loud, 16000.0, 1000.0));
    let sam = app.login("sam").await;
    let april = app.login("april").await;
    let (s, g) = app
        .post(
            "/api/grants",
            Some(&sam.token),
            json!({"kind": "recording", "object": gone, "reason": "quality review of a call"}),
        )
        .await;
    if s == 201 {
        let grant = g["id"].as_i64().unwrap();
        let (s, _) = app
            .post(
                &format!("/api/grants/{grant}/approve"),
                Some(&april.token),
                json!({"note": "ok"}),
            )
            .await;
        assert_eq!(s, 200);
        let resp = app
            .http
            .get(format!("{}/api/grants/{grant}/recording", app.url("")))
            .bearer_auth(&sam.token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 409);
        let body: Value = resp.json().await.unwrap();
        assert!(body.to_string().contains("shredded"), "{body}");
    } else {
        assert!(g.to_string().contains("shredded"), "{s} {g}");
    }
}

/// A call from the browser of a new customer: `frames` of 440 Hz paced in real time, its
/// recording paused through the API over the frames `pause` names, hung up. Its ticket and
/// recording once the recording is finished.
pub(crate) async fn browser_call(
    app: &TestApp,
    frames: usize,
    pause: Option<(usize, usize)>,
) -> (i64, i64) {
    let visitor = app.visitor().await;
    let start = json!({"type": "start", "leg": "customer", "token": visitor.token, "codec": "pcm16", "rate": 16000});
    let mut leg = pcm_leg(app, start, None).await;
    let started = first_text(&mut leg).await;
    let ticket = started["ticket"].as_i64().unwrap();
    let call = started["call"].as_str().unwrap().to_string();
    let admin = app.admin().await;
    let t0 = tokio::time::Instant::now();
    for i in 0..frames {
        let verb = match pause {
            Some((from, _)) if i == from => Some("pause"),
            Some((_, to)) if i == to => Some("resume"),
            _ => None,
        };
        if let Some(verb) = verb {
            let (s, b) = app
                .post(
                    &format!("/api/calls/{call}/{verb}"),
                    Some(&admin.token),
                    json!({"reason": "card details"}),
                )
                .await;
            assert_eq!(s, 200, "{verb}: {b}");
        }
        leg.send(Message::Binary(tone16(440.0, i).into()))
            .await
            .unwrap();
        tokio::time::sleep_until(t0 + Duration::from_millis(20 * (i as u64 + 1))).await;
    }
    leg.send(Message::Text(json!({"type": "hangup"}).to_string().into()))
        .await
        .unwrap();
    assert_eq!(closed_with(&mut leg).await.0, 1000);
    let (_, c) = app
        .get(
            &format!("/api/tickets/{ticket}/recordings"),
            Some(&admin.token),
        )
        .await;
    let recording = c[0]["id"].as_i64().unwrap_or_else(|| panic!("{c}"));
    finished_recording(app, &admin, recording).await;
    (ticket, recording)
}

/// Waits for a recording to be finished; its view.
async fn finished_recording(app: &TestApp, reader: &Staff, recording: i64) -> Value {
    for _ in 0..100 {
        let (_, r) = app
            .get(&format!("/api/recordings/{recording}"), Some(&reader.token))
            .await;
        if r["state"] == "finished" {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("recording {recording} did not finish");
}

/// A site that knows its Twilio auth token admits a stream by Twilio's `X-Twilio-Signature`
/// on the upgrade (computed by the Python peer as Twilio does), with no media token. A
/// signature that does not verify (a wrong token, another site's URL, a site without a token)
/// is refused before the upgrade, and a stream with neither is refused at `start`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_signed_by_twilio_is_admitted_without_a_media_token() {
    use deskgate::config::SiteConfig;
    let site = |key: &str, twilio: Option<&str>| SiteConfig {
        key: key.into(),
        name: None,
        identity_secret: Some("an identity secret of this site".to_string().into()),
        identity_secret_file: None,
        allowed_origins: Vec::new(),
        prechat: false,
        language: None,
        twilio_auth_token: twilio.map(|t| t.to_string().into()),
        twilio_auth_token_file: None,
    };
    let sites = vec![
        site("shop", Some("shop-twilio-auth-token")),
        site("plain", None),
    ];
    let app = TestApp::builder()
        .config(move |c| c.sites = sites.clone())
        .start()
        .await;
    let agent = app.agent("grace").await;
    let url = format!("{}?site=shop", app.ws_url("/media/twilio"));
    let call = "CAsigned0123456789";
    let mut peer = Peer::start(&[
        "--url",
        &url,
        "--auth-token",
        "shop-twilio-auth-token",
        "--call",
        call,
        "--hz",
        "440",
        "--seconds",
        "0.6",
    ])
    .await;
    let t = call_ticket(&app, &agent, call).await;
    assert_eq!(t["kind"], "call", "{t}");
    peer.say("go").await;
    peer.seen().await;
    // The caller is the signed site's.
    let (_, c) = app
        .get(
            &format!("/api/customers/{}", t["customer"]["id"]),
            Some(&app.admin().await.token),
        )
        .await;
    assert_eq!(c["site"], "shop", "{c}");

    // Signatures that do not verify: refused with 403 before the upgrade.
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let sign = |token: &str, url: &str| deskgate::voice::signature::sign(token.as_bytes(), url);
    let attempt = |url: String, sig: String| async move {
        let mut req = url.into_client_request().unwrap();
        req.headers_mut()
            .insert("x-twilio-signature", sig.parse().unwrap());
        match tokio_tungstenite::connect_async(req).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => r.status().as_u16(),
            Ok(_) => 101,
            Err(e) => panic!("{e}"),
        }
    };
    let plain = format!("{}?site=plain", app.ws_url("/media/twilio"));
    for (u, sig) in [
        (url.clone(), sign("a wrong auth token", &url)),
        (url.clone(), sign("shop-twilio-auth-token", &plain)),
        (plain.clone(), sign("shop-twilio-auth-token", &plain)),
        (url.clone(), "not base64!".to_string()),
    ] {
        assert_eq!(attempt(u.clone(), sig.clone()).await, 403, "{u} {sig}");
    }
    // Neither a signature nor a token: refused at start, naming both.
    let bare = json!({"event": "start", "sequenceNumber": "1", "streamSid": "MZ9",
        "start": {"streamSid": "MZ9", "callSid": "CAnone", "customParameters": {},
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}});
    let (c, r) = twilio_session(&app, &[bare.to_string()]).await;
    assert_eq!(c, 1008);
    assert_eq!(
        r,
        "no media token (customParameters.token or ?token=) and no X-Twilio-Signature"
    );
}

/// A call from a caller the site identified (Ada, cust-7, ada@example.com), claimed and joined
/// by `agent`, whose leg listens (and says nothing, so all the caller hears is the gateway's
/// tones). The peer streams `seconds` of 440 Hz once told `go`.
struct IdentifiedCall {
    peer: Peer,
    ticket: i64,
    desk: deskgate_tests::WsClient,
    recording: i64,
    /// The agent leg's control events, as they arrive.
    events: tokio::sync::mpsc::UnboundedReceiver<Value>,
    /// At the end of the call: what the agent heard, and every control event.
    listener: tokio::task::JoinHandle<(Vec<f64>, Vec<Value>)>,
}

async fn identified_call(app: &TestApp, agent: &Staff, call: &str, seconds: f64) -> IdentifiedCall {
    let token = media_token(app, call);
    let identity = app.sign_identity(
        json!({"sub": "cust-7", "name": "Ada Lovelace", "email": "ada@example.com"}),
    );
    let audio = sox_tone(app, 440, seconds);
    let seconds = seconds.to_string();
    let peer = Peer::start(&[
        "--url",
        &app.ws_url("/media/twilio"),
        "--token",
        &token,
        "--identity",
        &identity,
        "--call",
        call,
        "--audio",
        &audio,
        "--seconds",
        &seconds,
    ])
    .await;

    // The call's ticket is the identified customer's.
    let t = call_ticket(app, agent, call).await;
    let ticket = t["id"].as_i64().unwrap();
    assert_eq!(t["customer"]["verified"], true, "{t}");
    let (mut desk, _) = app.agent_ws(agent).await;
    let ok = desk
        .request(json!({"type": "claim", "ticket": ticket}))
        .await;
    assert_eq!(ok["type"], "ok", "{ok}");
    let mut leg = pcm_leg(
        app,
        json!({"type": "start", "token": agent.token, "call": call, "codec": "pcm16", "rate": 8000}),
        None,
    )
    .await;
    assert_eq!(first_text(&mut leg).await["type"], "started");
    let (_, c) = app
        .get(&format!("/api/calls/{call}"), Some(&agent.token))
        .await;
    let recording = c["recording"].as_i64().unwrap();
    let (events_tx, events) = tokio::sync::mpsc::unbounded_channel::<Value>();
    let listener = tokio::spawn(async move {
        let mut heard = Vec::new();
        let mut all = Vec::new();
        while let Ok(Some(Ok(m))) = tokio::time::timeout(Duration::from_secs(15), leg.next()).await
        {
            match m {
                Message::Binary(b) => heard.extend(samples(&b)),
                Message::Text(t) => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    let _ = events_tx.send(v.clone());
                    all.push(v.clone());
                    if v["type"] == "ended" {
                        break;
                    }
                }
                Message::Close(_) => break,
                _ => {}
            }
        }
        (heard, all)
    });
    IdentifiedCall {
        peer,
        ticket,
        desk,
        recording,
        events,
        listener,
    }
}

/// The agent asks for a verification of the ticket's customer for `action`; the code, read
/// from the email that `smtp` receives.
async fn emailed_code(
    desk: &mut deskgate_tests::WsClient,
    smtp: &deskgate_tests::smtp::SmtpServer,
    ticket: i64,
    action: &str,
) -> String {
    let sent = smtp.mails().len();
    let asked = desk
        .request(json!({"type": "request_verification", "ticket": ticket, "action": action}))
        .await;
    assert_eq!(asked["type"], "ok", "{asked}");
    deskgate_tests::smtp::code_in(&smtp.wait_for(sent + 1).await[sent])
}

/// With its verification store down (Redis, killed), the gateway cannot say whether a key is
/// part of a code: each key goes nowhere, the agent is told `unavailable` and never the digit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_callers_keys_go_nowhere_while_the_verification_store_is_down() {
    let smtp = deskgate_tests::smtp::SmtpServer::start().await;
    let app = TestApp::builder().smtp(&smtp).redis().start().await;
    let agent = app.agent("grace").await;
    let IdentifiedCall {
        mut peer,
        ticket,
        mut desk,
        mut events,
        listener,
        ..
    } = identified_call(&app, &agent, "CAdeadredis", 4.0).await;
    peer.say("go").await;
    emailed_code(&mut desk, &smtp, ticket, "change_address").await;
    app.redis.as_ref().unwrap().lock().unwrap().kill();
    peer.say("keys 73").await;
    for _ in 0..2 {
        assert_eq!(keypad_result(&mut events).await["result"], "unavailable");
    }
    peer.seen().await;
    let (_, all) = listener.await.unwrap();
    assert!(
        !all.iter()
            .any(|e| e["type"] == "dtmf" || e.get("digit").is_some()),
        "{all:?}"
    );
}

/// The longest run of silent frames of `frame` samples (all below 100) in `s` between its first
/// and its last loud sample: a gap inside the audio, not the quiet before or after it.
fn longest_gap(s: &[f64], frame: usize) -> usize {
    let loud = |x: &f64| x.abs() > 1000.0;
    let (Some(a), Some(b)) = (s.iter().position(loud), s.iter().rposition(loud)) else {
        return 0;
    };
    let (mut best, mut run) = (0, 0);
    for f in s[a..=b].chunks(frame) {
        if f.iter().all(|x| x.abs() < 100.0) {
            run += 1;
            best = best.max(run);
        } else {
            run = 0;
        }
    }
    best
}

/// The next outcome of a code keyed in, among the agent's leg's control events.
async fn keypad_result(events: &mut tokio::sync::mpsc::UnboundedReceiver<Value>) -> Value {
    loop {
        let e = tokio::time::timeout(Duration::from_secs(10), events.recv())
            .await
            .expect("an outcome of the keyed code")
            .expect("the agent's leg is open");
        if e["type"] == "keypad" && e.get("result").is_some() {
            return e;
        }
    }
}

/// A phone caller the site identified (its signed identity in the stream's custom
/// parameters) is verified like a widget customer: the agent asks, the code goes to the
/// customer's email, and the caller keys it in on the phone. The keys never reach the agent,
/// the log or the disk; the agent is told how many were pressed and the outcome, the caller
/// hears a low tone for a wrong code and two beeps for the right one, and while the caller
/// keys in, their audio reaches the agent and the recording as silence. `*` starts again.
/// Then the agent may perform the action. Codes keyed in count against the customer's rate
/// limit as the widget's do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_caller_keys_in_the_emailed_code_and_the_agent_never_hears_it() {
    let logs = deskgate_tests::LogCapture::install();
    let smtp = deskgate_tests::smtp::SmtpServer::start().await;
    let app = TestApp::builder()
        .smtp(&smtp)
        .limits(|l| l.rates.verify_per_visitor = deskgate::limits::Rate::new(2, 600))
        .start()
        .await;
    let agent = app.agent("grace").await;
    let IdentifiedCall {
        mut peer,
        ticket,
        mut desk,
        recording,
        mut events,
        listener,
    } = identified_call(&app, &agent, "CA5ec0de", 12.0).await;
    peer.say("go").await;

    let code = emailed_code(&mut desk, &smtp, ticket, "change_address").await;
    let wrong = format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000);

    // A wrong code: counted like one typed in the widget.
    peer.say(&format!("keys {wrong}")).await;
    let r = keypad_result(&mut events).await;
    assert_eq!(r["result"], "wrong", "{r}");
    assert_eq!(r["attempts_left"], 4, "{r}");
    // `*` drops what was keyed; the right code verifies the customer.
    peer.say("keys 4*").await;
    assert_eq!(keypad_result(&mut events).await["result"], "cleared");
    peer.say(&format!("keys {code}")).await;
    assert_eq!(keypad_result(&mut events).await["result"], "approved");
    let (s, done) = app
        .post(
            &format!("/api/tickets/{ticket}/actions"),
            Some(&agent.token),
            json!({"action": "change_address"}),
        )
        .await;
    assert_eq!(s, 201, "{done}");
    // A third code is past the customer's limit of two (as in the widget): not checked.
    let third = emailed_code(&mut desk, &smtp, ticket, "change_email").await;
    peer.say(&format!("keys {third}")).await;
    assert_eq!(keypad_result(&mut events).await["result"], "rate_limited");

    let seen = peer.seen().await;
    let (heard, all) = listener.await.unwrap();

    // The agent was told how many keys, never which.
    assert!(
        !all.iter()
            .any(|e| e["type"] == "dtmf" || e.get("digit").is_some()),
        "{all:?}"
    );
    let counts: Vec<u64> = all
        .iter()
        .filter(|e| e["type"] == "keypad")
        .filter_map(|e| e["keys"].as_u64())
        .collect();
    assert_eq!(
        counts,
        [1, 2, 3, 4, 5, 0, 1, 0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5, 0],
        "{all:?}"
    );
    // The caller heard a low tone for the wrong code, two beeps for the right one, a low
    // tone for the one past the limit.
    let tones: Vec<(f64, u64)> = seen["tones"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["hz"].as_f64().unwrap(), t["samples"].as_u64().unwrap()))
        .collect();
    assert_eq!(tones.len(), 3, "{seen}");
    assert!((tones[0].0 - 400.0).abs() < 40.0, "{tones:?}");
    assert!((tones[1].0 - 1400.0).abs() < 100.0, "{tones:?}");
    assert!((tones[2].0 - 400.0).abs() < 40.0, "{tones:?}");
    // Each entry of six keys, 150 ms apart, is a second of silence for the agent.
    assert!(
        heard.iter().filter(|x| x.abs() > 1000.0).count() > 8000 * 3,
        "the agent hears the caller outside the entries"
    );
    assert!(longest_gap(&heard, 160) >= 45, "the entries are muted");
    let (_, left, _) = played_through_grant(&app, recording).await;
    assert!(longest_gap(&left, 160) >= 45, "the recording is muted");

    // Each check is audited as the customer's, and the digits are nowhere.
    let trail = app.audit("object_kind=verification").await;
    let steps: Vec<(&str, &str)> = trail
        .iter()
        .rev()
        .map(|e| (e["action"].as_str().unwrap(), e["role"].as_str().unwrap()))
        .collect();
    assert_eq!(
        steps,
        [
            ("verification_sent", "agent"),
            ("verification_failed", "customer"),
            ("verification_passed", "customer"),
            ("sensitive_action", "agent"),
            ("verification_sent", "agent"),
        ],
        "{trail:?}"
    );
    let text = logs.text();
    for c in [&code, &wrong, &third] {
        assert!(
            !deskgate_tests::contains_number(text.as_bytes(), c),
            "a keyed code in the log"
        );
        for (path, bytes) in files_under(app.data_dir()) {
            assert!(
                !deskgate_tests::contains_number(&bytes, c),
                "a keyed code in {path:?}"
            );
        }
    }
}

/// A `/media/pcm` leg from `ip`, as a proxy the gateway trusts would say (`X-Forwarded-For`),
/// opened by a console served by `app` (of its own origin).
async fn pcm_leg_from(
    app: &TestApp,
    start: Value,
    ip: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = app.ws_url("/media/pcm").into_client_request().unwrap();
    req.headers_mut()
        .insert("x-forwarded-for", ip.parse().unwrap());
    req.headers_mut()
        .insert("origin", app.own_origin().parse().unwrap());
    let (mut ws, _) =
        tokio_tungstenite::connect_async_tls_with_config(req, None, false, app.ws_connector())
            .await
            .unwrap();
    ws.send(Message::Text(start.to_string().into()))
        .await
        .unwrap();
    ws
}

/// Calls across nodes. The customer's call is held by node A, where their leg landed; the
/// agent works on node B, behind a proxy that node B trusts. Node B finds the call through
/// the ticket, relays the agent's leg and the call API to node A, and a payment's verification
/// asked on node B pauses the recording on node A. Each hears the other; what the agent did
/// through node B is audited with the agent's own address, which node B vouched for; a
/// request to node A that only claims to be relayed does nothing; the recording plays from
/// node B.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_held_by_one_node_is_joined_paused_and_played_from_another() {
    let smtp = deskgate_tests::smtp::SmtpServer::start().await;
    let a = first_of_two_nodes(&smtp).await;
    // Staff first: a node that starts on a database without an admin makes a bootstrap
    // secret of its own.
    let agent = a.agent("grace").await;
    let other = a.agent("hopper").await;
    let b = TestApp::builder()
        .smtp(&smtp)
        .node_of(&a)
        .config(|c| {
            c.trusted_proxies = vec![deskgate::proxy::parse_cidr("127.0.0.1").unwrap()];
        })
        .start()
        .await;
    let (visitor, _chat, ticket, mut desk) = claimed_chat(&a, &b, &agent).await;

    // The customer calls through node A.
    let start = json!({"type": "start", "leg": "customer", "token": visitor.token, "codec": "pcm16", "rate": 16000});
    let mut customer = pcm_leg(&a, start.clone(), None).await;
    let started = first_text(&mut customer).await;
    assert_eq!(started["ticket"], ticket, "{started}");
    let call = started["call"].as_str().unwrap().to_string();
    // The console on node B is told, and finds the call through node B.
    told_it_is_a_call(&mut desk).await;
    let (s, c) = b
        .get(&format!("/api/tickets/{ticket}/call"), Some(&agent.token))
        .await;
    assert_eq!(s, 200, "{c}");
    assert_eq!(
        (c["call"].as_str(), c["rate"].as_u64(), c["agent"].as_i64()),
        (Some(call.as_str()), Some(16000), None)
    );
    let recording = c["recording"].as_i64().unwrap();
    // Node B checks who asks before it relays, and node A again after.
    let (s, _) = b
        .get(&format!("/api/calls/{call}"), Some(&other.token))
        .await;
    assert_eq!(s, 403);
    // The customer cannot place a second call through node B either.
    let mut second = pcm_leg(&b, start, None).await;
    assert_eq!(
        closed_with(&mut second).await,
        (1008, "a call of yours is live already".into())
    );
    // Another agent's leg through node B is refused, as on node A.
    let theirs = json!({"type": "start", "token": other.token, "call": call, "codec": "pcm16", "rate": 16000});
    let mut refused = pcm_leg(&b, theirs, None).await;
    assert_eq!(
        closed_with(&mut refused).await,
        (4403, "claim the call's ticket first".into())
    );

    // The agent joins through node B, from 203.0.113.7, in a console node B served.
    let ip = "203.0.113.7";
    let start = json!({"type": "start", "token": agent.token, "call": call, "codec": "pcm16", "rate": 16000});
    let mut leg = pcm_leg_from(&b, start, ip).await;
    let joined = first_text(&mut leg).await;
    assert_eq!(
        (
            joined["type"].as_str(),
            joined["call"].as_str(),
            joined["recording"].as_str()
        ),
        (Some("started"), Some(call.as_str()), Some("on")),
        "{joined}"
    );
    let (_, c) = b
        .get(&format!("/api/calls/{call}"), Some(&agent.token))
        .await;
    assert_eq!(c["agent"], agent.id, "node A holds the agent's leg: {c}");
    // A request that only claims to come from a node pauses nothing, and is not found.
    let pause = format!("/internal/calls/{call}/verification-pause?action=take_payment");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for forged in [
        None,
        Some(format!("v1 {now} 127.0.0.1 {}", "00".repeat(32))),
    ] {
        let mut req = a.http.post(a.url(&pause));
        if let Some(h) = forged {
            req = req.header("x-deskgate-relay", h);
        }
        assert_eq!(req.send().await.unwrap().status(), 404);
    }

    // Both talk for 3 s. At 1.0 s the agent asks, on node B, for a payment's verification,
    // which pauses the recording on node A; at 1.6 s node B's call API resumes it; at 2.2 s the
    // agent pauses it from the leg and at 2.6 s resumes it; at 3.0 s the customer hangs up.
    let (ctx_, crx) = customer.split();
    let (atx, arx) = leg.split();
    let controls = vec![
        (2200, json!({"type": "pause", "reason": "card details"})),
        (2600, json!({"type": "resume"})),
    ];
    let talker = talk(ctx_, atx, controls);
    let customer_hears = tokio::spawn(hear(crx));
    let agent_hears = tokio::spawn(hear(arx));
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let ok = desk
        .request(
            json!({"type": "request_verification", "ticket": ticket, "action": "take_payment"}),
        )
        .await;
    assert_eq!(ok["type"], "ok", "{ok}");
    tokio::time::sleep(Duration::from_millis(600)).await;
    let resumed = b
        .http
        .post(b.url(&format!("/api/calls/{call}/resume")))
        .bearer_auth(&agent.token)
        .header("x-forwarded-for", ip)
        .header("origin", b.own_origin())
        .json(&json!({"reason": "payment taken"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resumed.status(), 200);
    let view: Value = resumed.json().await.unwrap();
    assert_eq!(
        (view["call"].as_str(), view["paused"].as_bool()),
        (Some(call.as_str()), Some(false))
    );
    let _ = talker.await.unwrap();
    let (customer_heard, _) = customer_hears.await.unwrap();
    let (heard, events) = agent_hears.await.unwrap();

    // Each heard the other across the nodes.
    heard_each_other(&heard, &customer_heard);
    let by = format!("user:{}", agent.id);
    let told = |a: &str, b: &str| (a.to_string(), b.to_string());
    assert_eq!(
        pauses_told(&events),
        [
            told("paused", "step-up"),
            told("resumed", &by),
            told("paused", &by),
            told("resumed", &by)
        ],
        "{events:?}"
    );
    assert_eq!(events.last().unwrap()["type"], "ended");

    // The audit trail: who asked, each time, and from where.
    let mut trail: Vec<(String, Value, Value)> = Vec::new();
    for action in ["recording_paused", "recording_resumed"] {
        for e in b.audit(&format!("action={action}")).await {
            trail.push((action.into(), e["actor"].clone(), e["ip"].clone()));
        }
    }
    trail.sort_by(|x, y| x.0.cmp(&y.0).then(x.2.to_string().cmp(&y.2.to_string())));
    assert_eq!(
        trail,
        [
            (
                "recording_paused".into(),
                json!(agent.id),
                json!("127.0.0.1")
            ),
            ("recording_paused".into(), json!(agent.id), json!(ip)),
            ("recording_resumed".into(), json!(agent.id), json!(ip)),
            ("recording_resumed".into(), json!(agent.id), json!(ip)),
        ]
    );

    // The call is over on every node; its recording plays from node B, silent in both pauses.
    let (s, _) = b
        .get(&format!("/api/calls/{call}"), Some(&agent.token))
        .await;
    assert_eq!(s, 404);
    let (rec, left, right) = played_through_grant(&b, recording).await;
    silent_in_its_pauses(&rec, &left, &right, 2);
}

/// A payment's verification pauses the call's recording before its code goes out. When the
/// pause cannot be made, no code goes out: here the directory names, for the ticket's call,
/// a node that does not answer (as one killed without a goodbye does until its entries
/// expire). A node that answers that the call is not held there (it ended) lets the code go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_payment_code_goes_out_while_the_call_cannot_be_paused() {
    let smtp = deskgate_tests::smtp::SmtpServer::start().await;
    let a = first_of_two_nodes(&smtp).await;
    let agent = a.agent("grace").await;
    let b = TestApp::builder().smtp(&smtp).node_of(&a).start().await;
    let (visitor, _chat, ticket, mut desk) = claimed_chat(&a, &a, &agent).await;
    let port = a.redis.as_ref().unwrap().lock().unwrap().port;
    let list = |node: &str| {
        let home = json!({"call": "CA-elsewhere", "node": node, "ticket": ticket, "customer": visitor.customer_id});
        let set = std::process::Command::new("redis-cli")
            .args(["-p", &port.to_string(), "SET"])
            .arg(format!("{{deskgate:calls}}:ticket:{ticket}"))
            .arg(home.to_string())
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&set.stdout).trim(), "OK");
    };
    let dead = format!("http://127.0.0.1:{}", deskgate_tests::smtp::free_port());
    list(&dead);

    // Over the agent's socket and over the API: refused, and no code is sent.
    let refused = desk
        .request(
            json!({"type": "request_verification", "ticket": ticket, "action": "take_payment"}),
        )
        .await;
    assert_eq!(
        (refused["type"].as_str(), refused["code"].as_str()),
        (Some("error"), Some("unavailable")),
        "{refused}"
    );
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("could not be paused"),
        "{refused}"
    );
    let path = format!("/api/tickets/{ticket}/verifications");
    let (s, body) = a
        .post(&path, Some(&agent.token), json!({"action": "take_payment"}))
        .await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (503, Some("unavailable")),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("could not be paused"),
        "{body}"
    );
    let failed: Vec<Value> = a
        .audit("action=verification_sent")
        .await
        .into_iter()
        .filter(|e| e["outcome"] == "failed")
        .collect();
    assert_eq!(failed.len(), 2, "{failed:?}");
    for e in &failed {
        assert_eq!(
            e["detail"], "take_payment: the call's recording could not be paused",
            "{e}"
        );
        assert_eq!(e["actor"], agent.id, "{e}");
    }
    // An action that takes no card details needs no pause.
    let (s, body) = a
        .post(
            &path,
            Some(&agent.token),
            json!({"action": "change_address"}),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    assert_eq!(smtp.wait_for(1).await.len(), 1);
    let (_, state) = a.get(&path, Some(&agent.token)).await;
    let actions: Vec<&str> = state["verifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["change_address"], "{state}");

    // Node B answers that it holds no such call: it has ended, and the code goes out.
    list(b.app.calls.directory.node().unwrap());
    let (s, body) = a
        .post(&path, Some(&agent.token), json!({"action": "take_payment"}))
        .await;
    assert_eq!(s, 201, "{body}");
    assert_eq!(smtp.wait_for(2).await.len(), 2);

    // Its code sent again while the node holding the call cannot be reached: refused too.
    list(&dead);
    a.clock.advance(Duration::from_secs(31));
    let resend = format!("/api/verifications/{}/resend", body["challenge"]);
    let (s, again) = a.post(&resend, Some(&agent.token), json!({})).await;
    assert_eq!(
        (s, again["error"]["code"].as_str()),
        (503, Some("unavailable")),
        "{again}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(smtp.mails().len(), 2);
}

/// A node that drains closes the legs it relays with 1012, like its own sockets; the agent
/// joins again through another node, here the one holding the call, and the call goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relayed_leg_is_told_to_reconnect_when_its_node_drains() {
    let smtp = deskgate_tests::smtp::SmtpServer::start().await;
    let a = first_of_two_nodes(&smtp).await;
    let agent = a.agent("grace").await;
    let mut b = TestApp::builder().smtp(&smtp).node_of(&a).start().await;
    let (visitor, _chat, _ticket, _desk) = claimed_chat(&a, &a, &agent).await;
    let start = json!({"type": "start", "leg": "customer", "token": visitor.token, "codec": "pcm16", "rate": 16000});
    let mut customer = pcm_leg(&a, start, None).await;
    let call = first_text(&mut customer).await["call"].clone();
    let join = json!({"type": "start", "token": agent.token, "call": call, "codec": "pcm16", "rate": 16000});
    let mut leg = pcm_leg(&b, join.clone(), None).await;
    assert_eq!(first_text(&mut leg).await["type"], "started");

    b.stop().await;
    assert_eq!(
        closed_with(&mut leg).await,
        (1012, "node restarting; reconnect".into())
    );
    let mut again = pcm_leg(&a, join, None).await;
    assert_eq!(first_text(&mut again).await["type"], "started");
    customer
        .send(Message::Binary(tone16(440.0, 0).into()))
        .await
        .unwrap();
    loop {
        match again.next().await {
            Some(Ok(Message::Binary(_))) => break,
            Some(Ok(_)) => continue,
            other => panic!("the call did not go on: {other:?}"),
        }
    }
}

/// Calls across nodes that serve TLS themselves. Each node is reached at `https://` and trusts
/// only the authority of its `node_ca`. Node B relays the agent's leg to node A over `wss://`
/// and the call API over `https://`, and a payment's verification asked on node B pauses the
/// recording on node A. Node C, whose `node_ca` is another authority, cannot verify node A:
/// the agent's leg through it is closed as unreachable, its call API answers 503, and a
/// payment's code asked through it is refused and not sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_that_serve_tls_relay_calls_only_to_nodes_whose_certificates_they_trust() {
    let smtp = deskgate_tests::smtp::SmtpServer::start().await;
    let ca = deskgate_tests::tls::TestCa::new();
    let a = TestApp::builder()
        .smtp(&smtp)
        .redis()
        .on_postgres()
        .await
        .serve_tls(&ca)
        .start()
        .await;
    let agent = a.agent("grace").await;
    let b = TestApp::builder()
        .smtp(&smtp)
        .node_of(&a)
        .serve_tls(&ca)
        .start()
        .await;
    let stranger = deskgate_tests::tls::TestCa::new();
    let c = TestApp::builder()
        .smtp(&smtp)
        .node_of(&a)
        .serve_tls(&stranger)
        .start()
        .await;
    let (visitor, _chat, ticket, mut desk) = claimed_chat(&a, &b, &agent).await;
    let start = json!({"type": "start", "leg": "customer", "token": visitor.token, "codec": "pcm16", "rate": 16000});
    let mut customer = pcm_leg(&a, start, None).await;
    let call = first_text(&mut customer).await["call"]
        .as_str()
        .unwrap()
        .to_string();
    told_it_is_a_call(&mut desk).await;
    let (s, view) = b
        .get(&format!("/api/tickets/{ticket}/call"), Some(&agent.token))
        .await;
    assert_eq!(
        (s, view["call"].as_str()),
        (200, Some(call.as_str())),
        "{view}"
    );
    let recording = view["recording"].as_i64().unwrap();

    // Node C does not trust node A's certificate, so it cannot reach node A at all.
    let join = json!({"type": "start", "token": agent.token, "call": call, "codec": "pcm16", "rate": 16000});
    let mut refused = pcm_leg(&c, join.clone(), None).await;
    assert_eq!(
        closed_with(&mut refused).await,
        (1011, "the node holding the call cannot be reached".into())
    );
    let (s, _) = c
        .get(&format!("/api/calls/{call}"), Some(&agent.token))
        .await;
    assert_eq!(s, 503);
    let (mut desk_c, _) = c.agent_ws(&agent).await;
    let no = desk_c
        .request(
            json!({"type": "request_verification", "ticket": ticket, "action": "take_payment"}),
        )
        .await;
    assert_eq!(no["code"], "unavailable", "{no}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(smtp.mails().is_empty(), "no code without the pause");

    // Through node B, which trusts node A's authority, the agent joins and both talk for 3 s;
    // at 1.0 s a payment's verification on node B pauses the recording on node A, and at
    // 1.6 s node B's call API resumes it.
    let mut leg = pcm_leg(&b, join, None).await;
    assert_eq!(first_text(&mut leg).await["type"], "started");
    let (ctx_, crx) = customer.split();
    let (atx, arx) = leg.split();
    let talker = talk(ctx_, atx, Vec::new());
    let customer_hears = tokio::spawn(hear(crx));
    let agent_hears = tokio::spawn(hear(arx));
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let ok = desk
        .request(
            json!({"type": "request_verification", "ticket": ticket, "action": "take_payment"}),
        )
        .await;
    assert_eq!(ok["type"], "ok", "{ok}");
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (s, resumed) = b
        .post(
            &format!("/api/calls/{call}/resume"),
            Some(&agent.token),
            json!({"reason": "payment taken"}),
        )
        .await;
    assert_eq!(
        (s, resumed["paused"].as_bool()),
        (200, Some(false)),
        "{resumed}"
    );
    let _ = talker.await.unwrap();
    let (customer_heard, _) = customer_hears.await.unwrap();
    let (heard, events) = agent_hears.await.unwrap();
    heard_each_other(&heard, &customer_heard);
    let by = format!("user:{}", agent.id);
    assert_eq!(
        pauses_told(&events),
        [
            ("paused".to_string(), "step-up".to_string()),
            ("resumed".to_string(), by)
        ],
        "{events:?}"
    );
    assert_eq!(
        smtp.mails().len(),
        1,
        "the code went out once the call was paused"
    );

    // The recording, played through node B, is silent in the pause.
    let (rec, left, right) = played_through_grant(&b, recording).await;
    silent_in_its_pauses(&rec, &left, &right, 1);
}

/// The recorder writes the manifest to the store behind the call, never in its way: while
/// another client holds the recording's row, so that every write of the manifest waits, both
/// legs go on being recorded (a leg queues only 200 ms), and the recording ends whole once
/// the row is free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_whose_store_is_held_up_loses_no_audio() {
    use sqlx::Connection;
    let app = TestApp::builder().on_postgres().await.start().await;
    let agent = app.agent("grace").await;
    let (visitor, _chat, ticket, _desk) = claimed_chat(&app, &app, &agent).await;
    let start = json!({"type": "start", "leg": "customer", "token": visitor.token, "codec": "pcm16", "rate": 16000});
    let mut customer = pcm_leg(&app, start, None).await;
    let call = first_text(&mut customer).await["call"].clone();
    let (s, c) = app
        .get(&format!("/api/tickets/{ticket}/call"), Some(&agent.token))
        .await;
    assert_eq!(s, 200, "{c}");
    let recording = c["recording"].as_i64().unwrap();
    let join = json!({"type": "start", "token": agent.token, "call": call, "codec": "pcm16", "rate": 16000});
    let mut leg = pcm_leg(&app, join, None).await;
    assert_eq!(first_text(&mut leg).await["recording"], "on");

    // The row is held from before the first segment is sealed until after the hang-up.
    let url = &app.database.as_ref().expect("on PostgreSQL").url;
    let mut other = sqlx::PgConnection::connect(url).await.unwrap();
    let mut held = other.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM recordings WHERE id = $1 FOR UPDATE")
        .bind(recording)
        .execute(&mut *held)
        .await
        .unwrap();
    let (ctx_, crx) = customer.split();
    let (atx, arx) = leg.split();
    let customer_hears = tokio::spawn(hear(crx));
    let agent_hears = tokio::spawn(hear(arx));
    let legs = talk(ctx_, atx, vec![]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    held.commit().await.unwrap();
    let (_, events) = agent_hears.await.unwrap();
    assert_eq!(
        events.last().map(|e| e["type"].clone()),
        Some(json!("ended"))
    );
    let _ = customer_hears.await.unwrap();
    drop(legs);

    // 3 s of tone each way, less what the edges of the call take: at most 10 of 150 frames.
    let (_, left, right) = played_through_grant(&app, recording).await;
    let sounding = |s: &[f64]| s.chunks(320).filter(|f| rms(f) > 1000.0).count();
    assert!(
        sounding(&left) >= 140 && sounding(&right) >= 140,
        "customer {} and agent {} frames of 150 recorded",
        sounding(&left),
        sounding(&right)
    );
}
