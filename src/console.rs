//! Writing to the terminal: `outln!` and `errln!`, the only way the crate prints.
//!
//! `println!` panics when stdout is a closed pipe (`mcpstorm check ... | head`). The usual
//! cure, putting SIGPIPE back to its default at start-up, would let the kernel kill
//! mcpstorm on any write to a pipe whose reader is gone, and mcpstorm writes to pipes all the
//! time: the stdin of every stdio server it drives, which a fault may have just killed. So
//! the terminal streams are handled here instead: a write that fails is dropped, the stream
//! is marked closed and never written again, and the command carries on to its normal end
//! (a run still writes its report and exits with the verdict's code). A stdout failure other
//! than a closed pipe (a full disk under `> file`) is said once on stderr; a stderr failure
//! is said nowhere, since stdout may be a protocol channel (`serve --stdio`).
//!
//! Never: panic, or end the process, because the terminal went away.

use std::fmt;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);
static STDERR_CLOSED: AtomicBool = AtomicBool::new(false);

/// Which terminal stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn closed(self) -> &'static AtomicBool {
        match self {
            Stream::Stdout => &STDOUT_CLOSED,
            Stream::Stderr => &STDERR_CLOSED,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// Writes `args` and a newline to `stream` as one write; a failure closes the stream for
/// the rest of the process (see the module doc).
pub fn write_line(stream: Stream, args: fmt::Arguments<'_>) {
    if stream.closed().load(Ordering::Relaxed) {
        return;
    }
    // One buffer, one write_all: lines from concurrent tasks do not interleave mid-line.
    let mut line = fmt::format(args);
    line.push('\n');
    let result = match stream {
        Stream::Stdout => {
            let mut out = io::stdout().lock();
            out.write_all(line.as_bytes()).and_then(|()| out.flush())
        }
        Stream::Stderr => io::stderr().lock().write_all(line.as_bytes()),
    };
    if let Err(e) = result
        && !stream.closed().swap(true, Ordering::Relaxed)
        && e.kind() != io::ErrorKind::BrokenPipe
        && stream == Stream::Stdout
    {
        write_line(
            Stream::Stderr,
            format_args!(
                "mcpstorm: cannot write to {}: {e}; nothing more is written there",
                stream.name()
            ),
        );
    }
}

/// Whether writes to `stream` have failed (and are now dropped).
pub fn is_closed(stream: Stream) -> bool {
    stream.closed().load(Ordering::Relaxed)
}

/// `println!` that survives a closed stdout.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::console::write_line($crate::console::Stream::Stdout, format_args!($($arg)*))
    };
}

/// `eprintln!` that survives a closed stderr.
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::console::write_line($crate::console::Stream::Stderr, format_args!($($arg)*))
    };
}
