//! Tells the test suites which services they may use, so that a suite without its server is
//! reported as *ignored* in `cargo test`'s summary rather than passing silently:
//! `CART_TEST_POSTGRES_URL`, `CART_TEST_MYSQL_URL`, `CART_TEST_REDIS_URL`,
//! `CART_TEST_NATS_URL` and `CART_TEST_AMQP_URL` turn on the cfgs `cart_test_postgres`,
//! `cart_test_mysql`, `cart_test_redis`, `cart_test_nats` and `cart_test_amqp`.

fn main() {
    for (var, cfg) in [
        ("CART_TEST_POSTGRES_URL", "cart_test_postgres"),
        ("CART_TEST_MYSQL_URL", "cart_test_mysql"),
        ("CART_TEST_REDIS_URL", "cart_test_redis"),
        ("CART_TEST_NATS_URL", "cart_test_nats"),
        ("CART_TEST_AMQP_URL", "cart_test_amqp"),
    ] {
        println!("cargo::rerun-if-env-changed={var}");
        println!("cargo::rustc-check-cfg=cfg({cfg})");
        if std::env::var_os(var).is_some_and(|v| !v.is_empty()) {
            println!("cargo::rustc-cfg={cfg}");
        }
    }
}
