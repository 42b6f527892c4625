//! A live call: its legs, the relay between them, the PCI pause, and the recorder task.
//!
//! The phone leg ([`super::twilio`]) starts a call: a ticket of kind `call` in the queue and a
//! recording. The agent who claimed the ticket joins with [`super::pcm`]. Each leg hands its
//! frames straight to the other leg's bounded queue (the live relay) and, unless the recording
//! is paused, to the call's lanes for the recorder task: a queue per channel behind a lock,
//! which wakes no task. The recorder ticks every 20 ms on tokio's monotonic clock and takes
//! one frame per channel per tick, silence where a leg had none, so both channels stay on one
//! timeline whatever each leg's jitter. While paused, no audio is handed to the recorder at
//! all and it writes silence on both channels.

use super::media::Rate;
use super::recording::{self, Manifest, Writer};
use crate::app::App;
use crate::audit::{Action, Context, Event};
use crate::ids::{CustomerId, TicketId, UserId};
use crate::stepup::BeforeCode;
use crate::store::RecordingState;
use recorder::{DataKey, Owner, RecordId};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// What the phone leg sends out.
#[derive(Debug)]
pub enum CustomerOut {
    /// 20 ms of the agent's voice at 8 kHz.
    Media(Vec<i16>),
    /// Drop what the provider has buffered for playback (`clear`).
    Clear,
    /// Ask the provider to echo a `mark` once playback reaches it.
    Mark(String),
    /// The call is over from the gateway's side.
    Hangup,
}

/// What the agent's leg sends out.
#[derive(Debug)]
pub enum AgentOut {
    /// 20 ms of the customer's voice at the call's rate.
    Audio(Vec<i16>),
    /// A control event, as JSON text.
    Event(serde_json::Value),
    /// The call ended.
    Ended,
}

/// What the recorder's channel carries: the rare events. Audio goes through [`Lanes`].
enum Cmd {
    Pause(String),
    Resume(String),
    End,
}

/// The frames each leg handed to the recorder that it has not taken yet, at most
/// [`super::LEG_QUEUE`] per channel (the oldest go first).
#[derive(Default)]
struct Lanes {
    customer: VecDeque<Vec<i16>>,
    agent: VecDeque<Vec<i16>>,
}

impl Lanes {
    fn is_empty(&self) -> bool {
        self.customer.is_empty() && self.agent.is_empty()
    }

    fn clear(&mut self) {
        self.customer.clear();
        self.agent.clear();
    }
}

struct AgentLeg {
    user: UserId,
    out: mpsc::Sender<AgentOut>,
    /// Tells this leg from one that replaced it.
    generation: u64,
}

/// Why a pause or resume was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PauseError {
    #[error("the recording is paused already")]
    AlreadyPaused,
    #[error("the recording is not paused")]
    NotPaused,
    #[error("the call has ended")]
    Ended,
    #[error("a reason of 3 to 200 characters is needed")]
    Reason,
}

/// One live call.
pub struct Call {
    pub id: String,
    pub ticket: TicketId,
    pub customer: CustomerId,
    pub recording: i64,
    /// The recording's (and the phone leg's) rate.
    pub rate: Rate,
    cmds: mpsc::Sender<Cmd>,
    lanes: Mutex<Lanes>,
    to_customer: mpsc::Sender<CustomerOut>,
    agent: Mutex<Option<AgentLeg>>,
    legs: std::sync::atomic::AtomicU64,
    paused: AtomicBool,
    /// Who paused, while paused.
    paused_by: Mutex<Option<String>>,
    ended: AtomicBool,
}

/// The live calls of this node, by call id, and where the other nodes' calls are.
pub struct Calls {
    by_id: Mutex<HashMap<String, Arc<Call>>>,
    pub directory: super::directory::Directory,
}

impl Default for Calls {
    fn default() -> Self {
        Calls::new(None)
    }
}

impl Calls {
    /// With Redis, this node's calls are listed there for the other nodes.
    pub fn new(redis: Option<redis::aio::ConnectionManager>) -> Calls {
        Calls {
            by_id: Mutex::default(),
            directory: super::directory::Directory::new(redis),
        }
    }

