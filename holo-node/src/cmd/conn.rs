//! Connection commands: PING, ECHO, QUIT, RESET, HELLO, AUTH, ACL, SELECT, CLIENT.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use holo_resp::{Frame, Version};

use super::{Spec, parse_i64, wrong_args_frame};
use crate::server::{REDIS_COMPAT_VERSION, Session};

fn upper(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_ascii_uppercase()
}

pub fn ping(spec: &Spec, _: &mut Session<'_>, rest: &[Bytes]) -> Frame {
    match rest {
        [] => Frame::simple("PONG"),
        [msg] => Frame::Bulk(msg.clone()),
        _ => wrong_args_frame(spec.name),
    }
}

pub fn echo(_: &Spec, _: &mut Session<'_>, rest: &[Bytes]) -> Frame {
    Frame::Bulk(rest[0].clone())
}

pub fn quit(_: &Spec, s: &mut Session<'_>, _: &[Bytes]) -> Frame {
    *s.quit = true;
    Frame::ok()
}

/// RESET: the connection as new (RESP2, no name, out of MULTI, nothing watched, and signed
/// out when the node requires a password).
pub fn reset(_: &Spec, s: &mut Session<'_>, _: &[Bytes]) -> Frame {
    s.client.version = Version::Resp2;
    s.client.name = None;
    s.client.multi = None;
    s.client.watched.clear();
    s.client.user = s.shared.config.auth.default_user();
    s.shared.clients.update(s.client);
    Frame::simple("RESET")
}

pub fn select(_: &Spec, _: &mut Session<'_>, rest: &[Bytes]) -> Frame {
    match &rest[0] {
        db if &db[..] == b"0" => Frame::ok(),
        db if parse_i64(db).is_some() => Frame::error("ERR DB index is out of range"),
        _ => Frame::error("ERR value is not an integer or out of range"),
    }
}

fn wrongpass() -> Frame {
    Frame::error("WRONGPASS invalid username-password pair or user is disabled.")
}

/// Signs the client in as `user` with `password`.
fn sign_in(s: &mut Session<'_>, user: &[u8], password: &[u8]) -> Result<(), Frame> {
    match s.shared.config.auth.check(user, password) {
        Some(name) => {
            s.client.user = Some(name);
            s.shared.clients.update(s.client);
            Ok(())
        }
        None => {
            s.shared
                .metrics
                .auth_failures
                .fetch_add(1, Ordering::Relaxed);
            Err(wrongpass())
        }
    }
}

pub fn auth(spec: &Spec, s: &mut Session<'_>, rest: &[Bytes]) -> Frame {
    let result = match rest {
        [password] => {
            if !s.shared.config.auth.has_default_password() {
                return Frame::error(
                    "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
                );
            }
            sign_in(s, b"default", password)
        }
        [user, password] => sign_in(s, user, password),
        _ => return wrong_args_frame(spec.name),
    };
    result.map_or_else(|e| e, |()| Frame::ok())
}

pub fn acl(_: &Spec, s: &mut Session<'_>, rest: &[Bytes]) -> Frame {
    match (upper(&rest[0]).as_str(), &rest[1..]) {
        ("WHOAMI", []) => Frame::Bulk(Bytes::from(
            s.client.user.clone().unwrap_or_else(|| "default".into()),
        )),
        ("LIST", []) => Frame::Array(
            s.shared
                .config
                .auth
                .acl_lines()
                .into_iter()
                .map(|l| Frame::Bulk(Bytes::from(l)))
                .collect(),
        ),
        ("USERS", []) => Frame::Array(
            s.shared
                .config
                .auth
                .user_names()
                .into_iter()
                .map(|l| Frame::Bulk(Bytes::from(l)))
                .collect(),
        ),
        (sub, _) => Frame::error(format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Users are configured in the node's TOML file ([auth]); ACL serves WHOAMI, LIST and USERS.",
            sub.to_ascii_lowercase()
        )),
    }
}

