//! finflow's console: server-rendered pages over the store for operators, with login,
//! roles, and four-eyes approval of commands that move money; and [`operate`], the one
//! path for people's commands that the CLI uses too.

pub mod operate;
