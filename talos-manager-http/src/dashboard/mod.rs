//! The web dashboard: static pages and ES modules that run in the browser as a client of the
//! admin REST API.
//!
//! Nothing here reads or changes data. Every page is the same small HTML shell; its JavaScript
//! asks for credentials (an API token or `BASIC_AUTH_PASSWORD`), keeps them in the tab's
//! `sessionStorage`, and calls `/api/v1/...` with an `Authorization` header, so every action goes
//! through the same operations, checks and errors as any other API client. The assets are
//! compiled into the binary: no Node build step and no network access are needed to serve them.

use poem::http::{StatusCode, header};
use poem::web::{Path, Redirect};
use poem::{Response, Route, get, handler};

/// The page paths the dashboard answers with its HTML shell; the script picks the page from the
/// path.
pub const PAGES: &[&str] = &[
    "/servers",
    "/configure",
    "/clusters",
    "/configs",
    "/schematics",
    "/label-taint-rules",
    "/settings",
    "/jobs",
];

/// A file served under `/assets/`.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

macro_rules! asset {
    ($name:literal, $type:expr) => {
        Asset {
            name: $name,
            content_type: $type,
            body: include_str!(concat!("assets/", $name)),
        }
    };
}

const JAVASCRIPT: &str = "text/javascript; charset=utf-8";

static ASSETS: &[Asset] = &[
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("favicon.svg", "image/svg+xml"),
    asset!("app.js", JAVASCRIPT),
    asset!("api.js", JAVASCRIPT),
    asset!("ui.js", JAVASCRIPT),
    asset!("servers.js", JAVASCRIPT),
    asset!("clusters.js", JAVASCRIPT),
    asset!("cluster_health.js", JAVASCRIPT),
    asset!("configs.js", JAVASCRIPT),
    asset!("rules.js", JAVASCRIPT),
    asset!("schematics.js", JAVASCRIPT),
    asset!("settings.js", JAVASCRIPT),
    asset!("jobs.js", JAVASCRIPT),
    asset!("lifecycle.js", JAVASCRIPT),
];

const SHELL: &str = include_str!("assets/index.html");

/// Scripts and styles only from the service itself; no framing.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data: blob:; \
     object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

/// Adds the dashboard's routes to `route`: `/` redirects to `/servers`, each page path answers
/// the HTML shell, and `/assets/*` the files it loads.
pub fn routes(route: Route) -> Route {
    let mut route = route
        .at("/", get(root))
        .at("/assets/*name", get(serve_asset));
    for page in PAGES {
        route = route.at(*page, get(serve_shell));
    }
    route
}

#[handler]
fn root() -> Redirect {
    Redirect::see_other("/servers")
}

#[handler]
fn serve_shell() -> Response {
    static_response(SHELL, "text/html; charset=utf-8")
}

#[handler]
fn serve_asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|asset| asset.name == name) {
        Some(asset) => static_response(asset.body, asset.content_type),
        None => Response::builder()
            .status(StatusCode::NOT_FOUND)
            .content_type("text/plain; charset=utf-8")
            .body("no such asset"),
    }
}

fn static_response(body: &'static str, content_type: &'static str) -> Response {
    Response::builder()
        .content_type(content_type)
        // Small files, revalidated on each load so an upgrade shows at once.
        .header(header::CACHE_CONTROL, "no-cache")
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY)
        .header(header::REFERRER_POLICY, "no-referrer")
        .body(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_module_the_scripts_import_is_served() {
        for asset in ASSETS.iter().filter(|asset| asset.name.ends_with(".js")) {
            for line in asset.body.lines() {
                let Some(rest) = line.split(" from \"./").nth(1) else {
                    continue;
                };
                let imported = rest.split('"').next().unwrap();
                assert!(
                    ASSETS.iter().any(|served| served.name == imported),
                    "{} imports {imported}, which is not in ASSETS",
                    asset.name
                );
            }
        }
    }
}
