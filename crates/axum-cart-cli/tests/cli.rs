//! The `cart` binary, run as an operator would, on a fresh SQLite file.

use std::process::Command;

fn cart(db: &str, args: &[&str]) -> (bool, String, String) {
    cart_env(db, args, &[])
}

/// `cart` with these environment variables, and none of the sinks' but those.
fn cart_env(db: &str, args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cart"));
    command.args(args).env("DATABASE_URL", db);
    for var in [
        "EVENTS_NATS_URL",
        "EVENTS_AMQP_URL",
        "EVENTS_WEBHOOK_URL",
        "EVENTS_WEBHOOK_SECRET",
    ] {
        command.env_remove(var);
    }
    command.envs(env.iter().copied());
    let out = command.output().expect("run cart");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn temp_db(name: &str) -> (String, std::path::PathBuf) {
    let path = std::env::temp_dir().join(format!("cart-cli-{}-{name}.db", std::process::id()));
    let _ = std::fs::remove_file(&path);
    (format!("sqlite://{}", path.display()), path)
}

#[test]
fn migrate_discounts_and_clean() {
    let (db, path) = temp_db("main");
    let (ok, out, _) = cart(&db, &["migrate"]);
    assert!(ok);
    assert_eq!(out.trim(), "Cart tables are up to date (sqlite).");
    let (ok, _, _) = cart(&db, &["migrate"]);
    assert!(ok, "migrate runs again harmlessly");

    let (ok, out, err) = cart(
        &db,
        &[
            "discount",
            "create",
            "summer25",
            "--percent",
            "25",
            "--min-cart-value",
            "50",
            "--max-uses",
            "500",
        ],
    );
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "Created discount SUMMER25 (25%).");
    let (ok, _, err) = cart(&db, &["discount", "create", "FIXED10", "--fixed", "10"]);
    assert!(ok, "{err}");
    let (ok, _, err) = cart(&db, &["discount", "create", "SUMMER25", "--fixed", "1"]);
    assert!(!ok);
    assert!(
        err.contains("Discount code 'SUMMER25' already exists."),
        "{err}"
    );
    let (ok, _, err) = cart(&db, &["discount", "create", "BAD", "--percent", "150"]);
    assert!(!ok);
    assert!(err.contains("cannot exceed 100%"), "{err}");
    let (ok, _, err) = cart(
        &db,
        &[
            "discount",
            "create",
            "BOTH",
            "--percent",
            "1",
            "--fixed",
            "1",
        ],
    );
    assert!(!ok, "percent and fixed together are refused: {err}");

    let (ok, out, _) = cart(&db, &["discount", "deactivate", "fixed10"]);
    assert!(ok);
    assert_eq!(out.trim(), "Deactivated discount FIXED10.");
    let (ok, out, _) = cart(&db, &["discount", "list"]);
    assert!(ok);
    let rows: Vec<&str> = out.lines().collect();
    assert!(
        rows[1].starts_with("FIXED10") && rows[1].contains(" no "),
        "{out}"
    );
    assert!(
        rows[2].starts_with("SUMMER25") && rows[2].contains("0/500") && rows[2].contains("50.00"),
        "{out}"
    );
    assert_eq!(rows[3], "2 discount(s).");
    let (ok, _, err) = cart(&db, &["discount", "deactivate", "NOPE"]);
    assert!(!ok);
    assert!(err.contains("no discount code"), "{err}");

    // CMD-06..09
    let (ok, out, _) = cart(&db, &["clean", "--dry-run"]);
    assert!(ok);
    assert_eq!(
        out.trim(),
        "[DRY RUN] Would delete 0 cart(s) idle for more than 90 day(s).\n\
         [DRY RUN] Would also delete the events delivered more than 90 day(s) ago (not counted)."
    );
    let (ok, out, _) = cart(&db, &["clean", "--days", "30"]);
    assert!(ok);
    assert_eq!(
        out.trim(),
        "No carts idle for more than 30 day(s) found. Nothing to delete.\n\
         Deleted 0 event(s) delivered more than 30 day(s) ago."
    );
    for bad in ["0", "-5"] {
        let (ok, _, err) = cart(&db, &["clean", "--days", bad]);
        assert!(!ok);
        assert!(err.contains("--days must be a positive integer."), "{err}");
    }
    let _ = std::fs::remove_file(&path);
}

