//! Logging: one `tracing` subscriber for supagate's own lines and the `log` records of actix
//! and the crates under it, filtered by `RUST_LOG` (default `info`), written to stderr through
//! one buffer. Lines logged while a request is served name it (`request{request_id=… method=…
//! route=… trace_id=… user_id=…}`) from a task-local set by the request middleware: nothing
//! is formatted for a request unless a line is actually logged.

use std::cell::Cell;
use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::rc::Rc;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::dev::ServiceRequest;
use actix_web::http::{Method, Uri};
use parking_lot::Mutex;
use tracing::level_filters::LevelFilter;
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;
use uuid::Uuid;

use crate::trace_context::TraceId;

/// The filter `RUST_LOG` gives (`info` when unset or empty). Directives that do not parse are
/// skipped rather than fatal, as they were under `env_logger`.
pub fn env_filter() -> EnvFilter {
    EnvFilter::builder()
        .with_default_directive(LevelFilter::INFO.into())
        .from_env_lossy()
}

// ---- the request a line belongs to ----

/// What a log line says about the request being served: plain values and shared handles,
/// formatted only when a line is written. (The request itself cannot be kept: actix needs
/// sole ownership of it while routing.)
pub struct RequestLog {
    method: Method,
    /// Shared bytes: the path is sliced from it when the access line is written.
    uri: Uri,
    /// The route template (`route_template`); `None`: no route matches.
    route: Option<Arc<str>>,
    id: Box<str>,
    trace_id: TraceId,
    user: Cell<Option<Uuid>>,
}

tokio::task_local! {
    /// The request whose future is being polled (actix serves each request on one thread,
    /// so the context is an `Rc`).
    static REQUEST: Rc<RequestLog>;
}

