//! One request: the URL to a node of the tree, then a folder listing, a recording's WAV
//! file (whole, a segment, a byte range of either) or a spectrogram image.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use http::header::{
    ACCEPT, ACCEPT_RANGES, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ALLOW,
    CACHE_CONTROL, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG, IF_MODIFIED_SINCE,
    IF_NONE_MATCH, IF_RANGE, LAST_MODIFIED, LOCATION, ORIGIN, RANGE, VARY,
};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use percent_encoding::percent_decode_str;
use sha2::{Digest, Sha256};

use super::body::{AccessLine, Body, CHUNK, Logged, empty, on_workers, read, stream};
use super::range::{self, Requested};
use super::segment::{Query, Segment};
use super::spectrogram::{self as spectro, Renderer, Spec};
use super::{State, listing, status};
use crate::fs::{FileInfo, FsError, Ino, NodeKind};

pub const ALLOWED: &str = "GET, HEAD, OPTIONS";

pub async fn handle<B>(state: Arc<State>, peer: SocketAddr, req: Request<B>) -> Response<Logged> {
    let started = Instant::now();
    let target = req
        .uri()
        .path_and_query()
        .map_or_else(|| "/".to_string(), |p| p.to_string());
    let range = header(req.headers(), &RANGE).map(str::to_string);
    let mut resp = respond(&state, &req).await;
    if let Some(origin) = &state.opts.cors {
        cors(origin, req.headers(), resp.headers_mut());
    }
    let line = AccessLine {
        peer,
        method: req.method().clone(),
        target,
        range,
        status: resp.status().as_u16(),
        started,
    };
    resp.map(|body| Logged::new(body, line))
}

async fn respond<B>(state: &Arc<State>, req: &Request<B>) -> Response<Body> {
    match *req.method() {
        Method::GET | Method::HEAD => {}
        Method::OPTIONS => {
            let mut r = Response::new(empty());
            *r.status_mut() = StatusCode::NO_CONTENT;
            r.headers_mut()
                .insert(ALLOW, HeaderValue::from_static(ALLOWED));
            return r;
        }
        _ => return status::method_not_allowed(),
    }
    let Some((names, is_dir)) = decode_path(req.uri().path()) else {
        return status::not_found();
    };
    let fs = &state.fs;
    let found = fs.resolve(names.iter().map(String::as_str));
    let ino = match found {
        Ok(ino) => ino,
        Err(FsError::NotFound) if !is_dir => {
            // `rec.png` is the spectrogram of `rec.wav`.
            let last = names.last().map(String::as_str).unwrap_or("");
            let Some(stem) = last.strip_suffix(".png") else {
                return status::not_found();
            };
            let wav = format!("{stem}.wav");
            let parent = names[..names.len() - 1].iter().map(String::as_str);
            return match fs.resolve(parent.chain([wav.as_str()])) {
                Ok(ino) => spectrogram(state, req, ino).await,
                Err(e) => status::error(&e),
            };
        }
        Err(e) => return status::error(&e),
    };
    match (&fs.tree().get(ino).expect("resolved").kind, is_dir) {
        (NodeKind::Dir { .. }, true) => {
            match Query::parse(req.uri().query()) {
                Ok(q) if q.is_empty() => {}
                Ok(_) => return status::bad_request("a folder takes no start, end or format"),
                Err(e) => return status::bad_request(&e),
            }
            listing::respond(fs, ino, req.uri().path(), wants_json(req.headers()))
        }
        (NodeKind::Dir { .. }, false) => {
            // Relative links on the folder's page need its URL to end in a slash.
            let mut to = format!("{}/", req.uri().path());
            if let Some(q) = req.uri().query() {
                to = format!("{to}?{q}");
            }
            let mut r = status::text(StatusCode::MOVED_PERMANENTLY, &to);
            if let Ok(v) = HeaderValue::from_str(&to) {
                r.headers_mut().insert(LOCATION, v);
            }
            r
        }
        (NodeKind::File { .. }, true) => status::not_found(),
        (NodeKind::File { .. }, false) => recording(state, req, ino).await,
    }
}

