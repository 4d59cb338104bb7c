//! Several app servers: real `shop` processes on different local ports sharing one
//! PostgreSQL database (a fresh schema per test) and one Redis session store, with the
//! in-memory session cache off (`SESSION_CACHE=0`). A visitor's cookie works on every
//! process, a cart filled through one is seen whole through the others, concurrent adds
//! spread over the processes lose nothing, and a discount race spread over the processes
//! gives exactly `max_uses` orders.
//!
//! Needs `CART_TEST_POSTGRES_URL` and `CART_TEST_REDIS_URL`; skips loudly without them.
//! See `docs/RELIABILITY.md`, "Several app servers".

mod support;

use axum_cart::{Carts, NewDiscount};
use rust_decimal::Decimal;
use support::{redis_del, redis_exists, redis_url, Client, PgSchema, ShopProcess};

/// Starts `n` shops on the schema and Redis, all at once (start-up preparation is safe to
/// race: see `startup.rs`).
async fn start_shops(test: &str, schema: &PgSchema, redis: &str, n: usize) -> Vec<ShopProcess> {
    let env = [
        ("DATABASE_URL", schema.url.as_str()),
        ("REDIS_URL", redis),
        ("SESSION_CACHE", "0"),
    ];
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let name = format!("{test}-{i}");
            let env: Vec<(&'static str, String)> =
                env.iter().map(|(k, v)| (*k, v.to_string())).collect();
            tokio::spawn(async move {
                let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
                ShopProcess::start(&name, &env).await
            })
        })
        .collect();
    let mut shops = Vec::new();
    for task in tasks {
        shops.push(task.await.expect("start a shop"));
    }
    shops
}