#[test]
fn clean_deletes_idle_carts() {
    let (db, path) = temp_db("clean");
    assert!(cart(&db, &["migrate"]).0);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let carts = axum_cart::Carts::connect(&db).await.unwrap();
        for _ in 0..3 {
            let mut c = carts.new_cart();
            c.add(
                &axum_cart::ProductRef::new("book", 1).unwrap(),
                rust_decimal::Decimal::ONE,
                1,
            )
            .await
            .unwrap();
        }
    });
    let (ok, out, _) = cart(&db, &["clean", "--days", "1"]);
    assert!(ok);
    assert!(
        out.contains("Nothing to delete"),
        "fresh carts are kept: {out}"
    );
    // Make two of them idle for 100 days, then clean.
    rt.block_on(async {
        let pool = sqlx::SqlitePool::connect(&db).await.unwrap();
        let old = time::OffsetDateTime::now_utc().unix_timestamp() - 100 * 86_400;
        sqlx::query("UPDATE cart_carts SET updated_at = ? WHERE id <= 2")
            .bind(old)
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    });
    let (ok, out, _) = cart(&db, &["clean", "--dry-run"]);
    assert!(ok);
    assert_eq!(
        out.lines().next(),
        Some("[DRY RUN] Would delete 2 cart(s) idle for more than 90 day(s).")
    );
    let (ok, out, _) = cart(&db, &["clean", "--batch", "1"]);
    assert!(ok);
    assert_eq!(
        out.lines().next(),
        Some("Successfully deleted 2 cart(s) (and their items) idle for more than 90 day(s).")
    );
    let (ok, out, _) = cart(&db, &["clean"]);
    assert!(ok);
    assert!(out.contains("Nothing to delete"), "{out}");
    let _ = std::fs::remove_file(&path);
}

