//! The one place where an [`Error`] becomes a response, and where the sources' typed errors
//! get iipsrv's wording and status.
//!
//! Worded errors keep their kind and message. A [`SourceError`] is worded here as iipsrv's
//! image readers word theirs: `TPTImage :: …` (TIFF), `OpenJPEG :: …` (JPEG2000), `JPEG :: …`,
//! or the messages of its file lookup (`Unable to open file '<name>'`). Broken, unsupported and
//! unreadable files are 404 (iipsrv answers them so), exceeded limits and regions outside
//! their level 400, an unsupported image type the banner with 400, the server's own failures
//! the banner with 500. Context and causes (paths, library messages) go to the log only.

use std::borrow::Cow;

use crate::error::{Error, ErrorKind};
use crate::http::{HeaderDefaults, Response};
use crate::source::ImageFormat;
use crate::source::error::{
    Corrupt, Defect, IoOp, Missing, SourceError, SourceErrorKind, TooLarge, Unsupported,
};
use crate::storage::StorageErrorKind;

/// The one place where an [`Error`] becomes a response (bodies are client-safe; details are
/// logged).
pub(crate) fn error_response(d: &HeaderDefaults, e: &Error) -> Response {
    let (kind, message) = wording(e);
    // The log line: the client's text, then (for a typed error) what and where it was.
    let logged = match e.kind() {
        Some(_) => e.to_string(),
        None => format!("{message} ({e})"),
    };
    match kind {
        ErrorKind::NotFound
        | ErrorKind::BadRequest
        | ErrorKind::TooLarge
        | ErrorKind::NotImplemented => {
            tracing::debug!("{logged}");
            tracing::debug!("Sending HTTP {}", kind.status());
            Response::plain_error(d, kind.status(), &message)
        }
        ErrorKind::Invalid => {
            tracing::info!("\n{logged}\n");
            Response::banner(400)
        }
        ErrorKind::Internal => {
            tracing::error!("\n{logged}\n");
            Response::banner(500)
        }
        ErrorKind::Unavailable | ErrorKind::BadGateway | ErrorKind::GatewayTimeout => {
            if crate::storage::collect::pending() {
                // A pass waiting for storage: thrown away, and asked again once fetched.
                tracing::debug!("{logged}");
                return Response::plain_error(d, kind.status(), &message);
            }
            tracing::warn!("{logged}");
            tracing::debug!("Sending HTTP {}", kind.status());
            Response::plain_error(d, kind.status(), &message)
        }
    }
}

/// 503 for a heavy request the server has no memory for now (docs/compatibility.md): the
/// client may retry after `retry_after_secs` seconds.
pub(crate) fn busy_response(d: &HeaderDefaults, retry_after_secs: u64) -> Response {
    tracing::info!("Server busy: heavy request refused, retry after {retry_after_secs} s");
    let mut r = Response::plain_error(
        d,
        503,
        "Server busy: too many large requests at once. Please retry later.",
    );
    r.push("Retry-After", retry_after_secs.max(1).to_string());
    r
}

/// The kind (status class) of an error, worded or typed.
pub(crate) fn kind(e: &Error) -> ErrorKind {
    wording(e).0
}

/// The kind and client text of an error: a worded one's own, a source error's as iipsrv words
/// it. Any other typed error is the server's (500).
pub(crate) fn wording(e: &Error) -> (ErrorKind, Cow<'_, str>) {
    if let (Some(kind), Some(message)) = (e.kind(), e.message()) {
        return (kind, Cow::Borrowed(message));
    }
    match e.downcast_ref::<SourceError>() {
        Some(source) => {
            let (kind, message) = source_wording(source);
            (kind, Cow::Owned(message))
        }
        None => (ErrorKind::Internal, Cow::Borrowed("Internal error")),
    }
}

/// The name iipsrv's reader for `format` puts before its messages.
fn reader(format: ImageFormat) -> &'static str {
    match format {
        ImageFormat::Tiff => "TPTImage",
        ImageFormat::Jpeg2000 => "OpenJPEG",
        ImageFormat::Jpeg => "JPEG",
    }
}

