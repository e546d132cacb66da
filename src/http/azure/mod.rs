//! The Azure AI Vision surface: its routes per API family (Image Analysis 4.0 in `v4`, 3.2 in `v3`,
//! 3.2 `/ocr` in `ocr`, the asynchronous Read API in `read`, search vectors in `retrieval`,
//! background removal in `segment`), their JSON types, and Azure's error envelope in `error`.

pub mod error;
pub mod ocr;
pub mod read;
pub mod retrieval;
pub mod segment;
pub mod v3;
pub mod v4;

use std::sync::Arc;

use axum::routing::post;
use axum::Router;

use super::AppState;

/// Every route of the Azure surface.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/computervision/imageanalysis:analyze", post(v4::analyze))
        .route(
            "/computervision/imageanalysis:segment",
            post(segment::segment),
        )
        .route(
            "/computervision/retrieval:vectorizeImage",
            post(retrieval::vectorize_image),
        )
        .route(
            "/computervision/retrieval:vectorizeText",
            post(retrieval::vectorize_text),
        )
        .merge(v3::routes())
        .merge(ocr::routes())
        .merge(read::routes())
}
