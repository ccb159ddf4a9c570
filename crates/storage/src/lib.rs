//! mole-storage
