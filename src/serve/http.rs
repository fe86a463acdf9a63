//! The routes: `POST /score` (raw image bytes or a multipart form with one file), `GET /healthz`
//! and `GET /` (the web page). Every error is JSON `{"error": "..."}` with a status that says
//! whose fault it is: 400 bad image, 408 body too slow, 413 over a limit, 415 not an image, 500
//! the model failed on it, 503 busy or stopping.

use std::io::Cursor;
use std::path::Path;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use image::RgbImage;
use normiqa_core::data::decode::{decode_bytes, DecodeOptions};
use serde::Serialize;
use tokio::sync::Semaphore;

use super::batcher::{Queue, SubmitError};
use super::model::ModelInfo;

/// The web page: HTML, CSS and JavaScript in one file, built into the binary.
const PAGE: &str = include_str!("page.html");

/// Request limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest request body (raw image or whole multipart form), bytes.
    pub max_body_bytes: usize,
    /// Largest image, width × height read from its header before decoding; 0 = no limit.
    pub max_image_pixels: u64,
    /// Most requests in the service at once (received, decoded, queued or being scored).
    pub max_requests: usize,
    /// How long an admitted request's body may take to arrive (else 408).
    pub body_timeout: std::time::Duration,
}

struct AppState {
    info: ModelInfo,
    queue: Queue,
    admit: Arc<Semaphore>,
    limits: Limits,
    max_batch: usize,
}

/// The service's routes over a running batcher queue.
pub fn router(info: ModelInfo, queue: Queue, limits: Limits, max_batch: usize) -> Router {
    let state = Arc::new(AppState {
        info,
        queue,
        admit: Arc::new(Semaphore::new(limits.max_requests.max(1))),
        limits,
        max_batch,
    });
    Router::new()
        .route("/", get(page))
        .route("/healthz", get(healthz))
        .route("/score", post(score))
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .with_state(state)
}

/// An error answer: a status and a message for a person.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }
    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(serde_json::json!({ "error": self.message }));
        let mut resp = (self.status, body).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        resp
    }
}

/// The answer for one scored image.
#[derive(Debug, Serialize)]
pub struct Scored {
    /// The uploaded file's name (multipart uploads only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The mapped quality score, as `normiqa predict` prints it for the same file.
    pub score: f64,
    pub model: String,
    pub width: u32,
    pub height: u32,
}

async fn page() -> Html<&'static str> {
    Html(PAGE)
}

async fn healthz(State(st): State<Arc<AppState>>) -> Json<serde_json::Value> {
    let in_service = st.limits.max_requests - st.admit.available_permits();
    Json(serde_json::json!({
        "status": "ok",
        "model": st.info.name,
        "trained_on": st.info.trained_on,
        "tta": st.info.tta,
        "requests": in_service,
        "waiting": st.queue.waiting(),
        "max_requests": st.limits.max_requests,
        "max_batch": st.max_batch,
        "max_body_bytes": st.limits.max_body_bytes,
        "max_image_pixels": st.limits.max_image_pixels,
    }))
}

async fn score(State(st): State<Arc<AppState>>, req: Request) -> Result<Json<Scored>, ApiError> {
    let _admitted = st.admit.clone().try_acquire_owned().map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "busy: {} requests are already in the service (--queue); retry shortly",
                st.limits.max_requests
            ),
        )
    })?;
    let body_timeout = st.limits.body_timeout;
    let upload = tokio::time::timeout(body_timeout, read_upload(req, st.limits.max_body_bytes))
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request body did not arrive within {} s (the server's --body-timeout)",
                    body_timeout.as_secs_f64()
                ),
            )
        })??;
    let label = upload
        .name
        .clone()
        .unwrap_or_else(|| "the request body".into());
    check_header(&upload.bytes, &label, st.limits.max_image_pixels)?;
    let image = decode(upload.bytes, label, st.limits.max_image_pixels).await?;
    let (width, height) = image.dimensions();
    let answer = st.queue.submit(image).map_err(|e| match e {
        SubmitError::Full(_) | SubmitError::Closed => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{e}; retry shortly"),
        ),
    })?;
    let score = answer
        .await
        .map_err(|_| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the model stopped"))?
        .map_err(|msg| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, msg))?;
    Ok(Json(Scored {
        image: upload.name,
        score,
        model: st.info.name.clone(),
        width,
        height,
    }))
}

