//! Paging of list RPCs: a page of a listing the service holds whole, the page token being the
//! offset of the page's first item (opaque to clients, checked when it comes back).

use std::sync::Arc;

use tonic::Status;
use xdr_proto::pb::{PageInfo, PageRequest};

/// Items in a page when the request names no size, and at most.
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;

/// The page of `items` that `request` asks for, copied out, and where the next one begins.
pub fn page_of<T: Clone>(
    items: &[Arc<T>],
    request: Option<&PageRequest>,
) -> Result<(Vec<T>, PageInfo), Status> {
    let default = PageRequest::default();
    let request = request.unwrap_or(&default);
    let offset: usize = if request.page_token.is_empty() {
        0
    } else {
        request.page_token.parse().map_err(|_| {
            Status::invalid_argument("page.page_token: not a token this service gave")
        })?
    };
    let size = match request.page_size {
        0 => DEFAULT_PAGE,
        n => (n as usize).min(MAX_PAGE),
    };
    let page: Vec<T> = (items.iter().skip(offset).take(size))
        .map(|item| T::clone(item))
        .collect();
    let next = offset + page.len();
    let next_page_token = if next < items.len() {
        next.to_string()
    } else {
        String::new()
    };
    Ok((page, PageInfo { next_page_token }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_follow_their_tokens_to_the_end() {
        let items: Vec<Arc<u32>> = (0..250).map(Arc::new).collect();
        let (first, info) = page_of(&items, None).unwrap();
        assert_eq!((first.len(), info.next_page_token.as_str()), (100, "100"));
        let next = PageRequest {
            page_size: 200,
            page_token: info.next_page_token,
        };
        let (rest, info) = page_of(&items, Some(&next)).unwrap();
        assert_eq!(
            (rest.len(), rest[0], info.next_page_token.as_str()),
            (150, 100, "")
        );
        let forged = PageRequest {
            page_token: "x".into(),
            ..Default::default()
        };
        assert!(page_of(&items, Some(&forged)).is_err());
    }
}