/// The URL path as the shown names of its segments (percent-decoded), and whether it
/// ends in a slash. None for anything that could name something outside the tree: an
/// empty, `.` or `..` segment, or one that decodes to a `/` or a NUL.
pub fn decode_path(path: &str) -> Option<(Vec<String>, bool)> {
    let rest = path.strip_prefix('/')?;
    let is_dir = rest.is_empty() || rest.ends_with('/');
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() {
        return Some((Vec::new(), true));
    }
    let names = rest
        .split('/')
        .map(|seg| {
            let name = percent_decode_str(seg).decode_utf8().ok()?;
            let bad = name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']);
            (!bad).then(|| name.into_owned())
        })
        .collect::<Option<Vec<_>>>()?;
    Some((names, is_dir))
}

fn header<'a>(h: &'a HeaderMap, name: &http::HeaderName) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// JSON when the client asks for it before (or without) HTML.
fn wants_json(h: &HeaderMap) -> bool {
    let accept = header(h, &ACCEPT).unwrap_or("");
    match (accept.find("application/json"), accept.find("text/html")) {
        (Some(j), Some(html)) => j < html,
        (Some(_), None) => true,
        _ => false,
    }
}

/// A strong validator of the bytes served for `info` (and `segment`): it changes with
/// the recording's metadata, its commit time (a re-import) and what is cut from it.
fn etag(info: &FileInfo, segment: Option<&Segment>, format: &str) -> String {
    let mut h = Sha256::new();
    h.update(serde_json::to_vec(&info.meta).unwrap_or_default());
    let committed = info
        .committed
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    h.update(committed.to_le_bytes());
    h.update(format.as_bytes());
    if let Some(s) = segment {
        h.update(s.frames.start.to_le_bytes());
        h.update(s.frames.end.to_le_bytes());
    }
    format!("\"{}\"", hex::encode(&h.finalize()[..12]))
}

/// Whether an `If-None-Match` list names `etag` (weak comparison, RFC 9110 §13.1.2).
fn none_match_hits(list: &str, etag: &str) -> bool {
    list.split(',')
        .map(|t| t.trim())
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag)
}

/// Whether a `Range` is to be honoured under the request's `If-Range` (strong
/// comparison of an entity tag, or the exact `Last-Modified` date).
fn if_range_holds(h: &HeaderMap, etag: &str, last_modified: &str) -> bool {
    match header(h, &IF_RANGE) {
        None => true,
        Some(v) => v == etag || (!v.starts_with('"') && !v.starts_with("W/") && v == last_modified),
    }
}

