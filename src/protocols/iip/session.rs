//! The IIP command loop: a request string is split into `&`-separated commands
//! ([`tokenise`]) and run left to right over one [`Session`] ([`run`]), as iipsrv runs its
//! Tasks.
//!
//! # The session's state
//!
//! - the [`Context`] (shared state, request, and the view the parameter commands build);
//! - the image `FIF` opened, if any (output and image `OBJ` commands need one);
//! - the pending `OBJ` lines ([`ObjText`]) and `Error/` lines.
//!
//! # What each command does
//!
//! - `FIF` opens the image (or answers 304 when If-Modified-Since matches);
//! - parameter commands ([`super::parameters`]) change the view and continue;
//! - `OBJ` ([`super::obj`]) appends lines and continues; a missing image ends the loop;
//! - output commands ([`super::outputs`]) and `IIIF=`, `Zoomify=`, `DeepZoom=` answer: the
//!   first answer is the response (upstream appends the output of later commands to the same
//!   body, which no client can use; docs/compatibility.md);
//! - an unknown command adds an `Error/` line and continues.
//!
//! After the last command, the `OBJ` text is the answer, or the `Error/` lines are; an error
//! returned by a command becomes its response through [`error_response`].

use super::obj::{Obj, ObjText};
use super::outputs::{self, Output};
use super::parameters;
use crate::error::Result;
use crate::http::{Request, Response};
use crate::metrics::{Kind, Protocol, note};
use crate::open_image::{OpenImage, open_image};
use crate::protocols::answer::Answer;
use crate::protocols::context::{Context, IfModifiedSince};
use crate::protocols::deepzoom::DeepZoom;
use crate::protocols::error::error_response;
use crate::protocols::grid;
use crate::protocols::iiif;
use crate::protocols::zoomify::Zoomify;
use crate::shared::Shared;
use crate::source::resolve;

/// The state of one IIP request.
struct Session<'a> {
    ctx: Context<'a>,
    /// The raw request string.
    request_string: &'a [u8],
    /// Query-mode POST (region exports become `attachment`).
    post: bool,
    /// The image `FIF` opened.
    image: Option<OpenImage>,
    /// The answer of the `OBJ` commands so far.
    reply: ObjText,
    /// Pending `Error/` lines.
    errors: Vec<u8>,
}

/// What a command did.
enum Step {
    Continue,
    /// Stop and answer with this response (or heavy work).
    Answer(Answer),
    /// Stop (an error line was added that ends processing).
    Stop,
}

/// Append an IIP error line: `Error/<L>:<code> <arg>` CRLF with `L = len(code) + len(arg) + 1`.
/// Upstream truncates the line to 31 bytes (a bug); we send it whole.
fn error_line(out: &mut Vec<u8>, code: &str, arg: &[u8]) {
    out.extend_from_slice(format!("Error/{}:{code} ", code.len() + arg.len() + 1).as_bytes());
    out.extend_from_slice(arg);
    out.extend_from_slice(b"\r\n");
}

/// Run an IIP command string. `post`: the string is the body of a POST form.
pub(crate) fn run(shared: &Shared, req: &Request, request_string: &[u8], post: bool) -> Answer {
    let mut s = Session {
        ctx: Context::new(shared, req),
        request_string,
        post,
        image: None,
        reply: ObjText::default(),
        errors: Vec::new(),
    };
    note::protocol(Protocol::Iip);
    let commands: Vec<(&[u8], &[u8])> = tokenise(request_string).collect();
    let n = commands.len();
    for (i, (name, arg)) in commands.into_iter().enumerate() {
        tracing::debug!(
            "[{}/{n}]: Command / Argument is {} : {}",
            i + 1,
            String::from_utf8_lossy(name),
            String::from_utf8_lossy(arg)
        );
        match s.command(name, arg) {
            Ok(Step::Continue) => {}
            Ok(Step::Answer(r)) => return r,
            Ok(Step::Stop) => break,
            Err(e) => return error_response(shared.headers(), &e).into(),
        }
    }
    s.finish().into()
}

