//! The OpenAPI document, generated from the handlers' annotations.

use axum::Json;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Content, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "deskgate", description = "REST API of the deskgate support gateway. The live part (chat, queue) is the WebSocket protocol in docs/protocol.md."),
    paths(
        super::bootstrap::create,
        super::session::login, super::session::logout, super::session::me,
        super::visitor::create,
        super::users::list, super::users::create, super::users::update,
        super::tickets::list, super::tickets::show, super::tickets::messages,
        super::tickets::notes, super::tickets::update, super::tickets::customer_history,
        super::queue::show,
        super::presence::show, super::sites::widget,
        super::verification::request, super::verification::status,
        super::verification::resend, super::verification::perform, super::alerts::list,
        super::mfa::status, super::mfa::begin, super::mfa::confirm,
        super::mfa::recovery_codes, super::mfa::disable, super::mfa::reset,
        super::customers::show, super::customers::reveal, super::exports::record,
        super::grants::create, super::grants::list, super::grants::policy, super::grants::show,
        super::grants::approve, super::grants::deny, super::grants::revoke,
        super::grants::transcript,
        super::attachments::customer_upload, super::attachments::staff_upload,
        super::attachments::download, super::attachments::download_granted,
        super::audit::list, super::audit::status, super::tickets::legal_hold,
        super::calls::show, super::calls::of_ticket, super::calls::of_ticket_recordings, super::calls::pause, super::calls::resume, super::calls::recording,
        super::grants::recording,
        super::health::live, super::health::ready, super::health::metrics,
    ),
    modifiers(&BearerAuth, &CommonResponses),
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The answers an operation gives because of its shape, whatever its handler does, added where
/// the handler's annotation does not already describe them: a path or query parameter or a
/// JSON body that does not parse is a 400 (`api::Path`, `api::Query`, `api::Body`), a body
/// over the limit a 413, and an operation behind a bearer token answers 401 without a valid
/// one and 503 when the store that holds the tokens cannot be reached.
struct CommonResponses;

impl Modify for CommonResponses {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        for item in doc.paths.paths.values_mut() {
            let ops = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for op in ops.into_iter().flatten() {
                add_common(op);
            }
        }
    }
}

fn add_common(op: &mut Operation) {
    let params = op
        .parameters
        .iter()
        .flatten()
        .any(|p| matches!(p.parameter_in, ParameterIn::Path | ParameterIn::Query));
    let json_body = op
        .request_body
        .as_ref()
        .is_some_and(|b| b.content.contains_key("application/json"));
    // Every scheme of this API is a bearer token; an empty requirement means "or none".
    let bearer = op
        .security
        .iter()
        .flatten()
        .any(|s| *s != SecurityRequirement::default());
    if params || json_body {
        error(
            op,
            "400",
            "invalid: a path or query parameter or the body does not parse or is not valid",
        );
    }
    if json_body {
        error(
            op,
            "413",
            "too_large: the body is larger than the gateway accepts",
        );
    }
    if bearer {
        error(
            op,
            "401",
            "unauthenticated: missing, unknown or expired token",
        );
        error(
            op,
            "503",
            "unavailable: the store cannot be reached; retry later",
        );
    }
}

/// An error answer with the API's error body, unless the operation already documents `status`.
fn error(op: &mut Operation, status: &str, description: &str) {
    op.responses
        .responses
        .entry(status.to_string())
        .or_insert_with(|| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    Content::new(Some(Ref::from_schema_name("ErrorBody"))),
                )
                .build()
                .into()
        });
}

#[utoipa::path(get, path = "/api/openapi.json", tag = "operations", responses((status = 200, description = "this document")))]
pub async fn serve() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
