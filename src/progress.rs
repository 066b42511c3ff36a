//! A progress line on a terminal for the commands a person sits and watches (`trigger`, `runs
//! resume`, `backfill`, `export`). It is fed by the same events the log carries, folded into one
//! line redrawn in place: pages, items, requests per second, the rate-limit wait under way and
//! its cause, elapsed time. Off a terminal, or with `--log-format json`, it is never installed and
//! the log lines stay. Warnings and errors still print, above the line.

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;

/// How often the line is redrawn (the elapsed time and a wait's countdown move on their own).
const REDRAW: Duration = Duration::from_millis(200);

/// The line being drawn, if any: one per process, as there is one terminal.
static LINE: OnceLock<Arc<Mutex<Line>>> = OnceLock::new();

/// What the line says.
#[derive(Debug)]
struct Line {
    started: Instant,
    width: usize,
    pages: u64,
    items: u64,
    requests: u64,
    exported: Option<u64>,
    wait: Option<(Instant, String)>,
    drawn: bool,
    done: bool,
    spin: usize,
}

impl Line {
    fn new(width: usize) -> Line {
        Line {
            started: Instant::now(),
            width,
            pages: 0,
            items: 0,
            requests: 0,
            exported: None,
            wait: None,
            drawn: false,
            done: false,
            spin: 0,
        }
    }

    /// Folds one event in; false for a warning or error, which prints above the line.
    fn absorb(&mut self, level: Level, f: &Fields) -> bool {
        let now = Instant::now();
        match f.message.as_str() {
            "page stored" => {
                self.pages += 1;
                self.items += f.num("items");
            }
            "response" => self.requests += 1,
            "exported" => self.exported = Some(f.num("rows")),
            "rate limited; waiting" => {
                let wait = Duration::from_millis(f.num("wait_ms"));
                self.wait = Some((now + wait, format!("429 {}", f.text("kind"))));
            }
            "request failed; retrying" => {
                let wait = Duration::from_millis(f.num("wait_ms"));
                self.wait = Some((now + wait, format!("retry after {}", f.text("error"))));
                return false;
            }
            _ => return level > Level::WARN,
        }
        true
    }

    /// The line as it stands, at most `width` characters.
    fn render(&self, now: Instant) -> String {
        const SPIN: [char; 4] = ['|', '/', '-', '\\'];
        let elapsed = now.duration_since(self.started);
        let mut s = format!("{} ", SPIN[self.spin % SPIN.len()]);
        if let Some(rows) = self.exported {
            let _ = write!(s, "{rows} items exported");
        } else {
            let secs = elapsed.as_secs_f64().max(0.001);
            let _ = write!(
                s,
                "page {} · {} items · {:.1} req/s",
                self.pages,
                self.items,
                self.requests as f64 / secs
            );
        }
        if let Some((until, cause)) = &self.wait
            && *until > now
        {
            let left = until.duration_since(now).as_secs_f64();
            let _ = write!(s, " · waiting {left:.0}s ({cause})");
        }
        let t = elapsed.as_secs();
        let _ = write!(s, " · {}:{:02}", t / 60, t % 60);
        s.chars().take(self.width.max(10) - 1).collect()
    }
}

/// Installs the progress line for this process, with a thread that redraws it, and returns the
/// layer that feeds it. `width` is the terminal's.
pub fn layer(width: usize) -> ProgressLayer {
    let line = LINE
        .get_or_init(|| Arc::new(Mutex::new(Line::new(width))))
        .clone();
    let drawer = line.clone();
    std::thread::Builder::new()
        .name("progress".into())
        .spawn(move || {
            loop {
                std::thread::sleep(REDRAW);
                let Ok(mut l) = drawer.lock() else { return };
                if l.done {
                    return;
                }
                l.spin += 1;
                draw(&mut l);
            }
        })
        .ok();
    ProgressLayer { line }
}

fn draw(l: &mut Line) {
    if l.done {
        return;
    }
    let text = l.render(Instant::now());
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "\r\x1b[2K{text}");
    let _ = err.flush();
    l.drawn = true;
}