/// Split a request string into (command, argument) pairs as iipsrv does.
pub(crate) fn tokenise(s: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    s.split(|&b| b == b'&')
        .filter(|p| !p.is_empty())
        .filter_map(|piece| match piece.iter().position(|&b| b == b'=') {
            Some(eq) => {
                let (name, arg) = (&piece[..eq], &piece[eq + 1..]);
                (!name.is_empty() && !arg.is_empty()).then_some((name, arg))
            }
            None => Some((piece, piece)),
        })
}

impl Session<'_> {
    /// Run one command.
    fn command(&mut self, name: &[u8], arg: &[u8]) -> Result<Step> {
        let lower = name.to_ascii_lowercase();
        if let Some(output) = Output::from_name(&lower) {
            let Some(image) = &self.image else {
                error_line(&mut self.errors, "1 3", b"");
                return Ok(Step::Stop);
            };
            let answer = outputs::run(output, &mut self.ctx, image, self.post, arg)?;
            return Ok(answer.map_or(Step::Continue, Step::Answer));
        }
        match lower.as_slice() {
            b"fif" => self.fif(arg),
            b"obj" => Ok(self.obj(arg)),
            b"iiif" => {
                note::protocol(Protocol::Iiif);
                iiif::handle(&self.ctx, arg).map(Step::Answer)
            }
            b"zoomify" => {
                note::protocol(Protocol::Zoomify);
                grid::handle::<Zoomify>(&self.ctx, arg).map(Step::Answer)
            }
            b"deepzoom" => {
                note::protocol(Protocol::DeepZoom);
                grid::handle::<DeepZoom>(&self.ctx, arg).map(Step::Answer)
            }
            b"icc" => Ok(Step::Continue),
            b"minmax" if self.image.is_none() => {
                // Upstream crashes here; we answer as for any command that needs an image.
                error_line(&mut self.errors, "1 3", b"");
                Ok(Step::Stop)
            }
            _ => {
                let channels = self
                    .image
                    .as_ref()
                    .map_or(0, |i| i.info().channels as usize);
                if parameters::apply(&mut self.ctx.view, channels, &lower, arg) {
                    return Ok(Step::Continue);
                }
                tracing::info!("Unsupported command: {}", String::from_utf8_lossy(name));
                error_line(&mut self.errors, "2 2", name);
                Ok(Step::Continue)
            }
        }
    }

    /// `FIF`: locate and open the image, answer 304 when If-Modified-Since matches (without
    /// CORS lines, as iipsrv).
    fn fif(&mut self, arg: &[u8]) -> Result<Step> {
        let key = resolve::image_key(arg);
        tracing::trace!(
            "FIF :: URL decoding/filtering: {} => {}",
            String::from_utf8_lossy(arg),
            String::from_utf8_lossy(&key)
        );
        let image = open_image(self.ctx.shared, &key)?;
        match self.ctx.if_modified_since(&image) {
            IfModifiedSince::Unmodified => {
                tracing::debug!("FIF :: Unmodified content");
                let headers = self.ctx.headers();
                return Ok(Step::Answer(Response::header_only(headers, 304).into()));
            }
            IfModifiedSince::Modified => {
                tracing::debug!("FIF :: Content modified since requested time")
            }
            IfModifiedSince::Unreadable => tracing::info!("FIF :: Error creating timestamp"),
            IfModifiedSince::Absent => {}
        }
        self.image = Some(image);
        Ok(Step::Continue)
    }

    /// `OBJ` (`docs/behaviour/protocols-iip.md` §5): an unknown object adds an error line and continues; an
    /// image object before `FIF` adds one and stops.
    fn obj(&mut self, arg: &[u8]) -> Step {
        note::kind(Kind::Metadata);
        let name = String::from_utf8_lossy(arg).to_ascii_lowercase();
        match Obj::from_name(&name) {
            None => error_line(&mut self.errors, "3 2", name.as_bytes()),
            Some(Obj::Server(obj)) => self.reply.server(obj),
            Some(Obj::Image(obj)) => {
                let Some(image) = &self.image else {
                    error_line(&mut self.errors, "1 3", name.as_bytes());
                    return Step::Stop;
                };
                let config = self.ctx.config();
                self.reply.image(obj, image, &self.ctx.view, config);
            }
        }
        Step::Continue
    }

    /// After the last command: the pending text or error response.
    fn finish(mut self) -> Response {
        if self.reply.is_empty() && self.errors.is_empty() {
            error_line(&mut self.errors, "2 1", self.request_string);
        }
        let d = self.ctx.headers();
        if !self.errors.is_empty() {
            return Response::iip_error(d, self.reply.mime, &self.errors);
        }
        let lm = self.image.as_ref().map(|i| i.last_modified.as_str());
        Response::iip_text(d, self.reply.mime, lm, self.reply.iip_line, self.reply.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn run_str(q: &str) -> Response {
        let shared = Shared::new(Config::default());
        let req = Request::from_pairs([("QUERY_STRING", q), ("REQUEST_METHOD", "GET")]);
        run(&shared, &req, q.as_bytes(), false).into_response(&shared)
    }

    #[test]
    fn tokenising_rules() {
        let t: Vec<_> = tokenise(b"&&FIF=a&OBJ=Max-size=3&INV&=x&OBJ=&").collect();
        assert_eq!(
            t,
            vec![
                (&b"FIF"[..], &b"a"[..]),
                (&b"OBJ"[..], &b"Max-size=3"[..]),
                (&b"INV"[..], &b"INV"[..]),
            ]
        );
    }

    #[test]
    fn error_lines() {
        let mut v = Vec::new();
        error_line(&mut v, "3 2", b"foo");
        assert_eq!(v, b"Error/7:3 2 foo\r\n");
        let mut v = Vec::new();
        error_line(&mut v, "1 3", b"");
        assert_eq!(v, b"Error/4:1 3 \r\n");
    }

    #[test]
    fn unknown_obj_and_command() {
        let r = run_str("OBJ=foo");
        assert_eq!(r.status(), 400);
        assert_eq!(r.body.as_ref(), b"Error/7:3 2 foo\r\n");
        let r = run_str("FOO=bar");
        assert_eq!(r.body.as_ref(), b"Error/7:2 2 FOO\r\n");
        let r = run_str("OBJ=Max-size");
        assert_eq!(r.body.as_ref(), b"Error/12:1 3 max-size\r\n");
        let r = run_str("JTL=0,0");
        assert_eq!(r.body.as_ref(), b"Error/4:1 3 \r\n");
        let r = run_str("MINMAX=1:0,100&FIF=x.tif&OBJ=Max-size");
        assert_eq!(r.body.as_ref(), b"Error/4:1 3 \r\n");
        let r = run_str("ICC=1");
        assert_eq!(r.body.as_ref(), b"Error/9:2 1 ICC=1\r\n");
    }

    #[test]
    fn server_objects_need_no_image() {
        let r = run_str("OBJ=IIP,1.0&OBJ=IIP-server&OBJ=iip-opt-comm");
        assert_eq!(r.status(), 200);
        assert_eq!(r.header("IIP"), Some("1.3"));
        assert_eq!(r.header("Last-Modified"), None);
        assert_eq!(
            r.body.as_ref(),
            &b"IIP-server:3.65\r\nIIP-opt-comm:CVT CNT QLT JTL JTLS WID HEI RGN MINMAX SHD CMP INV CTW\r\n"[..]
        );
        let r = run_str("OBJ=IIP,1.0");
        assert_eq!(r.status(), 200);
        assert!(r.body.is_empty());
    }

    #[test]
    fn missing_image_is_404_without_path() {
        let r = run_str("FIF=/definitely/not/here.tif&OBJ=Max-size");
        assert_eq!(r.status(), 404);
        assert_eq!(
            r.body.as_ref(),
            b"/definitely/not/here.tif is neither a file nor part of an image sequence"
        );
    }

    #[test]
    fn cvt_spectra_pfl_need_an_image() {
        for q in ["CVT=jpeg", "SPECTRA=0,0,0,0", "PFL=0:0,0"] {
            let r = run_str(q);
            assert_eq!(r.body.as_ref(), b"Error/4:1 3 \r\n", "{q}");
        }
    }
}
