//! What the process-level tests (`scaleout.rs`, `faults.rs`) share: a tiny HTTP/1.1 client
//! over raw TCP with a cookie jar, real shop processes (the `shop` binary) on free local
//! ports that are killed when dropped, a fresh PostgreSQL schema per test, dropped
//! afterwards, and a Redis clean-up of the session keys a test created. All traffic goes to
//! 127.0.0.1.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A name unique to this test run: `<prefix>_<pid>_<nanos>_<n>`.
pub fn unique_name(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}_{}_{}_{}",
        std::process::id(),
        nanos,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A local port nobody listens on right now.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

// ---- HTTP --------------------------------------------------------------------------------

/// An HTTP answer.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The JSON body; an error answer's must be an RFC 9457 problem of the cart.
    pub fn json(&self) -> serde_json::Value {
        let value: serde_json::Value = serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.body));
        if self.status >= 400 {
            assert_eq!(
                self.header("content-type"),
                Some("application/problem+json"),
                "{}",
                self.body
            );
            let code = value["code"].as_str().expect("a problem's code");
            assert!(
                value["type"]
                    .as_str()
                    .is_some_and(|t| t.ends_with(&format!("PROBLEMS.md#{code}"))),
                "{value}"
            );
            assert_eq!(value["status"], self.status, "{value}");
            assert!(value["title"].is_string(), "{value}");
            assert_eq!(value["detail"], value["error"], "{value}");
        }
        value
    }

    /// 2xx or 3xx.
    pub fn ok(&self) -> bool {
        (200..400).contains(&self.status)
    }
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`), the whole answer read.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> std::io::Result<Response> {
    let mut stream = TcpStream::connect(addr).await?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    head.push_str(body);
    stream.write_all(head.as_bytes()).await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> std::io::Result<Response> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of headers (connection closed early)"))?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let mut rest = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("bad status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    let body = if chunked {
        let mut body = Vec::new();
        loop {
            let end = rest
                .windows(2)
                .position(|w| w == b"\r\n")
                .ok_or_else(|| bad("bad chunk"))?;
            let size_text = String::from_utf8_lossy(&rest[..end]);
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| bad("bad chunk size"))?;
            rest = &rest[end + 2..];
            if size == 0 {
                break;
            }
            if rest.len() < size {
                return Err(bad("short chunk"));
            }
            body.extend_from_slice(&rest[..size]);
            rest = rest.get(size + 2..).unwrap_or(&[]);
        }
        body
    } else {
        let len = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse::<usize>().ok())
            .unwrap_or(rest.len());
        if rest.len() < len {
            return Err(bad("short body"));
        }
        rest[..len].to_vec()
    };
    Ok(Response {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// A visitor: a cookie jar, sent to whichever shop process it is pointed at.
#[derive(Debug, Clone, Default)]
pub struct Client {
    pub cookies: HashMap<String, String>,
}

impl Client {
    pub fn new() -> Client {
        Client::default()
    }

    /// Sends a request; `json` asks for JSON, `form` is an urlencoded body.
    pub async fn send(
        &mut self,
        addr: SocketAddr,
        method: &str,
        path: &str,
        json: bool,
        form: Option<&str>,
    ) -> std::io::Result<Response> {
        self.send_with(addr, method, path, json, form, &[]).await
    }

    /// [`send`](Self::send) with more headers.
    pub async fn send_with(
        &mut self,
        addr: SocketAddr,
        method: &str,
        path: &str,
        json: bool,
        form: Option<&str>,
        extra: &[(&str, &str)],
    ) -> std::io::Result<Response> {
        let jar: Vec<String> = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let jar = jar.join("; ");
        let mut headers = Vec::new();
        if !jar.is_empty() {
            headers.push(("Cookie", jar.as_str()));
        }
        if json {
            headers.push(("Accept", "application/json"));
        }
        if form.is_some() {
            headers.push(("Content-Type", "application/x-www-form-urlencoded"));
        }
        headers.extend_from_slice(extra);
        let res = request(addr, method, path, &headers, form.unwrap_or("")).await?;
        self.absorb(&res);
        Ok(res)
    }

    /// Takes the cookies an answer sets, as a browser does when the answer arrives.
    pub fn absorb(&mut self, res: &Response) {
        for (k, c) in &res.headers {
            if !k.eq_ignore_ascii_case("set-cookie") {
                continue;
            }
            let (pair, _) = c.split_once(';').unwrap_or((c, ""));
            if let Some((name, value)) = pair.split_once('=') {
                if value.is_empty() || c.contains("Max-Age=0") {
                    self.cookies.remove(name);
                } else {
                    self.cookies.insert(name.to_owned(), value.to_owned());
                }
            }
        }
    }

    pub async fn get_json(&mut self, addr: SocketAddr, path: &str) -> std::io::Result<Response> {
        self.send(addr, "GET", path, true, None).await
    }

    pub async fn post_json(
        &mut self,
        addr: SocketAddr,
        path: &str,
        form: Option<&str>,
    ) -> std::io::Result<Response> {
        self.send(addr, "POST", path, true, form).await
    }

    /// The session id (the `shop_session` cookie), once the shop has set one.
    pub fn session(&self) -> Option<&str> {
        self.cookies.get("shop_session").map(String::as_str)
    }
}

// ---- shop processes ----------------------------------------------------------------------

/// A running `shop` binary, killed (SIGKILL) and reaped when dropped, so a failing test
/// leaves no process behind.
pub struct ShopProcess {
    pub addr: SocketAddr,
    pub name: String,
    child: Child,
    log: PathBuf,
}

/// The settings every test process gets unless it overrides them.
const SHOP_VARS: [&str; 15] = [
    "DATABASE_URL",
    "REDIS_URL",
    "BIND",
    "PORT",
    "SESSION_CACHE",
    "ADMIN_PASSWORD",
    "MERGE_STRATEGY",
    "SECURE_COOKIES",
    "DATABASE_MAX_CONNECTIONS",
    "RUST_LOG",
    "EVENTS_RELAY",
    "EVENTS_NATS_URL",
    "EVENTS_AMQP_URL",
    "EVENTS_WEBHOOK_URL",
    "EVENTS_WEBHOOK_SECRET",
];

impl ShopProcess {
    /// Starts the shop on a free port with `env` and waits (up to 60 s) until `/healthz`
    /// answers.
    pub async fn start(name: &str, env: &[(&str, &str)]) -> ShopProcess {
        Self::start_on(name, free_port(), env).await
    }

    /// Same, on a given port (a restart on the same address).
    pub async fn start_on(name: &str, port: u16, env: &[(&str, &str)]) -> ShopProcess {
        let log = std::env::temp_dir().join(format!("{}.log", unique_name(name)));
        let log_file = std::fs::File::create(&log).expect("create shop log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_shop"));
        for var in SHOP_VARS {
            cmd.env_remove(var);
        }
        cmd.env("BIND", format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "warn,shop=info,axum_cart=info")
            .current_dir(std::env::temp_dir())
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("clone log handle"))
            .stderr(log_file);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn the shop binary");
        let mut shop = ShopProcess {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            name: name.to_owned(),
            child,
            log,
        };
        let started = Instant::now();
        loop {
            if let Ok(Ok(res)) = tokio::time::timeout(
                Duration::from_secs(2),
                request(shop.addr, "GET", "/healthz", &[], ""),
            )
            .await
            {
                if res.status == 200 {
                    break;
                }
            }
            if !shop.alive() {
                panic!("shop {name} exited during start-up:\n{}", shop.log());
            }
            if started.elapsed() > Duration::from_secs(60) {
                panic!("shop {name} did not start in 60 s:\n{}", shop.log());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        shop
    }

    /// Is the process still running?
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILL (on Unix, `Child::kill` sends SIGKILL), then reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// What the process wrote to stdout and stderr.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ShopProcess {
    fn drop(&mut self) {
        self.kill();
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.log);
        } else {
            eprintln!(
                "---- log of shop {} ({}) ----\n{}",
                self.name,
                self.log.display(),
                self.log()
            );
        }
    }
}

// ---- a TCP proxy that can be pulled ------------------------------------------------------

/// Forwards 127.0.0.1:`port` to a server (the database, Redis). `down` closes the listening
/// socket and every forwarded connection (new connections are refused); `up` listens again
/// on the same port. The shared servers themselves are never touched.
pub struct Proxy {
    pub port: u16,
    upstream: (String, u16),
    task: Option<JoinHandle<()>>,
}

impl Proxy {
    pub async fn start(upstream: (String, u16)) -> Proxy {
        let mut proxy = Proxy {
            port: free_port(),
            upstream,
            task: None,
        };
        proxy.up().await;
        proxy
    }

    pub async fn up(&mut self) {
        let started = Instant::now();
        let listener = loop {
            match TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(l) => break l,
                Err(e) if started.elapsed() < Duration::from_secs(10) => {
                    eprintln!("proxy: port {} not free yet ({e}), retrying", self.port);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("proxy cannot listen on {}: {e}", self.port),
            }
        };
        let upstream = self.upstream.clone();
        self.task = Some(tokio::spawn(async move {
            // Dropping the set (when this task is aborted) aborts every forwarding task,
            // which closes both sides of every connection.
            let mut conns = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((mut client, _)) = accepted else { continue };
                        let upstream = upstream.clone();
                        conns.spawn(async move {
                            if let Ok(mut server) =
                                TcpStream::connect((upstream.0.as_str(), upstream.1)).await
                            {
                                let _ = tokio::io::copy_bidirectional(&mut client, &mut server)
                                    .await;
                            }
                        });
                    }
                    Some(_) = conns.join_next(), if !conns.is_empty() => {}
                }
            }
        }));
    }

    pub async fn down(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

// ---- PostgreSQL --------------------------------------------------------------------------

/// A fresh schema in the database of `CART_TEST_POSTGRES_URL`, dropped when this is dropped.
pub struct PgSchema {
    /// The test database URL as given.
    pub base_url: String,
    /// The schema's name.
    pub schema: String,
    /// `base_url` with `options=-c search_path=<schema>`: what a shop process gets.
    pub url: String,
}

impl PgSchema {
    /// `None` (after a loud SKIPPED line) when `CART_TEST_POSTGRES_URL` is unset.
    pub async fn create(test: &str) -> Option<PgSchema> {
        let Ok(base_url) = std::env::var("CART_TEST_POSTGRES_URL") else {
            eprintln!("SKIPPED ({test}): CART_TEST_POSTGRES_URL is not set");
            return None;
        };
        let schema = unique_name("shop_t");
        let admin = sqlx::PgPool::connect(&base_url)
            .await
            .expect("connect postgres");
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&admin)
            .await
            .expect("create schema");
        admin.close().await;
        let url = with_search_path(&base_url, &schema);
        Some(PgSchema {
            base_url,
            schema,
            url,
        })
    }

    /// A pool of the test's own on the schema, for direct checks.
    pub async fn pool(&self) -> sqlx::PgPool {
        let options = sqlx::postgres::PgConnectOptions::from_str(&self.base_url)
            .expect("postgres url")
            .options([("search_path", self.schema.as_str())]);
        sqlx::postgres::PgPoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .expect("connect postgres schema")
    }

    /// The shop URL with its host and port replaced by `127.0.0.1:<port>` (a proxy).
    pub fn url_via(&self, port: u16) -> String {
        let (scheme, rest) = self.url.split_once("://").expect("a URL with ://");
        let (userinfo, hostpart) = match rest.split_once('@') {
            Some((u, h)) => (format!("{u}@"), h),
            None => (String::new(), rest),
        };
        let tail_at = hostpart.find(['/', '?']).unwrap_or(hostpart.len());
        format!(
            "{scheme}://{userinfo}127.0.0.1:{port}{}",
            &hostpart[tail_at..]
        )
    }

    /// Where PostgreSQL listens (host, port), from the URL.
    pub fn upstream(&self) -> (String, u16) {
        let options =
            sqlx::postgres::PgConnectOptions::from_str(&self.base_url).expect("postgres url");
        (options.get_host().to_owned(), options.get_port())
    }
}

fn with_search_path(url: &str, schema: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-c%20search_path%3D{schema}")
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let base_url = self.base_url.clone();
        let schema = self.schema.clone();
        run_detached(async move {
            if let Ok(admin) = sqlx::PgPool::connect(&base_url).await {
                let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                    .execute(&admin)
                    .await;
                admin.close().await;
            }
        });
    }
}

/// Runs `f` to completion on a runtime of its own (Drop cannot await).
pub fn run_detached(f: impl std::future::Future<Output = ()> + Send + 'static) {
    let _ = std::thread::spawn(move || {
        if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            rt.block_on(f);
        }
    })
    .join();
}

/// A fresh database (not a schema: the session store's own `tower_sessions` schema is per
/// database) on the server of `CART_TEST_POSTGRES_URL`, dropped when this is dropped.
pub struct PgDatabase {
    pub base_url: String,
    pub name: String,
    /// What a shop process gets.
    pub url: String,
}

impl PgDatabase {
    /// `None` (after a loud SKIPPED line) when `CART_TEST_POSTGRES_URL` is unset.
    pub async fn create(test: &str) -> Option<PgDatabase> {
        let Ok(base_url) = std::env::var("CART_TEST_POSTGRES_URL") else {
            eprintln!("SKIPPED ({test}): CART_TEST_POSTGRES_URL is not set");
            return None;
        };
        let name = unique_name("shop_d");
        let admin = sqlx::PgPool::connect(&base_url)
            .await
            .expect("connect postgres");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await
            .expect("create database");
        admin.close().await;
        let url = replace_db(&base_url, &name);
        Some(PgDatabase {
            base_url,
            name,
            url,
        })
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let (base_url, name) = (self.base_url.clone(), self.name.clone());
        run_detached(async move {
            if let Ok(admin) = sqlx::PgPool::connect(&base_url).await {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&admin)
                    .await;
                admin.close().await;
            }
        });
    }
}

/// `url` with its database (the path) replaced by `name`, the query kept.
fn replace_db(url: &str, name: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL with ://");
    let (before_query, query) = match rest.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (rest, String::new()),
    };
    let authority = before_query.split('/').next().unwrap_or(before_query);
    format!("{scheme}://{authority}/{name}{query}")
}

// ---- MySQL -------------------------------------------------------------------------------

/// A fresh database on the server of `CART_TEST_MYSQL_URL`, dropped when this is dropped.
pub struct MySqlDatabase {
    pub base_url: String,
    pub name: String,
    /// What a shop process gets.
    pub url: String,
}

impl MySqlDatabase {
    /// `None` (after a loud SKIPPED line) when `CART_TEST_MYSQL_URL` is unset.
    pub async fn create(test: &str) -> Option<MySqlDatabase> {
        let Ok(base_url) = std::env::var("CART_TEST_MYSQL_URL") else {
            eprintln!("SKIPPED ({test}): CART_TEST_MYSQL_URL is not set");
            return None;
        };
        let name = unique_name("shop_d");
        let admin = sqlx::MySqlPool::connect(&base_url)
            .await
            .expect("connect mysql");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await
            .expect("create database");
        admin.close().await;
        let url = replace_db(&base_url, &name);
        Some(MySqlDatabase {
            base_url,
            name,
            url,
        })
    }
}

impl Drop for MySqlDatabase {
    fn drop(&mut self) {
        let (base_url, name) = (self.base_url.clone(), self.name.clone());
        run_detached(async move {
            if let Ok(admin) = sqlx::MySqlPool::connect(&base_url).await {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
                    .execute(&admin)
                    .await;
                admin.close().await;
            }
        });
    }
}

// ---- Redis -------------------------------------------------------------------------------

/// `CART_TEST_REDIS_URL`, or `None` after a loud SKIPPED line.
pub fn redis_url(test: &str) -> Option<String> {
    match std::env::var("CART_TEST_REDIS_URL") {
        Ok(url) => Some(url),
        Err(_) => {
            eprintln!("SKIPPED ({test}): CART_TEST_REDIS_URL is not set");
            None
        }
    }
}

/// Where the Redis of `url` listens (host, port).
pub fn redis_upstream(url: &str) -> (String, u16) {
    let rest = url.strip_prefix("redis://").expect("a redis:// URL");
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    let hostport = rest.split('/').next().unwrap_or(rest);
    match hostport.rsplit_once(':') {
        Some((h, p)) => (h.to_owned(), p.parse().expect("a Redis port")),
        None => (hostport.to_owned(), 6379),
    }
}

/// `url` with its host and port replaced by `127.0.0.1:<port>` (a proxy).
pub fn redis_url_via(url: &str, port: u16) -> String {
    let rest = url.strip_prefix("redis://").expect("a redis:// URL");
    let (userinfo, hostpart) = match rest.rsplit_once('@') {
        Some((u, h)) => (format!("{u}@"), h),
        None => (String::new(), rest),
    };
    let tail = hostpart.find('/').map_or("", |i| &hostpart[i..]);
    format!("redis://{userinfo}127.0.0.1:{port}{tail}")
}

/// Sends RESP commands to the Redis of `url` (selecting its database number, if any) and
/// returns the raw replies. A test uses it only on keys it created; never FLUSHALL.
pub async fn redis_commands(url: &str, commands: &[Vec<&str>]) -> std::io::Result<String> {
    let rest = url
        .strip_prefix("redis://")
        .ok_or_else(|| std::io::Error::other("only redis:// URLs"))?;
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    let (hostport, db) = match rest.split_once('/') {
        Some((h, d)) => (h, d.parse::<u32>().ok()),
        None => (rest, None),
    };
    let hostport = if hostport.contains(':') {
        hostport.to_owned()
    } else {
        format!("{hostport}:6379")
    };
    let encode = |args: &[&str]| {
        let mut out = format!("*{}\r\n", args.len());
        for a in args {
            out.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        out
    };
    let mut out = String::new();
    if let Some(db) = db {
        out.push_str(&encode(&["SELECT", &db.to_string()]));
    }
    for c in commands {
        out.push_str(&encode(c));
    }
    out.push_str(&encode(&["QUIT"]));
    let mut stream = TcpStream::connect(hostport).await?;
    stream.write_all(out.as_bytes()).await?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply).await?;
    Ok(reply)
}

/// Deletes the given keys (the test's own session ids); returns how many existed.
pub async fn redis_del(url: &str, keys: &[String]) -> std::io::Result<i64> {
    if keys.is_empty() {
        return Ok(0);
    }
    let mut del = vec!["DEL"];
    del.extend(keys.iter().map(String::as_str));
    let reply = redis_commands(url, &[del]).await?;
    Ok(reply
        .lines()
        .find_map(|l| l.strip_prefix(':'))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0))
}

/// Whether `key` exists in Redis.
pub async fn redis_exists(url: &str, key: &str) -> std::io::Result<bool> {
    let reply = redis_commands(url, &[vec!["EXISTS", key]]).await?;
    Ok(reply.lines().any(|l| l == ":1"))
}

/// Polls `check` every 20 ms until it gives `Some`, for at most 30 s: what the shop's relay
/// does a moment after a request (an order written from the outbox). `None` after 30 s.
pub async fn eventually<T, F, Fut>(mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = std::time::Instant::now();
    while started.elapsed() < std::time::Duration::from_secs(30) {
        if let Some(found) = check().await {
            return Some(found);
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    None
}