struct Upload {
    name: Option<String>,
    bytes: Bytes,
}

fn too_large(max: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the request body is larger than {max} bytes (the server's --max-body-bytes)"),
    )
}

/// The image's bytes: the whole body, or the one file of a multipart form.
async fn read_upload(req: Request, max_body: usize) -> Result<Upload, ApiError> {
    let multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("multipart/form-data"));
    let upload = if multipart {
        read_multipart(req, max_body).await?
    } else {
        let bytes = Bytes::from_request(req, &()).await.map_err(|r| {
            if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                too_large(max_body)
            } else {
                ApiError::new(r.status(), r.body_text())
            }
        })?;
        Upload { name: None, bytes }
    };
    if upload.bytes.is_empty() {
        return Err(ApiError::bad_request(
            "empty image: send the image's bytes as the body, or a multipart form with one file",
        ));
    }
    Ok(upload)
}

async fn read_multipart(req: Request, max_body: usize) -> Result<Upload, ApiError> {
    let to_api = |status: StatusCode, text: String| {
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            too_large(max_body)
        } else {
            ApiError::new(status, format!("reading the multipart form: {text}"))
        }
    };
    let mut form = Multipart::from_request(req, &())
        .await
        .map_err(|r| to_api(r.status(), r.body_text()))?;
    let mut found: Option<Upload> = None;
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| to_api(e.status(), e.body_text()))?
    {
        // Text fields (no file name) other than one named "image" are not images.
        if field.file_name().is_none() && field.name() != Some("image") {
            continue;
        }
        if found.is_some() {
            return Err(ApiError::bad_request(
                "the form holds more than one file: send one image per request (concurrent requests are batched together)",
            ));
        }
        let name = field.file_name().map(str::to_owned);
        let bytes = field
            .bytes()
            .await
            .map_err(|e| to_api(e.status(), e.body_text()))?;
        found = Some(Upload { name, bytes });
    }
    found.ok_or_else(|| {
        ApiError::bad_request(
            "the multipart form has no file: send the image as a file field (curl -F image=@photo.jpg)",
        )
    })
}

/// Reads the image's size from its header and refuses it, before decoding, when it has more
/// pixels than `max_pixels` (0 = no limit) or is not an image format normiqa decodes.
fn check_header(bytes: &[u8], label: &str, max_pixels: u64) -> Result<(u32, u32), ApiError> {
    let unsupported = || {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("{label}: not an image normiqa reads (JPEG, PNG, WebP, BMP or TIFF)"),
        )
    };
    let reader = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|_| unsupported())?;
    if reader.format().is_none() {
        return Err(unsupported());
    }
    let (w, h) = reader.into_dimensions().map_err(|e| match e {
        image::ImageError::Unsupported(_) => unsupported(),
        e => ApiError::bad_request(format!("{label}: cannot read the image header: {e}")),
    })?;
    let pixels = w as u64 * h as u64;
    if max_pixels > 0 && pixels > max_pixels {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "{label}: {w}x{h} = {pixels} pixels, more than the server's --max-image-pixels {max_pixels}"
            ),
        ));
    }
    Ok((w, h))
}

/// Decodes on the blocking pool, exactly as `predict` decodes a file (native size).
async fn decode(bytes: Bytes, label: String, max_image_pixels: u64) -> Result<RgbImage, ApiError> {
    let opts = DecodeOptions {
        allow_truncated: false,
        max_image_pixels,
    };
    tokio::task::spawn_blocking(move || decode_bytes(bytes.to_vec(), Path::new(&label), &[], &opts))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("decoding: {e}")))?
        .map_err(|e| ApiError::bad_request(e.to_string()))
}
