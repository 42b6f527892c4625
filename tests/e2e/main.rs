//! The end-to-end suite: one binary, the real gateway, real clients.

mod chat;
