//! The route table: every path of the API with its handler and what it needs ([`Access`]),
//! in one list. [`super::router`] builds the router from it, each route behind its guard, and
//! the test that walks it ([`table`]) proves every route but `/healthz` and `/readyz`
//! refuses an anonymous request: a route cannot be added without saying what it needs.

use axum::http::Method;
use axum::routing::{MethodRouter, get, post};

use super::auth::Access;
use super::{
    ApiState, audit, backup, cases, events, export, forward, health, matches, orders, page, stream, studies, sync,
    unmatched, worklist,
};
use crate::config::Scope::{Audit, Export, Operator, Read, Status};

/// The pages a person opens in a browser: they take HTTP Basic credentials besides a bearer
/// token, and their 401 asks the browser for them ([`super::auth`]).
pub const BROWSER_PATHS: &[&str] = &["/", "/status"];

/// One route: method, path, what it needs, and its handler.
pub(super) struct Route {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
    pub handler: MethodRouter<ApiState>,
}

fn route(method: Method, path: &'static str, access: Access, handler: MethodRouter<ApiState>) -> Route {
    Route { method, path, access, handler }
}

/// Every route of the API.
pub(super) fn routes() -> Vec<Route> {
    use Access::{Metrics, Open, Scope};
    let (g, p) = (Method::GET, Method::POST);
    vec![
        route(g.clone(), "/", Scope(Status), get(page::root)),
        route(g.clone(), "/status", Scope(Status), get(page::page)),
        route(g.clone(), "/healthz", Open, get(health::healthz)),
        route(g.clone(), "/readyz", Open, get(health::readyz)),
        route(g.clone(), "/metrics", Metrics, get(health::metrics)),
        route(g.clone(), "/api/v1/events", Scope(Read), get(events::list)),
        route(g.clone(), "/api/v1/events/stream", Scope(Read), get(stream::events)),
        route(g.clone(), "/api/v1/events/{seq}", Scope(Read), get(events::one)),
        route(g.clone(), "/api/v1/studies", Scope(Read), get(studies::search)),
        route(g.clone(), "/api/v1/studies/{study_uid}", Scope(Read), get(studies::one)),
        route(g.clone(), "/api/v1/orders", Scope(Read), get(orders::search)),
        route(g.clone(), "/api/v1/orders/{order_id}", Scope(Read), get(orders::one)),
        route(g.clone(), "/api/v1/cases", Scope(Read), get(cases::search)),
        route(g.clone(), "/api/v1/cases/{case_id}", Scope(Read), get(cases::one)),
        route(g.clone(), "/api/v1/matches", Scope(Read), get(matches::list)),
        route(g.clone(), "/api/v1/unmatched/orders", Scope(Read), get(unmatched::orders)),
        route(g.clone(), "/api/v1/unmatched/studies", Scope(Read), get(unmatched::studies)),
        route(g.clone(), "/api/v1/worklist", Scope(Read), get(worklist::list)),
        // Needs `read` too (checked by the handler).
        route(g.clone(), "/api/v1/patients/{patient_id}/export", Scope(Export), get(export::export)),
        route(g.clone(), "/api/v1/status", Scope(Status), get(sync::status)),
        route(g.clone(), "/api/v1/dead-letters", Scope(Operator), get(sync::dead_letters)),
        route(p.clone(), "/api/v1/dead-letters/{seq}/retry", Scope(Operator), post(sync::retry)),
        route(p.clone(), "/api/v1/dead-letters/{seq}/skip", Scope(Operator), post(sync::skip)),
        route(p.clone(), "/api/v1/sync/fork", Scope(Operator), post(sync::fork)),
        route(g.clone(), "/api/v1/forward/dead-letters", Scope(Operator), get(forward::list)),
        route(
            p.clone(),
            "/api/v1/forward/dead-letters/{destination}/{seq}/retry",
            Scope(Operator),
            post(forward::retry),
        ),
        route(p, "/api/v1/forward/dead-letters/{destination}/{seq}/skip", Scope(Operator), post(forward::skip)),
        route(g.clone(), "/api/v1/backup", Scope(Operator), get(backup::backup)),
        route(g, "/api/v1/audit", Scope(Audit), get(audit::list)),
    ]
}

/// The table as data: `(method, path, access)` of every route, for tests and docs.
pub fn table() -> Vec<(Method, &'static str, Access)> {
    routes().into_iter().map(|r| (r.method, r.path, r.access)).collect()
}

#[cfg(test)]
#[path = "routes_tests.rs"]
mod tests;
