//! mole-eval
