//! The one error type of the crate.
//!
//! Errors split in two families the callers treat differently: a bad image (the user's file is
//! empty, broken, too large, or in a format we cannot read) is final and must never be retried,
//! while a model or backend error is ours and may be transient.

use std::path::PathBuf;

/// Everything that can go wrong between image bytes and a prediction.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InferenceError {
    /// The upload has no bytes at all.
    #[error("the file is empty")]
    Empty,

    /// The bytes are not an image of any format we know (checked by content, not by name).
    #[error("the file is not an image (expected a JPEG, PNG or WebP photo)")]
    NotAnImage,

    /// A real image format we recognise but cannot decode (HEIC, AVIF, ...) or do not accept.
    #[error(
        "{format} images cannot be read: please send the photo as JPEG (PNG and WebP also work)"
    )]
    UnsupportedFormat {
        /// Human name of the format, e.g. `HEIC`.
        format: String,
    },

    /// The file ends before the image data does (an interrupted upload or copy).
    #[error("the {format} image is truncated: the file ends before the image data")]
    Truncated {
        /// Human name of the format.
        format: String,
    },

    /// The image is damaged in some other way.
    #[error("the {format} image could not be decoded: {reason}")]
    Decode {
        /// Human name of the format.
        format: String,
        /// What the decoder reported.
        reason: String,
    },

    /// The image exceeds the decoding limits (a possible decompression bomb).
    #[error("the image is too large: {reason}")]
    TooLarge {
        /// Which limit was exceeded, with the numbers.
        reason: String,
    },

    /// A model or card file could not be read.
    #[error("cannot read {path}: {source}")]
    ModelIo {
        /// The file we tried to read.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// The model card is not valid JSON for the schema, or is inconsistent with itself.
    #[error("invalid model card {path}: {reason}")]
    InvalidCard {
        /// The card file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// The ONNX file disagrees with its card (checksum, input name or shape, output shape).
    #[error(
        "model {path} does not match its card: {what}: the card says {card}, the model has {model}"
    )]
    ModelMismatch {
        /// The ONNX file.
        path: PathBuf,
        /// Which property disagrees, e.g. `sha256` or `input shape`.
        what: String,
        /// What the card declares.
        card: String,
        /// What the model file actually has.
        model: String,
    },

    /// The inference backend failed to load the model or to run it.
    #[error("{backend} backend error: {reason}")]
    Backend {
        /// `tract` or `onnxruntime`.
        backend: &'static str,
        /// The backend's message.
        reason: String,
    },

    /// The caller handed `predict` something that is not a preprocessed image of this model.
    #[error("invalid batch: {reason}")]
    InvalidBatch {
        /// What is wrong with the batch.
        reason: String,
    },

    /// A configuration value is out of range or names something unknown.
    #[error("invalid inference configuration: {reason}")]
    Config {
        /// What is wrong.
        reason: String,
    },
}

impl InferenceError {
    /// True when the image itself is at fault: retrying the same bytes can never succeed, and the
    /// message is fit to show to the person who uploaded it.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            Self::Empty
                | Self::NotAnImage
                | Self::UnsupportedFormat { .. }
                | Self::Truncated { .. }
                | Self::Decode { .. }
                | Self::TooLarge { .. }
        )
    }

    /// A stable machine-readable code for API bodies, logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Empty => "empty_file",
            Self::NotAnImage => "not_an_image",
            Self::UnsupportedFormat { .. } => "unsupported_format",
            Self::Truncated { .. } => "truncated_image",
            Self::Decode { .. } => "corrupt_image",
            Self::TooLarge { .. } => "image_too_large",
            Self::ModelIo { .. } => "model_io",
            Self::InvalidCard { .. } => "invalid_model_card",
            Self::ModelMismatch { .. } => "model_mismatch",
            Self::Backend { .. } => "backend",
            Self::InvalidBatch { .. } => "invalid_batch",
            Self::Config { .. } => "invalid_config",
        }
    }
}
