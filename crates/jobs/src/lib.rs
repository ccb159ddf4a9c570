//! mole-jobs
