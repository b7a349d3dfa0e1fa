//! The built-in dashboard (`GET /`), served from the binary: the Pi may have no internet, so
//! no CDN. uPlot is vendored from npm with its licence (`assets/uPlot.LICENSE`).

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

/// `(name, content type, bytes)` of every file under `/assets/`.
const FILES: [(&str, &str, &[u8]); 13] = [
    (
        "overview.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/overview.js"),
    ),
    (
        "check.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/check.js"),
    ),
    (
        "expected.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/expected.js"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/app.js"),
    ),
    (
        "filesystems.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/filesystems.js"),
    ),
    (
        "alerts.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/alerts.js"),
    ),
    (
        "series.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/series.js"),
    ),
    (
        "charts.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/charts.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("../assets/app.css"),
    ),
    (
        "uPlot.iife.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/uPlot.iife.min.js"),
    ),
    (
        "uPlot.min.css",
        "text/css; charset=utf-8",
        include_bytes!("../assets/uPlot.min.css"),
    ),
    (
        "uPlot.LICENSE",
        "text/plain; charset=utf-8",
        include_bytes!("../assets/uPlot.LICENSE"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_bytes!("../assets/favicon.svg"),
    ),
];

const INDEX: &str = include_str!("../assets/index.html");

/// The page's scripts come only from `/assets/`; it talks only to this server.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'";

pub async fn index() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, CSP),
        ],
        INDEX,
    )
        .into_response()
}

pub async fn asset(Path(name): Path<String>) -> Response {
    match FILES.iter().find(|(n, _, _)| *n == name) {
        Some((_, content_type, bytes)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            *bytes,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}

/// Browsers ask for `/favicon.ico` whatever the page says.
pub async fn favicon() -> Response {
    asset(Path("favicon.svg".to_owned())).await
}
