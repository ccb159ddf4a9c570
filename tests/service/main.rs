//! Integration tests of the service against real PostgreSQL and Redis (see `common` for the
//! environment they need). One binary, so the build is shared.

mod common;

mod access;
mod admin;
mod browser;
mod burst;
mod embedded;
mod end_to_end;
mod faults;
mod hardening;
mod languages;
mod live;
mod model_page;
mod person;
mod recovery;
mod refusal;
mod storage;
mod uploads;
