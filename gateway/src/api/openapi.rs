//! The OpenAPI document, generated from the handlers' annotations.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
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
        super::health::live, super::health::ready, super::health::metrics,
    ),
    modifiers(&BearerAuth),
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

#[utoipa::path(get, path = "/api/openapi.json", tag = "operations", responses((status = 200, description = "this document")))]
pub async fn serve() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
