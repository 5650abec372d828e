//! Tokens from the shop's identity provider (`[auth] jwks_url`): a JWKS served by the test
//! on loopback, RS256 and ES256 tokens signed with its keys, and everything a provider's
//! token must not get away with.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, serve_on_loopback, spawn_app_with};

const ISSUER: &str = "https://id.shop.test/realms/shop";
const AUDIENCE: &str = "flashcart-api";

/// A signing key of the pretend provider (`tests/fixtures/identity_provider/`).
struct ProviderKey {
    kid: &'static str,
    algorithm: Algorithm,
    key: EncodingKey,
}

impl ProviderKey {
    fn load(kid: &'static str, file: &str, algorithm: Algorithm) -> Self {
        let pem = std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/identity_provider")
                .join(file),
        )
        .expect("the test key");
        let key = match algorithm {
            Algorithm::ES256 => EncodingKey::from_ec_pem(&pem),
            _ => EncodingKey::from_rsa_pem(&pem),
        }
        .expect("a PEM key");
        Self {
            kid,
            algorithm,
            key,
        }
    }

    fn jwk(&self) -> Jwk {
        let mut jwk = Jwk::from_encoding_key(&self.key, self.algorithm).expect("a public JWK");
        jwk.common.key_id = Some(self.kid.to_owned());
        jwk
    }

    fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.algorithm);
        header.kid = Some(self.kid.to_owned());
        jsonwebtoken::encode(&header, claims, &self.key).expect("signed")
    }
}

/// The provider's JWKS endpoint: serves whichever keys the test publishes, counting fetches.
async fn jwks_server(published: Arc<Mutex<Vec<Jwk>>>, fetches: Arc<AtomicUsize>) -> String {
    let app = Router::new().route(
        "/certs",
        get(move || {
            let published = Arc::clone(&published);
            let fetches = Arc::clone(&fetches);
            async move {
                fetches.fetch_add(1, Ordering::SeqCst);
                let keys = published.lock().expect("lock").clone();
                axum::Json(JwkSet { keys })
            }
        }),
    );
    let address = serve_on_loopback(app).await;
    format!("http://{address}/certs")
}

fn now() -> u64 {
    actors::clock::now_ms() / 1_000
}

/// Claims as Keycloak writes them: a UUID subject, roles under `realm_access`.
fn claims(subject: &str, roles: &[&str]) -> Value {
    json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": subject,
        "iat": now(),
        "nbf": now() - 5,
        "exp": now() + 600,
        "realm_access": { "roles": roles },
    })
}

