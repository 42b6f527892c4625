//! The end-to-end suite: one binary, the real gateway, real clients.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api;
mod auth;
mod bad_input;
mod chat;
mod config;
mod desk;
mod identity;
mod overload;
mod queue;
mod resume;
mod screen;
mod vault;
