//! `cart`: operations for an axum-cart database.
//!
//! ```text
//! cart migrate
//! cart clean [--days 90] [--dry-run] [--include-checked-out] [--batch 1000]   (and expired idempotency keys)
//! cart discount create SUMMER25 --percent 25 --min-cart-value 50 --max-uses 500
//! cart discount list
//! cart discount deactivate SUMMER25
//! cart carts delete --id 42 [--dry-run]
//! cart carts delete --user alice [--dry-run]
//! cart relay --nats-url nats://127.0.0.1:4222 [--amqp-url amqp://…] \
//!     [--webhook-url https://… --webhook-secret whsec_…] [--once] [--max-attempts 10]
//! cart events [--state pending|delivered|parked] [--limit 50]
//! cart events retry (--id ID | --all)
//! ```
//!
//! The database comes from `--database-url` or `DATABASE_URL`; the sinks of `cart relay`
//! from their flags or `EVENTS_NATS_URL`, `EVENTS_AMQP_URL`, `EVENTS_WEBHOOK_URL` and
//! `EVENTS_WEBHOOK_SECRET`.

use std::io::IsTerminal;
use std::process::ExitCode;

use axum_cart::{
    AmqpSink, CartError, CartId, Carts, DeliveryState, NatsSink, NewDiscount, Relay, RelayReport,
    WebhookSink,
};
use clap::{Args, Parser, Subcommand};
use rust_decimal::Decimal;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

#[derive(Parser)]
#[command(name = "cart", version, about = "Operations for an axum-cart database")]
struct Cli {
    /// sqlite:…, postgres://… or mysql://…
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create or update the cart tables.
    Migrate,
    /// Delete carts with no activity for a number of days, the outbox's events delivered
    /// more than that many days ago, and expired idempotency keys.
    Clean {
        /// Idle for more than this many days (at least 1).
        #[arg(long, default_value_t = 90, allow_negative_numbers = true)]
        days: i64,
        /// Count, delete nothing.
        #[arg(long)]
        dry_run: bool,
        /// Also delete checked-out carts (order history).
        #[arg(long)]
        include_checked_out: bool,
        /// Rows per delete statement.
        #[arg(long, default_value_t = 1000)]
        batch: u32,
    },
    /// Manage discount codes.
    #[command(subcommand)]
    Discount(DiscountCommand),
    /// Manage carts.
    #[command(subcommand)]
    Carts(CartsCommand),
    /// Deliver the outbox's events to NATS JetStream, RabbitMQ and/or a signed webhook,
    /// until stopped (Ctrl-C), or until nothing is left to do with --once.
    Relay(RelayArgs),
    /// List the outbox's events, or put parked ones back in line.
    Events(EventsArgs),
}

#[derive(Args)]
struct RelayArgs {
    /// NATS server (nats://host:4222): events go to JetStream, subjects cart.events.<type>.
    #[arg(long, env = "EVENTS_NATS_URL", hide_env_values = true)]
    nats_url: Option<String>,
    /// RabbitMQ broker (amqp://user:password@host:5672/vhost): exchange cart.events.
    #[arg(long, env = "EVENTS_AMQP_URL", hide_env_values = true)]
    amqp_url: Option<String>,
    /// Webhook URL: events are POSTed signed per Standard Webhooks.
    #[arg(
        long,
        env = "EVENTS_WEBHOOK_URL",
        hide_env_values = true,
        requires = "webhook_secret"
    )]
    webhook_url: Option<String>,
    /// The webhook's secret, whsec_<base64>.
    #[arg(
        long,
        env = "EVENTS_WEBHOOK_SECRET",
        hide_env_values = true,
        requires = "webhook_url"
    )]
    webhook_secret: Option<String>,
    /// Run rounds until one finds nothing to do, print what was done, and exit.
    #[arg(long)]
    once: bool,
    /// Failed deliveries before an event is parked.
    #[arg(long, default_value_t = Relay::DEFAULT_MAX_ATTEMPTS, value_parser = clap::value_parser!(u32).range(1..))]
    max_attempts: u32,
}

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
struct EventsArgs {
    #[command(subcommand)]
    command: Option<EventsCommand>,
    /// Only the events in this state.
    #[arg(long, value_enum)]
    state: Option<StateArg>,
    /// At most this many, newest first (1 to 1000).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
    limit: u32,
}

#[derive(Subcommand)]
enum EventsCommand {
    /// Put parked events back in line with a fresh count of attempts: the next relay
    /// round delivers them.
    Retry(RetryTarget),
}