    /// Every call held here.
    pub fn all(&self) -> Vec<Arc<Call>> {
        self.by_id
            .lock()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    pub fn get(&self, id: &str) -> Option<Arc<Call>> {
        self.by_id.lock().ok()?.get(id).cloned()
    }

    /// The live call on a ticket.
    pub fn of_ticket(&self, ticket: TicketId) -> Option<Arc<Call>> {
        let m = self.by_id.lock().ok()?;
        m.values().find(|c| c.ticket == ticket).cloned()
    }

    /// A customer's live call (a customer places one call at a time).
    pub fn of_customer(&self, customer: CustomerId) -> Option<Arc<Call>> {
        let m = self.by_id.lock().ok()?;
        m.values().find(|c| c.customer == customer).cloned()
    }

    pub fn count(&self) -> usize {
        self.by_id.lock().map(|m| m.len()).unwrap_or(0)
    }

    fn insert(&self, call: Arc<Call>) -> bool {
        match self.by_id.lock() {
            Ok(mut m) if !m.contains_key(&call.id) => {
                m.insert(call.id.clone(), call);
                true
            }
            _ => false,
        }
    }

    fn remove(&self, id: &str) {
        if let Ok(mut m) = self.by_id.lock() {
            m.remove(id);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Call {
    /// Marks the ticket as a call, opens the recording and starts the recorder task; the call
    /// is registered until the customer's leg ends it. The ticket's staff are told once the
    /// call is registered, so a console that asks for the call on that frame finds it. Returns
    /// the call and the customer's leg's outbound queue.
    pub async fn start(
        app: &App,
        id: String,
        ticket: TicketId,
        customer: CustomerId,
        rate: Rate,
    ) -> anyhow::Result<(Arc<Call>, mpsc::Receiver<CustomerOut>)> {
        app.store.mark_call(ticket).await?;
        let now = app.clock.now();
        let (recording, key) = app
            .store
            .create_recording(ticket, &id, rate.hz(), now)
            .await?;
        let writer = Writer::create(&super::recordings_dir(&app.config), recording, rate, &key)?;
        let (cmds, cmd_rx) = mpsc::channel(16);
        let (to_customer, customer_rx) = mpsc::channel(super::LEG_QUEUE);
        let call = Arc::new(Call {
            id,
            ticket,
            customer,
            recording,
            rate,
            cmds,
            lanes: Mutex::default(),
            to_customer,
            agent: Mutex::new(None),
            legs: Default::default(),
            paused: AtomicBool::new(false),
            paused_by: Mutex::new(None),
            ended: AtomicBool::new(false),
        });
        if !app.calls.insert(call.clone()) {
            anyhow::bail!("this call is live already");
        }
        let rec = Recorder {
            app: app.clone(),
            call: call.clone(),
            writer,
            key,
            paused_at: None,
            saving: None,
            unsaved: false,
        };
        app.tracker.spawn(rec.run(cmd_rx));
        // Listed before the ticket says "call", so a console on another node finds it.
        if let Err(e) = app
            .calls
            .directory
            .announce(std::slice::from_ref(&call))
            .await
        {
            tracing::warn!(call = %call.id, error = %e, "cannot list the call; other nodes cannot relay to it");
        }
        if let Ok(t) = app.store.ticket(ticket).await {
            app.desk.publish_ticket(&t).await;
        }
        Ok((call, customer_rx))
    }

    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::SeqCst)
    }

    pub fn has_ended(&self) -> bool {
        self.ended.load(Ordering::SeqCst)
    }

    pub fn agent(&self) -> Option<UserId> {
        lock(&self.agent).as_ref().map(|a| a.user)
    }

    /// The agent's leg joins (replacing an earlier leg of theirs); returns its queue and
    /// the number to leave with.
    pub fn join_agent(&self, user: UserId) -> (mpsc::Receiver<AgentOut>, u64) {
        // Room for control events beside 200 ms of audio.
        let (out, rx) = mpsc::channel(super::LEG_QUEUE + 8);
        let generation = self.legs.fetch_add(1, Ordering::SeqCst);
        *lock(&self.agent) = Some(AgentLeg {
            user,
            out,
            generation,
        });
        (rx, generation)
    }

    /// The agent's leg left; only the leg that is still current is removed.
    pub fn leave_agent(&self, generation: u64) {
        let mut a = lock(&self.agent);
        if a.as_ref().is_some_and(|leg| leg.generation == generation) {
            *a = None;
        }
    }

    pub(super) fn to_agent(&self, out: AgentOut) {
        if let Some(leg) = lock(&self.agent).as_ref() {
            // A slow agent loses what does not fit rather than delaying the call.
            let _ = leg.out.try_send(out);
        }
    }

    /// 20 ms of the caller at the call's rate.
    pub fn from_customer(&self, frame: Vec<i16>) {
        if !self.is_paused() {
            push_capped(&mut lock(&self.lanes).customer, frame.clone());
        }
        self.to_agent(AgentOut::Audio(frame));
    }

    /// 20 ms of the agent at the call's rate.
    pub fn from_agent(&self, frame: Vec<i16>) {
        if !self.is_paused() {
            push_capped(&mut lock(&self.lanes).agent, frame.clone());
        }
        let _ = self.to_customer.try_send(CustomerOut::Media(frame));
    }

    /// A key the caller pressed that is not part of a code ([`super::keypad`]). While the
    /// recording is paused (card details) it goes nowhere: not to the agent, not to the log,
    /// not to the store.
    pub fn dtmf(&self, digit: &str) {
        if !self.is_paused() {
            self.to_agent(AgentOut::Event(
                serde_json::json!({"type": "dtmf", "digit": digit}),
            ));
        }
    }

    pub fn to_customer(&self, out: CustomerOut) {
        let _ = self.to_customer.try_send(out);
    }

    /// A mark the provider echoed back, for the agent.
    pub fn mark_played(&self, name: &str) {
        self.to_agent(AgentOut::Event(
            serde_json::json!({"type": "mark", "name": name}),
        ));
    }

    /// Pauses the recording (PCI): from now on both channels record silence. Audited with who
    /// and why.
    pub async fn pause(
        &self,
        app: &App,
        ctx: &Context,
        by: &str,
        reason: &str,
    ) -> Result<(), PauseError> {
        let reason = reason.trim();
        if !(3..=200).contains(&reason.chars().count()) {
            return Err(PauseError::Reason);
        }
        if self.has_ended() {
            return Err(PauseError::Ended);
        }
        if self.paused.swap(true, Ordering::SeqCst) {
            return Err(PauseError::AlreadyPaused);
        }
        *lock(&self.paused_by) = Some(by.to_string());
        // Sent with a wait: the manifest must hold every pause.
        let _ = self.cmds.send(Cmd::Pause(by.to_string())).await;
        self.to_agent(AgentOut::Event(
            serde_json::json!({"type": "paused", "by": by, "reason": reason}),
        ));
        self.audit(
            app,
            ctx,
            Action::RecordingPaused,
            format!("by={by}; reason={reason}"),
        )
        .await;
        Ok(())
    }

    pub async fn resume(
        &self,
        app: &App,
        ctx: &Context,
        by: &str,
        reason: Option<&str>,
    ) -> Result<(), PauseError> {
        if self.has_ended() {
            return Err(PauseError::Ended);
        }
        if !self.paused.swap(false, Ordering::SeqCst) {
            return Err(PauseError::NotPaused);
        }
        *lock(&self.paused_by) = None;
        let _ = self.cmds.send(Cmd::Resume(by.to_string())).await;
        self.resumed(app, ctx, by, reason).await;
        Ok(())
    }

    async fn resumed(&self, app: &App, ctx: &Context, by: &str, reason: Option<&str>) {
        self.to_agent(AgentOut::Event(
            serde_json::json!({"type": "resumed", "by": by}),
        ));
        let mut detail = format!("by={by}");
        if let Some(r) = reason.map(str::trim).filter(|r| !r.is_empty()) {
            detail.push_str(&format!(
                "; reason={}",
                r.chars().take(200).collect::<String>()
            ));
        }
        self.audit(app, ctx, Action::RecordingResumed, detail).await;
    }

    async fn audit(&self, app: &App, ctx: &Context, action: Action, detail: String) {
        let ev = Event::allowed(action)
            .customer(self.customer)
            .object("recording", self.recording)
            .detail(format!(
                "call={}; ticket={}; {detail}",
                self.id, self.ticket.0
            ));
        if let Err(e) = app.audit(ctx, ev).await {
            tracing::error!(call = %self.id, error = %e, "cannot audit a recording pause");
        }
    }

    /// The phone leg ended: the recorder writes what it holds and the final entry.
    pub async fn end(&self) {
        if !self.ended.swap(true, Ordering::SeqCst) {
            let _ = self.cmds.send(Cmd::End).await;
        }
    }

    pub fn paused_by(&self) -> Option<String> {
        lock(&self.paused_by).clone()
    }
}

/// Who a pause started by the step-up flow is recorded as.
pub const STEP_UP: &str = "step-up";

/// The customer is about to be asked to verify for `action` on `ticket`. If the action takes
/// card details (`voice.pause_on_actions`) and a call is going on in the ticket, its recording
/// pauses now, before a code goes out and before the customer reads the details out; the agent
/// resumes it (or the maximum pause does). A call held on another node is paused there. When
/// it cannot be told whether a call is going on, or the call does not pause, the error says
/// why and no code may go out.
pub async fn pause_for_verification(
    app: &App,
    ctx: &Context,
    ticket: TicketId,
    action: &str,
) -> Result<(), String> {
    if !takes_card_details(app, action) {
        return Ok(());
    }
    if let Some(call) = app.calls.of_ticket(ticket) {
        return pause_here(app, ctx, &call, action).await;
    }
    match app.calls.directory.of_ticket(ticket).await {
        Ok(Some(home)) => super::relay::pause_for_verification(app, ctx, &home, action).await,
        Ok(None) => Ok(()),
        Err(e) => {
            tracing::error!(ticket = ticket.0, error = %e, "cannot tell whether a call on another node must pause for a payment");
            Err("the call directory is unavailable".into())
        }
    }
}

/// The step-up flow's [`BeforeCode`]: the ticket's call, wherever it is held, pauses before a
/// code for an action that takes card details goes out.
pub struct PauseFirst<'a> {
    pub app: &'a App,
    pub ctx: &'a Context,
}

impl BeforeCode for PauseFirst<'_> {
    async fn ready(self, ticket: TicketId, action: String) -> Result<(), String> {
        pause_for_verification(self.app, self.ctx, ticket, &action).await
    }
}

