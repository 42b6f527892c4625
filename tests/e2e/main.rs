//! The end-to-end suite: one binary, the real gateway, real clients.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod access;
mod api;
mod audit;
mod auth;
mod bad_input;
mod browser;
mod chat;
mod cluster;
mod config;
mod desk;
mod exports;
mod grants;
mod identity;
mod mfa;
mod notify;
mod origin;
mod overload;
mod queue;
mod resume;
mod screen;
mod stepup;
mod supervisor;
mod vault;
mod web;