impl RequestLog {
    /// `route`: the request's route template (`route_template::find`), `None` for none.
    pub fn new(
        request: &ServiceRequest,
        id: &str,
        trace_id: TraceId,
        route: Option<Arc<str>>,
    ) -> Rc<Self> {
        Rc::new(Self {
            method: request.method().clone(),
            uri: request.uri().clone(),
            route,
            id: id.into(),
            trace_id,
            user: Cell::new(None),
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The route template (the metrics label and the log's `route`), `unmatched` for none.
    pub fn route(&self) -> &str {
        self.route.as_deref().unwrap_or("unmatched")
    }

    pub fn method(&self) -> &Method {
        &self.method
    }

    pub fn user(&self) -> Option<Uuid> {
        self.user.get()
    }

    /// Runs `fut` with this request as the context of every line it logs.
    pub fn scope<F: std::future::Future>(
        self: &Rc<Self>,
        fut: F,
    ) -> impl std::future::Future<Output = F::Output> {
        REQUEST.scope(self.clone(), fut)
    }

    /// Runs `f` (synchronously) with this request as the context.
    pub fn in_scope<R>(self: &Rc<Self>, f: impl FnOnce() -> R) -> R {
        REQUEST.sync_scope(self.clone(), f)
    }

    fn write_prefix(&self, out: &mut impl std::fmt::Write) -> std::fmt::Result {
        write!(
            out,
            "request{{request_id={} method={} route={} trace_id={}",
            self.id,
            self.method,
            self.route(),
            self.trace_id
        )?;
        if let Some(user) = self.user.get() {
            write!(out, " user_id={user}")?;
        }
        out.write_str("}: ")
    }
}

/// Calls `f` with the id of the request being served, if any (none for background work).
pub fn with_request_id<R>(f: impl FnOnce(&str) -> R) -> Option<R> {
    REQUEST.try_with(|r| f(&r.id)).ok()
}

/// The route template of the request being served (`Some(None)`: it matches no route);
/// `None` outside a request.
pub fn request_route() -> Option<Option<Arc<str>>> {
    REQUEST.try_with(|r| r.route.clone()).ok()
}

/// Names the caller in the context of the request being served: every later line and the
/// access line carry `user_id`, and the answer is marked as theirs alone (`conditional`,
/// through the middleware). Kept only here: a request extension cost every request an
/// allocation.
pub fn set_request_user(id: Uuid) {
    let _ = REQUEST.try_with(|r| r.user.set(Some(id)));
}

// ---- formatting ----

/// `2026-11-30T04:40:58.123456Z  INFO request{…}: target: message`, the layout of
/// tracing-subscriber's default format, with the request context in place of its span list.
struct LineFormat;

impl<S, N> FormatEvent<S, N> for LineFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let meta = event.metadata();
        write_timestamp(&mut writer, SystemTime::now())?;
        write!(writer, " {:>5} ", meta.level())?;
        let _ = REQUEST.try_with(|r| r.write_prefix(&mut writer));
        write!(writer, "{}: ", meta.target())?;
        ctx.format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// RFC 3339 UTC with microseconds. The date part is formatted once per second per thread.
fn write_timestamp(out: &mut impl std::fmt::Write, now: SystemTime) -> std::fmt::Result {
    thread_local! {
        static SECOND: Cell<(u64, [u8; 19])> = const { Cell::new((u64::MAX, [0; 19])) };
    }
    let since = now.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let secs = since.as_secs();
    let date = SECOND.with(|cell| {
        let (cached, text) = cell.get();
        if cached == secs {
            return text;
        }
        let mut text = [b'0'; 19];
        if let Ok(t) = time::OffsetDateTime::from_unix_timestamp(secs as i64) {
            let mut s = String::with_capacity(19);
            let _ = write!(
                s,
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            );
            if s.len() == 19 {
                text.copy_from_slice(s.as_bytes());
            }
        }
        cell.set((secs, text));
        text
    });
    // The cached text is ASCII digits and separators written above.
    out.write_str(std::str::from_utf8(&date).unwrap_or("0000-00-00T00:00:00"))?;
    let mut fraction = *b".000000Z";
    zero_padded(since.subsec_micros().into(), &mut fraction[1..7]);
    out.write_str(std::str::from_utf8(&fraction).unwrap_or(".000000Z"))
}

/// Writes the last `out.len()` decimal digits of `n` into `out`, zero-padded: what `{:06}`
/// does, without the formatter (the access line is written once per request).
fn zero_padded(mut n: u64, out: &mut [u8]) {
    for digit in out.iter_mut().rev() {
        *digit = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// The access line of one request: the same layout as every other line, target
/// `supagate::access`, written straight into the log buffer (no event, no field formatting).
pub fn access_line(request: &RequestLog, status: u16, elapsed: Duration, note: &str) {
    thread_local! {
        static LINE: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
    }
    LINE.with(|line| {
        let Ok(mut line) = line.try_borrow_mut() else {
            return;
        };
        line.clear();
        write_access_line(&mut line, request, status, elapsed, note, SystemTime::now());
        sink().push(line.as_bytes(), !note.is_empty());
    });
}

/// `<timestamp>  INFO supagate::access: GET /api/items 200 1.234ms request_id=… user=…`,
/// with `note` at the end (a WARN line when there is one). Built by pushing strings: it is
/// written once per request, and the formatter (padding, `{:.3}` of a float) cost it ~2 k
/// instructions.
fn write_access_line(
    line: &mut String,
    request: &RequestLog,
    status: u16,
    elapsed: Duration,
    note: &str,
    now: SystemTime,
) {
    let _ = write_timestamp(line, now);
    // `{level:>5}` of the other lines, spelled out.
    line.push_str(if note.is_empty() {
        "  INFO supagate::access: "
    } else {
        "  WARN supagate::access: "
    });
    line.push_str(request.method.as_str());
    line.push(' ');
    line.push_str(request.uri.path());
    line.push(' ');
    let mut status_text = [0u8; 3];
    zero_padded(status.into(), &mut status_text);
    line.push_str(std::str::from_utf8(&status_text).unwrap_or("000"));
    // Milliseconds with three decimals, rounded half up to the microsecond.
    let micros = u64::try_from((elapsed.as_nanos() + 500) / 1000).unwrap_or(u64::MAX);
    let _ = write!(line, " {}.", micros / 1000);
    let mut fraction = [0u8; 3];
    zero_padded(micros % 1000, &mut fraction);
    line.push_str(std::str::from_utf8(&fraction).unwrap_or("000"));
    line.push_str("ms request_id=");
    line.push_str(&request.id);
    line.push_str(" user=");
    match request.user.get() {
        Some(user) => {
            let mut text = Uuid::encode_buffer();
            line.push_str(user.hyphenated().encode_lower(&mut text));
        }
        None => line.push('-'),
    }
    line.push_str(note);
    line.push('\n');
}

// ---- output ----

/// Lines are collected in one buffer and written in batches, like nginx's
/// `access_log … buffer=32k flush=…`: one `write(2)` per 32 KiB or per 100 ms instead of one
/// per line. A WARN or ERROR line is written at once, with everything before it, so a
/// failure is never held back. Lines buffered when the process is killed (SIGKILL) are lost.
pub struct LogSink {
    buf: Mutex<Vec<u8>>,
    out: Output,
}

/// Where a batch of lines goes (stderr; a capture in tests).
type Output = Box<dyn Fn(&[u8]) + Send + Sync>;

const FLUSH_BYTES: usize = 32 * 1024;
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(100);

impl LogSink {
    pub fn new(out: impl Fn(&[u8]) + Send + Sync + 'static) -> Self {
        Self {
            buf: Mutex::new(Vec::with_capacity(FLUSH_BYTES * 2)),
            out: Box::new(out),
        }
    }

    pub fn push(&self, line: &[u8], urgent: bool) {
        let mut buf = self.buf.lock();
        buf.extend_from_slice(line);
        if urgent || buf.len() >= FLUSH_BYTES {
            // Written under the lock, so lines leave in the order they were logged.
            (self.out)(&buf);
            buf.clear();
        }
    }

    pub fn flush(&self) {
        let mut buf = self.buf.lock();
        if !buf.is_empty() {
            (self.out)(&buf);
            buf.clear();
        }
    }
}

fn stderr_out(bytes: &[u8]) {
    // Nowhere to report a failed log write; the line is dropped as with eprintln's target.
    let _ = std::io::stderr().lock().write_all(bytes);
}

static SINK: OnceLock<LogSink> = OnceLock::new();

fn sink() -> &'static LogSink {
    SINK.get_or_init(|| {
        // The periodic flush: a line logged in a quiet moment is out within FLUSH_INTERVAL.
        let _ = std::thread::Builder::new()
            .name("log-flush".into())
            .spawn(|| loop {
                std::thread::sleep(FLUSH_INTERVAL);
                if let Some(sink) = SINK.get() {
                    sink.flush();
                }
            });
        LogSink::new(stderr_out)
    })
}

/// Writes out whatever is buffered (at shutdown).
pub fn flush() {
    if let Some(sink) = SINK.get() {
        sink.flush();
    }
}

/// The subscriber's writer: into the shared buffer, at once for WARN and ERROR.
#[derive(Clone, Copy)]
pub struct SinkWriter {
    urgent: bool,
}

impl Write for SinkWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        sink().push(bytes, self.urgent);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Makes [`SinkWriter`]s for the subscriber.
#[derive(Clone, Copy, Default)]
pub struct BufferedStderr;

impl<'a> MakeWriter<'a> for BufferedStderr {
    type Writer = SinkWriter;
    fn make_writer(&'a self) -> SinkWriter {
        SinkWriter { urgent: false }
    }
    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> SinkWriter {
        SinkWriter {
            urgent: *meta.level() <= Level::WARN,
        }
    }
}

/// The subscriber: one line per event in [`LineFormat`], written by `writer`.
pub fn subscriber<W>(
    filter: EnvFilter,
    writer: W,
    ansi: bool,
) -> impl Subscriber + Send + Sync + 'static
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi)
        .event_format(LineFormat)
        .finish()
}

/// Installs the subscriber for the process, on buffered stderr, and routes `log` records
/// (actix, mio) into it, so they are filtered alike and name the request that caused them.
pub fn init() -> anyhow::Result<()> {
    use tracing_subscriber::util::SubscriberInitExt;
    let ansi = std::io::stderr().is_terminal();
    subscriber(env_filter(), BufferedStderr, ansi).try_init()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn capture() -> (LogSink, Arc<Mutex<Vec<Vec<u8>>>>) {
        let writes = Arc::new(Mutex::new(Vec::new()));
        let seen = writes.clone();
        (LogSink::new(move |b| seen.lock().push(b.to_vec())), writes)
    }

    #[test]
    fn quiet_lines_wait_for_a_full_buffer_or_a_flush() {
        let (sink, writes) = capture();
        sink.push(b"one\n", false);
        sink.push(b"two\n", false);
        assert!(writes.lock().is_empty(), "nothing is written per line");
        sink.flush();
        assert_eq!(*writes.lock(), vec![b"one\ntwo\n".to_vec()]);
        sink.flush();
        assert_eq!(writes.lock().len(), 1, "an empty buffer writes nothing");
    }

    #[test]
    fn a_warning_is_written_at_once_after_the_lines_before_it() {
        let (sink, writes) = capture();
        sink.push(b"access\n", false);
        sink.push(b"failure\n", true);
        assert_eq!(*writes.lock(), vec![b"access\nfailure\n".to_vec()]);
    }

    #[test]
    fn a_full_buffer_is_written_in_one_call() {
        let (sink, writes) = capture();
        let line = [b'x'; 1000];
        for _ in 0..(FLUSH_BYTES / 1000) {
            sink.push(&line, false);
        }
        assert!(writes.lock().is_empty());
        sink.push(&line, false);
        assert_eq!(writes.lock().len(), 1);
        assert!(writes.lock()[0].len() > FLUSH_BYTES);
    }

    #[test]
    fn the_access_line_names_method_path_status_duration_request_and_user() {
        let req = actix_web::test::TestRequest::get()
            .uri("/api/items?limit=5&email=a@b.c")
            .to_srv_request();
        let trace = crate::trace_context::TraceContext::from_headers(req.headers());
        let log = RequestLog::new(&req, "req-7", trace.trace_id(), None);
        let t = UNIX_EPOCH + Duration::from_micros(1_764_477_658_000_042);
        let mut line = String::new();
        write_access_line(&mut line, &log, 200, Duration::from_nanos(1_234_500), "", t);
        assert_eq!(
            line,
            "2025-11-30T04:40:58.000042Z  INFO supagate::access: GET /api/items 200 1.235ms \
             request_id=req-7 user=-\n"
        );
        log.user.set(Some(Uuid::from_u128(0xa1)));
        let mut line = String::new();
        let slow = Duration::from_millis(12_345) + Duration::from_nanos(6_400);
        write_access_line(&mut line, &log, 502, slow, " (middleware error)", t);
        assert_eq!(
            line,
            "2025-11-30T04:40:58.000042Z  WARN supagate::access: GET /api/items 502 12345.006ms \
             request_id=req-7 user=00000000-0000-0000-0000-0000000000a1 (middleware error)\n"
        );
    }

    #[test]
    fn timestamps_are_rfc3339_utc_with_microseconds() {
        let mut s = String::new();
        let t = UNIX_EPOCH + Duration::from_micros(1_764_477_658_123_456);
        write_timestamp(&mut s, t).unwrap();
        assert_eq!(s, "2025-11-30T04:40:58.123456Z");
        // The cached date part is not reused for another second.
        let mut s = String::new();
        write_timestamp(&mut s, t + Duration::from_secs(86_400)).unwrap();
        assert_eq!(s, "2025-12-01T04:40:58.123456Z");
    }
}
