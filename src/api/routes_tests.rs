//! The access rules, walked over the route table: a route cannot be added without saying
//! what it needs, and whatever it says, nobody anonymous gets past `/healthz` and `/readyz`.

use axum::http::{Method, StatusCode, header};

use super::super::auth::Access;
use super::super::test_api::{ALL, LOCAL, READ, STATUS, api, api_with, call, call_full};
use super::table;
use crate::config::Scope;

/// A concrete path for a route's pattern (`{seq}` → `1`).
fn concrete(pattern: &str) -> String {
    pattern.split('/').map(|part| if part.starts_with('{') { "1" } else { part }).collect::<Vec<_>>().join("/")
}

/// A client token lacking `scope`.
fn without(scope: Scope) -> &'static str {
    if scope == Scope::Read { STATUS } else { READ }
}

/// Status only (the event stream's body never ends).
async fn status_of(state: &super::super::ApiState, method: &Method, path: &str, token: &str) -> StatusCode {
    use hyper::service::Service;
    let request = axum::http::Request::builder()
        .method(method)
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(axum::body::Body::empty())
        .unwrap();
    let service = hyper_util::service::TowerToHyperService::new(super::super::router(state.clone()));
    service.call(request).await.unwrap().status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_but_healthz_and_readyz_refuses_an_anonymous_request() {
    // Room for one unknown token per route before the failure limit answers 429 instead.
    let a = api_with("auth_failures_per_minute = 1000\n").await;
    let routes = table();
    assert!(routes.len() >= 20, "the table is the whole API: {}", routes.len());
    let open: Vec<&str> = routes.iter().filter(|r| r.2 == Access::Open).map(|r| r.1).collect();
    assert_eq!(open, ["/healthz", "/readyz"]);
    for (method, pattern, access) in &routes {
        let path = concrete(pattern);
        let (status, headers, body) = call_full(&a.state, method.as_str(), &path, None).await;
        if *access == Access::Open {
            assert_eq!(status, StatusCode::OK, "{method} {path}");
            continue;
        }
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path} answered an anonymous request");
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        if super::BROWSER_PATHS.contains(pattern) {
            // A page a browser opens: the browser is asked for credentials.
            assert!(headers[header::WWW_AUTHENTICATE].to_str().unwrap().starts_with("Basic realm="), "{path}");
            assert!(body["error"].as_str().unwrap().contains("token as the password"), "{method} {path}: {body}");
        } else {
            assert_eq!(headers[header::WWW_AUTHENTICATE], "Bearer", "{method} {path}");
            assert!(body["error"].as_str().unwrap().contains("Authorization: Bearer"), "{method} {path}: {body}");
        }
        // Another method on the same path, and an unknown token, are refused the same way.
        let other = if method == Method::GET { "POST" } else { "GET" };
        assert_eq!(call(&a.state, other, &path, None).await.0, StatusCode::UNAUTHORIZED, "{other} {path}");
        let (status, _) = call(&a.state, method.as_str(), &path, Some("not-a-client-token-000000")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path} with an unknown token");
    }
    a.log.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_refuses_a_client_without_its_scope_and_serves_one_with_it() {
    let a = api(None).await;
    for (method, pattern, access) in table() {
        let path = concrete(pattern);
        let needed = match access {
            Access::Scope(scope) => scope,
            Access::Metrics => Scope::Status,
            Access::Open | Access::Authenticated => continue,
        };
        let (status, body) = call(&a.state, method.as_str(), &path, Some(without(needed))).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}");
        assert!(body["error"].as_str().unwrap().contains(needed.name()), "{method} {path}: {body}");
        for token in [ALL, LOCAL] {
            let status = status_of(&a.state, &method, &path, token).await;
            assert!(
                ![StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN].contains(&status),
                "{method} {path} refused a client with every scope: {status}"
            );
        }
    }
    a.log.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_that_matches_no_route_is_401_to_anonymous_callers_and_404_to_clients() {
    let a = api(None).await;
    assert_eq!(call(&a.state, "GET", "/api/v1/nothing", None).await.0, StatusCode::UNAUTHORIZED);
    let (status, body) = call(&a.state, "GET", "/api/v1/nothing", Some(READ)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "no such path: /api/v1/nothing");
    a.log.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_open_with_metrics_open_and_the_old_operator_token_has_only_its_scope() {
    let a = api_with("metrics_open = true\noperator_token = \"0123456789abcdef\"\n").await;
    assert_eq!(call_full(&a.state, "GET", "/metrics", None).await.0, StatusCode::OK);
    let (status, _) = call(&a.state, "GET", "/api/v1/dead-letters", Some("0123456789abcdef")).await;
    assert_eq!(status, StatusCode::OK, "operator scope");
    let (status, _) = call(&a.state, "GET", "/api/v1/events", Some("0123456789abcdef")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "no read scope");
    a.log.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheme_is_case_insensitive_and_other_schemes_are_no_token() {
    let a = api(None).await;
    let (status, _, _) = call_full(&a.state, "GET", "/api/v1/events", Some(&format!("bearer {READ}"))).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = call_full(&a.state, "GET", "/api/v1/events", Some(&format!("Basic {READ}"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = call_full(&a.state, "GET", "/api/v1/events", Some("Bearer ")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    a.log.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_authentications_past_the_limit_are_answered_429_with_retry_after() {
    let a = api_with("auth_failures_per_minute = 3\n").await;
    for _ in 0..3 {
        assert_eq!(
            call(&a.state, "GET", "/api/v1/events", Some("guess-000000000000")).await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    let (status, headers, body) = call_full(&a.state, "GET", "/api/v1/events", Some("Bearer guess-1")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = headers[header::RETRY_AFTER].to_str().unwrap().parse().unwrap();
    assert!((1..=20).contains(&wait), "one failure refills in 20 s: {wait}");
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"], "too many failed authentications from this address");
    // Until the minute refills, a good token from that address waits too; health stays open.
    assert_eq!(call(&a.state, "GET", "/api/v1/events", Some(READ)).await.0, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(call(&a.state, "GET", "/healthz", None).await.0, StatusCode::OK);
    let metrics = a.state.metrics.encode();
    assert!(metrics.contains("zenedge_http_refused_total{reason=\"bad_token\"} 3"), "{metrics}");
    // Each failure, and only those tried, is in the audit trail: User Authentication failed.
    let trail = crate::audit::page(&a.log.reader(), 0, 100).unwrap();
    let failed: Vec<_> = trail.iter().filter(|r| r.record.event.code == "110114").collect();
    assert_eq!(failed.len(), 3, "{trail:?}");
    assert_eq!(failed[0].record.participants[0].user_id, "anonymous");
    assert_eq!(failed[0].record.objects[0].id, "/api/v1/events");
    a.log.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_past_the_per_source_rate_are_answered_429_with_retry_after() {
    let a = api_with("requests_per_second = 5\n").await;
    for _ in 0..5 {
        assert_eq!(call(&a.state, "GET", "/healthz", None).await.0, StatusCode::OK);
    }
    let (status, headers, _) = call_full(&a.state, "GET", "/api/v1/events", Some(&format!("Bearer {READ}"))).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers[header::RETRY_AFTER], "1");
    a.log.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_with_its_own_rate_is_held_to_it_and_the_others_are_not() {
    let hash = crate::ids::hex(&crate::config::token_sha256(b"slow-client-token-0123"));
    let extra = format!(
        "[[http.clients]]\nname = \"slow\"\ntoken_sha256 = \"{hash}\"\nscopes = [\"status\"]\nrequests_per_second = 2\n"
    );
    let a = api_with(&extra).await;
    for _ in 0..2 {
        assert_eq!(call(&a.state, "GET", "/api/v1/status", Some("slow-client-token-0123")).await.0, StatusCode::OK);
    }
    let (status, body) = call(&a.state, "GET", "/api/v1/status", Some("slow-client-token-0123")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body["error"], "too many requests from client \"slow\": slow down");
    assert_eq!(call(&a.state, "GET", "/api/v1/status", Some(STATUS)).await.0, StatusCode::OK, "another client");
    a.log.close().await.unwrap();
}
