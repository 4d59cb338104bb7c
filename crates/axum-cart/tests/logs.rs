//! No cart id in logs: a whole visit through the real router (adds, the page, an update, a
//! discount, a checkout, refused requests), with every log event of every crate recorded at
//! TRACE level, never prints the cart id. The cart ids are made large and distinctive first,
//! so the check cannot pass by accident. One test in its own binary (a global subscriber).

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use axum_cart::{cart_router, CartLayer, NewDiscount};
use common::{d, Harness, TestCatalog};
use http_body_util::BodyExt;
use tower::ServiceExt;
use tower_sessions::{MemoryStore, SessionManagerLayer};

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn send(
    app: &Router,
    method: &str,
    uri: &str,
    body: &str,
    cookie: &mut String,
) -> (StatusCode, String) {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::ACCEPT, "application/json")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body.to_owned()))
        .unwrap();
    if !cookie.is_empty() {
        req.headers_mut()
            .insert(header::COOKIE, cookie.parse().unwrap());
    }
    let res = app.clone().oneshot(req).await.unwrap();
    if let Some(c) = res.headers().get(header::SET_COOKIE) {
        *cookie = c.to_str().unwrap().split(';').next().unwrap().to_owned();
    }
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[test]
fn a_visit_never_logs_the_cart_id() {
    let buffer = Buffer::default();
    let writer = buffer.clone();
    tracing::subscriber::set_global_default(
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .finish(),
    )
    .expect("install the log recorder");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let id = rt.block_on(async {
        let h = Harness::sqlite().await.unwrap();
        h.raw
            .exec("INSERT INTO sqlite_sequence (name, seq) VALUES ('cart_carts', 7340286)")
            .await
            .unwrap();
        let carts = h.builder().catalog(TestCatalog::default()).build();
        carts
            .create_discount(NewDiscount::percent("LOGS10", d("10")))
            .await
            .unwrap();
        let app = Router::new()
            .merge(cart_router())
            .layer(CartLayer::new(carts.clone()))
            .layer(SessionManagerLayer::new(MemoryStore::default()).with_secure(false));
        let mut cookie = String::new();
        assert_eq!(
            send(&app, "POST", "/cart/add/book/1", "quantity=2", &mut cookie)
                .await
                .0,
            StatusCode::OK
        );
        send(&app, "POST", "/cart/add/coffee/3", "", &mut cookie).await;
        send(&app, "GET", "/cart", "", &mut cookie).await;
        send(
            &app,
            "POST",
            "/cart/update/book/1",
            "quantity=5",
            &mut cookie,
        )
        .await;
        send(&app, "POST", "/cart/discount", "code=logs10", &mut cookie).await;
        send(&app, "POST", "/cart/discount", "code=NOPE", &mut cookie).await;
        send(
            &app,
            "POST",
            "/cart/add/book/1",
            "quantity=abc",
            &mut cookie,
        )
        .await;
        send(&app, "POST", "/cart/remove/book/99", "", &mut cookie).await;
        let (status, body) = send(&app, "POST", "/cart/checkout", "", &mut cookie).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let id = carts
            .list_carts(&axum_cart::CartFilter::new())
            .await
            .unwrap()[0]
            .id;
        assert_eq!(id.get(), 7340287, "the cart got the distinctive id");
        id
    });
    let logs = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.len() > 1000,
        "the visit was logged ({} bytes)",
        logs.len()
    );
    assert!(
        !logs.contains(&id.to_string()),
        "the cart id {id} appears in the logs"
    );
    println!(
        "logs: {} bytes, {} lines, no cart id",
        logs.len(),
        logs.lines().count()
    );
}
