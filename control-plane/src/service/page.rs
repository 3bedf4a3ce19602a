//! Paging of list results: page sizes, cutting a page fetched with one extra row, and page
//! tokens that are ids.

use super::ServiceError;
use super::cluster::invalid;
use super::node::PageRequest;

/// The largest page of clusters, workspaces, operations or audit events.
const MAX_PAGE: u32 = 500;
/// The default page.
const DEFAULT_PAGE: u32 = 100;

pub(super) fn page_size(page: &PageRequest) -> Result<u32, ServiceError> {
    match page.page_size {
        None => Ok(DEFAULT_PAGE),
        Some(size) if (1..=MAX_PAGE).contains(&size) => Ok(size),
        Some(_) => Err(invalid(
            "page_size",
            &format!("must be between 1 and {MAX_PAGE}"),
        )),
    }
}

/// Cuts a page fetched with one extra row: the rows to return and the next page's token.
pub(super) fn paginate<T>(
    mut items: Vec<T>,
    size: u32,
    token: impl Fn(&T) -> String,
) -> (Vec<T>, Option<String>) {
    let next = if items.len() > size as usize {
        items.truncate(size as usize);
        items.last().map(token)
    } else {
        None
    };
    (items, next)
}

/// Parses a page token this API issued as a `T` (an id).
pub(super) fn page_after<T: std::str::FromStr>(
    page: &PageRequest,
) -> Result<Option<T>, ServiceError> {
    page.page_token
        .as_deref()
        .map(|token| {
            token
                .parse::<T>()
                .map_err(|_| invalid("page_token", "is not a token this API issued"))
        })
        .transpose()
}
