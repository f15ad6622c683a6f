//! The protocol-neutral context of one request: the shared state, the request's CGI
//! parameters, and the view that the IIP parameter commands before a protocol command built
//! (`WID=200&IIIF=…` applies the width). IIIF, Zoomify and DeepZoom read only this; IIP's
//! [`super::iip`] session wraps it with its own state (the open image, OBJ lines, errors).

use crate::config::Config;
use crate::http::date;
use crate::http::{HeaderDefaults, Request};
use crate::open_image::OpenImage;
use crate::shared::Shared;
use crate::view::View;

/// What every protocol handler works with.
pub(crate) struct Context<'a> {
    pub shared: &'a Shared,
    pub req: &'a Request,
    /// The view so far (IIP parameter commands run left to right).
    pub view: View,
}

/// What a request's `If-Modified-Since` says about an image (`docs/behaviour/http-responses.md` §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IfModifiedSince {
    /// No such header.
    Absent,
    /// A header that is not an HTTP date.
    Unreadable,
    /// Not older than the image's mtime (to the second): the client's copy is current (304).
    Unmodified,
    /// Another time: answer in full.
    Modified,
}

impl<'a> Context<'a> {
    pub(crate) fn new(shared: &'a Shared, req: &'a Request) -> Context<'a> {
        Context {
            shared,
            req,
            view: View {
                vertical: None,
                ..View::default()
            },
        }
    }

    pub(crate) fn config(&self) -> &'a Config {
        self.shared.config()
    }

    /// The configured header lines (CORS, Cache-Control).
    pub(crate) fn headers(&self) -> &'a HeaderDefaults {
        self.shared.headers()
    }

    /// Compare `If-Modified-Since` with the image's mtime (whole seconds): any date not older
    /// than the image is unmodified (iipsrv: only an equal date). With `If-None-Match`, the
    /// entity tag decides and this header is not read (RFC 9110 §13.2.2; see
    /// [`super::validators`]).
    pub(crate) fn if_modified_since(&self, image: &OpenImage) -> IfModifiedSince {
        if self.req.param("HTTP_IF_NONE_MATCH").is_some() {
            return IfModifiedSince::Absent;
        }
        let Some(ims) = self.req.param("HTTP_IF_MODIFIED_SINCE") else {
            return IfModifiedSince::Absent;
        };
        match date::parse_http_date(&String::from_utf8_lossy(ims)) {
            Some(t) if t >= date::whole_seconds(image.located.mtime) => IfModifiedSince::Unmodified,
            Some(_) => IfModifiedSince::Modified,
            None => IfModifiedSince::Unreadable,
        }
    }

    /// Whether the client's copy of the image is current.
    pub(crate) fn unmodified(&self, image: &OpenImage) -> bool {
        self.if_modified_since(image) == IfModifiedSince::Unmodified
    }
}
