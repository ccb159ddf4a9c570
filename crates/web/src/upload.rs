//! The upload page and the upload itself: validate by content, strip metadata, store, enqueue.

use std::sync::Arc;
use std::time::Instant;

use askama::Template;
use askama_web::WebTemplate;
use axum::Json;
use axum::extract::{Multipart, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use image::ImageEncoder;
use mole_inference::{DecodeLimits, InferenceError};
use mole_jobs::AnalyseCase;
use mole_storage::{Created, ModelInput, NewCase, StoredImage};
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use tracing::{info, warn};
use uuid::Uuid;

use crate::AppState;
use crate::error::AppError;
use crate::i18n::Tr;
use crate::identity::{RequestId, Uploader};

/// How long an upload whose body has arrived waits for a decode slot before it is answered 429.
pub const DECODE_SLOT_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The upload page.
#[derive(Template, WebTemplate)]
#[template(path = "index.html")]
pub struct IndexPage {
    /// Why the last upload was refused, if it was.
    pub error: Option<String>,
    /// Largest accepted file, in words (e.g. `15 MB`).
    pub limit: String,
    /// Largest accepted file in bytes (the page's own check before sending; the server decides).
    pub limit_bytes: usize,
    /// Whether a case was just deleted (after the delete form's redirect).
    pub deleted: bool,
    /// The request's language.
    pub t: Tr,
}

/// `GET /`: the upload form. Sets the uploader cookie up front, so that even the first upload's
/// double-submit carries it and lands on one case.
pub async fn index(
    State(app): State<AppState>,
    t: Tr,
    uploader: Uploader,
    query: axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Response {
    let page = IndexPage {
        error: None,
        limit: human_bytes(app.config.upload_limit),
        limit_bytes: app.config.upload_limit,
        deleted: query.contains_key("deleted"),
        t,
    };
    with_cookie(page.into_response(), uploader.ensure().1)
}

fn with_cookie(mut response: Response, cookie: Option<header::HeaderValue>) -> Response {
    if let Some(cookie) = cookie {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// `POST /cases`: the photo (multipart field `photo`) becomes a case; browsers are redirected to
/// its page (303), API clients (`Accept: application/json`) get its JSON.
pub async fn create(
    State(app): State<AppState>,
    RequestId(request_id): RequestId,
    t: Tr,
    uploader: Uploader,
    uri: Uri,
    headers: HeaderMap,
    multipart: Multipart,
) -> Response {
    let started = Instant::now();
    let json = crate::error::wants_json(uri.path(), &headers);
    let (token, set_cookie) = uploader.ensure();
    let uploader_hash = crate::identity::hash_token(&token);
    let result = store_upload(&app, &request_id, &uploader_hash, multipart).await;
    metrics::histogram!("mole_upload_seconds").record(started.elapsed().as_secs_f64());
    let response = match result {
        Ok((created, is_new)) => {
            metrics::counter!("mole_uploads_total", "outcome" => if is_new { "created" } else { "duplicate" })
                .increment(1);
            let location = format!("/cases/{created}");
            if json {
                let status = if is_new {
                    StatusCode::CREATED
                } else {
                    StatusCode::OK
                };
                let body = json!({
                    "id": created,
                    "links": {
                        "page": location,
                        "json": format!("/api/cases/{created}"),
                        "events": format!("/cases/{created}/events"),
                    }
                });
                (status, [(header::LOCATION, location)], Json(body)).into_response()
            } else {
                Redirect::to(&location).into_response()
            }
        }
        Err(e) => {
            metrics::counter!("mole_uploads_total", "outcome" => e.code()).increment(1);
            if json {
                e.into_response()
            } else if let AppError::BadUpload { status, .. } = &e {
                info!(code = e.code(), "upload refused");
                let page = IndexPage {
                    error: Some(e.reply().message_in(t)),
                    limit: human_bytes(app.config.upload_limit),
                    limit_bytes: app.config.upload_limit,
                    deleted: false,
                    t,
                };
                (*status, page).into_response()
            } else {
                e.into_response()
            }
        }
    };
    with_cookie(response, set_cookie)
}

async fn store_upload(
    app: &AppState,
    request_id: &str,
    uploader_hash: &str,
    multipart: Multipart,
) -> Result<(Uuid, bool), AppError> {
    // The body first, without a decode permit: a slow sender holds only the bytes it sent (and
    // the request timeout ends it), not a decode slot.
    let (bytes, charge) =
        read_photo(multipart, app.config.upload_limit, &app.upload_buffer).await?;
    let image_sha256 = hex::encode(Sha256::digest(&bytes));
    // Then the decode, at most MOLE_MAX_UPLOADS_IN_FLIGHT at once. A body that has arrived waits
    // a moment for a slot (its bytes are already counted against MOLE_UPLOAD_BUFFER): under a
    // burst a slot frees within one decode, far sooner than a client told to retry after 2 s
    // would come back. Past the wait, overload turns into 429 instead of a growing pile.
    let wait = DECODE_SLOT_WAIT.min(app.config.request_timeout / 2);
    let permit = tokio::time::timeout(wait, app.uploads.clone().acquire_owned())
        .await
        .map_err(|_| AppError::Overloaded)?
        .map_err(|_| AppError::Overloaded)?;
    let limits = app.config.decode_limits;
    let min_side = app.config.min_image_side;
    let model_side = app.model.input_size;
    let clean_started = Instant::now();
    let cleaned = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let result = clean_image(&bytes, &limits, min_side, Some(model_side));
        // The upload's bytes are released with their share of the buffer.
        drop(bytes);
        drop(charge);
        result
    })
    .await
    .map_err(|e| AppError::internal(format!("image task failed: {e}")))??;

    let clean_ms = clean_started.elapsed().as_millis();
    let store_started = Instant::now();
    let id = Uuid::new_v4();
    let created = app
        .store
        .create_case(NewCase {
            id,
            request_id: request_id.to_owned(),
            uploader: uploader_hash.to_owned(),
            image_sha256,
            image: cleaned.image,
            model_input: cleaned.model_input,
        })
        .await?;
    let case = match created {
        Created::Existing(case) => {
            info!(case_id = %case.id, "the same photo again: returning its case");
            return Ok((case.id, false));
        }
        Created::New(case) => case,
    };
    info!(
        case_id = %case.id,
        clean_ms,
        store_ms = store_started.elapsed().as_millis(),
        "case stored"
    );
    // The case was stored with its `queued` event (one statement, `Store::create_case`): the job
    // is pushed now.
    let job = AnalyseCase {
        case_id: case.id,
        request_id: request_id.to_owned(),
    };
    if let Err(e) = app.queue.push(job).await {
        // The case is safe in PostgreSQL; a worker's recovery sweep queues it again later.
        warn!(case_id = %case.id, error = %e, "could not queue the job; recovery will");
    }
    Ok((case.id, true))
}

/// KiB, rounded up (the unit of the upload buffer's permits).
pub fn kib(bytes: usize) -> usize {
    bytes.div_ceil(1024)
}

/// A body's share of the upload buffer (`MOLE_UPLOAD_BUFFER`), taken chunk by chunk as bytes
/// arrive and given back when dropped. Taking never waits: a chunk that does not fit is refused
/// (429), so requests cannot hold parts of the buffer while waiting for each other.
pub struct BufferCharge {
    buffer: Arc<Semaphore>,
    kib: u32,
}

impl BufferCharge {
    fn new(buffer: &Arc<Semaphore>) -> Self {
        Self {
            buffer: buffer.clone(),
            kib: 0,
        }
    }

    /// Charges the buffer for a body that now holds `total` bytes.
    fn grow_to(&mut self, total: usize) -> Result<(), AppError> {
        let need = u32::try_from(kib(total)).map_err(|_| AppError::Overloaded)?;
        if need > self.kib {
            let permit = self
                .buffer
                .try_acquire_many(need - self.kib)
                .map_err(|_| AppError::Overloaded)?;
            permit.forget();
            self.kib = need;
        }
        Ok(())
    }
}

impl Drop for BufferCharge {
    fn drop(&mut self) {
        self.buffer.add_permits(self.kib as usize);
    }
}

/// Reads the first non-empty `photo` field (the page offers a camera input and a gallery input
/// under the same name), refusing more than `limit` bytes, charging `buffer` for what it holds.
async fn read_photo(
    mut multipart: Multipart,
    limit: usize,
    buffer: &Arc<Semaphore>,
) -> Result<(Vec<u8>, BufferCharge), AppError> {
    let malformed = |e: axum::extract::multipart::MultipartError| {
        let status = e.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            too_large(limit)
        } else {
            AppError::BadUpload {
                code: "malformed_upload",
                message: format!("the upload could not be read: {}", e.body_text()),
                status: StatusCode::BAD_REQUEST,
                args: Vec::new(),
            }
        }
    };
    let mut charge = BufferCharge::new(buffer);
    while let Some(mut field) = multipart.next_field().await.map_err(malformed)? {
        if field.name() != Some("photo") {
            continue;
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(malformed)? {
            if bytes.len() + chunk.len() > limit {
                return Err(too_large(limit));
            }
            charge.grow_to(bytes.len() + chunk.len())?;
            bytes.extend_from_slice(&chunk);
        }
        if !bytes.is_empty() {
            return Ok((bytes, charge));
        }
    }
    Err(AppError::BadUpload {
        code: "no_photo",
        message: "no photo was sent: choose or take a photo first".to_owned(),
        status: StatusCode::BAD_REQUEST,
        args: Vec::new(),
    })
}

fn too_large(limit: usize) -> AppError {
    AppError::BadUpload {
        code: "file_too_large",
        message: format!("the file is larger than {}", human_bytes(limit)),
        status: StatusCode::PAYLOAD_TOO_LARGE,
        args: vec![("limit", human_bytes(limit))],
    }
}

/// An upload made safe to store: the photo without metadata, and the model's view of it.
#[derive(Debug)]
pub struct CleanedUpload {
    /// A JPEG upload's own bytes without its metadata (orientation kept); other formats' upright
    /// pixels as PNG.
    pub image: StoredImage,
    /// The centre square at the model's input side (PNG), when the model is known.
    pub model_input: Option<ModelInput>,
}

/// Decodes by content (never by name), checks dimensions, and removes every metadata: a JPEG is
/// kept as its own entropy-coded bytes with every metadata segment and trailer cut out and only
/// its orientation written back (lossless, no re-encoding); any other format is re-encoded as a
/// PNG of the upright pixels. No EXIF (GPS, camera, time), XMP, IPTC or comment survives, and the
/// model later sees exactly these pixels. With `model_side`, also makes the model's view of the photo
/// ([`mole_inference::preprocess::model_view`]), so workers need not decode the photo again.
pub fn clean_image(
    bytes: &[u8],
    limits: &DecodeLimits,
    min_side: u32,
    model_side: Option<u32>,
) -> Result<CleanedUpload, AppError> {
    let image = mole_inference::decode_image(bytes, limits).map_err(upload_error)?;
    let (width, height) = image.dimensions();
    if width < min_side || height < min_side {
        return Err(AppError::BadUpload {
            code: "image_too_small",
            message: format!(
                "the image is {width}×{height} pixels; at least {min_side}×{min_side} are needed \
                 to see a mole"
            ),
            status: StatusCode::UNPROCESSABLE_ENTITY,
            args: vec![
                ("width", width.to_string()),
                ("height", height.to_string()),
                ("min", min_side.to_string()),
            ],
        });
    }
    // What is stored: a JPEG with its metadata cut out losslessly (its own bytes, so its exact
    // pixels, orientation kept, nothing else: `mole_inference::strip`); any other format, or a
    // JPEG whose structure the stripper does not follow, as a PNG of the upright pixels.
    let stripped = bytes.starts_with(&[0xFF, 0xD8]).then(|| {
        mole_inference::strip::strip_jpeg(bytes, mole_inference::decode::exif_orientation(bytes))
    });
    // The photo's PNG (when needed) and the model's view are independent: on a phone photo each
    // takes tens of milliseconds, so they run side by side.
    let (stored, model_input) = std::thread::scope(|scope| {
        let view = model_side.map(|side| {
            let image = &image;
            scope.spawn(move || {
                let view = mole_inference::preprocess::model_view(image, side);
                encode_png(&view).map(|bytes| ModelInput {
                    side: side as i32,
                    bytes,
                })
            })
        });
        let stored = match stripped.flatten() {
            Some(jpeg) => Ok(("image/jpeg", jpeg)),
            None => encode_png(&image).map(|png| ("image/png", png)),
        };
        let view = view.map(|handle| {
            handle
                .join()
                .unwrap_or_else(|_| Err(AppError::internal("the model view task panicked")))
        });
        (stored, view)
    });
    let (content_type, stored) = stored?;
    let model_input = model_input.transpose()?;
    Ok(CleanedUpload {
        image: StoredImage {
            content_type: content_type.to_owned(),
            width: width as i32,
            height: height as i32,
            bytes: stored,
        },
        model_input,
    })
}

fn encode_png(image: &image::RgbImage) -> Result<Vec<u8>, AppError> {
    let mut png = Vec::with_capacity(image.as_raw().len() / 2);
    image::codecs::png::PngEncoder::new_with_quality(
        &mut png,
        image::codecs::png::CompressionType::Fast,
        image::codecs::png::FilterType::Adaptive,
    )
    .write_image(
        image.as_raw(),
        image.width(),
        image.height(),
        image::ExtendedColorType::Rgb8,
    )
    .map_err(|e| AppError::internal(format!("re-encoding the image failed: {e}")))?;
    Ok(png)
}

fn upload_error(e: InferenceError) -> AppError {
    if !e.is_bad_input() {
        return AppError::internal(e.to_string());
    }
    let status = match e {
        InferenceError::NotAnImage | InferenceError::UnsupportedFormat { .. } => {
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        }
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    AppError::BadUpload {
        code: e.code(),
        message: e.to_string(),
        status,
        args: match &e {
            InferenceError::UnsupportedFormat { format }
            | InferenceError::Truncated { format }
            | InferenceError::Decode { format, .. } => vec![("format", format.clone())],
            _ => Vec::new(),
        },
    }
}

/// `15728640` → `15 MB` (binary megabytes, as phones show sizes).
pub fn human_bytes(n: usize) -> String {
    const MB: usize = 1024 * 1024;
    const KB: usize = 1024;
    if n >= MB && n.is_multiple_of(MB) {
        format!("{} MB", n / MB)
    } else if n >= MB {
        format!("{:.1} MB", n as f64 / MB as f64)
    } else {
        format!("{} KB", n.div_ceil(KB))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg_with_gps_exif(width: u32, height: u32) -> Vec<u8> {
        let img = image::RgbImage::from_fn(width, height, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 90])
        });
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90)
            .encode_image(&img)
            .unwrap();
        // Splice an APP1/Exif segment holding a marker string right after SOI.
        let payload = b"Exif\0\0GPSLatitude=48.8566;GPSLongitude=2.3522";
        let mut app1 = vec![0xFF, 0xE1];
        app1.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
        app1.extend_from_slice(payload);
        let mut out = jpeg[..2].to_vec();
        out.extend_from_slice(&app1);
        out.extend_from_slice(&jpeg[2..]);
        out
    }

    #[test]
    fn a_jpeg_with_gps_exif_is_stored_as_its_own_pixels_without_the_metadata() {
        let upload = jpeg_with_gps_exif(64, 48);
        assert!(upload.windows(11).any(|w| w == b"GPSLatitude"));
        let stored = clean_image(&upload, &DecodeLimits::default(), 32, None)
            .unwrap()
            .image;
        assert_eq!(stored.content_type, "image/jpeg");
        assert_eq!((stored.width, stored.height), (64, 48));
        assert!(!stored.bytes.windows(3).any(|w| w == b"GPS"));
        assert!(
            !stored
                .bytes
                .windows(4)
                .any(|w| w == b"eXIf" || w == b"Exif")
        );
        let limits = DecodeLimits::default();
        assert_eq!(
            mole_inference::decode_image(&stored.bytes, &limits).unwrap(),
            mole_inference::decode_image(&upload, &limits).unwrap(),
            "the stored photo's pixels are the upload's"
        );
    }

    #[test]
    fn other_formats_are_stored_as_png_of_their_pixels() {
        let img = image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([x as u8, y as u8, 7]));
        let mut webp = Vec::new();
        image::codecs::webp::WebPEncoder::new_lossless(&mut webp)
            .encode(img.as_raw(), 64, 48, image::ExtendedColorType::Rgb8)
            .unwrap();
        let stored = clean_image(&webp, &DecodeLimits::default(), 32, None)
            .unwrap()
            .image;
        assert_eq!(stored.content_type, "image/png");
        assert!(stored.bytes.starts_with(b"\x89PNG"));
    }

    #[test]
    fn the_model_view_is_the_centre_square_at_the_model_side_without_metadata() {
        let upload = jpeg_with_gps_exif(200, 150);
        let cleaned = clean_image(&upload, &DecodeLimits::default(), 32, Some(128)).unwrap();
        let view = cleaned.model_input.expect("a model view");
        assert_eq!(view.side, 128);
        assert!(!view.bytes.windows(3).any(|w| w == b"GPS"));
        let decoded = image::load_from_memory(&view.bytes).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (128, 128));
        // The stored photo as a worker reads it (the project's decoder, as for every JPEG).
        let full =
            mole_inference::decode_image(&cleaned.image.bytes, &DecodeLimits::default()).unwrap();
        let expected = mole_inference::preprocess::model_view(&full, 128);
        assert_eq!(decoded.to_rgb8(), expected);
    }

    #[test]
    fn a_text_file_named_like_a_photo_is_refused_by_content() {
        let err = clean_image(
            b"hello, I am not a JPEG",
            &DecodeLimits::default(),
            32,
            None,
        )
        .unwrap_err();
        match err {
            AppError::BadUpload { code, status, .. } => {
                assert_eq!(code, "not_an_image");
                assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn an_image_over_the_dimension_limit_is_refused() {
        let upload = jpeg_with_gps_exif(200, 100);
        let limits = DecodeLimits {
            max_width: 150,
            ..DecodeLimits::default()
        };
        let err = clean_image(&upload, &limits, 32, None).unwrap_err();
        assert_eq!(err.code(), "image_too_large");
    }

    #[test]
    fn a_tiny_image_is_refused_with_its_size() {
        let err = clean_image(
            &jpeg_with_gps_exif(16, 16),
            &DecodeLimits::default(),
            32,
            None,
        )
        .unwrap_err();
        assert_eq!(err.code(), "image_too_small");
        assert!(err.public_message().contains("16×16"));
    }

    #[test]
    fn the_upload_buffer_is_charged_as_bytes_arrive_refuses_overflow_and_is_given_back() {
        let buffer = Arc::new(Semaphore::new(kib(100 * 1024)));
        let mut a = BufferCharge::new(&buffer);
        a.grow_to(30 * 1024).unwrap();
        a.grow_to(60 * 1024).unwrap();
        assert_eq!(buffer.available_permits(), 40);
        let mut b = BufferCharge::new(&buffer);
        b.grow_to(40 * 1024).unwrap();
        // No waiting for room: a body that does not fit is refused at once.
        let mut c = BufferCharge::new(&buffer);
        assert!(matches!(c.grow_to(1), Err(AppError::Overloaded)));
        drop(a);
        assert_eq!(buffer.available_permits(), 60);
        drop(b);
        drop(c);
        assert_eq!(buffer.available_permits(), 100);
    }

    #[test]
    fn sizes_are_shown_in_megabytes() {
        assert_eq!(human_bytes(15 * 1024 * 1024), "15 MB");
        assert_eq!(human_bytes(1536 * 1024), "1.5 MB");
        assert_eq!(human_bytes(2000), "2 KB");
    }
}