async fn recording<B>(state: &Arc<State>, req: &Request<B>, ino: Ino) -> Response<Body> {
    let info = match state.fs.file_info(ino) {
        Ok((_, info)) => info,
        Err(e) => return status::error(&e),
    };
    let segment = match Query::parse(req.uri().query()).and_then(|q| q.segment(&info.meta)) {
        Ok(s) => s,
        Err(e) => return status::bad_request(&e),
    };
    let format = segment
        .as_ref()
        .and_then(|s| s.format)
        .unwrap_or(info.layout.format);
    let tag = etag(&info, segment.as_ref(), format.name());
    // Whole seconds: the precision of an HTTP date, so `If-Modified-Since` compares.
    let last_modified = httpdate::fmt_http_date(info.committed);
    let mut headers = HeaderMap::new();
    headers.insert(ETAG, HeaderValue::from_str(&tag).expect("hex"));
    headers.insert(
        LAST_MODIFIED,
        HeaderValue::from_str(&last_modified).expect("date"),
    );
    headers.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if not_modified(req.headers(), &tag, info.committed) {
        let mut r = Response::new(empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        *r.headers_mut() = headers;
        return r;
    }
    let opened = on_workers(state, "open", move |fs| match segment {
        None => fs.open(ino),
        Some(s) => fs.open_segment(ino, s.frames, s.format),
    })
    .await;
    let file = match opened {
        Ok(f) => Arc::new(f),
        Err(e) => return status::error(&e),
    };
    let len = file.len();
    let wanted = match header(req.headers(), &RANGE) {
        Some(r) if if_range_holds(req.headers(), &tag, &last_modified) => range::parse(r, len),
        _ => Requested::Whole,
    };
    let (code, bytes) = match wanted {
        Requested::Whole => (StatusCode::OK, 0..len),
        Requested::Part(r) => (StatusCode::PARTIAL_CONTENT, r),
        Requested::Unsatisfiable => {
            let mut r = status::text(StatusCode::RANGE_NOT_SATISFIABLE, "range not satisfiable");
            r.headers_mut().insert(
                CONTENT_RANGE,
                HeaderValue::from_str(&format!("bytes */{len}")).expect("ascii"),
            );
            r.headers_mut().extend(headers);
            return r;
        }
    };
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("audio/wav"));
    headers.insert(CONTENT_LENGTH, (bytes.end - bytes.start).into());
    if code == StatusCode::PARTIAL_CONTENT {
        let v = format!("bytes {}-{}/{len}", bytes.start, bytes.end - 1);
        headers.insert(CONTENT_RANGE, HeaderValue::from_str(&v).expect("ascii"));
    }
    let body = if req.method() == Method::HEAD || bytes.is_empty() {
        empty()
    } else {
        let first = CHUNK.min(bytes.end - bytes.start);
        match read(state, &file, bytes.start, first).await {
            Ok(b) => stream(state.clone(), file, bytes, b),
            Err(e) => return status::error(&e),
        }
    };
    let mut r = Response::new(body);
    *r.status_mut() = code;
    *r.headers_mut() = headers;
    r
}

/// The spectrogram shown when a query gives no end: this many seconds from the start.
const SPECTROGRAM_SECS: f64 = 30.0;

