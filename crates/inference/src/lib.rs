//! mole-inference
