//! The one translation of the core's errors into HTTP statuses, and the plain-text
//! error responses.

use http::header::{ALLOW, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use http::{Response, StatusCode};

use super::body::{Body, full};
use crate::fs::FsError;

pub fn status_of(e: &FsError) -> StatusCode {
    match e {
        FsError::NotFound | FsError::NotDir => StatusCode::NOT_FOUND,
        // Front ends redirect folder requests themselves; a file name that is a folder
        // is not something to serve.
        FsError::IsDir => StatusCode::NOT_FOUND,
        e if e.is_transient() => StatusCode::SERVICE_UNAVAILABLE,
        FsError::Unservable { .. }
        | FsError::Changed { .. }
        | FsError::Layout { .. }
        | FsError::Codec { .. }
        | FsError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The response to a failure of the core (logged there, with the recording's path).
pub fn error(e: &FsError) -> Response<Body> {
    let status = status_of(e);
    let mut r = text(status, &status_line(status, e));
    if status == StatusCode::SERVICE_UNAVAILABLE {
        r.headers_mut()
            .insert(RETRY_AFTER, http::HeaderValue::from_static("5"));
    }
    r
}

fn status_line(status: StatusCode, e: &FsError) -> String {
    match e {
        // Which recordings exist is no secret, but the inner error may hold store
        // addresses: say what failed, the log has the detail.
        FsError::NotFound | FsError::NotDir | FsError::IsDir => "not found".into(),
        _ => format!(
            "{}: {e}",
            status.canonical_reason().unwrap_or("error").to_lowercase()
        ),
    }
}

pub fn not_found() -> Response<Body> {
    text(StatusCode::NOT_FOUND, "not found")
}

pub fn bad_request(reason: &str) -> Response<Body> {
    text(StatusCode::BAD_REQUEST, reason)
}

pub fn method_not_allowed() -> Response<Body> {
    let mut r = text(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed: the archive is read-only (GET, HEAD, OPTIONS)",
    );
    r.headers_mut().insert(
        ALLOW,
        http::HeaderValue::from_static(super::handler::ALLOWED),
    );
    r
}

/// A one-line plain-text response.
pub fn text(status: StatusCode, line: &str) -> Response<Body> {
    let body = format!("{line}\n");
    let mut r = Response::new(full(body.clone()));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(CONTENT_LENGTH, body.len().into());
    r
}