/// A source error's kind and client text, as iipsrv words it.
pub(crate) fn source_wording(e: &SourceError) -> (ErrorKind, String) {
    use ErrorKind::{BadRequest, Internal, Invalid, NotFound};
    let name = e.name.as_deref().unwrap_or("");
    // `<reader> :: <text>`, or the text alone before a format is known.
    let said = |text: &str| match e.format {
        Some(f) => format!("{} :: {text}", reader(f)),
        None => text.to_string(),
    };
    match &e.kind {
        SourceErrorKind::Corrupt(corrupt) => (
            NotFound,
            match (e.format, corrupt) {
                (Some(ImageFormat::Jpeg), _) => said("aborting"),
                (Some(ImageFormat::Tiff), Corrupt::Structure(problem)) => {
                    said(&format!("TIFF error: {problem}"))
                }
                (Some(ImageFormat::Tiff), _) => said("TIFFReadEncodedTile() failed"),
                (
                    _,
                    Corrupt::Rejected {
                        message: Some(m), ..
                    },
                ) => format!("OpenJPEG error :: {m}"),
                (
                    _,
                    Corrupt::Rejected {
                        step,
                        message: None,
                    },
                ) => said(&format!("process() :: {}() failed", step.function())),
                (_, Corrupt::Structure(_)) => said("process() :: opj_read_header() failed"),
                (_, Corrupt::Decoded(Defect::NoComponents)) => said("no components decoded"),
                (_, Corrupt::Decoded(Defect::EmptyComponent)) => said("component without data"),
                (_, Corrupt::Data | Corrupt::Decoded(Defect::Mismatch)) => {
                    said("unexpected decoded image")
                }
            },
        ),
        SourceErrorKind::Unsupported(what) => match what {
            Unsupported::ImageType => (Invalid, format!("Unsupported image type: {name}")),
            Unsupported::NotTiled => (NotFound, said("Image is not tiled")),
            Unsupported::Feature(feature) => {
                (NotFound, said(&format!("Unsupported TIFF: {feature}")))
            }
            Unsupported::Subsampling => (NotFound, said("Subsampled components are not supported")),
            Unsupported::BitDepth(bits) => match e.format {
                Some(ImageFormat::Jpeg) => {
                    (NotFound, said(&format!("{bits}-bit JPEG is not supported")))
                }
                _ => (NotFound, said("Unsupported number of bits")),
            },
            Unsupported::Lossless => (NotFound, said("lossless JPEG is not supported")),
            Unsupported::SeveralExtensions => (
                NotFound,
                format!("There are multiple file extensions matching {name}"),
            ),
        },
        SourceErrorKind::TooLarge(what) => (
            ErrorKind::TooLarge,
            match (e.format, what) {
                (_, TooLarge::File) => said("file too large"),
                (Some(ImageFormat::Jpeg2000), TooLarge::Decode { width, height }) => said(
                    &format!("decoding {width}x{height} pixels exceeds the limit"),
                ),
                (_, TooLarge::Decode { .. }) => said("image too large to decode"),
            },
        ),
        SourceErrorKind::Io(op) => (
            NotFound,
            match (e.format, op) {
                (Some(_), IoOp::Read) => said("Unable to read file"),
                (Some(_), _) => said("Unable to open file"),
                (None, IoOp::ReadSignature) => {
                    format!("Unable to read initial byte sequence from file '{name}'")
                }
                (None, _) => format!("Unable to open file '{name}'"),
            },
        ),
        SourceErrorKind::NotFound(missing) => (
            NotFound,
            match missing {
                Missing::Image => {
                    format!("{name} is neither a file nor part of an image sequence")
                }
                Missing::Resolution(r) => said(&format!("Asked for non-existent resolution: {r}")),
                Missing::Tile(t) => said(&format!("Asked for non-existent tile: {t}")),
                Missing::Page(p) => said(&format!("Asked for non-existent page: {p}")),
            },
        ),
        SourceErrorKind::OutsideLevel {
            region: (x, y, w, h),
            level: (lw, lh),
        } => (
            BadRequest,
            said(&format!(
                "region {x},{y} {w}x{h} outside the {lw}x{lh} level"
            )),
        ),
        SourceErrorKind::Internal(what) => (Internal, said(what)),
        // Remote storage: the client learns only that storage failed, never where it is.
        SourceErrorKind::Storage(kind) => match kind {
            StorageErrorKind::NotFound | StorageErrorKind::Io => (
                NotFound,
                match e.format {
                    Some(_) => said("Unable to open file"),
                    None => format!("Unable to open file '{name}'"),
                },
            ),
            StorageErrorKind::Pending | StorageErrorKind::Unreachable => (
                ErrorKind::Unavailable,
                "Image storage is unavailable".to_string(),
            ),
            StorageErrorKind::Timeout => (
                ErrorKind::GatewayTimeout,
                "Image storage did not answer in time".to_string(),
            ),
            StorageErrorKind::BadResponse
            | StorageErrorKind::Changed
            | StorageErrorKind::Denied => (
                ErrorKind::BadGateway,
                "Image storage answered with an error".to_string(),
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::error::DecodeStep;
    use ImageFormat::{Jpeg, Jpeg2000, Tiff};

    fn words(e: SourceError) -> (u16, String) {
        let e = Error::from(e);
        let (kind, message) = wording(&e);
        (kind.status(), message.into_owned())
    }

    fn not_found(message: &str) -> (u16, String) {
        (404, message.to_string())
    }

    #[test]
    fn tiff_errors_are_worded_as_tptimage() {
        let tiff = |k| SourceError::new(Some(Tiff), k);
        assert_eq!(
            words(SourceError::missing(Tiff, Missing::Tile(16))),
            not_found("TPTImage :: Asked for non-existent tile: 16")
        );
        assert_eq!(
            words(SourceError::missing(Tiff, Missing::Page(3))),
            not_found("TPTImage :: Asked for non-existent page: 3")
        );
        assert_eq!(
            words(SourceError::missing(Tiff, Missing::Resolution(9))),
            not_found("TPTImage :: Asked for non-existent resolution: 9")
        );
        assert_eq!(
            words(SourceError::corrupt(Tiff, "bad IFD entry count").context("/srv/x.tif")),
            not_found("TPTImage :: TIFF error: bad IFD entry count")
        );
        assert_eq!(
            words(SourceError::bad_data(Tiff, "Deflate: corrupt stream")),
            not_found("TPTImage :: TIFFReadEncodedTile() failed")
        );
        assert_eq!(
            words(SourceError::unsupported(
                Tiff,
                Unsupported::Feature("compression 34712".into())
            )),
            not_found("TPTImage :: Unsupported TIFF: compression 34712")
        );
        assert_eq!(
            words(SourceError::unsupported(Tiff, Unsupported::NotTiled)),
            not_found("TPTImage :: Image is not tiled")
        );
        let io = || std::io::Error::other("/srv/secret/x.tif: denied");
        assert_eq!(
            words(SourceError::io(Some(Tiff), IoOp::Open, io())),
            not_found("TPTImage :: Unable to open file")
        );
        assert_eq!(
            words(SourceError::io(Some(Tiff), IoOp::Read, io())),
            not_found("TPTImage :: Unable to read file")
        );
        assert_eq!(words(tiff(SourceErrorKind::Internal("unplanned"))).0, 500);
    }

    #[test]
    fn jpeg2000_errors_are_worded_as_openjpeg() {
        assert_eq!(
            words(SourceError::corrupt(Jpeg2000, "no SIZ marker")),
            not_found("OpenJPEG :: process() :: opj_read_header() failed")
        );
        let rejected = |step, message: Option<&str>| {
            SourceError::new(
                Some(Jpeg2000),
                SourceErrorKind::Corrupt(Corrupt::Rejected {
                    step,
                    message: message.map(str::to_string),
                }),
            )
        };
        assert_eq!(
            words(rejected(DecodeStep::Decode, Some("Stream too short"))),
            not_found("OpenJPEG error :: Stream too short")
        );
        assert_eq!(
            words(rejected(DecodeStep::SetDecodeArea, None)),
            not_found("OpenJPEG :: process() :: opj_set_decode_area() failed")
        );
        assert_eq!(
            words(SourceError::new(
                Some(Jpeg2000),
                SourceErrorKind::Corrupt(Corrupt::Decoded(Defect::Mismatch))
            )),
            not_found("OpenJPEG :: unexpected decoded image")
        );
        assert_eq!(
            words(SourceError::new(
                Some(Jpeg2000),
                SourceErrorKind::Corrupt(Corrupt::Decoded(Defect::NoComponents))
            )),
            not_found("OpenJPEG :: no components decoded")
        );
        assert_eq!(
            words(SourceError::new(
                Some(Jpeg2000),
                SourceErrorKind::Corrupt(Corrupt::Decoded(Defect::EmptyComponent))
            )),
            not_found("OpenJPEG :: component without data")
        );
        assert_eq!(
            words(SourceError::unsupported(
                Jpeg2000,
                Unsupported::BitDepth(17)
            )),
            not_found("OpenJPEG :: Unsupported number of bits")
        );
        assert_eq!(
            words(SourceError::unsupported(Jpeg2000, Unsupported::Subsampling)),
            not_found("OpenJPEG :: Subsampled components are not supported")
        );
        assert_eq!(
            words(SourceError::too_large(
                Jpeg2000,
                TooLarge::Decode {
                    width: 15000,
                    height: 15000
                }
            )),
            (
                400,
                "OpenJPEG :: decoding 15000x15000 pixels exceeds the limit".into()
            )
        );
        assert_eq!(
            words(SourceError::new(
                Some(Jpeg2000),
                SourceErrorKind::OutsideLevel {
                    region: (170, 0, 10, 10),
                    level: (175, 125)
                }
            )),
            (
                400,
                "OpenJPEG :: region 170,0 10x10 outside the 175x125 level".into()
            )
        );
        assert_eq!(
            words(SourceError::missing(Jpeg2000, Missing::Resolution(3))),
            not_found("OpenJPEG :: Asked for non-existent resolution: 3")
        );
    }

    #[test]
    fn jpeg_errors_are_worded_as_libjpeg() {
        assert_eq!(
            words(SourceError::corrupt(Jpeg, "no SOI marker")),
            not_found("JPEG :: aborting")
        );
        assert_eq!(
            words(SourceError::bad_data(Jpeg, "Premature end of JPEG file")),
            not_found("JPEG :: aborting")
        );
        assert_eq!(
            words(SourceError::unsupported(Jpeg, Unsupported::BitDepth(12))),
            not_found("JPEG :: 12-bit JPEG is not supported")
        );
        assert_eq!(
            words(SourceError::unsupported(Jpeg, Unsupported::Lossless)),
            not_found("JPEG :: lossless JPEG is not supported")
        );
        assert_eq!(
            words(SourceError::too_large(Jpeg, TooLarge::File)),
            (400, "JPEG :: file too large".into())
        );
        assert_eq!(
            words(SourceError::too_large(
                Jpeg,
                TooLarge::Decode {
                    width: 1,
                    height: 2
                }
            )),
            (400, "JPEG :: image too large to decode".into())
        );
        assert_eq!(
            words(SourceError::missing(Jpeg, Missing::Tile(1))),
            not_found("JPEG :: Asked for non-existent tile: 1")
        );
    }

    #[test]
    fn file_lookup_errors_name_the_image_not_the_path() {
        let io = || std::io::Error::other("/srv/secret/x.tif: denied");
        assert_eq!(
            words(
                SourceError::new(None, SourceErrorKind::NotFound(Missing::Image))
                    .named("a/x.tif")
                    .context("/srv/secret/a/x.tif")
            ),
            not_found("a/x.tif is neither a file nor part of an image sequence")
        );
        assert_eq!(
            words(SourceError::io(None, IoOp::Open, io()).named("a/x.tif")),
            not_found("Unable to open file 'a/x.tif'")
        );
        assert_eq!(
            words(SourceError::io(None, IoOp::ReadSignature, io()).named("a/x.tif")),
            not_found("Unable to read initial byte sequence from file 'a/x.tif'")
        );
        assert_eq!(
            words(
                SourceError::new(
                    None,
                    SourceErrorKind::Unsupported(Unsupported::SeveralExtensions)
                )
                .named("s_pyr_000_090.*")
            ),
            not_found("There are multiple file extensions matching s_pyr_000_090.*")
        );
        let e = Error::from(
            SourceError::new(None, SourceErrorKind::Unsupported(Unsupported::ImageType))
                .named("x.gif"),
        );
        let (kind, message) = wording(&e);
        assert_eq!(
            (kind, message.as_ref()),
            (ErrorKind::Invalid, "Unsupported image type: x.gif")
        );
    }

    #[test]
    fn worded_errors_keep_their_words() {
        let e = Error::bad_request("IIIF: bad");
        let (kind, message) = wording(&e);
        assert_eq!(
            (kind, message.as_ref()),
            (ErrorKind::BadRequest, "IIIF: bad")
        );
    }
}
