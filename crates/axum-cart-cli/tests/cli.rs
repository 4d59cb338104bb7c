//! The `cart` binary, run as an operator would, on a fresh SQLite file.

use std::process::Command;

fn cart(db: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cart"))
        .args(args)
        .env("DATABASE_URL", db)
        .output()
        .expect("run cart");
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
        "[DRY RUN] Would delete 0 cart(s) idle for more than 90 day(s)."
    );
    let (ok, out, _) = cart(&db, &["clean", "--days", "30"]);
    assert!(ok);
    assert_eq!(
        out.trim(),
        "No carts idle for more than 30 day(s) found. Nothing to delete."
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
        out.trim(),
        "[DRY RUN] Would delete 2 cart(s) idle for more than 90 day(s)."
    );
    let (ok, out, _) = cart(&db, &["clean", "--batch", "1"]);
    assert!(ok);
    assert_eq!(
        out.trim(),
        "Successfully deleted 2 cart(s) (and their items) idle for more than 90 day(s)."
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
