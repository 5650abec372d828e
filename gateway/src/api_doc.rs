//! The OpenAPI 3.1 contract at `GET /api-docs/openapi.json`, generated from the code: each
//! handler's `#[utoipa::path]` (registered with `utoipa_axum::routes!`, so a route cannot be
//! served without being described) plus what every operation shares, added here: the error
//! shape, the errors any request may get, and the two ways of proving who calls.

use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, OpenApi as OpenApiDocument, RefOr, ResponseBuilder, Responses,
};
use utoipa::{Modify, OpenApi, ToSchema};

/// Where the document is served.
pub const DOCUMENT_PATH: &str = "/api-docs/openapi.json";
/// The name of the bearer-token scheme in `security(...)` attributes.
pub const BEARER: &str = "bearer";
/// The name of the payment provider's signature scheme.
pub const WEBHOOK_SIGNATURE: &str = "webhook_signature";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "flashcart",
        description = "An actor-based, in-memory commerce engine that survives a flash sale. \
            JSON, camelCase, money in minor units (paise), times RFC 3339. Every error is \
            `{\"error\": {\"code\": ..., \"message\": ...}}`.",
        license(name = "Apache-2.0")
    ),
    components(schemas(ErrorBody, ErrorDetail))
)]
pub struct ApiDoc;

/// The document of `routes`: the handlers' own descriptions, then what they share. (A
/// modifier of `ApiDoc` would run before the router adds the paths.)
pub fn complete(mut document: OpenApiDocument) -> OpenApiDocument {
    SharedParts.modify(&mut document);
    document
}

/// Every error answer.
#[derive(ToSchema)]
#[allow(dead_code)] // the schema of what `error.rs` writes
pub struct ErrorBody {
    error: ErrorDetail,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ErrorDetail {
    /// Stable and machine-readable: `sold_out`, `limit_reached`, `rate_limited`...
    code: String,
    /// For people.
    message: String,
    /// The request field at fault (`invalid_field`).
    #[schema(nullable = false)]
    field: Option<String>,
    /// The refused lines of a checkout (`lines_refused`): `{productId, quantity, code,
    /// message}` each.
    #[schema(nullable = false)]
    lines: Option<Vec<serde_json::Value>>,
}

/// Security schemes, and the errors every operation may answer with.
struct SharedParts;

impl Modify for SharedParts {
    fn modify(&self, document: &mut OpenApiDocument) {
        let components = document.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A JWT: the engine's own (HS256, `flashcart demo-token`) or, with \
                         `[auth] jwks_url`, the shop's identity provider's (RS256/ES256).",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            WEBHOOK_SIGNATURE,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                crate::routes::payments::SIGNATURE_HEADER,
                "Hex HMAC-SHA256 of the raw body with the secret shared with the payment \
                 provider ([payments] webhook_secret).",
            ))),
        );
        for item in document.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                add_shared_errors(operation);
            }
        }
    }
}

/// What any operation may answer besides its own outcomes.
fn add_shared_errors(operation: &mut Operation) {
    let names = security_names(operation);
    if names.contains(&WEBHOOK_SIGNATURE) {
        // The provider's webhook reads its body raw and is never rate-limited.
        add_error(
            &mut operation.responses,
            "413",
            "The body is over the limit (`payload_too_large`).",
        );
        add_error(
            &mut operation.responses,
            "503",
            "The store is unreachable (`unavailable`); the provider retries.",
        );
        return;
    }
    let secured = names.contains(&BEARER);
    let has_body = operation.request_body.is_some();
    let has_parameters = operation
        .parameters
        .as_ref()
        .is_some_and(|parameters| !parameters.is_empty());
    let mut shared = Vec::new();
    if has_body {
        shared.extend([
            ("400", "The body is not JSON (`malformed_json`)."),
            ("413", "The body is over the limit (`payload_too_large`)."),
            (
                "415",
                "Not `Content-Type: application/json` (`unsupported_media_type`).",
            ),
            (
                "422",
                "A field is missing, of the wrong type or out of bounds (`invalid_body`, \
                 `invalid_field` with `field`).",
            ),
        ]);
    } else if has_parameters {
        shared.push((
            "400",
            "A path or query parameter is not readable (`invalid_path`, `invalid_query`).",
        ));
    }
    if secured {
        shared.push((
            "401",
            "No token, or one that is not valid or has expired (`unauthorized`).",
        ));
    }
    shared.extend([
        (
            "429",
            "This caller's bucket of this class of request is empty (`rate_limited`); \
             `Retry-After` says when to come back.",
        ),
        (
            "503",
            "Shed (`overloaded`) or the store is unreachable (`unavailable`); `Retry-After`.",
        ),
    ]);
    for (status, description) in shared {
        add_error(&mut operation.responses, status, description);
    }
}

fn security_names(operation: &Operation) -> Vec<&'static str> {
    let Some(security) = &operation.security else {
        return Vec::new();
    };
    let text = serde_json::to_string(security).unwrap_or_default();
    [BEARER, WEBHOOK_SIGNATURE]
        .into_iter()
        .filter(|name| text.contains(&format!("\"{name}\"")))
        .collect()
}

/// Adds an error answer unless the operation describes that status itself.
fn add_error(responses: &mut Responses, status: &str, description: &str) {
    if responses.responses.contains_key(status) {
        return;
    }
    let response = ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                    "ErrorBody",
                ))))
                .build(),
        )
        .build();
    responses
        .responses
        .insert(status.to_owned(), RefOr::T(response));
}

/// The document, rendered once at start.
pub fn render(document: &OpenApiDocument) -> Vec<u8> {
    serde_json::to_vec(document).unwrap_or_default()
}
