//! What every operation of the OpenAPI document shares, declared once instead of in each
//! handler's annotation.
//!
//! Every operation with a JSON body can answer `400 invalid_body` and `415
//! unsupported_media_type` ([`super::extract::ApiJson`]); every one with path or query parameters
//! `400 invalid_path`/`invalid_query` (a path segment that is not UTF-8 or not a UUID, a page size
//! that is not a number); every secured one `401 unauthorized`. And every error answer is a
//! problem document ([`super::error::ApiError`]): an annotation lists an error status with its
//! description only, and gets the `Problem` body as `application/problem+json` here (an error
//! response that declares a body of its own, like `/readyz`'s `503`, keeps it).

use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::{Content, ContentBuilder, OpenApi, Ref, RefOr, Response, ResponseBuilder};

/// Adds the extractors' responses to every operation that lacks them, and the problem body to
/// every error response without a body.
pub struct CommonResponses;

impl utoipa::Modify for CommonResponses {
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
                add_problem_bodies(operation);
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
    let json_body = operation
        .request_body
        .as_ref()
        .is_some_and(|b| b.content.contains_key("application/json"));
    if json_body {
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

fn add_problem_bodies(operation: &mut Operation) {
    for (status, response) in &mut operation.responses.responses {
        if let RefOr::T(response) = response
            && (status.starts_with('4') || status.starts_with('5'))
            && response.content.is_empty()
        {
            response
                .content
                .insert("application/problem+json".to_owned(), problem_content());
        }
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
        .content("application/problem+json", problem_content())
        .build()
}

fn problem_content() -> Content {
    ContentBuilder::new()
        .schema(Some(Ref::from_schema_name("Problem")))
        .build()
}
