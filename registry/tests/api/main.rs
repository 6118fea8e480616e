//! HTTP behaviour of the registry, driven through its axum router in
//! process with `tower::ServiceExt::oneshot`: no socket, real `FsStorage`
//! in a temporary folder. Each module covers one group of endpoints, except
//! `errors`, which covers what every endpoint must reject, and `support`,
//! which builds the router.

mod blobs;
mod errors;
mod lists;
mod manifests;
mod referrers;
mod routes;
mod support;
mod uploads;