fn takes_card_details(app: &App, action: &str) -> bool {
    app.config
        .voice
        .pause_on_actions
        .iter()
        .any(|a| a == action)
}

/// Pauses `call`, held here, for a verification for `action` asked on another node.
pub async fn pause_call_for_verification(
    app: &App,
    ctx: &Context,
    call: &Call,
    action: &str,
) -> Result<(), String> {
    if takes_card_details(app, action) {
        pause_here(app, ctx, call, action).await
    } else {
        Ok(())
    }
}

/// Pauses `call`, held here, for a verification for `action`, which takes card details. A call
/// paused already stays so, and one that has ended records nothing more.
async fn pause_here(app: &App, ctx: &Context, call: &Call, action: &str) -> Result<(), String> {
    let reason = format!("verification for {action}");
    match call.pause(app, ctx, STEP_UP, &reason).await {
        Ok(()) | Err(PauseError::AlreadyPaused) | Err(PauseError::Ended) => Ok(()),
        Err(e) => {
            tracing::error!(call = %call.id, error = %e, "cannot pause for a payment");
            Err(e.to_string())
        }
    }
}

/// The recorder task of one call.
struct Recorder {
    app: App,
    call: Arc<Call>,
    writer: Writer,
    key: Arc<DataKey>,
    /// The frame the current pause began at.
    paused_at: Option<u64>,
    /// The manifest's write to the store, while it runs: the ticks do not wait for the store,
    /// so a slow write holds up no frame (each leg queues only [`super::LEG_QUEUE`]).
    saving: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    /// A segment was sealed since the write in flight (or the last one) began.
    unsaved: bool,
}

