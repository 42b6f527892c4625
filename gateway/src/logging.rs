//! What may reach the gateway's log, whatever filter the operator sets (`--log`): everything
//! but the events that print network traffic verbatim. tungstenite logs every WebSocket frame's
//! payload at trace level, which would put chat text, customers' details and verification
//! codes in the log of anyone who turns tracing up; those events never pass.

use tracing::{Level, Metadata};
use tracing_subscriber::filter::{filter_fn, FilterFn};

/// Targets whose trace-level events carry payloads.
const VERBATIM_AT_TRACE: &[&str] = &["tungstenite", "tokio_tungstenite"];

/// Whether an event or span may be logged at all.
pub fn may_log(meta: &Metadata<'_>) -> bool {
    !(*meta.level() == Level::TRACE
        && VERBATIM_AT_TRACE
            .iter()
            .any(|t| meta.target() == *t || meta.target().starts_with(&format!("{t}::"))))
}

/// [`may_log`] as a layer for the subscriber: a global filter beside the operator's.
pub fn layer() -> FilterFn<fn(&Metadata<'_>) -> bool> {
    filter_fn(may_log as fn(&Metadata<'_>) -> bool)
}
