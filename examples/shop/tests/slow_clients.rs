//! Slow and half-open clients, against a real `shop` process (SQLite) with small limits set
//! through its environment so the tests run in seconds:
//!
//! - a request head trickled byte by byte is cut after `HEADER_TIMEOUT_SECS`;
//! - a thousand connections with unfinished heads (or nothing sent at all) are all closed
//!   after the header timeout, and the shop answers normally meanwhile;
//! - a declared body that never arrives is answered or closed after `BODY_TIMEOUT_SECS`;
//!   a declared body over `MAX_BODY_BYTES` gets 413 at once;
//! - beyond `MAX_CONNECTIONS` a new connection waits; once the idle ones go away it is
//!   served, and so is everything after.
//!
//! Bounds here are "closed within N s" checks of the configured timeouts, not speed
//! targets. See `docs/RELIABILITY.md`, "Slow clients".

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use support::{Client, ShopProcess};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A shop on a fresh SQLite file with the given extra settings; the file is removed by the
/// returned guard.
async fn shop(test: &str, env: &[(&str, &str)]) -> (ShopProcess, TempDb) {
    let db = TempDb(std::env::temp_dir().join(format!("{}.db", support::unique_name(test))));
    let url = format!("sqlite://{}", db.0.display());
    let mut all = vec![("DATABASE_URL", url.as_str())];
    all.extend_from_slice(env);
    (ShopProcess::start(test, &all).await, db)
}

struct TempDb(std::path::PathBuf);

impl Drop for TempDb {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.0.display()));
        }
    }
}