/// Exactly one of `--id` and `--all`.
#[derive(Args)]
#[group(required = true, multiple = false)]
struct RetryTarget {
    /// The event with this id.
    #[arg(long)]
    id: Option<String>,
    /// Every parked event.
    #[arg(long)]
    all: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum StateArg {
    Pending,
    Delivered,
    Parked,
}

impl From<StateArg> for DeliveryState {
    fn from(state: StateArg) -> DeliveryState {
        match state {
            StateArg::Pending => DeliveryState::Pending,
            StateArg::Delivered => DeliveryState::Delivered,
            StateArg::Parked => DeliveryState::Parked,
        }
    }
}

#[derive(Subcommand)]
enum CartsCommand {
    /// Delete one cart, or every cart of a user (a privacy erasure request), with their
    /// lines, open or checked out.
    Delete(DeleteArgs),
}

/// Exactly one of `--id` and `--user`.
#[derive(Args)]
#[group(required = true, multiple = false)]
struct DeleteTarget {
    /// The cart with this id.
    #[arg(long, allow_negative_numbers = true)]
    id: Option<i64>,
    /// Every cart of this user, checked-out ones (order history) included.
    #[arg(long)]
    user: Option<String>,
}

#[derive(Args)]
struct DeleteArgs {
    #[command(flatten)]
    target: DeleteTarget,
    /// Count, delete nothing.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Subcommand)]
enum DiscountCommand {
    /// Create a code.
    Create(CreateArgs),
    /// List every code.
    List,
    /// Switch a code off.
    Deactivate {
        /// The code (any case).
        code: String,
    },
}

/// Exactly one of `--percent` and `--fixed`.
#[derive(Args)]
#[group(required = true, multiple = false)]
struct Amount {
    /// A percentage (0–100).
    #[arg(long)]
    percent: Option<Decimal>,
    /// A fixed amount.
    #[arg(long)]
    fixed: Option<Decimal>,
}

#[derive(Args)]
struct CreateArgs {
    /// The code; stored upper-case.
    code: String,
    #[command(flatten)]
    amount: Amount,
    /// The subtotal a cart must reach.
    #[arg(long)]
    min_cart_value: Option<Decimal>,
    /// How many checkouts may use it.
    #[arg(long)]
    max_uses: Option<i64>,
    /// Valid from (RFC 3339, e.g. 2026-06-01T00:00:00Z).
    #[arg(long, value_parser = parse_time)]
    valid_from: Option<OffsetDateTime>,
    /// Valid until (RFC 3339).
    #[arg(long, value_parser = parse_time)]
    valid_until: Option<OffsetDateTime>,
    /// Create it switched off.
    #[arg(long)]
    inactive: bool,
}

fn parse_time(s: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(s, &Rfc3339)
        .map_err(|e| format!("expected an RFC 3339 time such as 2026-06-01T00:00:00Z: {e}"))
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    let url = cli
        .database_url
        .ok_or("no database: set DATABASE_URL or pass --database-url")?;
    let carts = Carts::connect(&url).await.map_err(|e| e.to_string())?;
    match cli.command {
        Command::Migrate => {
            carts.migrate().await.map_err(|e| e.to_string())?;
            println!(
                "Cart tables are up to date ({}).",
                carts.store().backend_name()
            );
        }
        Command::Clean {
            days,
            dry_run,
            include_checked_out,
            batch,
        } => {
            let days = u32::try_from(days)
                .ok()
                .filter(|d| *d >= 1)
                .ok_or("--days must be a positive integer.")?;
            clean(&carts, days, dry_run, include_checked_out, batch)
                .await
                .map_err(|e| e.to_string())?;
        }
        Command::Discount(DiscountCommand::Create(args)) => {
            let (kind_value, new) = match (args.amount.percent, args.amount.fixed) {
                (Some(v), _) => (format!("{v}%"), NewDiscount::percent(&args.code, v)),
                (None, Some(v)) => (v.to_string(), NewDiscount::fixed(&args.code, v)),
                (None, None) => return Err("give --percent or --fixed".into()),
            };
            let mut new = new.active(!args.inactive);
            if let Some(v) = args.min_cart_value {
                new = new.min_cart_value(v);
            }
            if let Some(v) = args.max_uses {
                new = new.max_uses(v);
            }
            if let Some(v) = args.valid_from {
                new = new.valid_from(v);
            }
            if let Some(v) = args.valid_until {
                new = new.valid_until(v);
            }
            let created = carts
                .create_discount(new)
                .await
                .map_err(|e| e.to_string())?;
            println!("Created discount {} ({kind_value}).", created.code);
        }
        Command::Discount(DiscountCommand::List) => {
            let all = carts.discounts().await.map_err(|e| e.to_string())?;
            println!(
                "{:<20} {:<8} {:>10} {:>10} {:>12} {:<6} VALID UNTIL",
                "CODE", "TYPE", "VALUE", "MIN CART", "USES", "ACTIVE"
            );
            for d in &all {
                let uses = match d.max_uses {
                    Some(max) => format!("{}/{max}", d.current_uses),
                    None => d.current_uses.to_string(),
                };
                let until = d
                    .valid_until
                    .and_then(|t| t.format(&Rfc3339).ok())
                    .unwrap_or_else(|| "-".into());
                let min = d
                    .min_cart_value
                    .map(|m| m.to_string())
                    .unwrap_or_else(|| "-".into());
                println!(
                    "{:<20} {:<8} {:>10} {:>10} {:>12} {:<6} {until}",
                    d.code,
                    d.kind.as_str(),
                    d.value,
                    min,
                    uses,
                    if d.active { "yes" } else { "no" }
                );
            }
            println!("{} discount(s).", all.len());
        }
        Command::Discount(DiscountCommand::Deactivate { code }) => {
            if carts
                .set_discount_active(&code, false)
                .await
                .map_err(|e| e.to_string())?
            {
                println!("Deactivated discount {}.", code.trim().to_ascii_uppercase());
            } else {
                return Err(format!("no discount code {:?}", code.trim()));
            }
        }
        Command::Carts(CartsCommand::Delete(args)) => match (args.target.id, args.target.user) {
            (Some(id), _) => delete_cart(&carts, id, args.dry_run).await?,
            (None, Some(user)) => delete_user_carts(&carts, &user, args.dry_run)
                .await
                .map_err(|e| e.to_string())?,
            (None, None) => return Err("give --id or --user".into()),
        },
        Command::Relay(args) => relay(&carts, args).await?,
        Command::Events(EventsArgs {
            command: Some(EventsCommand::Retry(target)),
            ..
        }) => retry_events(&carts, target).await?,
        Command::Events(args) => list_events(&carts, args.state.map(Into::into), args.limit)
            .await
            .map_err(|e| e.to_string())?,
    }
    Ok(())
}

async fn relay(carts: &Carts, args: RelayArgs) -> Result<(), String> {
    let mut relay = Relay::new(carts).max_attempts(args.max_attempts);
    let mut names = Vec::new();
    if let Some(url) = args.nats_url.as_deref().filter(|u| !u.is_empty()) {
        relay = relay.sink(NatsSink::connect(url).await.map_err(|e| e.to_string())?);
        names.push("NATS");
    }
    if let Some(url) = args.amqp_url.as_deref().filter(|u| !u.is_empty()) {
        relay = relay.sink(AmqpSink::connect(url).await.map_err(|e| e.to_string())?);
        names.push("RabbitMQ");
    }
    if let (Some(url), Some(secret)) = (args.webhook_url.as_deref(), args.webhook_secret) {
        if !url.is_empty() {
            relay = relay.sink(WebhookSink::new(url, &secret).map_err(|e| e.to_string())?);
            names.push("webhook");
        }
    }
    if names.is_empty() {
        return Err(
            "no sink: give --nats-url, --amqp-url or --webhook-url with \
                    --webhook-secret (or EVENTS_NATS_URL, EVENTS_AMQP_URL, EVENTS_WEBHOOK_URL \
                    with EVENTS_WEBHOOK_SECRET)"
                .into(),
        );
    }
    let names = names.join(", ");
    if !args.once {
        eprintln!("Relaying the outbox's events to {names} (Ctrl-C to stop).");
        tokio::select! {
            () = relay.run() => {}
            _ = tokio::signal::ctrl_c() => eprintln!("Stopped."),
        }
        return Ok(());
    }
    let mut total = RelayReport::default();
    loop {
        let round = relay.run_once().await.map_err(|e| e.to_string())?;
        if round.is_idle() {
            break;
        }
        total.delivered += round.delivered;
        total.retrying += round.retrying;
        total.parked += round.parked;
        total.abandoned += round.abandoned;
    }
    let counts = carts.event_counts().await.map_err(|e| e.to_string())?;
    println!(
        "Delivered {} event(s) to {names}; {} failed and will be retried, {} parked; {} \
         abandoned-cart event(s) written.",
        total.delivered, total.retrying, total.parked, total.abandoned
    );
    println!(
        "Outbox: {} pending, {} delivered, {} parked.",
        counts.pending, counts.delivered, counts.parked
    );
    Ok(())
}

async fn list_events(
    carts: &Carts,
    state: Option<DeliveryState>,
    limit: u32,
) -> Result<(), CartError> {
    let events = carts.events(state, limit).await?;
    println!(
        "{:<36} {:<16} {:>8} {:<9} {:>8} {:<20} LAST ERROR",
        "ID", "TYPE", "CART", "STATE", "ATTEMPTS", "CREATED"
    );
    for e in &events {
        let created = e.created_at.format(&Rfc3339).unwrap_or_else(|_| "-".into());
        let error: String = e
            .last_error
            .as_deref()
            .unwrap_or("-")
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(120)
            .collect();
        println!(
            "{:<36} {:<16} {:>8} {:<9} {:>8} {:<20} {error}",
            e.id,
            e.event_type,
            e.cart_id,
            e.state.as_str(),
            e.attempts,
            created
        );
    }
    let counts = carts.event_counts().await?;
    println!(
        "{} event(s) shown; the outbox holds {} pending, {} delivered, {} parked.",
        events.len(),
        counts.pending,
        counts.delivered,
        counts.parked
    );
    Ok(())
}

async fn retry_events(carts: &Carts, target: RetryTarget) -> Result<(), String> {
    let id = if target.all {
        None
    } else {
        match target.id.as_deref().map(str::trim) {
            Some(id) if !id.is_empty() => Some(id),
            _ => return Err("give --id ID or --all".into()),
        }
    };
    let n = carts.retry_events(id).await.map_err(|e| e.to_string())?;
    match id {
        Some(id) if n == 0 => Err(format!("no parked event with id {id:?}")),
        _ => {
            println!("Put {n} parked event(s) back in line; the next relay round delivers them.");
            Ok(())
        }
    }
}

async fn delete_cart(carts: &Carts, id: i64, dry_run: bool) -> Result<(), String> {
    let id = CartId::new(id).ok_or("--id must be a positive integer.")?;
    let record = carts
        .cart(id)
        .record()
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no cart with id {id}"))?;
    let state = if record.checked_out {
        "checked out"
    } else {
        "open"
    };
    if dry_run {
        println!(
            "[DRY RUN] Would delete cart {id} ({state}, {} line(s)).",
            record.line_count
        );
        return Ok(());
    }
    if !carts.delete_cart(id).await.map_err(|e| e.to_string())? {
        return Err(format!("no cart with id {id}"));
    }
    println!(
        "Deleted cart {id} ({state}, {} line(s)) and its items.",
        record.line_count
    );
    Ok(())
}

async fn delete_user_carts(carts: &Carts, user: &str, dry_run: bool) -> Result<(), CartError> {
    if dry_run {
        let matching = carts.user_carts(user).await?.len();
        println!("[DRY RUN] Would delete {matching} cart(s) of user {user:?}.");
        return Ok(());
    }
    let deleted = carts.delete_user_carts(user).await?;
    if deleted == 0 {
        println!("No carts of user {user:?} found. Nothing to delete.");
        return Ok(());
    }
    println!("Successfully deleted {deleted} cart(s) (and their items) of user {user:?}.");
    Ok(())
}

async fn clean(
    carts: &Carts,
    days: u32,
    dry_run: bool,
    include_checked_out: bool,
    batch: u32,
) -> Result<(), CartError> {
    if !dry_run {
        // The answers of `Idempotency-Key` requests whose time is up, in batches too.
        let keys = carts.clean_idempotency_keys(batch).await?;
        if keys > 0 {
            println!("Deleted {keys} expired idempotency key(s).");
        }
    }
    let matching = carts
        .clean(days, include_checked_out, true, batch, |_| {})
        .await?;
    if dry_run {
        println!("[DRY RUN] Would delete {matching} cart(s) idle for more than {days} day(s).");
        println!(
            "[DRY RUN] Would also delete the events delivered more than {days} day(s) ago \
             (not counted)."
        );
        return Ok(());
    }
    if matching == 0 {
        println!("No carts idle for more than {days} day(s) found. Nothing to delete.");
    } else {
        clean_carts(carts, days, include_checked_out, batch, matching).await?;
    }
    let events = carts.clean_events(days, batch).await?;
    println!("Deleted {events} event(s) delivered more than {days} day(s) ago.");
    Ok(())
}

async fn clean_carts(
    carts: &Carts,
    days: u32,
    include_checked_out: bool,
    batch: u32,
    matching: u64,
) -> Result<(), CartError> {
    let bar = if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(matching);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} carts deleted ({eta} left)",
        ) {
            bar.set_style(style);
        }
        Some(bar)
    } else {
        None
    };
    let deleted = carts
        .clean(days, include_checked_out, false, batch, |n| {
            if let Some(bar) = &bar {
                bar.set_position(n);
            }
        })
        .await?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    println!("Successfully deleted {deleted} cart(s) (and their items) idle for more than {days} day(s).");
    Ok(())
}