fn push_capped(q: &mut VecDeque<Vec<i16>>, f: Vec<i16>) {
    if q.len() >= super::LEG_QUEUE {
        q.pop_front();
    }
    q.push_back(f);
}

impl Recorder {
    async fn run(mut self, mut cmds: mpsc::Receiver<Cmd>) {
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(u64::from(
            super::media::FRAME_MS,
        )));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let max_pause_frames = (self.app.config.voice.max_pause.as_millis()
            / u128::from(super::media::FRAME_MS)) as u64;
        let result = loop {
            tokio::select! {
                _ = tick.tick() => {
                    if let Err(e) = self.tick().await {
                        break Err(e);
                    }
                    if let Some(at) = self.paused_at {
                        if self.writer.frames() - at >= max_pause_frames {
                            self.auto_resume().await;
                        }
                    }
                }
                cmd = cmds.recv() => match cmd {
                    Some(Cmd::Pause(by)) => {
                        lock(&self.call.lanes).clear();
                        self.writer.pause(by);
                        self.paused_at = Some(self.writer.frames());
                    }
                    Some(Cmd::Resume(by)) => {
                        self.writer.resume(by);
                        self.paused_at = None;
                    }
                    Some(Cmd::End) | None => break self.finish().await,
                },
            }
        };
        self.call.ended.store(true, Ordering::SeqCst);
        self.app.calls.remove(&self.call.id);
        self.call.to_agent(AgentOut::Ended);
        if let Err(e) = self.app.calls.directory.forget(&self.call).await {
            // Its entries expire by themselves; until then other nodes find no call here.
            tracing::warn!(call = %self.call.id, error = %e, "cannot take the ended call off the list");
        }
        if let Err(e) = result {
            tracing::error!(call = %self.call.id, recording = self.call.recording, error = %e, "recording failed");
            // What was written stays, without a final entry: export refuses it.
            let _ = self
                .save(RecordingState::Failed, Some(self.app.clock.now()))
                .await;
        }
    }

    async fn tick(&mut self) -> anyhow::Result<()> {
        // Silent from the moment the pause is asked for until the manifest says it ended, so
        // every frame inside a recorded pause interval is silence.
        let paused = self.call.is_paused() || self.paused_at.is_some();
        let (c, a) = {
            let mut lanes = lock(&self.call.lanes);
            (lanes.customer.pop_front(), lanes.agent.pop_front())
        };
        let (c, a) = if paused { (None, None) } else { (c, a) };
        if self.writer.push(c.as_deref(), a.as_deref())? {
            self.unsaved = true;
        }
        self.save_behind().await
    }

    /// Starts writing the manifest if a segment was sealed since the last write began and
    /// none is in flight; a write that failed fails the recording.
    async fn save_behind(&mut self) -> anyhow::Result<()> {
        match self.saving.take() {
            Some(done) if done.is_finished() => done.await??,
            Some(running) => {
                self.saving = Some(running);
                return Ok(());
            }
            None => {}
        }
        if self.unsaved {
            self.unsaved = false;
            let write = self.write(RecordingState::Recording, None)?;
            self.saving = Some(tokio::spawn(write));
        }
        Ok(())
    }

    async fn auto_resume(&mut self) {
        if self.call.paused.swap(false, Ordering::SeqCst) {
            *lock(&self.call.paused_by) = None;
            self.writer.resume("auto".into());
            self.paused_at = None;
            let call = self.call.clone();
            call.resumed(
                &self.app,
                &Context::system(),
                "auto",
                Some("maximum pause reached"),
            )
            .await;
        }
    }

    async fn finish(&mut self) -> anyhow::Result<()> {
        // What the legs handed over before the end is written too.
        while !lock(&self.call.lanes).is_empty() {
            self.tick().await?;
        }
        self.writer.finish()?;
        self.save(RecordingState::Finished, Some(self.app.clock.now()))
            .await
    }

    /// Writes the manifest as it is now, after any write in flight, so the last word is this
    /// one.
    async fn save(
        &mut self,
        state: RecordingState,
        ended: Option<crate::clock::Timestamp>,
    ) -> anyhow::Result<()> {
        if let Some(running) = self.saving.take() {
            running.await??;
        }
        self.write(state, ended)?.await
    }

    /// The write of the manifest as it is now: sealed here, written when awaited.
    fn write(
        &self,
        state: RecordingState,
        ended: Option<crate::clock::Timestamp>,
    ) -> anyhow::Result<impl std::future::Future<Output = anyhow::Result<()>> + Send + 'static>
    {
        let m = &self.writer.manifest;
        let sealed = seal_manifest(&self.key, m)?;
        let frames = m
            .final_entry
            .as_ref()
            .map(|f| f.frames)
            .unwrap_or(self.writer.frames());
        let (store, recording, segments) = (
            self.app.store.clone(),
            self.call.recording,
            m.segments.len() as i64,
        );
        Ok(async move {
            store
                .update_recording(recording, &sealed, segments, frames as i64, state, ended)
                .await?;
            Ok(())
        })
    }
}

/// The manifest sealed with the recording's key; the record's seq is its segment count, so
/// a row whose count was edited does not open.
pub fn seal_manifest(key: &DataKey, m: &Manifest) -> anyhow::Result<Vec<u8>> {
    let owner = Owner::recording(m.recording);
    let id = RecordId::new(&owner, m.segments.len() as u64, recording::MANIFEST_KIND);
    Ok(recorder::seal(key, &id, &serde_json::to_vec(m)?)?)
}

pub fn open_manifest(
    key: &DataKey,
    recording: i64,
    segments: i64,
    sealed: &[u8],
) -> anyhow::Result<Manifest> {
    let owner = Owner::recording(recording);
    let seq = u64::try_from(segments)?;
    let id = RecordId::new(&owner, seq, recording::MANIFEST_KIND);
    let plain = recorder::open(key, &id, sealed)?;
    Ok(serde_json::from_slice(&plain)?)
}
