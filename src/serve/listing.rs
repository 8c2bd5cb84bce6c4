//! A folder's listing: JSON for programs, a plain HTML page for people (the folder
//! tree, and each recording with a player and a spectrogram of a chosen segment). The
//! page needs no JavaScript; the browser's own player seeks with Range requests.

use std::fmt::Write as _;

use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderValue, Response};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};

use super::body::{Body, full};
use crate::fs::{FileSystem, Ino, NodeKind, Tree};
use crate::ops::{format_bytes, format_duration};

/// What a URL path segment keeps unescaped (RFC 3986 unreserved characters).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The spectrogram a page shows first: the start of each recording, this long.
const PREVIEW_SECS: f64 = 30.0;

/// A shown name as a relative URL.
fn href(name: &str) -> String {
    utf8_percent_encode(name, SEGMENT).to_string()
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The listing of folder `ino`, whose URL path is `path` (ending in `/`).
pub fn respond(fs: &FileSystem, ino: Ino, path: &str, json: bool) -> Response<Body> {
    let tree = fs.tree();
    let (body, kind) = if json {
        (
            serde_json::to_vec_pretty(&to_json(&tree, ino, path)).expect("JSON values serialise"),
            "application/json",
        )
    } else {
        (
            to_html(fs, &tree, ino, path).into_bytes(),
            "text/html; charset=utf-8",
        )
    };
    let len = body.len();
    let mut r = Response::new(full(body));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(kind));
    r.headers_mut().insert(CONTENT_LENGTH, len.into());
    r
}

fn children(tree: &Tree, ino: Ino) -> &[Ino] {
    match tree.get(ino).map(|n| &n.kind) {
        Some(NodeKind::Dir { children, .. }) => children,
        _ => &[],
    }
}

fn to_json(tree: &Tree, ino: Ino, path: &str) -> Value {
    let (mut folders, mut recordings) = (Vec::new(), Vec::new());
    for &c in children(tree, ino) {
        let Some(node) = tree.get(c) else {
            continue;
        };
        match &node.kind {
            NodeKind::Dir { children, .. } => folders.push(json!({
                "name": node.name,
                "href": format!("{}/", href(&node.name)),
                "entries": children.len(),
            })),
            NodeKind::File { file } => recordings.push(match file {
                Ok(f) => {
                    let m = &f.meta;
                    json!({
                        "name": node.name,
                        "href": href(&node.name),
                        "path": node.path,
                        "sample_rate": m.original_sample_rate,
                        "channels": m.channels,
                        "frames": m.frames,
                        "duration": m.duration_secs(),
                        "codec": m.codec,
                        "sample_format": f.layout.format.name(),
                        "start_time": m.start_time,
                        "size": f.layout.file_len(),
                    })
                }
                Err(e) => json!({
                    "name": node.name,
                    "href": href(&node.name),
                    "path": node.path,
                    "error": e,
                }),
            }),
        }
    }
    json!({ "path": path, "folders": folders, "recordings": recordings })
}

fn to_html(fs: &FileSystem, tree: &Tree, ino: Ino, path: &str) -> String {
    let mut h = String::new();
    let title = format!("{} {}", fs.archive().address(), path);
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=en><head><meta charset=utf-8>\
         <meta name=viewport content=\"width=device-width\">\
         <title>{}</title><style>\
         body{{font-family:sans-serif;margin:1.5em;max-width:80em}}\
         table{{border-collapse:collapse}}td,th{{padding:.3em .6em;text-align:left;vertical-align:top}}\
         tr:nth-child(even){{background:#f4f4f4}}img{{max-width:100%}}\
         input{{width:6em}}</style></head><body>\n<h1>",
        escape(&title)
    );
    // Breadcrumbs: each ancestor folder links to itself.
    let parts: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|p| !p.is_empty())
        .collect();
    let root = if parts.is_empty() {
        "./".to_string()
    } else {
        "../".repeat(parts.len())
    };
    let _ = write!(h, "<a href=\"{root}\">archive</a>");
    for (i, p) in parts.iter().enumerate() {
        let up = "../".repeat(parts.len() - i - 1);
        let name = percent_encoding::percent_decode_str(p).decode_utf8_lossy();
        let _ = write!(
            h,
            " / <a href=\"{}\">{}</a>",
            if up.is_empty() { "./".to_string() } else { up },
            escape(&name)
        );
    }
    h.push_str("</h1>\n");
    let kids = children(tree, ino);
    let folders: Vec<_> = kids
        .iter()
        .filter_map(|&c| tree.get(c))
        .filter(|n| matches!(n.kind, NodeKind::Dir { .. }))
        .collect();
    if !folders.is_empty() {
        h.push_str("<h2>Folders</h2>\n<ul>\n");
        for n in folders {
            let count = match &n.kind {
                NodeKind::Dir { children, .. } => children.len(),
                NodeKind::File { .. } => 0,
            };
            let _ = writeln!(
                h,
                "<li><a href=\"{}/\">{}/</a> ({count} entries)</li>",
                href(&n.name),
                escape(&n.name)
            );
        }
        h.push_str("</ul>\n");
    }
    let recordings: Vec<_> = kids
        .iter()
        .filter_map(|&c| tree.get(c))
        .filter_map(|n| match &n.kind {
            NodeKind::File { file, .. } => Some((n, file)),
            NodeKind::Dir { .. } => None,
        })
        .collect();
    if !recordings.is_empty() {
        h.push_str(
            "<h2>Recordings</h2>\n<table>\n<tr><th>recording</th><th>duration</th>\
             <th>start (UTC)</th><th>format</th><th>size</th></tr>\n",
        );
        for (n, file) in recordings {
            let link = href(&n.name);
            let name = escape(&n.name);
            let f = match file {
                Ok(f) => f,
                Err(e) => {
                    let _ = writeln!(
                        h,
                        "<tr><td>{name}</td><td colspan=4>unreadable: {}</td></tr>",
                        escape(e)
                    );
                    continue;
                }
            };
            let m = &f.meta;
            let dur = m.duration_secs();
            let _ = writeln!(
                h,
                "<tr><td><a href=\"{link}\">{name}</a></td><td>{}</td><td>{}</td>\
                 <td>{} Hz, {} ch, {} ({})</td><td>{}</td></tr>",
                format_duration(dur),
                escape(m.start_time.as_deref().unwrap_or("unknown")),
                m.original_sample_rate,
                m.channels,
                escape(&m.codec),
                f.layout.format.name(),
                format_bytes(f.layout.file_len()),
            );
            let stem = n.name.strip_suffix(".wav").unwrap_or(&n.name);
            let png = href(&format!("{stem}.png"));
            let end = format!("{:.3}", dur.min(PREVIEW_SECS));
            let _ = writeln!(
                h,
                "<tr><td colspan=5><audio controls preload=metadata src=\"{link}\"></audio>\
                 <details><summary>spectrogram</summary>\
                 <form method=get action=\"{png}\">from <input name=start value=0> s \
                 to <input name=end value=\"{end}\"> s <button>show</button></form>\
                 <img loading=lazy alt=\"spectrogram of {name}, 0 to {end} s\" \
                 src=\"{png}?start=0&amp;end={end}\"></details></td></tr>"
            );
        }
        h.push_str("</table>\n");
    }
    if kids.is_empty() {
        h.push_str("<p>This folder is empty.</p>\n");
    }
    h.push_str("</body></html>\n");
    h
}
