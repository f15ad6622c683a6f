//! What the current request is, as the layers that learn it note it: the protocol (the IIP
//! session's dispatch), the kind and output format (the protocol handlers), the image
//! identifier (`open_image`). A thread-local record: `App::respond` clears it with [`begin`]
//! before the protocols run on this worker thread and reads it with [`take`] when they return
//! (they run synchronously in between, so nothing else runs on the thread meanwhile). Noting
//! is a thread-local write: no lock, no allocation (the identifier is a reference count).

use std::cell::{Cell, RefCell};
use std::sync::Arc;

use super::table::{Format, Kind, Protocol};

/// The labels of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Note {
    pub protocol: Protocol,
    pub kind: Kind,
    pub format: Format,
}

impl Note {
    /// Nothing learnt yet.
    pub(crate) const EMPTY: Note = Note {
        protocol: Protocol::None,
        kind: Kind::Other,
        format: Format::None,
    };
}

thread_local! {
    static NOTE: Cell<Note> = const { Cell::new(Note::EMPTY) };
    static IDENTIFIER: RefCell<Option<Arc<[u8]>>> = const { RefCell::new(None) };
}

fn update(f: impl FnOnce(&mut Note)) {
    NOTE.with(|n| {
        let mut note = n.get();
        f(&mut note);
        n.set(note);
    });
}

/// Start a request: forget what the last one on this thread noted.
pub(crate) fn begin() {
    NOTE.with(|n| n.set(Note::EMPTY));
    IDENTIFIER.with(|i| i.borrow_mut().take());
}

/// The request's labels and its image identifier (the first image it opened), as noted.
pub(crate) fn take() -> (Note, Option<Arc<[u8]>>) {
    let note = NOTE.with(|n| n.replace(Note::EMPTY));
    let id = IDENTIFIER.with(|i| i.borrow_mut().take());
    (note, id)
}

/// The request uses `protocol` (the first protocol command wins: IIP's parameters before an
/// `IIIF=` do not make it IIP).
pub(crate) fn protocol(protocol: Protocol) {
    update(|n| {
        if n.protocol == Protocol::None || n.protocol == Protocol::Iip {
            n.protocol = protocol;
        }
    });
}

/// The request asks for `kind` (a later, more precise note wins: a IIIF image request is a
/// region until it turns out to be one stored tile).
pub(crate) fn kind(kind: Kind) {
    update(|n| n.kind = kind);
}

/// The response is an image in `format`.
pub(crate) fn format(format: Format) {
    update(|n| n.format = format);
}

/// The image the current request opened first, if any (the memcached store remembers it, for
/// purging).
pub(crate) fn identifier_now() -> Option<Arc<[u8]>> {
    IDENTIFIER.with(|i| i.borrow().clone())
}

/// The request opened the image `key` (only the first is kept).
pub(crate) fn identifier(key: &Arc<[u8]>) {
    IDENTIFIER.with(|i| {
        let mut i = i.borrow_mut();
        if i.is_none() {
            *i = Some(key.clone());
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_sees_only_its_own_notes() {
        begin();
        protocol(Protocol::Iip);
        protocol(Protocol::Iiif);
        kind(Kind::Region);
        kind(Kind::Tile);
        format(Format::Webp);
        identifier(&Arc::from(&b"a.tif"[..]));
        identifier(&Arc::from(&b"b.tif"[..]));
        let (note, id) = take();
        assert_eq!(
            note,
            Note {
                protocol: Protocol::Iiif,
                kind: Kind::Tile,
                format: Format::Webp
            }
        );
        assert_eq!(id.as_deref(), Some(&b"a.tif"[..]));
        begin();
        assert_eq!(take(), (Note::EMPTY, None));
    }

    #[test]
    fn a_later_protocol_does_not_override_a_viewer_protocol() {
        begin();
        protocol(Protocol::Zoomify);
        protocol(Protocol::Iip);
        assert_eq!(take().0.protocol, Protocol::Zoomify);
    }
}
