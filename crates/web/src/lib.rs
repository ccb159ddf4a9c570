//! mole-web
