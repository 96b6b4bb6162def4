//! `[auth]`: who may use a node's Redis port.
//!
//! With neither `requirepass` nor `[[auth.users]]` set, every client is the `default` user,
//! as in Redis without a password. With either set, a client must sign in (AUTH, or HELLO
//! with AUTH) before any command but AUTH, HELLO, QUIT and RESET; the others get `-NOAUTH`.
//! Every user may run every command: the users exist to tell applications apart and to let
//! a password be rotated (add a user, move the clients, remove the old one).
//!
//! Protected mode (Redis's): a node whose Redis port listens on an address other than
//! loopback refuses to start without a password unless `protected_mode = false` says so.

use serde::Deserialize;

/// `[auth]` in the node's TOML.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// The password of the `default` user (Redis's `requirepass`); empty: none.
    pub requirepass: String,
    /// Named users: `[[auth.users]]` with `name` and `password`.
    pub users: Vec<UserConfig>,
    /// Refuse to start when the Redis port listens beyond loopback without a password.
    pub protected_mode: bool,
}

/// One `[[auth.users]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    pub name: String,
    pub password: String,
}

impl Default for AuthConfig {
    fn default() -> AuthConfig {
        AuthConfig {
            requirepass: String::new(),
            users: Vec::new(),
            protected_mode: true,
        }
    }
}

/// Compares without an early exit, so the time taken says nothing about where a guess went
/// wrong.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl AuthConfig {
    /// Whether clients must sign in.
    pub fn required(&self) -> bool {
        !self.requirepass.is_empty() || !self.users.is_empty()
    }

    /// The user a new connection is: `default` when no sign-in is required, else none yet.
    pub fn default_user(&self) -> Option<String> {
        (!self.required()).then(|| "default".to_string())
    }

    /// Whether the `default` user has a password (AUTH with one argument needs one).
    pub fn has_default_password(&self) -> bool {
        !self.requirepass.is_empty()
    }

    /// The user `user` signs in as with `password`, if they match.
    pub fn check(&self, user: &[u8], password: &[u8]) -> Option<String> {
        if user == b"default" {
            if !self.required() {
                // Redis's `nopass` default user: any password signs in.
                return Some("default".into());
            }
            return (self.has_default_password() && same(self.requirepass.as_bytes(), password))
                .then(|| "default".into());
        }
        self.users
            .iter()
            .find(|u| u.name.as_bytes() == user && same(u.password.as_bytes(), password))
            .map(|u| u.name.clone())
    }

    /// ACL LIST: one line per user; passwords are never shown.
    pub fn acl_lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        if self.has_default_password() {
            lines.push("user default on #<password set> ~* &* +@all".to_string());
        } else if self.required() {
            lines.push("user default off ~* &* +@all".to_string());
        } else {
            lines.push("user default on nopass ~* &* +@all".to_string());
        }
        for u in &self.users {
            lines.push(format!("user {} on #<password set> ~* &* +@all", u.name));
        }
        lines
    }

    /// ACL USERS.
    pub fn user_names(&self) -> Vec<String> {
        std::iter::once("default".to_string())
            .chain(self.users.iter().map(|u| u.name.clone()))
            .collect()
    }

    /// Checks the section against the address the Redis port listens on.
    ///
    /// # Errors
    /// A message naming the field.
    pub fn validate(&self, resp_addr: &std::net::SocketAddr) -> anyhow::Result<()> {
        for u in &self.users {
            if u.name.is_empty() || u.name == "default" || u.name.contains(char::is_whitespace) {
                anyhow::bail!(
                    "auth.users: the name {:?} is empty, has spaces or is \"default\" (set auth.requirepass for the default user)",
                    u.name
                );
            }
            if u.password.is_empty() {
                anyhow::bail!("auth.users ({}): password is empty", u.name);
            }
        }
        if self.protected_mode && !self.required() && !resp_addr.ip().is_loopback() {
            anyhow::bail!(
                "protected mode: the Redis port listens on {resp_addr}, beyond loopback, and no password is set. Set auth.requirepass (or [[auth.users]]), or set auth.protected_mode = false to serve without one"
            );
        }
        Ok(())
    }
}
