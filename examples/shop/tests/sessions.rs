//! One visitor's requests racing each other, against real `shop` processes: on SQLite (its
//! own session table) and on PostgreSQL with sessions in Redis. And a Redis that refuses
//! writes. See `docs/CONCURRENCY.md`, "Requests of one session".
//!
//! The PostgreSQL and Redis tests need `CART_TEST_POSTGRES_URL` and `CART_TEST_REDIS_URL`
//! and skip loudly without them.

mod support;

use std::net::SocketAddr;

use support::{Client, PgSchema, Response, ShopProcess};
use tokio::task::JoinSet;

/// Sends `requests` (method, path, form) at once with the client's cookies; the client
/// takes the answers' cookies in the order they arrive. Returns the answers in that order.
async fn at_once(
    client: &mut Client,
    addr: SocketAddr,
    requests: Vec<(&'static str, String, Option<&'static str>)>,
) -> Vec<(String, Response)> {
    let mut set = JoinSet::new();
    for (method, path, form) in requests {
        let mut c = client.clone();
        set.spawn(async move {
            let json = form.is_none();
            let res = c
                .send(addr, method, &path, json, form)
                .await
                .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
            (path, res)
        });
    }
    let mut answers = Vec::new();
    while let Some(done) = set.join_next().await {
        let (path, res) = done.expect("request task");
        client.absorb(&res);
        answers.push((path, res));
    }
    answers
}

fn adds(n: usize, path: &str) -> Vec<(&'static str, String, Option<&'static str>)> {
    (0..n).map(|_| ("POST", path.to_owned(), None)).collect()
}

async fn count(client: &mut Client, addr: SocketAddr) -> i64 {
    let res = client.get_json(addr, "/cart").await.expect("GET /cart");
    assert_eq!(res.status, 200, "{}", res.body);
    res.json()["count"].as_i64().expect("count")
}

/// The whole race suite against one running shop.
async fn one_visitor_races(addr: SocketAddr, tag: &str) {
    // After a checkout, 20 adds at once with the same session: all in the next cart.
    let mut visitor = Client::new();
    let res = visitor
        .post_json(addr, "/cart/add/book/1", None)
        .await
        .unwrap();
    assert_eq!(res.status, 200, "{}", res.body);
    let res = visitor
        .post_json(addr, "/cart/checkout", None)
        .await
        .unwrap();
    assert_eq!(res.status, 200, "{}", res.body);
    let answers = at_once(&mut visitor, addr, adds(20, "/cart/add/coffee/2")).await;
    assert!(answers.iter().all(|(_, r)| r.status == 200), "{answers:?}");
    assert_eq!(
        count(&mut visitor, addr).await,
        20,
        "{tag}: 20 acknowledged adds"
    );

    // A checkout racing 30 adds: no 5xx; the order plus the next cart hold every unit.
    let mut requests = adds(30, "/cart/add/coffee/3");
    requests.insert(10, ("POST", "/cart/checkout".to_owned(), None));
    let answers = at_once(&mut visitor, addr, requests).await;
    for (path, r) in &answers {
        assert_eq!(r.status, 200, "{tag}: {path}: {}", r.body);
    }
    let (_, order) = answers
        .iter()
        .find(|(p, _)| p == "/cart/checkout")
        .expect("the checkout answer");
    let ordered = order.json()["count"].as_i64().expect("count");
    assert_eq!(
        ordered + count(&mut visitor, addr).await,
        20 + 30,
        "{tag}: nothing lost"
    );

    // A double submit of the checkout page: the same confirmation twice.
    visitor
        .post_json(addr, "/cart/add/book/4", None)
        .await
        .unwrap();
    let answers = at_once(
        &mut visitor,
        addr,
        vec![
            ("POST", "/checkout".to_owned(), Some("")),
            ("POST", "/checkout".to_owned(), Some("")),
        ],
    )
    .await;
    for (_, r) in &answers {
        assert_eq!(r.status, 200, "{tag}: {}", r.body);
        assert!(r.body.contains("Thank you for your order!"), "{}", r.body);
    }
    assert_eq!(
        answers[0].1.body, answers[1].1.body,
        "{tag}: the same order"
    );

    // A login racing 20 adds: the user's cart ends with every unit.
    let user = support::unique_name("racer").replace('_', "-");
    let user = &user[..user.len().min(40)];
    let mut laptop = Client::new();
    laptop
        .post_json(addr, "/cart/add/book/5", None)
        .await
        .unwrap();
    let form: &'static str = Box::leak(format!("username={user}").into_boxed_str());
    let res = laptop
        .send(addr, "POST", "/login", false, Some(form))
        .await
        .unwrap();
    assert_eq!(res.status, 303, "{}", res.body);
    let mut phone = Client::new();
    phone
        .post_json(addr, "/cart/add/book/6", None)
        .await
        .unwrap();
    let mut requests = adds(20, "/cart/add/coffee/7");
    requests.insert(5, ("POST", "/login".to_owned(), Some(form)));
    let answers = at_once(&mut phone, addr, requests).await;
    for (path, r) in &answers {
        assert!(
            r.status == 200 || (path == "/login" && r.status == 303),
            "{tag}: {path}: {} {}",
            r.status,
            r.body
        );
    }
    assert_eq!(
        count(&mut phone, addr).await,
        22,
        "{tag}: the laptop's book, the phone's book and 20 coffees"
    );
    assert_eq!(count(&mut laptop, addr).await, 22, "{tag}: one user cart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_visitors_racing_requests_share_one_cart_on_sqlite() {
    let path = std::env::temp_dir().join(format!("{}.db", support::unique_name("races")));
    let url = format!("sqlite://{}", path.display());
    let shop = ShopProcess::start("races-sqlite", &[("DATABASE_URL", url.as_str())]).await;
    one_visitor_races(shop.addr, "sqlite").await;
    drop(shop);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(all(cart_test_postgres, cart_test_redis)),
    ignore = "needs CART_TEST_POSTGRES_URL and CART_TEST_REDIS_URL"
)]
async fn one_visitors_racing_requests_share_one_cart_on_postgres_and_redis() {
    let test = "races-pg-redis";
    let Some(redis) = support::redis_url(test) else {
        return;
    };
    let Some(schema) = PgSchema::create(test).await else {
        return;
    };
    let shop = ShopProcess::start(
        test,
        &[
            ("DATABASE_URL", schema.url.as_str()),
            ("REDIS_URL", redis.as_str()),
        ],
    )
    .await;
    one_visitor_races(shop.addr, "postgres + redis").await;
}