#[test]
fn clean_deletes_expired_idempotency_keys_in_batches() {
    let (db, path) = temp_db("keys");
    assert!(cart(&db, &["migrate"]).0);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    rt.block_on(async {
        let pool = sqlx::SqlitePool::connect(&db).await.unwrap();
        for (i, expires) in [now - 10, now - 5, now - 1, now + 3600].iter().enumerate() {
            sqlx::query(
                "INSERT INTO cart_idempotency (scope, idem_key, fingerprint, state, token, \
                 locked_at, status, headers, body, created_at, expires_at) \
                 VALUES ('s', ?, 'f', 'complete', 't', 0, 200, '{}', '', 0, ?)",
            )
            .bind(format!("k{i}"))
            .bind(expires)
            .execute(&pool)
            .await
            .unwrap();
        }
        pool.close().await;
    });
    let (ok, out, _) = cart(&db, &["clean", "--dry-run"]);
    assert!(ok);
    assert!(
        !out.contains("idempotency"),
        "a dry run deletes nothing: {out}"
    );
    let (ok, out, _) = cart(&db, &["clean", "--batch", "2"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("Deleted 3 expired idempotency key(s)."),
        "{out}"
    );
    assert!(out.contains("Nothing to delete"), "no idle carts: {out}");
    let left: i64 = rt.block_on(async {
        let pool = sqlx::SqlitePool::connect(&db).await.unwrap();
        let n = sqlx::query_scalar("SELECT COUNT(*) FROM cart_idempotency")
            .fetch_one(&pool)
            .await
            .unwrap();
        pool.close().await;
        n
    });
    assert_eq!(left, 1, "the key still in its time stays");
    let _ = std::fs::remove_file(&path);
}

fn no_panic(err: &str) {
    assert!(
        !err.contains("panicked") && !err.contains("overflow"),
        "the command panicked: {err}"
    );
}

#[test]
fn discount_create_refuses_money_the_schema_cannot_hold() {
    let (db, path) = temp_db("money");
    assert!(cart(&db, &["migrate"]).0);
    let huge = "79228162514264337593543950335";
    let (ok, out, err) = cart(
        &db,
        &[
            "discount",
            "create",
            "BIG",
            "--fixed",
            "10",
            "--min-cart-value",
            huge,
        ],
    );
    assert!(!ok, "refused: {out}");
    no_panic(&err);
    assert_eq!(
        err.trim(),
        format!("error: Minimum cart value cannot exceed 9999999999999999.99, got {huge}.")
    );
    let (ok, _, err) = cart(&db, &["discount", "create", "BIG", "--fixed", huge]);
    assert!(!ok);
    no_panic(&err);
    assert!(
        err.contains("Discount value cannot exceed 99999999.99"),
        "{err}"
    );
    let long = "A".repeat(51);
    let (ok, _, err) = cart(&db, &["discount", "create", &long, "--fixed", "1"]);
    assert!(!ok);
    assert!(
        err.contains("Discount codes are at most 50 characters, got 51."),
        "{err}"
    );
    let (ok, _, err) = cart(&db, &["discount", "create", "ſummer25", "--percent", "5"]);
    assert!(!ok);
    assert!(err.contains("may only contain ASCII"), "{err}");
    // At the bound it works.
    let (ok, out, err) = cart(
        &db,
        &[
            "discount",
            "create",
            "EDGE",
            "--fixed",
            "99999999.99",
            "--min-cart-value",
            "9999999999999999.99",
        ],
    );
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "Created discount EDGE (99999999.99).");
    let (ok, out, _) = cart(&db, &["discount", "list"]);
    assert!(ok);
    assert!(out.contains("9999999999999999.99"), "{out}");
    assert!(out.ends_with("1 discount(s).\n"), "{out}");
    let _ = std::fs::remove_file(&path);
}

