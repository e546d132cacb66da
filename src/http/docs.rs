//! The pages a person or a container orchestrator opens: `/` (what this server is, with links),
//! `/status` (the Read container's status route: ready or not, and no billing), `/swagger` (the API
//! documentation, rendered by a few lines of script, no CDN) and `/swagger/v1/swagger.json` (the
//! OpenAPI document of every route vista serves; the end-to-end suite checks each one exists).

use std::sync::Arc;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::AppState;

const OPENAPI: &str = include_str!("openapi.json");

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(|| async { Html(START_PAGE) }))
        .route("/status", get(status))
        .route("/swagger", get(|| async { Html(SWAGGER_PAGE) }))
        .route("/swagger/v1/swagger.json", get(openapi))
}

async fn openapi() -> Response {
    ([(CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// 200 once the models and the operation store are ready, 503 before; the API key is never checked
/// against a billing endpoint, since there is none.
async fn status(State(state): State<Arc<AppState>>) -> Response {
    let ready = state.pipeline.models().detector.is_some() && state.reads.store_reachable().await;
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let message = if ready {
        "vista is ready. There is no billing: no usage or data leaves this machine."
    } else {
        "vista is starting or its operation store is unreachable; see /ready."
    };
    (
        code,
        Json(
            json!({"apiStatus": if ready { "Valid" } else { "NotReady" },
                       "apiStatusMessage": message, "ready": ready}),
        ),
    )
        .into_response()
}

const START_PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>vista</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:46rem;margin:3rem auto;padding:0 1rem}code{background:#eee;padding:0 .2rem}</style>
</head><body>
<h1>vista</h1>
<p>A self-hosted image-analysis server. It speaks the Azure AI Vision, Google Cloud Vision, AWS Rekognition
and DeepStack protocols and runs every model on this machine: images never leave it.</p>
<ul>
<li><a href="/swagger">API documentation</a> (<a href="/swagger/v1/swagger.json">OpenAPI document</a>)</li>
<li><a href="/ready">Readiness and the installed models</a>, <a href="/status">status</a>, <a href="/metrics">metrics</a></li>
</ul>
<p><a href="/studio">vista studio</a>: try every feature on your own images in this browser (unless the
server was started with <code>--no-studio</code>).</p>
</body></html>
"#;

const SWAGGER_PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>vista API</title>
<style>body{font:15px/1.45 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}
h2{margin-top:2rem;border-bottom:1px solid #ccc}.op{margin:.4rem 0}.m{display:inline-block;width:3.5rem;font-weight:bold;text-transform:uppercase}
code{background:#f2f2f2;padding:0 .25rem}small{color:#555}</style></head>
<body><h1>vista API</h1><p id="about"></p><div id="ops">Loading <a href="/swagger/v1/swagger.json">the OpenAPI document</a>…</div>
<script>
fetch("/swagger/v1/swagger.json").then(r => r.json()).then(doc => {
  document.getElementById("about").textContent = doc.info.description;
  const groups = {};
  for (const [path, methods] of Object.entries(doc.paths))
    for (const [method, op] of Object.entries(methods))
      (groups[op.tags[0]] = groups[op.tags[0]] || []).push({path, method, op});
  const root = document.getElementById("ops");
  root.textContent = "";
  for (const [tag, ops] of Object.entries(groups)) {
    const h = document.createElement("h2"); h.textContent = tag; root.appendChild(h);
    for (const {path, method, op} of ops) {
      const div = document.createElement("div"); div.className = "op";
      const m = document.createElement("span"); m.className = "m"; m.textContent = method;
      const c = document.createElement("code"); c.textContent = path;
      const s = document.createElement("small");
      const names = (op.parameters || []).filter(p => p.in === "query").map(p => p.name);
      s.textContent = " " + op.summary + (names.length ? " (query: " + names.join(", ") + ")" : "");
      div.append(m, c, s); root.appendChild(div);
    }
  }
});
</script></body></html>
"#;
