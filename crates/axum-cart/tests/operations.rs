//! Operations on every backend: listing carts for admin pages and cleaning abandoned carts
//! (the original's `clean_carts`, aged by last activity and deleted in batches).

mod common;

use axum_cart::{CartFilter, Carts};
use common::{d, p, Harness};

backend_tests!(
    list_carts_filters_and_counts,
    clean_ages_by_activity_in_batches
);

async fn age(h: &Harness, id: i64, days: i64) {
    let when = time::OffsetDateTime::now_utc().unix_timestamp() - days * 86_400;
    h.raw
        .exec(&format!(
            "UPDATE cart_carts SET created_at = {when}, updated_at = {when} WHERE id = {id}"
        ))
        .await
        .unwrap();
}

async fn new_cart(carts: &Carts, units: i64) -> i64 {
    let mut cart = carts.new_cart();
    cart.add(&p("book", 1), d("1.00"), units).await.unwrap();
    cart.add(&p("book", 2), d("1.00"), 1).await.unwrap();
    cart.id().await.unwrap().unwrap().get()
}

async fn list_carts_filters_and_counts(h: Harness) {
    let carts = h.carts();
    let a = new_cart(&carts, 3).await;
    let b = new_cart(&carts, 1).await;
    let mut c = carts.cart(axum_cart::CartId::new(b).unwrap());
    c.bind_to_user(Some("dora")).await.unwrap();
    c.checkout().await.unwrap();
    age(&h, a, 40).await;

    let all = carts.list_carts(&CartFilter::new()).await.unwrap();
    assert_eq!(
        all.iter().map(|r| r.id.get()).collect::<Vec<_>>(),
        vec![b, a],
        "newest first"
    );
    assert_eq!((all[1].line_count, all[1].item_count), (2, 4));
    let open = carts
        .list_carts(&CartFilter::new().checked_out(false))
        .await
        .unwrap();
    assert_eq!(open.iter().map(|r| r.id.get()).collect::<Vec<_>>(), vec![a]);
    let closed = carts
        .list_carts(&CartFilter::new().checked_out(true))
        .await
        .unwrap();
    assert_eq!(closed[0].user_id.as_deref(), Some("dora"));
    let dora = carts
        .list_carts(&CartFilter::new().user("dora"))
        .await
        .unwrap();
    assert_eq!(dora.len(), 1);
    let idle = carts
        .list_carts(&CartFilter::new().inactive_days(30))
        .await
        .unwrap();
    assert_eq!(idle.iter().map(|r| r.id.get()).collect::<Vec<_>>(), vec![a]);
    let page = carts
        .list_carts(&CartFilter::new().limit(1).offset(1))
        .await
        .unwrap();
    assert_eq!(page.iter().map(|r| r.id.get()).collect::<Vec<_>>(), vec![a]);
}

async fn clean_ages_by_activity_in_batches(h: Harness) {
    // CMD-01..05, CMD-10, CMD-11; weakness 14 (creation age, miscounts) done better.
    let carts = h.carts();
    let old = new_cart(&carts, 1).await;
    let young = new_cart(&carts, 1).await;
    let closed = new_cart(&carts, 1).await;
    let long_lived = new_cart(&carts, 1).await;
    let just_under = new_cart(&carts, 1).await;
    carts
        .cart(axum_cart::CartId::new(closed).unwrap())
        .checkout()
        .await
        .unwrap();
    age(&h, old, 100).await;
    age(&h, young, 10).await;
    age(&h, closed, 100).await;
    age(&h, long_lived, 200).await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    // Created long ago but active today: kept.
    h.raw
        .exec(&format!(
            "UPDATE cart_carts SET updated_at = {now} WHERE id = {long_lived}"
        ))
        .await
        .unwrap();
    // 89 days 23 hours idle: kept.
    let under = now - 90 * 86_400 + 3600;
    h.raw
        .exec(&format!(
            "UPDATE cart_carts SET updated_at = {under} WHERE id = {just_under}"
        ))
        .await
        .unwrap();

    assert_eq!(
        carts.clean(90, false, true, 100, |_| {}).await.unwrap(),
        1,
        "dry run counts"
    );
    assert_eq!(
        h.raw.count("SELECT COUNT(*) FROM cart_carts").await,
        5,
        "dry run deletes nothing"
    );
    assert_eq!(carts.clean(90, false, false, 100, |_| {}).await.unwrap(), 1);
    let ids = |sql: &'static str| h.raw.count(sql);
    assert_eq!(ids("SELECT COUNT(*) FROM cart_carts").await, 4);
    assert_eq!(
        h.raw
            .count(&format!(
                "SELECT COUNT(*) FROM cart_items WHERE cart_id = {old}"
            ))
            .await,
        0,
        "cascade"
    );
    assert_eq!(
        carts.clean(90, true, false, 100, |_| {}).await.unwrap(),
        1,
        "checked-out only with the flag"
    );
    assert_eq!(carts.clean(90, true, false, 100, |_| {}).await.unwrap(), 0);

    // Batches: 250 idle carts, 100 at a time.
    let mut bulk = Vec::new();
    for _ in 0..250 {
        bulk.push(new_cart(&carts, 1).await);
    }
    let when = now - 100 * 86_400;
    let (first, last) = (bulk[0], bulk[249]);
    h.raw
        .exec(&format!(
            "UPDATE cart_carts SET updated_at = {when} WHERE id BETWEEN {first} AND {last}"
        ))
        .await
        .unwrap();
    let mut seen = Vec::new();
    let deleted = carts
        .clean(90, false, false, 100, |n| seen.push(n))
        .await
        .unwrap();
    assert_eq!(deleted, 250);
    assert_eq!(seen, vec![100, 200, 250]);
}