/// `rec.png?start=&end=`: a spectrogram of that segment of recording `ino`, rendered
/// from the samples the WAV file serves.
async fn spectrogram<B>(state: &Arc<State>, req: &Request<B>, ino: Ino) -> Response<Body> {
    let info = match state.fs.file_info(ino) {
        Ok((_, info)) => info,
        Err(e) => return status::error(&e),
    };
    let meta = &info.meta;
    let query = match Query::parse(req.uri().query()) {
        Ok(q) if q.format.is_some() => {
            return status::bad_request("a spectrogram takes start and end only");
        }
        Ok(q) => q,
        Err(e) => return status::bad_request(&e),
    };
    let frames = match query.frames(meta) {
        Ok(f) if query.end.is_none() => {
            let secs = (SPECTROGRAM_SECS * f64::from(meta.original_sample_rate)) as u64;
            f.start..f.end.min(f.start + secs)
        }
        Ok(f) => f,
        Err(e) => return status::bad_request(&e),
    };
    let n = frames.end - frames.start;
    if n > spectro::MAX_FRAMES {
        let most = spectro::MAX_FRAMES as f64 / f64::from(meta.original_sample_rate);
        return status::bad_request(&format!(
            "a spectrogram covers at most {most:.0} s of this recording"
        ));
    }
    let segment = Segment {
        frames: frames.clone(),
        format: None,
    };
    let tag = etag(&info, Some(&segment), "png");
    if not_modified(req.headers(), &tag, info.committed) {
        let mut r = Response::new(empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r.headers_mut()
            .insert(ETAG, HeaderValue::from_str(&tag).expect("hex"));
        return r;
    }
    let spec = Spec {
        width: 1000,
        height: 300,
        rate: meta.original_sample_rate,
        channels: meta.channels,
        start_secs: frames.start as f64 / f64::from(meta.original_sample_rate),
        frames: n,
    };
    let rendered = on_workers(state, "spectrogram", move |fs| {
        let mut r = match Renderer::new(spec) {
            Ok(r) => r,
            Err(e) => return Ok(Err(e)),
        };
        fs.for_each_chunk_f32(ino, frames, |s| r.push(s))?;
        Ok(r.finish())
    })
    .await;
    let png = match rendered {
        Ok(Ok(png)) => png,
        Ok(Err(e)) => {
            log::error!("spectrogram of {}: {e}", req.uri());
            return status::text(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("spectrogram: {e}"),
            );
        }
        Err(e) => return status::error(&e),
    };
    let len = png.len();
    let mut r = Response::new(super::body::full(png));
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("image/png"));
    h.insert(CONTENT_LENGTH, len.into());
    h.insert(ETAG, HeaderValue::from_str(&tag).expect("hex"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// `If-None-Match` (or, without it, `If-Modified-Since`) says the client has this.
fn not_modified(h: &HeaderMap, etag: &str, committed: SystemTime) -> bool {
    if let Some(list) = header(h, &IF_NONE_MATCH) {
        return none_match_hits(list, etag);
    }
    let since = header(h, &IF_MODIFIED_SINCE).and_then(|v| httpdate::parse_http_date(v).ok());
    let secs = |t: SystemTime| {
        t.duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    };
    since.is_some_and(|s| secs(committed) <= secs(s))
}

/// CORS headers for a request from `origin` (or any, for `*`).
fn cors(allowed: &str, req: &HeaderMap, out: &mut HeaderMap) {
    let Some(origin) = header(req, &ORIGIN) else {
        return;
    };
    if allowed != "*" && allowed != origin {
        return;
    }
    let Ok(v) = HeaderValue::from_str(allowed) else {
        return;
    };
    out.insert(ACCESS_CONTROL_ALLOW_ORIGIN, v);
    if allowed != "*" {
        out.insert(VARY, HeaderValue::from_static("Origin"));
    }
    out.insert(
        ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(
            "Content-Length, Content-Range, Accept-Ranges, ETag, Last-Modified",
        ),
    );
    out.insert(
        ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(ALLOWED),
    );
    out.insert(
        ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Range, If-Range, If-None-Match, If-Modified-Since"),
    );
    out.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_that_leave_the_tree_are_refused() {
        assert_eq!(decode_path("/"), Some((vec![], true)));
        assert_eq!(
            decode_path("/site%201/rec.wav"),
            Some((vec!["site 1".into(), "rec.wav".into()], false))
        );
        assert_eq!(
            decode_path("/a/b/"),
            Some((vec!["a".into(), "b".into()], true))
        );
        // A shown name with an escaped slash is reached through its own `%25`.
        assert_eq!(
            decode_path("/a%252Fb.wav"),
            Some((vec!["a%2Fb.wav".into()], false))
        );
        for bad in [
            "/../etc/passwd",
            "/site1/../x",
            "/%2e%2e/x",
            "/%2E%2E",
            "/.",
            "/a%2Fb",
            "/a%00b",
            "//x",
            "/a//b",
            "relative",
            "/%ff",
        ] {
            assert_eq!(decode_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn conditionals() {
        assert!(none_match_hits("\"a\", \"b\"", "\"b\""));
        assert!(none_match_hits("W/\"b\"", "\"b\""));
        assert!(none_match_hits("*", "\"b\""));
        assert!(!none_match_hits("\"a\"", "\"b\""));
        let mut h = HeaderMap::new();
        assert!(if_range_holds(&h, "\"t\"", "date"));
        h.insert(IF_RANGE, HeaderValue::from_static("\"t\""));
        assert!(if_range_holds(&h, "\"t\"", "date"));
        assert!(!if_range_holds(&h, "\"u\"", "date"));
        h.insert(IF_RANGE, HeaderValue::from_static("W/\"t\""));
        assert!(!if_range_holds(&h, "\"t\"", "W/\"t\""));
    }

    #[test]
    fn json_is_for_who_asks() {
        let mut h = HeaderMap::new();
        assert!(!wants_json(&h));
        h.insert(ACCEPT, HeaderValue::from_static("application/json"));
        assert!(wants_json(&h));
        h.insert(
            ACCEPT,
            HeaderValue::from_static("text/html,application/xhtml+xml,application/json;q=0.9"),
        );
        assert!(!wants_json(&h));
    }
}
