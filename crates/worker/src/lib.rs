//! mole-worker
