//! The tracing layer: each event becomes one record of plain text, `message key=value …`, with
//! no timestamp, level or target, as iipsrv writes its log. Spans are not shown.

use std::fmt::{self, Write as _};
use std::sync::Arc;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

use super::Sink;

pub(super) struct LineLayer {
    pub(super) sink: Arc<Sink>,
}

impl<S: Subscriber> Layer<S> for LineLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        // The libraries' own chatter (the storage client's HTTP connection pool at DEBUG) is
        // not the server's log: only their INFO and above (retries, warnings) is written.
        let meta = event.metadata();
        if *meta.level() > tracing::Level::INFO && !meta.target().starts_with("iipsrv") {
            return;
        }
        let mut line = Line::default();
        event.record(&mut line);
        if !line.fields.is_empty() {
            if !line.text.is_empty() {
                line.text.push(' ');
            }
            line.text.push_str(&line.fields);
        }
        self.sink.write(line.text);
    }
}

/// The message as written, then the other fields in order: strings quoted (`path="a b"`, so a
/// value with spaces stays one field), everything else by `Debug`.
#[derive(Default)]
struct Line {
    text: String,
    fields: String,
}

impl Line {
    fn separate(&mut self) {
        if !self.fields.is_empty() {
            self.fields.push(' ');
        }
    }
}

impl Visit for Line {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.text.push_str(value);
        } else {
            self.record_debug(field, &value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.text, "{value:?}");
        } else {
            self.separate();
            let _ = write!(self.fields, "{}={value:?}", field.name());
        }
    }
}
