//! Responses of the OpenAPI document that come from the extractors rather than from a handler.
//!
//! Every operation with a JSON body can answer `400 invalid_body` and `415
//! unsupported_media_type` ([`super::extract::ApiJson`]); every one with path or query parameters
//! `400 invalid_path`/`invalid_query` (a path segment that is not UTF-8 or not a UUID, a page size
//! that is not a number); every secured one `401 unauthorized`. Declaring them here, once, keeps
//! the document true for every handler instead of relying on each annotation to list them.

use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, Response, ResponseBuilder};

/// Adds the extractors' responses to every operation that lacks them.
pub struct ExtractorResponses;

impl utoipa::Modify for ExtractorResponses {
    fn modify(&self, openapi: &mut OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                add_extractor_responses(operation);
            }
        }
    }
}

fn add_extractor_responses(operation: &mut Operation) {
    let has_params = operation
        .parameters
        .iter()
        .flatten()
        .any(|p| matches!(p.parameter_in, ParameterIn::Path | ParameterIn::Query));
    let has_body = operation.request_body.is_some();
    let secured = operation.security.as_ref().is_some_and(|s| !s.is_empty());
    if has_params || has_body {
        add(
            operation,
            "400",
            "Malformed request: a body, path or query parameter that does not parse",
        );
    }
    if has_body {
        add(
            operation,
            "415",
            "The body is not sent as Content-Type: application/json",
        );
    }
    if secured {
        add(operation, "401", "No valid token");
    }
}

fn add(operation: &mut Operation, status: &str, description: &str) {
    operation
        .responses
        .responses
        .entry(status.to_owned())
        .or_insert_with(|| RefOr::T(problem(description)));
}

fn problem(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/problem+json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build()
}
