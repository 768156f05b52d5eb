//! finflow's console: server-rendered pages over the store for operators, with login,
//! roles, and four-eyes approval of commands that move money; and [`operate`], the one
//! path for people's commands that the CLI uses too.
//!
//! `finflow console` serves [`app::router`]: maud templates, one small stylesheet, no
//! script, nothing fetched from elsewhere (it works offline). Every page but the sign-in
//! page needs a session; every form carries the session's CSRF token.

pub mod app;
pub mod auth;
pub mod config;
pub mod mask;
pub mod operate;
mod pages;
pub mod reconcile;

pub use config::{ConsoleConfig, Role, UserConfig};
