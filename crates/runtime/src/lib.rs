//! How a mole process starts: its configuration ([`config`]), the backends built from it
//! ([`backends`]: PostgreSQL + Redis in the scaled mode, one SQLite file and an in-process queue
//! in the embedded mode), telemetry ([`telemetry`]) and the shutdown signal ([`signals`]).
//! `mole serve`, `mole worker` and `mole` itself (web and worker in one process) all start here.

pub mod backends;
pub mod config;
pub mod signals;
pub mod telemetry;

pub use backends::Backends;
pub use config::{ConnectionArgs, Mode, StoreArgs};
pub use signals::shutdown_on_signals;
