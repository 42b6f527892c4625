//! The end-to-end suite: one binary, the real gateway, real clients.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod access;
mod alerts;
mod api;
mod attachments;
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
mod headers;
mod identity;
mod limits;
mod mfa;
mod notify;
mod origin;
mod overload;
mod queue;
mod resume;
mod screen;
mod stepup;
mod supervisor;
mod tls;
mod vault;
mod voice;
mod web;
mod writers;