pub fn hello(_: &Spec, s: &mut Session<'_>, rest: &[Bytes]) -> Frame {
    let mut version = s.client.version;
    let mut i = 0;
    if let Some(v) = rest.first() {
        match parse_i64(v) {
            Some(2) => version = Version::Resp2,
            Some(3) => version = Version::Resp3,
            Some(_) => return Frame::error("NOPROTO unsupported protocol version"),
            None => {
                return Frame::error("ERR Protocol version is not an integer or out of range");
            }
        }
        i = 1;
    }
    let mut name = None;
    let mut credentials = None;
    while i < rest.len() {
        match upper(&rest[i]).as_str() {
            "AUTH" if i + 2 < rest.len() => {
                credentials = Some((rest[i + 1].clone(), rest[i + 2].clone()));
                i += 3;
            }
            "SETNAME" if i + 1 < rest.len() => {
                name = Some(rest[i + 1].clone());
                i += 2;
            }
            _ => return Frame::error("ERR syntax error in HELLO option"),
        }
    }
    if let Some((user, password)) = credentials {
        if let Err(e) = sign_in(s, &user, &password) {
            return e;
        }
    } else if s.client.user.is_none() {
        return Frame::error(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time",
        );
    }
    s.client.version = version;
    if name.is_some() {
        s.client.name = name;
    }
    s.shared.clients.update(s.client);
    let t = |t: &'static str| Frame::Bulk(Bytes::from_static(t.as_bytes()));
    Frame::Map(vec![
        (t("server"), t("redis")),
        (t("version"), t(REDIS_COMPAT_VERSION)),
        (
            t("proto"),
            Frame::Integer(if version == Version::Resp3 { 3 } else { 2 }),
        ),
        (t("id"), Frame::Integer(s.client.id as i64)),
        (t("mode"), t("standalone")),
        (t("role"), t("master")),
        (t("modules"), Frame::Array(vec![])),
    ])
}

pub fn client(spec: &Spec, s: &mut Session<'_>, rest: &[Bytes]) -> Frame {
    let client = &mut *s.client;
    match (upper(&rest[0]).as_str(), &rest[1..]) {
        ("SETNAME", [name]) => {
            if name.iter().any(|b| *b <= b' ' || *b > b'~') {
                return Frame::error(
                    "ERR Client names cannot contain spaces, newlines or special characters.",
                );
            }
            client.name = (!name.is_empty()).then(|| name.clone());
            s.shared.clients.update(client);
            Frame::ok()
        }
        ("GETNAME", []) => client.name.clone().map_or(Frame::Null, Frame::Bulk),
        ("ID", []) => Frame::Integer(client.id as i64),
        ("SETINFO", [attr, value]) => {
            match upper(attr).as_str() {
                "LIB-NAME" => client.lib_name = Some(value.clone()),
                "LIB-VER" => client.lib_ver = Some(value.clone()),
                _ => {
                    return Frame::error(format!(
                        "ERR Unrecognized option '{}'",
                        String::from_utf8_lossy(attr)
                    ));
                }
            }
            s.shared.clients.update(client);
            Frame::ok()
        }
        ("INFO", []) => Frame::Bulk(Bytes::from(s.shared.clients.line(client.id))),
        ("LIST", []) => Frame::Bulk(Bytes::from(s.shared.clients.list())),
        ("KILL", args) => match s.shared.clients.kill(args, client.id) {
            Ok(n) if args.len() == 1 => {
                if n == 0 {
                    Frame::error("ERR No such client")
                } else {
                    Frame::ok()
                }
            }
            Ok(n) => Frame::Integer(n as i64),
            Err(e) => e,
        },
        ("NO-EVICT" | "NO-TOUCH", [_]) => Frame::ok(),
        ("", _) => wrong_args_frame(spec.name),
        (sub, _) => Frame::error(format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try CLIENT HELP.",
            sub.to_ascii_lowercase()
        )),
    }
}
