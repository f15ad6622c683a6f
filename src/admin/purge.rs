//! `POST /cache/purge[?id=IDENTIFIER]`: the guard, then the purge.
//!
//! # The guard
//!
//! | `IIPSRV_ADMIN_TOKEN` | admin address | request | answer |
//! |---|---|---|---|
//! | set | any | `Authorization: Bearer <token>` (scheme in any case) | the purge |
//! | set | any | no `Authorization` (or not `Bearer`) | 401, `WWW-Authenticate: Bearer` |
//! | set | any | another token | 403 |
//! | unset | loopback | anything | the purge |
//! | unset | other | anything | 403 (purging needs a token there) |
//!
//! Nothing is purged unless the guard lets the request through. Tokens are compared through
//! their SHA-256 digests, so the time a comparison takes says nothing about the token.
//!
//! # The identifier
//!
//! `id` is decoded as `FIF` decodes identifiers (`%XX`, `+`), and names the image key: the
//! identifier without `FILESYSTEM_PREFIX` or `FILESYSTEM_SUFFIX` (for IIIF, without a page
//! suffix). An identifier containing `../` or a NUL byte, an empty one, or any other query
//! parameter is a 400: a purge names one image, never a path pattern.

use hyper::StatusCode;
use hyper::header::{self, HeaderValue};
use sha2::{Digest, Sha256};

use super::common::{Admin, Reply, error, json};
use crate::metrics;
use crate::source::resolve::url_decode;

/// What the query asks to purge.
#[derive(Debug, PartialEq, Eq)]
enum Scope {
    All,
    Image(Vec<u8>),
}

/// Read the query: none (everything) or exactly `id=<identifier>`.
fn scope(query: Option<&str>) -> Result<Scope, &'static str> {
    let Some(query) = query.filter(|q| !q.is_empty()) else {
        return Ok(Scope::All);
    };
    let Some(raw) = query.strip_prefix("id=").filter(|v| !v.contains('&')) else {
        return Err("the only parameter is id=IDENTIFIER");
    };
    let (id, null) = url_decode(raw.as_bytes());
    if null || id.contains(&0) {
        return Err("an identifier has no NUL byte");
    }
    if id.is_empty() {
        return Err("id is empty");
    }
    if id.windows(3).any(|w| w == b"../") || id.ends_with(b"/..") || id == b".." {
        return Err("an identifier has no ../");
    }
    Ok(Scope::Image(id))
}

/// Why a purge is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// No bearer token: 401.
    NoToken,
    /// A wrong token, or no token configured off loopback: 403.
    Forbidden(&'static str),
}

impl Refusal {
    fn reply(self) -> Reply {
        match self {
            Refusal::NoToken => {
                let mut r = error(StatusCode::UNAUTHORIZED, "a bearer token is required");
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"iipsrv-admin\""),
                );
                r
            }
            Refusal::Forbidden(why) => error(StatusCode::FORBIDDEN, why),
        }
    }
}

/// Whether the request may purge; why not otherwise.
fn guard(admin: &Admin, req: &hyper::Request<hyper::body::Incoming>) -> Result<(), Refusal> {
    let Some(token) = admin.app.config().server.admin_token.as_deref() else {
        return if admin.loopback {
            Ok(())
        } else {
            Err(Refusal::Forbidden(
                "purging on a non-loopback admin address needs IIPSRV_ADMIN_TOKEN",
            ))
        };
    };
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("Bearer"))
        .map(|(_, token)| token);
    let Some(given) = given else {
        return Err(Refusal::NoToken);
    };
    if Sha256::digest(given.trim().as_bytes()) == Sha256::digest(token.as_bytes()) {
        Ok(())
    } else {
        Err(Refusal::Forbidden("wrong token"))
    }
}

/// Answer a purge.
pub(super) async fn purge(admin: &Admin, req: &hyper::Request<hyper::body::Incoming>) -> Reply {
    if let Err(refusal) = guard(admin, req) {
        tracing::warn!("Admin: purge refused ({refusal:?})");
        return refusal.reply();
    }
    let scope = match scope(req.uri().query()) {
        Ok(s) => s,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    let app = admin.app.clone();
    let id = match &scope {
        Scope::All => None,
        Scope::Image(id) => Some(String::from_utf8_lossy(id).into_owned()),
    };
    let done = tokio::task::spawn_blocking(move || match scope {
        Scope::All => app.shared().purge_all(),
        Scope::Image(id) => app.shared().purge_image(&id),
    })
    .await;
    let Ok(purged) = done else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "the purge failed");
    };
    metrics::purged(id.is_none());
    tracing::info!(
        "Admin: purged {} ({} tiles, {} opened files, {} memcached entries)",
        // Escaped: an identifier may hold line breaks, which must not start a log line.
        id.as_deref()
            .map_or("everything".into(), |id| format!("{id:?}")),
        purged.tiles,
        purged.metadata,
        purged.memcached
    );
    json(
        StatusCode::OK,
        serde_json::json!({
            "purged": id.map_or(serde_json::Value::from("all"), |id| serde_json::json!({ "id": id })),
            "tiles": purged.tiles,
            "metadata": purged.metadata,
            "memcached": purged.memcached,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_purge_names_one_image_or_everything_and_never_a_path_pattern() {
        assert_eq!(scope(None), Ok(Scope::All));
        assert_eq!(scope(Some("")), Ok(Scope::All));
        assert_eq!(
            scope(Some("id=a%2Fb.tif")),
            Ok(Scope::Image(b"a/b.tif".to_vec()))
        );
        assert_eq!(
            scope(Some("id=a+b.tif")),
            Ok(Scope::Image(b"a b.tif".to_vec()))
        );
        for refused in [
            "id=",
            "id=../x.tif",
            "id=a/../../x.tif",
            "id=..%2Fx.tif",
            "id=a/..",
            "id=x%00.tif",
            "x=1",
            "id=a&id=b",
            "ID=a",
        ] {
            assert!(scope(Some(refused)).is_err(), "{refused}");
        }
    }
}