fn erase(l: &mut Line) {
    if l.drawn {
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K");
        let _ = err.flush();
        l.drawn = false;
    }
}

/// Runs `print` with the line erased first (the next redraw brings it back): output and
/// messages never share a row with it. Without a line, just runs `print`.
pub fn above<T>(print: impl FnOnce() -> T) -> T {
    match LINE.get().and_then(|l| l.lock().ok()) {
        Some(mut l) => {
            erase(&mut l);
            print()
        }
        None => print(),
    }
}

/// Erases the line for good: the command is over.
pub fn finish() {
    if let Some(mut l) = LINE.get().and_then(|l| l.lock().ok()) {
        erase(&mut l);
        l.done = true;
    }
}

/// The layer that feeds the line (installed by `logging::init` on a terminal).
pub struct ProgressLayer {
    line: Arc<Mutex<Line>>,
}

impl<S: Subscriber> Layer<S> for ProgressLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut f = Fields::default();
        event.record(&mut f);
        let level = *event.metadata().level();
        let Ok(mut l) = self.line.lock() else { return };
        if l.absorb(level, &f) {
            draw(&mut l);
            return;
        }
        if level <= Level::WARN {
            erase(&mut l);
            eprintln!("{level}: {}{}", f.message, f.rest);
            draw(&mut l);
        }
    }
}

/// An event's message and fields, the numbers kept apart for the line.
#[derive(Default)]
struct Fields {
    message: String,
    nums: Vec<(&'static str, u64)>,
    texts: Vec<(&'static str, String)>,
    rest: String,
}

impl Fields {
    fn num(&self, name: &str) -> u64 {
        self.nums
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(0, |(_, v)| *v)
    }

    fn text(&self, name: &str) -> &str {
        self.texts
            .iter()
            .find(|(n, _)| *n == name)
            .map_or("", |(_, v)| v.as_str())
    }
}

impl Visit for Fields {
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.nums.push((field.name(), value));
        let _ = write!(self.rest, " {}={value}", field.name());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.record_u64(field, value.max(0).cast_unsigned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            let text = format!("{value:?}");
            let _ = write!(self.rest, " {}={text}", field.name());
            self.texts.push((field.name(), text));
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        } else {
            let _ = write!(self.rest, " {}={value:?}", field.name());
            self.texts.push((field.name(), value.to_string()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(
        message: &str,
        nums: &[(&'static str, u64)],
        texts: &[(&'static str, &str)],
    ) -> Fields {
        Fields {
            message: message.into(),
            nums: nums.to_vec(),
            texts: texts.iter().map(|(k, v)| (*k, (*v).to_string())).collect(),
            rest: String::new(),
        }
    }

    #[test]
    fn pages_items_requests_and_a_wait_with_its_cause_fold_into_one_line() {
        let mut l = Line::new(120);
        assert!(l.absorb(Level::INFO, &fields("response", &[], &[])));
        assert!(l.absorb(Level::INFO, &fields("page stored", &[("items", 50)], &[])));
        assert!(l.absorb(Level::INFO, &fields("page stored", &[("items", 25)], &[])));
        assert!(l.absorb(
            Level::INFO,
            &fields(
                "rate limited; waiting",
                &[("wait_ms", 30_000)],
                &[("kind", "per-minute")]
            )
        ));
        let line = l.render(l.started + Duration::from_secs(65));
        assert!(line.contains("page 2 · 75 items"), "{line}");
        assert!(line.contains("req/s"), "{line}");
        assert!(line.ends_with("· 1:05"), "{line}");
        // The wait began at absorb time, so 65 s later it is over and no longer shown.
        assert!(!line.contains("waiting"), "{line}");
        let now = Instant::now();
        let line = l.render(now);
        assert!(line.contains("(429 per-minute)"), "{line}");
    }

    #[test]
    fn warnings_print_above_and_the_line_fits_the_terminal() {
        let mut l = Line::new(30);
        assert!(!l.absorb(Level::WARN, &fields("run failed", &[], &[])));
        assert!(
            l.absorb(Level::INFO, &fields("run started", &[], &[])),
            "info stays quiet"
        );
        assert!(l.render(Instant::now()).chars().count() < 30);
    }
}