async fn status_of(app: &TestApp, token: &str) -> (StatusCode, Value) {
    let answer = app
        .client
        .get(app.url("/api/v1/notifications"))
        .bearer_auth(token)
        .send()
        .await
        .expect("sent");
    let status = answer.status();
    (status, answer.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn tokens_of_the_identity_provider_are_checked_against_its_published_keys() {
    let rsa_a = ProviderKey::load("key-a", "rsa-a.pem", Algorithm::RS256);
    let ec_b = ProviderKey::load("key-b", "ec-b.pem", Algorithm::ES256);
    let rsa_c = ProviderKey::load("key-c", "rsa-c.pem", Algorithm::RS256);
    let published = Arc::new(Mutex::new(vec![rsa_a.jwk(), ec_b.jwk()]));
    let fetches = Arc::new(AtomicUsize::new(0));
    let jwks_url = jwks_server(Arc::clone(&published), Arc::clone(&fetches)).await;
    let app = spawn_app_with(|settings| {
        settings.auth.jwks_url = Some(jwks_url.clone());
        settings.auth.issuer = Some(ISSUER.into());
        settings.auth.audience = Some(AUDIENCE.into());
        settings.auth.role_claim = "realm_access.roles".into();
        settings.auth.jwks_refresh_min_ms = 1_000;
    })
    .await;
    app.create_product(1, 100, 10).await;

    // Either published key works, RS256 or ES256.
    let shopper = "6c1f7a52-3b8e-4f0a-9d2c-1e5b7a9c3d40";
    for key in [&rsa_a, &ec_b] {
        let token = key.sign(&claims(shopper, &["offline_access"]));
        let (status, body) = status_of(&app, &token).await;
        assert_eq!(status, StatusCode::OK, "{}: {body}", key.kid);
    }
    // A shopper buys with the provider's token; the order is theirs, whatever key signed.
    let token = rsa_a.sign(&claims(shopper, &[]));
    let bought = app
        .client
        .post(app.url("/api/v1/buy-now"))
        .bearer_auth(&token)
        .header("Idempotency-Key", "idp-1")
        .json(&json!({ "productId": 1, "quantity": 1 }))
        .send()
        .await
        .expect("sent");
    assert_eq!(bought.status(), StatusCode::CREATED);
    let order: Value = bought.json().await.expect("json");
    let order_url = format!("/api/v1/orders/{}", order["orderId"].as_str().expect("id"));
    let seen = app
        .get_as(&order_url, &ec_b.sign(&claims(shopper, &[])))
        .await;
    assert_eq!(
        seen.status(),
        StatusCode::OK,
        "the same user through the other key"
    );
    let stranger = app
        .get_as(&order_url, &ec_b.sign(&claims("someone-else", &[])))
        .await;
    assert_eq!(stranger.status(), StatusCode::NOT_FOUND);
    // The role comes from the mapped claim: an admin may create products, a shopper not.
    let create = |token: String, id: u64| {
        app.client
            .post(app.url("/api/v1/products"))
            .bearer_auth(token)
            .json(&json!({
                "id": id, "title": "Tablet", "brand": "Acme", "category": "tablets",
                "price": 100, "stock": 1
            }))
            .send()
    };
    let admin = rsa_a.sign(&claims("ops-1", &["offline_access", "admin"]));
    assert_eq!(
        create(admin, 2).await.expect("sent").status(),
        StatusCode::CREATED
    );
    let customer = rsa_a.sign(&claims("ops-2", &["offline_access"]));
    assert_eq!(
        create(customer, 3).await.expect("sent").status(),
        StatusCode::FORBIDDEN
    );
    // The engine's own HS256 tokens still work (demo, operators' CLI).
    let own = app.token(5, gateway::auth::Role::Customer);
    assert_eq!(status_of(&app, &own).await.0, StatusCode::OK);

    // Refused with 401: wrong issuer, wrong audience, expired, not yet valid, no subject.
    let mut wrong_issuer = claims(shopper, &[]);
    wrong_issuer["iss"] = json!("https://evil.test/");
    let mut wrong_audience = claims(shopper, &[]);
    wrong_audience["aud"] = json!("another-api");
    let mut expired = claims(shopper, &[]);
    expired["exp"] = json!(now() - 3_600);
    let mut early = claims(shopper, &[]);
    early["nbf"] = json!(now() + 3_600);
    let mut anonymous = claims(shopper, &[]);
    anonymous.as_object_mut().expect("object").remove("sub");
    for (case, claims) in [
        ("wrong issuer", wrong_issuer),
        ("wrong audience", wrong_audience),
        ("expired", expired),
        ("not yet valid", early),
        ("no subject", anonymous),
    ] {
        let (status, body) = status_of(&app, &rsa_a.sign(&claims)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{case}: {body}");
        assert_eq!(body["error"]["code"], "unauthorized", "{case}");
    }
    // `alg: none`, and HS256 "signed" with the provider's public key as the secret.
    let payload = URL_SAFE_NO_PAD.encode(claims(shopper, &["admin"]).to_string());
    let none_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT","kid":"key-a"}"#);
    let (status, _) = status_of(&app, &format!("{none_header}.{payload}.")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "alg none");
    let public_jwk = serde_json::to_vec(&rsa_a.jwk()).expect("json");
    let mut hs_header = Header::new(Algorithm::HS256);
    hs_header.kid = Some("key-a".into());
    let confused = jsonwebtoken::encode(
        &hs_header,
        &claims(shopper, &["admin"]),
        &EncodingKey::from_secret(&public_jwk).expect("a secret"),
    )
    .expect("signed");
    assert_eq!(
        status_of(&app, &confused).await.0,
        StatusCode::UNAUTHORIZED,
        "HS256"
    );
    // A key the provider does not publish (right shape, unknown kid).
    let unpublished = ProviderKey {
        kid: "key-z",
        algorithm: Algorithm::RS256,
        key: EncodingKey::from_rsa_pem(
            &std::fs::read(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("tests/fixtures/identity_provider/rsa-c.pem"),
            )
            .expect("key"),
        )
        .expect("pem"),
    };
    assert_eq!(
        status_of(&app, &unpublished.sign(&claims(shopper, &[])))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );

    // Rotation: the provider drops key A and adds key C. After the refresh bound, a token
    // of C makes the engine fetch the keys again; from then on A is refused.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    *published.lock().expect("lock") = vec![ec_b.jwk(), rsa_c.jwk()];
    let (status, body) = status_of(&app, &rsa_c.sign(&claims(shopper, &[]))).await;
    assert_eq!(status, StatusCode::OK, "the new key: {body}");
    let (status, _) = status_of(&app, &rsa_a.sign(&claims(shopper, &[]))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the rotated-out key");

    // Made-up key ids do not make the engine hammer the provider: one fetch per bound.
    let before = fetches.load(Ordering::SeqCst);
    for n in 0..30 {
        let made_up = ProviderKey {
            kid: if n % 2 == 0 { "made-up-1" } else { "made-up-2" },
            algorithm: Algorithm::RS256,
            key: rsa_c.key.clone(),
        };
        assert_eq!(
            status_of(&app, &made_up.sign(&claims(shopper, &[])))
                .await
                .0,
            StatusCode::UNAUTHORIZED
        );
    }
    let fetched = fetches.load(Ordering::SeqCst) - before;
    assert!(
        fetched <= 1,
        "{fetched} fetches for 30 unknown keys within the bound"
    );
    app.stop().await;
}