/// Reads until the server closes the connection (EOF or reset); `None` if it is still
/// open after `limit`. Returns what was read and when it closed.
async fn wait_closed(stream: &mut TcpStream, limit: Duration) -> Option<(Vec<u8>, Instant)> {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + limit;
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some((got, Instant::now())),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// A normal request answers 200 (and how long it took).
async fn healthy(addr: SocketAddr) -> Duration {
    let started = Instant::now();
    let res = tokio::time::timeout(
        Duration::from_secs(10),
        Client::new().send(addr, "GET", "/?kind=coffee", false, None),
    )
    .await
    .expect("a normal request is answered")
    .expect("a normal request");
    assert_eq!(res.status, 200, "{}", res.body);
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_header_is_cut_after_the_header_timeout() {
    let test = "slow-trickle";
    let (shop, _db) = shop(test, &[("HEADER_TIMEOUT_SECS", "2")]).await;
    let mut stream = TcpStream::connect(shop.addr).await.unwrap();
    let opened = Instant::now();
    let head = format!(
        "GET / HTTP/1.1\r\nHost: {}\r\nX-Slow: {}\r\n\r\n",
        shop.addr,
        "a".repeat(400)
    );
    // One byte every 100 ms: the whole head would take 40 s and more.
    let mut sent = 0;
    let mut cut = None;
    for byte in head.as_bytes() {
        if stream.write_all(&[*byte]).await.is_err() {
            cut = Some(opened.elapsed());
            break;
        }
        sent += 1;
        let mut probe = [0u8; 1024];
        match tokio::time::timeout(Duration::from_millis(100), stream.read(&mut probe)).await {
            Err(_) => {}
            Ok(Ok(0)) | Ok(Err(_)) => {
                cut = Some(opened.elapsed());
                break;
            }
            // A 408 (or any answer) before the close: keep reading to the close.
            Ok(Ok(_)) => {}
        }
        if opened.elapsed() > Duration::from_secs(15) {
            break;
        }
    }
    let cut = cut.expect("the trickled header is cut within 15 s");
    assert!(
        cut >= Duration::from_millis(1500) && cut < Duration::from_secs(5),
        "cut by the 2 s header timeout, after {cut:?}"
    );
    healthy(shop.addr).await;
    eprintln!(
        "{test}: header timeout 2 s; a {}-byte head sent at 1 byte per 100 ms was cut after \
         {cut:.1?} ({sent} bytes in); the shop answered normally afterwards",
        head.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_connections_with_unfinished_headers_are_closed_after_the_timeout() {
    let test = "slow-many";
    const CONNECTIONS: usize = 1000;
    let (shop, _db) = shop(test, &[("HEADER_TIMEOUT_SECS", "2")]).await;
    let opened = Instant::now();
    let mut streams = Vec::with_capacity(CONNECTIONS);
    for i in 0..CONNECTIONS {
        let mut s = TcpStream::connect(shop.addr).await.unwrap();
        // Half send the start of a head, half nothing at all.
        if i % 2 == 0 {
            s.write_all(b"GET / HTTP/1.1\r\nHost: shop\r\nX-Unfinished: ")
                .await
                .unwrap();
        }
        streams.push(s);
    }
    let all_open = opened.elapsed();
    // Meanwhile a normal visitor is served.
    let normal = healthy(shop.addr).await;
    let waits: Vec<_> = streams
        .into_iter()
        .map(|mut s| {
            tokio::spawn(async move {
                wait_closed(&mut s, Duration::from_secs(20))
                    .await
                    .map(|(_, at)| at)
            })
        })
        .collect();
    let mut last_close = Duration::ZERO;
    let mut still_open = 0;
    for w in waits {
        match w.await.unwrap() {
            Some(at) => last_close = last_close.max(at - opened),
            None => still_open += 1,
        }
    }
    assert_eq!(
        still_open, 0,
        "every unfinished connection is closed within 20 s"
    );
    assert!(
        last_close < all_open + Duration::from_secs(8),
        "closed by the 2 s header timeout: the last after {last_close:?} (opening all took \
         {all_open:?})"
    );
    healthy(shop.addr).await;
    eprintln!(
        "{test}: header timeout 2 s; {CONNECTIONS} connections with unfinished heads (half \
         with none) opened in {all_open:.1?}, a normal request meanwhile answered in \
         {normal:.1?}; all {CONNECTIONS} closed by the shop, the last {last_close:.1?} after \
         the first was opened"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_never_arrives_is_cut_after_the_body_timeout() {
    let test = "slow-body";
    let (shop, _db) = shop(test, &[("BODY_TIMEOUT_SECS", "2")]).await;

    // A small declared body, 10 bytes of it sent, the rest never.
    let mut stream = TcpStream::connect(shop.addr).await.unwrap();
    let sent_at = Instant::now();
    stream
        .write_all(
            format!(
                "POST /login HTTP/1.1\r\nHost: {}\r\nContent-Type: \
                 application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\nusername=a",
                shop.addr
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let (answer, closed_at) = wait_closed(&mut stream, Duration::from_secs(15))
        .await
        .expect("a body that never arrives is answered and closed within 15 s");
    let took = closed_at - sent_at;
    let answer = String::from_utf8_lossy(&answer);
    let status = answer
        .lines()
        .next()
        .unwrap_or("(closed without an answer)");
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(6),
        "cut by the 2 s body timeout, after {took:?}"
    );
    assert!(
        answer.is_empty() || status.contains(" 4"),
        "an error answer or none, got {status}"
    );

    // A declared 50 MB body: refused at once, before any of it is read.
    let mut stream = TcpStream::connect(shop.addr).await.unwrap();
    let big_at = Instant::now();
    stream
        .write_all(
            format!(
                "POST /login HTTP/1.1\r\nHost: {}\r\nContent-Type: \
                 application/x-www-form-urlencoded\r\nContent-Length: 50000000\r\n\r\n",
                shop.addr
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let (big, _) = wait_closed(&mut stream, Duration::from_secs(10))
        .await
        .expect("a declared 50 MB body is answered and closed");
    let big_took = big_at.elapsed();
    let big = String::from_utf8_lossy(&big);
    let big_status = big.lines().next().unwrap_or("").to_owned();
    assert!(big_status.contains(" 413 "), "{big}");
    assert!(
        big_took < Duration::from_secs(2),
        "413 at once, took {big_took:?}"
    );
    healthy(shop.addr).await;
    eprintln!(
        "{test}: body timeout 2 s; /login with 10 of 1000 declared bytes: {status:?} and \
         closed after {took:.1?}; a declared 50 MB body: {big_status:?} after {big_took:.1?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_bound_wait_and_are_served_once_others_go() {
    let test = "slow-bound";
    const BOUND: usize = 4;
    // A long header timeout: only the clients' own leaving frees a place here.
    let (shop, _db) = shop(
        test,
        &[
            ("MAX_CONNECTIONS", &BOUND.to_string()),
            ("HEADER_TIMEOUT_SECS", "60"),
        ],
    )
    .await;
    // The start-up probe's connections are closed by now; take every place.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut idle = Vec::new();
    for _ in 0..BOUND {
        idle.push(TcpStream::connect(shop.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    // One more visitor: connected by the kernel, but not served while the places are taken.
    let addr = shop.addr;
    let waiting_since = Instant::now();
    let mut waiting = tokio::spawn(async move {
        let res = Client::new()
            .send(addr, "GET", "/?kind=book", false, None)
            .await;
        (res, Instant::now())
    });
    let held = tokio::time::timeout(Duration::from_secs(2), &mut waiting).await;
    assert!(
        held.is_err(),
        "with {BOUND} connections open, a {}th is not served",
        BOUND + 1
    );

    // The idle clients leave: the waiting visitor is served, and so is everyone after.
    let left_at = Instant::now();
    drop(idle);
    let (res, served_at) = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("served once the idle connections are gone")
        .unwrap();
    let res = res.expect("the waiting request");
    assert_eq!(res.status, 200, "{}", res.body);
    let after_leaving = served_at - left_at;
    assert!(
        after_leaving < Duration::from_secs(5),
        "served soon after places freed, took {after_leaving:?}"
    );
    let mut normal = Duration::ZERO;
    for _ in 0..20 {
        normal = normal.max(healthy(shop.addr).await);
    }
    eprintln!(
        "{test}: MAX_CONNECTIONS {BOUND}; with {BOUND} idle connections open a 5th waited \
         (not served in 2 s), and was answered 200 {after_leaving:.1?} after they closed \
         ({:.1?} after it was sent); 20 requests afterwards, slowest {normal:.1?}",
        served_at - waiting_since
    );
}