/// Redis answering errors to writes (a read-only user, as a replica or a full instance
/// answers): a new visitor's add is a 503 with the library's error body, and no cart row is
/// left that no session points to. A returning visitor's cart keeps working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(all(cart_test_postgres, cart_test_redis)),
    ignore = "needs CART_TEST_POSTGRES_URL and CART_TEST_REDIS_URL"
)]
async fn redis_refusing_writes_is_a_503_and_leaves_no_cart() {
    let test = "sessions-redis-readonly";
    let Some(redis) = support::redis_url(test) else {
        return;
    };
    let Some(schema) = PgSchema::create(test).await else {
        return;
    };
    let user = support::unique_name("cart_ro");
    let password = "ro-secret";
    // A user that may read every key but write none; removed at the end.
    let acl = support::redis_commands(
        &redis,
        &[vec![
            "ACL",
            "SETUSER",
            &user,
            "on",
            &format!(">{password}"),
            "~*",
            "&*",
            "+@all",
            "-@write",
        ]],
    )
    .await
    .expect("ACL SETUSER");
    assert!(acl.contains("+OK"), "{acl}");
    let rest = redis.strip_prefix("redis://").expect("redis url");
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    let readonly = format!("redis://{user}:{password}@{rest}");

    // A returning visitor got her cart while writes still worked.
    let writable = ShopProcess::start(
        &format!("{test}-rw"),
        &[
            ("DATABASE_URL", schema.url.as_str()),
            ("REDIS_URL", redis.as_str()),
        ],
    )
    .await;
    let mut regular = Client::new();
    let res = regular
        .post_json(writable.addr, "/cart/add/book/1", None)
        .await
        .unwrap();
    assert_eq!(res.status, 200, "{}", res.body);
    drop(writable);

    let shop = ShopProcess::start(
        test,
        &[
            ("DATABASE_URL", schema.url.as_str()),
            ("REDIS_URL", readonly.as_str()),
        ],
    )
    .await;
    let pool = schema.pool().await;
    let carts = || async {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM cart_carts")
            .fetch_one(&pool)
            .await
            .expect("count carts")
    };
    assert_eq!(carts().await, 1);

    let mut newcomer = Client::new();
    for _ in 0..3 {
        let res = newcomer
            .post_json(shop.addr, "/cart/add/book/2", None)
            .await
            .unwrap();
        assert_eq!(res.status, 503, "{}", res.body);
        assert_eq!(res.header("retry-after"), Some("5"));
        assert_eq!(res.json()["code"], "session_unavailable", "{}", res.body);
        assert!(newcomer.session().is_none(), "no session cookie");
    }
    assert_eq!(carts().await, 1, "no cart row that no session points to");
    let log = shop.log();
    assert!(
        log.contains("session"),
        "the failure is logged at the default level:\n{log}"
    );

    // The returning visitor's adds need no session write: they keep working.
    let res = regular
        .post_json(shop.addr, "/cart/add/book/1", None)
        .await
        .unwrap();
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.json()["count"], 2);

    drop(shop);
    let _ = support::redis_commands(&redis, &[vec!["ACL", "DELUSER", &user]]).await;
}
