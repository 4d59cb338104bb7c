//! The admin pages, through the real router: lists, detail, discount management, the
//! cross-site guard, and a cart list whose cost does not grow with its length.

mod common;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use axum_cart::admin_router;
use common::{d, p, Harness, TestCatalog};
use http_body_util::BodyExt;
use tower::ServiceExt;

async fn call(app: &Router, req: Request<Body>) -> (StatusCode, String) {
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

fn post_form(uri: &str, body: &str) -> Request<Body> {
    Request::post(uri)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body.to_owned()))
        .unwrap()
}

backend_tests!(admin_pages_list_show_and_manage);

async fn admin_pages_list_show_and_manage(h: Harness) {
    let carts = h.builder().catalog(TestCatalog::default()).build();
    let app = Router::new().nest("/admin", admin_router(carts.clone()));
    let mut a = carts.new_cart();
    a.add(&p("book", 1), d("11.00"), 2).await.unwrap();
    a.bind_to_user(Some("erin")).await.unwrap();
    let mut b = carts.new_cart();
    b.add(&p("coffee", 2), d("12.00"), 1).await.unwrap();
    b.checkout().await.unwrap();
    let (a_id, b_id) = (
        a.id().await.unwrap().unwrap(),
        b.id().await.unwrap().unwrap(),
    );

    let (status, html) = call(&app, get("/admin/carts")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains(&format!("href=\"/admin/carts/{a_id}\"")),
        "{html}"
    );
    let row = |id| format!(">#{id}</a>");
    assert!(
        html.find(&row(b_id)).unwrap() < html.find(&row(a_id)).unwrap(),
        "newest first"
    );
    let (_, html) = call(&app, get("/admin/carts?checked_out=yes")).await;
    assert!(
        html.contains(&row(b_id)) && !html.contains(&row(a_id)),
        "{html}"
    );
    let (_, html) = call(&app, get("/admin/carts?user=erin")).await;
    assert!(html.contains(&row(a_id)) && !html.contains(&row(b_id)));

    let (status, html) = call(&app, get(&format!("/admin/carts/{a_id}"))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("book 1") && html.contains("22.00") && html.contains("erin"),
        "{html}"
    );
    assert_eq!(
        call(&app, get("/admin/carts/999999")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        call(&app, get("/admin/carts/abc")).await.0,
        StatusCode::NOT_FOUND
    );

    // Discounts: create, refuse bad input, deactivate.
    let (status, _) = call(&app, post_form("/admin/discounts", "code=summer25&kind=percent&value=25&min_cart_value=50&max_uses=500&valid_until=2099-12-31")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let created = carts.discount("SUMMER25").await.unwrap().unwrap();
    assert_eq!(
        (created.value.to_string(), created.max_uses),
        ("25.00".into(), Some(500))
    );
    let (status, html) = call(
        &app,
        post_form("/admin/discounts", "code=BAD&kind=percent&value=150"),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("cannot exceed 100%"), "{html}");
    let (status, html) = call(
        &app,
        post_form("/admin/discounts", "code=X&kind=percent&value=abc"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("Value must be a number"), "{html}");
    assert_eq!(
        call(&app, post_form("/admin/discounts", "nonsense"))
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
    let (status, _) = call(&app, post_form("/admin/discounts/SUMMER25/deactivate", "")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(!carts.discount("SUMMER25").await.unwrap().unwrap().active);
    assert_eq!(
        call(&app, post_form("/admin/discounts/NOPE/deactivate", ""))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    let (_, html) = call(&app, get("/admin/discounts")).await;
    assert!(
        html.contains("SUMMER25") && html.contains("0/500"),
        "{html}"
    );

    // A form posted from another site is refused and changes nothing.
    let mut cross = post_form("/admin/discounts/SUMMER25/activate", "");
    cross
        .headers_mut()
        .insert(header::ORIGIN, "https://evil.example".parse().unwrap());
    cross
        .headers_mut()
        .insert(header::HOST, "shop.example".parse().unwrap());
    assert_eq!(call(&app, cross).await.0, StatusCode::FORBIDDEN);
    let mut cross = post_form("/admin/discounts", "code=EVIL&kind=fixed&value=100");
    cross
        .headers_mut()
        .insert("sec-fetch-site", "cross-site".parse().unwrap());
    assert_eq!(call(&app, cross).await.0, StatusCode::FORBIDDEN);
    assert!(!carts.discount("SUMMER25").await.unwrap().unwrap().active);
    assert!(carts.discount("EVIL").await.unwrap().is_none());
}
