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
