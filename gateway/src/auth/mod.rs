//! Who is calling: a bearer JWT. The engine's own (HS256, `sub` a user id, `role`, `exp`),
//! or, with `[auth] jwks_url`, the shop's identity provider's (`identity_provider.rs`).

mod identity_provider;
mod jwt;
mod secret;

pub use identity_provider::{IdentityProvider, ProviderError, public_key_algorithms};
pub use jwt::{Claims, JwtKeys, TokenError};
pub use secret::load_or_create_secret;

/// Where a generated token secret is kept in the data directory.
pub const JWT_SECRET_FILE: &str = "jwt-secret";
/// Where a generated payment-webhook secret is kept in the data directory.
pub const WEBHOOK_SECRET_FILE: &str = "webhook-secret";

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use engine::UserId;
use serde::{Deserialize, Serialize};

use crate::app::ApiContext;
use crate::error::ApiError;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Customer,
    Admin,
    Logistics,
    Delivery,
    /// A marketplace seller: sees the orders of their products and their payouts.
    Seller,
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "customer" => Ok(Role::Customer),
            "admin" => Ok(Role::Admin),
            "logistics" => Ok(Role::Logistics),
            "delivery" => Ok(Role::Delivery),
            "seller" => Ok(Role::Seller),
            other => Err(format!(
                "unknown role {other:?}: expected customer, admin, logistics, delivery or seller"
            )),
        }
    }
}

/// An authenticated caller. Taking it as a handler argument makes the route require a
/// valid token (401 otherwise).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caller {
    pub user_id: UserId,
    pub role: Role,
}

impl Caller {
    /// 403 unless the caller has one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<(), ApiError> {
        if roles.contains(&self.role) {
            Ok(())
        } else {
            Err(ApiError::Forbidden)
        }
    }

    /// Owners see their own things; admins see everything.
    pub fn may_see(&self, owner: UserId) -> bool {
        self.role == Role::Admin || self.user_id == owner
    }
}

/// The caller a bearer token names: the engine's own HS256 tokens are checked against its
/// key; with `[auth] jwks_url`, any other token against the identity provider's keys.
pub async fn caller_from_token(ctx: &ApiContext, token: &str) -> Result<Caller, ApiError> {
    let token = token.trim();
    if let Some(provider) = &ctx.identity_provider
        && !JwtKeys::is_own(token)
    {
        let caller = provider.verify(token).await.map_err(|error| {
            tracing::debug!(%error, "identity provider token refused");
            match error {
                ProviderError::Unreachable => ApiError::Unavailable(error.to_string()),
                ProviderError::Expired => ApiError::Unauthorized("the token has expired"),
                ProviderError::UnknownKey => ApiError::Unauthorized(
                    "the token is signed with a key the provider does not publish",
                ),
                _ => ApiError::Unauthorized("the token is not valid"),
            }
        })?;
        return Ok(Caller {
            user_id: UserId(caller.user_id),
            role: caller.role,
        });
    }
    let now_secs = actors::clock::now_ms() / 1_000;
    let claims = ctx.keys.decode(token, now_secs).map_err(|error| {
        ApiError::Unauthorized(match error {
            TokenError::Expired => "the token has expired",
            _ => "the token is not valid",
        })
    })?;
    let user_id = claims
        .sub
        .parse::<u64>()
        .map(UserId)
        .map_err(|_| ApiError::Unauthorized("the token's subject is not a user id"))?;
    Ok(Caller {
        user_id,
        role: claims.role,
    })
}

impl FromRequestParts<ApiContext> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        ctx: &ApiContext,
    ) -> Result<Self, Self::Rejection> {
        // Checked already by the rate limiter (`remember`).
        if let Some(caller) = parts.extensions.get::<Caller>() {
            return Ok(*caller);
        }
        if !parts.headers.contains_key(AUTHORIZATION) {
            return Err(ApiError::Unauthorized("missing Authorization header"));
        }
        let token = bearer_token(&parts.headers).ok_or(ApiError::Unauthorized(
            "expected `Authorization: Bearer <token>`",
        ))?;
        caller_from_token(ctx, token).await
    }
}

/// `Option<Caller>`: routes anyone may call that do more for a signed-in caller. No
/// `Authorization` header is `None`; a header with a bad token is refused (401) all the
/// same, rather than silently ignored.
impl OptionalFromRequestParts<ApiContext> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        ctx: &ApiContext,
    ) -> Result<Option<Self>, Self::Rejection> {
        if parts.extensions.get::<Caller>().is_none() && !parts.headers.contains_key(AUTHORIZATION)
        {
            return Ok(None);
        }
        <Caller as FromRequestParts<ApiContext>>::from_request_parts(parts, ctx)
            .await
            .map(Some)
    }
}

/// Keeps a caller already authenticated on the request, so the handler's [`Caller`] does
/// not check the token a second time.
pub fn remember(extensions: &mut axum::http::Extensions, caller: Caller) {
    extensions.insert(caller);
}

/// The token of an `Authorization: Bearer <token>` header, if the request has one.
pub fn bearer_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}
