//! Inference backends: something that turns an NCHW f32 batch into logits.
//!
//! Both backends check the ONNX graph against the card when they load it, so a model exported
//! with another input size or class count is refused before it can answer anything.

use std::str::FromStr;

use crate::error::InferenceError;

pub mod tract;

#[cfg(feature = "ort")]
pub mod ort;

/// One forward pass over a batch. Implementations are shared between threads.
pub trait Backend: Send + Sync {
    /// Short backend name for logs and benchmark tables.
    fn name(&self) -> &'static str;

    /// Runs `batch` images laid out `[batch, 3, S, S]` in `input` through the model in one
    /// forward pass and returns the logits `[batch, classes]` row-major.
    fn run(&self, input: &[f32], batch: usize) -> Result<Vec<f32>, InferenceError>;

    /// Does the one-off work (plan building) for these batch sizes now rather than on first use.
    fn prepare(&self, batch_sizes: &[usize]) -> Result<(), InferenceError> {
        let _ = batch_sizes;
        Ok(())
    }
}

/// Which backend runs the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendKind {
    /// tract-onnx, pure Rust (default).
    #[default]
    Tract,
    /// onnxruntime through the `ort` crate (needs the crate feature `ort` and libonnxruntime).
    Ort,
}

impl BackendKind {
    /// The name accepted by [`FromStr`].
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Tract => "tract",
            BackendKind::Ort => "ort",
        }
    }

    /// Whether this build can run the backend.
    pub fn is_available(self) -> bool {
        match self {
            BackendKind::Tract => true,
            BackendKind::Ort => cfg!(feature = "ort"),
        }
    }
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for BackendKind {
    type Err = InferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "tract" => Ok(BackendKind::Tract),
            "ort" | "onnxruntime" => Ok(BackendKind::Ort),
            other => Err(InferenceError::Config {
                reason: format!("unknown backend {other:?} (expected \"tract\" or \"ort\")"),
            }),
        }
    }
}

/// What the model must look like, from the card.
#[derive(Debug, Clone)]
pub(crate) struct Expected {
    pub onnx_path: std::path::PathBuf,
    pub input_name: String,
    pub output_name: String,
    pub size: usize,
    pub classes: usize,
}

impl Expected {
    pub(crate) fn mismatch(&self, what: &str, card: String, model: String) -> InferenceError {
        InferenceError::ModelMismatch {
            path: self.onnx_path.clone(),
            what: what.into(),
            card,
            model,
        }
    }

    /// The input shape as written in error messages.
    pub(crate) fn input_shape(&self) -> String {
        format!("[N, 3, {}, {}]", self.size, self.size)
    }

    /// Checks a batch handed to [`Backend::run`].
    pub(crate) fn check_input(&self, input: &[f32], batch: usize) -> Result<(), InferenceError> {
        let want = batch * 3 * self.size * self.size;
        if batch == 0 || input.len() != want {
            return Err(InferenceError::InvalidBatch {
                reason: format!(
                    "{} values for a batch of {batch} images of 3×{}×{} (expected {want})",
                    input.len(),
                    self.size,
                    self.size
                ),
            });
        }
        Ok(())
    }
}