fn items(cart: &serde_json::Value) -> Vec<(String, i64, i64)> {
    cart["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| {
            (
                i["kind"].as_str().expect("kind").to_owned(),
                i["id"].as_i64().expect("id"),
                i["quantity"].as_i64().expect("quantity"),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(all(cart_test_postgres, cart_test_redis)),
    ignore = "needs CART_TEST_POSTGRES_URL and CART_TEST_REDIS_URL"
)]
async fn one_cookie_one_cart_on_every_process() {
    let test = "scaleout-sessions";
    let Some(redis) = redis_url(test) else { return };
    let Some(schema) = PgSchema::create(test).await else {
        return;
    };
    let shops = start_shops(test, &schema, &redis, 3).await;
    let [a, b, c] = [shops[0].addr, shops[1].addr, shops[2].addr];
    let mut sessions = Vec::new();

    // The first add, through A, sets the session cookie; the session is in Redis.
    let mut visitor = Client::new();
    let res = visitor
        .send(a, "POST", "/cart/add/book/1", false, Some("quantity=2"))
        .await
        .unwrap();
    assert_eq!(res.status, 303, "{}", res.body);
    let session = visitor.session().expect("a session cookie").to_owned();
    sessions.push(session.clone());
    assert!(
        redis_exists(&redis, &session).await.unwrap(),
        "the session is kept in Redis"
    );

    // The same cookie on B and C: the same cart.
    for addr in [b, c] {
        let cart = visitor.get_json(addr, "/cart").await.unwrap();
        assert_eq!(cart.status, 200, "{}", cart.body);
        assert_eq!(items(&cart.json()), vec![("book".into(), 1, 2)]);
    }

    // Fill the cart through A only (10 more products), read it through B and C.
    let mut expected = vec![("book".to_owned(), 1, 2)];
    for id in 2..=11 {
        let q = id % 3 + 1;
        let res = visitor
            .post_json(
                a,
                &format!("/cart/add/book/{id}"),
                Some(&format!("quantity={q}")),
            )
            .await
            .unwrap();
        assert_eq!(res.status, 200, "{}", res.body);
        expected.push(("book".to_owned(), id, q));
    }
    let through_a = visitor.get_json(a, "/cart").await.unwrap().json();
    for addr in [b, c] {
        let other = visitor.get_json(addr, "/cart").await.unwrap().json();
        assert_eq!(items(&other), expected, "the whole cart, through {addr}");
        assert_eq!(other, through_a, "the same JSON through every process");
    }

    // 30 concurrent adds of one product, spread round-robin over the three processes.
    let mut tasks = Vec::new();
    for i in 0..30 {
        let addr = shops[i % 3].addr;
        let mut v = visitor.clone();
        tasks.push(tokio::spawn(async move {
            v.post_json(addr, "/cart/add/coffee/1", None).await.unwrap()
        }));
    }
    for t in tasks {
        let res = t.await.unwrap();
        assert_eq!(res.status, 200, "{}", res.body);
    }
    for addr in [a, b, c] {
        let cart = visitor.get_json(addr, "/cart").await.unwrap().json();
        let coffee = items(&cart)
            .into_iter()
            .find(|(k, id, _)| k == "coffee" && *id == 1);
        assert_eq!(coffee, Some(("coffee".into(), 1, 30)), "no add lost");
    }

    // A code applied through B, checkout through C; A then sees a fresh, empty cart.
    let res = visitor
        .post_json(b, "/cart/discount", Some("code=FIXED10"))
        .await
        .unwrap();
    assert_eq!(res.status, 200, "{}", res.body);
    let res = visitor.post_json(c, "/cart/checkout", None).await.unwrap();
    assert_eq!(res.status, 200, "{}", res.body);
    let order = res.json();
    assert_eq!(order["checked_out"], true);
    assert_eq!(order["discount_code"], "FIXED10");
    let after = visitor.get_json(a, "/cart").await.unwrap().json();
    assert_eq!(after["count"], 0, "checkout let go of the cart everywhere");

    // A second visitor never sees the first one's cart, whichever process it hits.
    let mut other = Client::new();
    for addr in [a, b, c] {
        let cart = other.get_json(addr, "/cart").await.unwrap().json();
        assert_eq!(cart["count"], 0);
    }

    // The order was recorded once, by whichever process's relay took the outbox's event.
    let pool = schema.pool().await;
    let orders = eventually(&pool, "SELECT COUNT(*) FROM shop_orders", None, 1).await;
    assert_eq!(orders, 1);
    pool.close().await;

    for mut shop in shops {
        assert!(shop.alive(), "shop {} is still up", shop.name);
        shop.kill();
    }
    if let Some(s) = visitor.session() {
        sessions.push(s.to_owned());
    }
    redis_del(&redis, &sessions).await.unwrap();
    eprintln!(
        "scaleout-sessions: 3 processes, {} requests, 1 cart seen whole everywhere, 30/30 \
         concurrent adds counted",
        1 + 2 + 10 + 3 + 30 + 3 + 3 + 3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(all(cart_test_postgres, cart_test_redis)),
    ignore = "needs CART_TEST_POSTGRES_URL and CART_TEST_REDIS_URL"
)]
async fn a_discount_race_across_processes_gives_exactly_max_uses() {
    let test = "scaleout-race";
    let Some(redis) = redis_url(test) else { return };
    let Some(schema) = PgSchema::create(test).await else {
        return;
    };
    let shops = start_shops(test, &schema, &redis, 3).await;
    let addrs: Vec<_> = shops.iter().map(|s| s.addr).collect();

    // The code, created through the library on the same database.
    let pool = schema.pool().await;
    let carts = Carts::builder(pool.clone()).build();
    carts
        .create_discount(NewDiscount::percent("RACE5", Decimal::from(10)).max_uses(5))
        .await
        .unwrap();

    // 12 carts on RACE5 (5 uses) and 6 on the seeded LASTONE (1 use), each filled through
    // one process and given its code through another.
    let mut visitors = Vec::new();
    for i in 0..18usize {
        let code = if i < 12 { "RACE5" } else { "LASTONE" };
        let mut v = Client::new();
        let res = v
            .post_json(addrs[i % 3], &format!("/cart/add/book/{}", i + 1), None)
            .await
            .unwrap();
        assert_eq!(res.status, 200, "{}", res.body);
        let res = v
            .post_json(
                addrs[(i + 1) % 3],
                "/cart/discount",
                Some(&format!("code={code}")),
            )
            .await
            .unwrap();
        assert_eq!(res.status, 200, "{}", res.body);
        visitors.push((code, v));
    }

    // All checkouts at once, each through a third process.
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(visitors.len()));
    let mut tasks = Vec::new();
    for (i, (code, mut v)) in visitors.into_iter().enumerate() {
        let addr = addrs[(i + 2) % 3];
        let start = start.clone();
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            let res = v.post_json(addr, "/cart/checkout", None).await.unwrap();
            (code, res, v)
        }));
    }
    let mut won = std::collections::HashMap::<&str, usize>::new();
    let mut lost = std::collections::HashMap::<&str, usize>::new();
    let mut sessions = Vec::new();
    for t in tasks {
        let (code, res, v) = t.await.unwrap();
        sessions.extend(v.cookies.get("shop_session").cloned());
        match res.status {
            200 => {
                assert_eq!(res.json()["checked_out"], true);
                *won.entry(code).or_default() += 1;
            }
            422 => {
                assert_eq!(res.json()["code"], "invalid_discount", "{}", res.body);
                *lost.entry(code).or_default() += 1;
            }
            other => panic!("checkout answered {other}: {}", res.body),
        }
    }
    assert_eq!(won.get("RACE5"), Some(&5), "{won:?} {lost:?}");
    assert_eq!(lost.get("RACE5"), Some(&7), "{won:?} {lost:?}");
    assert_eq!(won.get("LASTONE"), Some(&1), "{won:?} {lost:?}");
    assert_eq!(lost.get("LASTONE"), Some(&5), "{won:?} {lost:?}");

    for (code, max) in [("RACE5", 5), ("LASTONE", 1)] {
        let d = carts.discount(code).await.unwrap().expect("the code");
        assert_eq!(d.current_uses, max, "{code}: current_uses == max_uses");
        let checked_out: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM cart_carts c JOIN cart_discounts d ON d.id = c.discount_id \
             WHERE c.checked_out AND d.code = $1",
        )
        .bind(code)
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(checked_out, max, "{code}: one checked-out cart per use");
        let orders = eventually(
            &pool,
            "SELECT COUNT(*) FROM shop_orders WHERE discount_code = $1",
            Some(code),
            max,
        )
        .await;
        assert_eq!(orders, max, "{code}: one order per use");
    }
    pool.close().await;

    for mut shop in shops {
        assert!(shop.alive(), "shop {} is still up", shop.name);
        shop.kill();
    }
    redis_del(&redis, &sessions).await.unwrap();
    eprintln!(
        "scaleout-race: 3 processes, 18 carts, 18 concurrent checkouts: RACE5 5 won / 7 \
         refused, LASTONE 1 won / 5 refused; current_uses == max_uses"
    );
}

/// The count `sql` gives once it reaches `expected` (the relays write the orders from the
/// outbox, a moment after the checkouts), or after 30 s whatever it is then.
async fn eventually(pool: &sqlx::PgPool, sql: &str, bind: Option<&str>, expected: i64) -> i64 {
    let started = std::time::Instant::now();
    loop {
        let mut query = sqlx::query_scalar::<_, i64>(sql);
        if let Some(b) = bind {
            query = query.bind(b.to_owned());
        }
        let n = query.fetch_one(pool).await.unwrap();
        if n >= expected || started.elapsed() > std::time::Duration::from_secs(30) {
            return n;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