#[test]
fn carts_delete_by_id_and_by_user() {
    let (db, path) = temp_db("delete");
    assert!(cart(&db, &["migrate"]).0);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ids: Vec<i64> = rt.block_on(async {
        let carts = axum_cart::Carts::connect(&db).await.unwrap();
        let mut ids = Vec::new();
        for user in ["alice", "alice", "bob", "carol"] {
            let mut c = carts.new_cart();
            c.bind_to_user(Some(user)).await.unwrap();
            c.add(
                &axum_cart::ProductRef::new("book", 1).unwrap(),
                rust_decimal::Decimal::ONE,
                2,
            )
            .await
            .unwrap();
            ids.push(c.id().await.unwrap().unwrap().get());
        }
        ids
    });
    let carol = ids[3].to_string();

    let (ok, out, err) = cart(&db, &["carts", "delete", "--id", &carol, "--dry-run"]);
    assert!(ok, "{err}");
    assert_eq!(
        out.trim(),
        format!("[DRY RUN] Would delete cart {carol} (open, 1 line(s)).")
    );
    let (ok, out, err) = cart(&db, &["carts", "delete", "--id", &carol]);
    assert!(ok, "{err}");
    assert_eq!(
        out.trim(),
        format!("Deleted cart {carol} (open, 1 line(s)) and its items.")
    );
    let (ok, _, err) = cart(&db, &["carts", "delete", "--id", &carol]);
    assert!(!ok);
    assert!(err.contains(&format!("no cart with id {carol}")), "{err}");
    for bad in ["0", "-3"] {
        let (ok, _, err) = cart(&db, &["carts", "delete", "--id", bad]);
        assert!(!ok);
        assert!(err.contains("--id must be a positive integer."), "{err}");
    }

    let (ok, out, _) = cart(&db, &["carts", "delete", "--user", "alice", "--dry-run"]);
    assert!(ok);
    assert_eq!(
        out.trim(),
        "[DRY RUN] Would delete 2 cart(s) of user \"alice\"."
    );
    let (ok, out, _) = cart(&db, &["carts", "delete", "--user", "alice"]);
    assert!(ok);
    assert_eq!(
        out.trim(),
        "Successfully deleted 2 cart(s) (and their items) of user \"alice\"."
    );
    let (ok, out, _) = cart(&db, &["carts", "delete", "--user", "alice"]);
    assert!(ok);
    assert_eq!(
        out.trim(),
        "No carts of user \"alice\" found. Nothing to delete."
    );
    let long = "u".repeat(256);
    let (ok, _, err) = cart(&db, &["carts", "delete", "--user", &long]);
    assert!(!ok);
    assert!(
        err.contains("User id must be at most 255 characters, got 256."),
        "{err}"
    );
    let (ok, _, _) = cart(&db, &["carts", "delete", "--user", "bob", "--id", "1"]);
    assert!(!ok, "--id and --user together are refused");
    let (ok, _, _) = cart(&db, &["carts", "delete"]);
    assert!(!ok, "one of --id and --user is needed");

    // Only bob's cart and its line are left.
    rt.block_on(async {
        let pool = sqlx::SqlitePool::connect(&db).await.unwrap();
        let carts: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM cart_carts")
            .fetch_one(&pool)
            .await
            .unwrap();
        let items: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM cart_items")
            .fetch_one(&pool)
            .await
            .unwrap();
        let bob: Option<String> = sqlx::query_scalar("SELECT user_id FROM cart_carts")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!((carts, items, bob.as_deref()), (1, 1, Some("bob")));
        pool.close().await;
    });
    let _ = std::fs::remove_file(&path);
}

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// A database with three events: two of one cart, one of another. Returns the runtime
/// (for the test's own servers) and the events' ids, oldest first.
fn db_with_events(db: &str) -> (tokio::runtime::Runtime, Vec<String>) {
    assert!(cart(db, &["migrate"]).0);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let ids = rt.block_on(async {
        let carts = axum_cart::Carts::connect(db).await.unwrap();
        let book = axum_cart::ProductRef::new("book", 1).unwrap();
        let mut a = carts.new_cart();
        a.add(&book, rust_decimal::Decimal::ONE, 1).await.unwrap();
        a.add(&book, rust_decimal::Decimal::ONE, 2).await.unwrap();
        let mut b = carts.new_cart();
        b.add(&book, rust_decimal::Decimal::TEN, 1).await.unwrap();
        let mut ids: Vec<String> = carts
            .events(None, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .collect();
        ids.reverse();
        ids
    });
    assert_eq!(ids.len(), 3);
    (rt, ids)
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn events_list_park_and_retry() {
    let (db, path) = temp_db("events");
    let (_rt, ids) = db_with_events(&db);

    let (ok, out, err) = cart(&db, &["events"]);
    assert!(ok, "{err}");
    let rows: Vec<&str> = out.lines().collect();
    assert!(
        rows[0].starts_with("ID") && rows[0].contains("LAST ERROR"),
        "{out}"
    );
    assert_eq!(rows.len(), 5, "{out}");
    assert!(rows[1].starts_with(&ids[2]), "newest first: {out}");
    assert!(
        rows[1].contains("item_added") && rows[1].contains("pending"),
        "{out}"
    );
    assert_eq!(
        rows[4],
        "3 event(s) shown; the outbox holds 3 pending, 0 delivered, 0 parked."
    );
    let (ok, out, _) = cart(&db, &["events", "--limit", "1"]);
    assert!(ok);
    assert!(out.contains("1 event(s) shown"), "{out}");
    let (ok, _, _) = cart(&db, &["events", "--state", "lost"]);
    assert!(!ok, "an unknown state is refused");
    let (ok, _, _) = cart(&db, &["events", "--limit", "0"]);
    assert!(!ok, "--limit is 1 to 1000");

    // A receiver that is not there, and one attempt: each cart's first event is parked,
    // and holds its cart's next one back (the order per cart holds).
    let url = format!("http://127.0.0.1:{}/hook", closed_port());
    let (ok, out, err) = cart(
        &db,
        &[
            "relay",
            "--once",
            "--webhook-url",
            &url,
            "--webhook-secret",
            SECRET,
            "--max-attempts",
            "1",
        ],
    );
    assert!(ok, "{err}");
    assert!(
        out.starts_with("Delivered 0 event(s) to webhook; 0 failed and will be retried, 2 parked;"),
        "{out}"
    );
    assert!(
        out.contains("Outbox: 1 pending, 0 delivered, 2 parked."),
        "{out}"
    );
    let (ok, out, _) = cart(&db, &["events", "--state", "parked"]);
    assert!(ok);
    assert_eq!(
        out.lines().filter(|l| l.contains(" parked ")).count(),
        2,
        "{out}"
    );
    assert!(out.contains("webhook: "), "the error is listed: {out}");
    let (ok, out, _) = cart(&db, &["events", "--state", "pending"]);
    assert!(ok);
    assert!(out.contains("1 event(s) shown"), "{out}");
    assert!(
        out.contains(&ids[1]),
        "the first cart's second event waits: {out}"
    );

    let (ok, out, err) = cart(&db, &["events", "retry", "--id", &ids[0]]);
    assert!(ok, "{err}");
    assert_eq!(
        out.trim(),
        "Put 1 parked event(s) back in line; the next relay round delivers them."
    );
    let (ok, _, err) = cart(&db, &["events", "retry", "--id", &ids[0]]);
    assert!(!ok, "no longer parked");
    assert!(err.contains("no parked event with id"), "{err}");
    let (ok, _, _) = cart(&db, &["events", "retry"]);
    assert!(!ok, "--id or --all is needed");
    let (ok, _, _) = cart(&db, &["events", "retry", "--all", "--id", &ids[1]]);
    assert!(!ok, "not both");
    let (ok, out, _) = cart(&db, &["events", "retry", "--all"]);
    assert!(ok);
    assert!(
        out.starts_with("Put 1 parked event(s) back in line"),
        "{out}"
    );
    let (ok, out, _) = cart(&db, &["events"]);
    assert!(ok);
    assert!(
        out.contains("the outbox holds 3 pending, 0 delivered, 0 parked."),
        "{out}"
    );
    let _ = std::fs::remove_file(&path);
}

#[test]
fn relay_once_delivers_to_a_signed_webhook_and_clean_removes_old_events() {
    use std::sync::{Arc, Mutex};
    let (db, path) = temp_db("relay");
    let (rt, ids) = db_with_events(&db);
    let got: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let log = got.clone();
    let addr = rt.block_on(async move {
        let app = axum::Router::new().route(
            "/hooks/cart",
            axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
                let log = log.clone();
                async move {
                    let header = |n: &str| {
                        headers
                            .get(n)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned()
                    };
                    assert!(header("webhook-signature").starts_with("v1,"));
                    assert!(!header("webhook-timestamp").is_empty());
                    log.lock().unwrap().push((header("webhook-id"), body));
                    axum::http::StatusCode::OK
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    });
    let url = format!("http://{addr}/hooks/cart");
    // The sinks from the environment, as a service would set them.
    let env = [
        ("EVENTS_WEBHOOK_URL", url.as_str()),
        ("EVENTS_WEBHOOK_SECRET", SECRET),
    ];
    let (ok, out, err) = cart_env(&db, &["relay", "--once"], &env);
    assert!(ok, "{err}");
    assert!(
        out.starts_with("Delivered 3 event(s) to webhook; 0 failed"),
        "{out}"
    );
    assert!(
        out.contains("Outbox: 0 pending, 3 delivered, 0 parked."),
        "{out}"
    );
    let received: Vec<String> = got
        .lock()
        .unwrap()
        .iter()
        .map(|(id, _)| id.clone())
        .collect();
    let mut sorted = received.clone();
    sorted.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(sorted, want, "each event once");
    // One cart's events in order.
    let pos = |id: &String| received.iter().position(|r| r == id).unwrap();
    assert!(pos(&ids[0]) < pos(&ids[1]));
    let (ok, out, _) = cart(&db, &["events", "--state", "delivered"]);
    assert!(ok);
    assert!(out.contains("3 event(s) shown"), "{out}");

    // Nothing left: a second run delivers nothing.
    let (ok, out, _) = cart_env(&db, &["relay", "--once"], &env);
    assert!(ok);
    assert!(out.starts_with("Delivered 0 event(s)"), "{out}");
    assert_eq!(got.lock().unwrap().len(), 3);

    // Delivered two days ago: `cart clean --days 1` deletes them, not before.
    let (ok, out, _) = cart(&db, &["clean", "--days", "1"]);
    assert!(ok);
    assert!(
        out.contains("Deleted 0 event(s) delivered more than 1 day(s) ago."),
        "{out}"
    );
    rt.block_on(async {
        let pool = sqlx::SqlitePool::connect(&db).await.unwrap();
        let old = time::OffsetDateTime::now_utc().unix_timestamp() - 2 * 86_400;
        sqlx::query("UPDATE cart_outbox SET finished_at = ? WHERE state = 1")
            .bind(old)
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    });
    let (ok, out, _) = cart(&db, &["clean", "--days", "1"]);
    assert!(ok);
    assert!(
        out.contains("Deleted 3 event(s) delivered more than 1 day(s) ago."),
        "{out}"
    );
    let (ok, out, _) = cart(&db, &["events"]);
    assert!(ok);
    assert!(out.contains("0 event(s) shown"), "{out}");
    let _ = std::fs::remove_file(&path);
}

#[test]
fn relay_refuses_missing_or_wrong_sinks() {
    let (db, path) = temp_db("relay-args");
    assert!(cart(&db, &["migrate"]).0);
    let (ok, _, err) = cart(&db, &["relay", "--once"]);
    assert!(!ok);
    assert!(err.contains("error: no sink: give --nats-url"), "{err}");
    let (ok, _, err) = cart(&db, &["relay", "--webhook-url", "http://127.0.0.1:1/"]);
    assert!(!ok, "a webhook needs its secret");
    assert!(err.contains("--webhook-secret"), "{err}");
    let (ok, _, err) = cart(
        &db,
        &[
            "relay",
            "--webhook-url",
            "http://127.0.0.1:1/",
            "--webhook-secret",
            "hunter2",
        ],
    );
    assert!(!ok);
    assert!(err.contains("whsec_"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
    let nats = format!("nats://user:hunter2@127.0.0.1:{}", closed_port());
    let (ok, _, err) = cart(&db, &["relay", "--once", "--nats-url", &nats]);
    assert!(!ok);
    assert!(
        err.contains("nats: connecting to nats://…@127.0.0.1:"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
    let amqp = format!("amqp://guest:hunter2@127.0.0.1:{}/%2f", closed_port());
    let (ok, _, err) = cart(&db, &["relay", "--once", "--amqp-url", &amqp]);
    assert!(!ok);
    assert!(
        err.contains("amqp: connecting to amqp://…@127.0.0.1:"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
    let (ok, _, _) = cart(&db, &["relay", "--once", "--max-attempts", "0"]);
    assert!(!ok, "at least one attempt");
    let _ = std::fs::remove_file(&path);
}
