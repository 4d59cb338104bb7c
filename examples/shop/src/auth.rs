//! A minimal username-only login with axum-login: a user is whoever says their name (a demo,
//! not a security model). Users are kept in `shop_users`.

use axum_login::{AuthUser, AuthnBackend, UserId};

use crate::db::{Arg, Db};

/// A shop user.
#[derive(Debug, Clone)]
pub struct User {
    pub username: String,
}

impl AuthUser for User {
    type Id = String;

    fn id(&self) -> String {
        self.username.clone()
    }

    fn session_auth_hash(&self) -> &[u8] {
        self.username.as_bytes()
    }
}

/// What the login form sends.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Credentials {
    pub username: String,
}

/// Looks users up (and signs them up) in `shop_users`.
#[derive(Clone)]
pub struct Backend {
    pub db: Db,
}

/// A username that is empty, too long or has characters other than letters, digits, `_`,
/// `-` and `.`.
pub fn valid_username(name: &str) -> Option<String> {
    let name = name.trim();
    let ok = (1..=40).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    ok.then(|| name.to_owned())
}

impl AuthnBackend for Backend {
    type User = User;
    type Credentials = Credentials;
    type Error = sqlx::Error;

    async fn authenticate(&self, creds: Credentials) -> Result<Option<User>, sqlx::Error> {
        let Some(username) = valid_username(&creds.username) else {
            return Ok(None);
        };
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let inserted = self
            .db
            .exec(
                "INSERT INTO shop_users (username, created_at) VALUES (?, ?)",
                &[Arg::Text(&username), Arg::Int(now)],
            )
            .await;
        match inserted {
            Ok(_) => {}
            // A returning user.
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {}
            Err(e) => return Err(e),
        }
        Ok(Some(User { username }))
    }

    async fn get_user(&self, username: &UserId<Self>) -> Result<Option<User>, sqlx::Error> {
        Ok(valid_username(username).map(|username| User { username }))
    }
}

/// The session type of the shop's handlers.
pub type AuthSession = axum_login::AuthSession<Backend>;
