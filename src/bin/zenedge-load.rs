//! `zenedge-load`: the project's own load generator, and the yardstick it is compared to.
//!
//! * `mllp` drives an MLLP receiver the way HL7 senders do: one message in flight per
//!   connection (send, wait for the ACK, send the next), synthesized ORM^O01 orders with a
//!   unique MSH-10 each (`<run id>-<counter>`), closed loop or on a fixed open-loop
//!   schedule (`--rate`). It reports ACK codes, MSA-2 mismatches, errors, throughput and
//!   ACK latency (write start → complete ACK, hdrhistogram at microsecond resolution).
//!   `--nagle` imitates interface engines that leave Nagle on and write a frame in three
//!   pieces: a receiver that lets its kernel delay ACKs then stalls ~40 ms per message.
//! * `commit-ceiling` measures the physical ceiling of the store: durable redb 4.6 commits
//!   of N events each, in a fresh database. The daemon's throughput is judged against it.
//!
//! It shares two cores with the receiver under test, so it stays lean: one reusable buffer
//! per connection, no per-message allocation beyond the message text, one tokio worker by
//! default.
//!
//! Exit status: 0 when every message got AA or CA with the right MSA-2 and nothing failed;
//! 1 otherwise; 2 on usage errors; 3 when a connection could not be opened at start.

use std::fmt::Write as _;
use std::fs;
use std::io::{self, BufWriter, Write as _};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use clap::{Args, Parser, Subcommand};
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::Decoder;
use zenedge::mllp::codec::{Frame, MllpCodec, encode_frame};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Largest ACK accepted; anything bigger is counted as a bad frame.
const MAX_ACK_BYTES: usize = 1 << 20;
/// A scheduled send that starts later than this behind its slot counts as late (tokio's
/// timer has a 1 ms tick, so smaller delays are the timer, not the receiver).
const LATE_AFTER: Duration = Duration::from_millis(2);
/// Highest latency the histograms track (values above are clamped).
const MAX_LATENCY_US: u64 = 3_600_000_000;

#[derive(Parser, Debug)]
#[command(name = "zenedge-load", version, about = "Load generator for zenedge (MLLP) and the redb commit ceiling")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Send synthesized ORM^O01 orders over MLLP, one in flight per connection.
    Mllp(MllpArgs),
    /// Measure durable redb commits per second: the ceiling for acknowledged messages.
    CommitCeiling(CeilingArgs),
}

#[derive(Args, Debug)]
struct MllpArgs {
    /// Receiver address.
    #[arg(long, default_value = "127.0.0.1:2575")]
    addr: SocketAddr,
    /// Parallel connections, each with one message in flight.
    #[arg(short, long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    connections: u64,
    /// Messages to measure, in total (after the warmup). Default: run for --duration.
    #[arg(long, conflicts_with = "duration")]
    count: Option<u64>,
    /// How long to measure, after the warmup [default: 10s].
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    /// Offered load in messages/s across all connections, on a fixed schedule per
    /// connection (open loop); 0 = as fast as the ACKs come back.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Leave Nagle on (no TCP_NODELAY) and write each frame in 3 writes: start block + MSH,
    /// the rest of the payload, end block.
    #[arg(long)]
    nagle: bool,
    /// Send for this long first, excluded from the figures.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Tokio worker threads.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=64))]
    threads: u64,
    /// Write the MSH-10 of every message answered AA/CA (warmup included), one a line.
    #[arg(long)]
    acked_out: Option<PathBuf>,
    /// First counter value in the control ids (`<run id>-<counter>`).
    #[arg(long, default_value_t = 0)]
    start: u64,
    /// Prefix of the control ids [default: the current time in milliseconds, base 36].
    /// Letters, digits, `.`, `_`, `-`; keep id + counter within 20 characters for v2.5.
    #[arg(long, value_parser = parse_run_id)]
    run_id: Option<String>,
    /// Approximate payload size in bytes (NTE segments pad the order up to it).
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// Give up on an ACK after this long (the connection is then reopened).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Give up connecting after this long.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    connect_timeout: Duration,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct CeilingArgs {
    /// Directory for the scratch database (created if missing; the file is removed after).
    #[arg(long)]
    dir: PathBuf,
    /// Rows inserted per write transaction.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    events_per_commit: u64,
    /// Write transactions to run.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..))]
    commits: u64,
    /// Bytes per row.
    #[arg(long, default_value_t = 1024)]
    event_bytes: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

fn parse_run_id(s: &str) -> Result<String, String> {
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if s.is_empty() || s.len() > 16 || !s.chars().all(ok) {
        return Err("1-16 characters from A-Z a-z 0-9 . _ -".into());
    }
    Ok(s.to_owned())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Mllp(args) => run_mllp_command(args),
        Command::CommitCeiling(args) => run_ceiling_command(&args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("zenedge-load: {err}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------------------
// mllp: plan
// ---------------------------------------------------------------------------------------

/// When the measured phase ends.
#[derive(Debug, Clone, Copy)]
enum Stop {
    /// After this many measured messages across all connections.
    Count(u64),
    /// When this much time has passed since the warmup ended.
    After(Duration),
}

/// The validated run, shared by every connection.
#[derive(Debug)]
struct Plan {
    addr: SocketAddr,
    connections: u64,
    stop: Stop,
    /// Time between two sends on one connection (`connections / rate`), if paced.
    interval: Option<Duration>,
    /// Nagle on and three writes per frame, like a naive interface engine.
    nagle: bool,
    /// Sending time before the measured phase (ramp-up, connection warmup in the receiver).
    warmup: Duration,
    /// Control id prefix; unique per run so reruns never look like resends.
    run_id: String,
    /// First counter value, so a run can continue another run's numbering.
    start: u64,
    /// Approximate payload bytes per message.
    size: usize,
    /// Longest wait for one ACK before the exchange counts as a timeout.
    timeout: Duration,
    connect_timeout: Duration,
    /// Remember positively acknowledged counters (only with `--acked-out`: it costs memory).
    keep_acked_ids: bool,
}

impl Plan {
    fn from_args(args: &MllpArgs) -> Result<Self, BoxError> {
        if !(args.rate.is_finite() && args.rate >= 0.0) {
            return Err("--rate must be a number >= 0".into());
        }
        let interval = (args.rate > 0.0).then(|| Duration::from_secs_f64(args.connections as f64 / args.rate));
        let stop = match (args.count, args.duration) {
            (Some(n), _) => Stop::Count(n),
            (None, d) => Stop::After(d.unwrap_or(Duration::from_secs(10))),
        };
        Ok(Self {
            addr: args.addr,
            connections: args.connections,
            stop,
            interval,
            nagle: args.nagle,
            warmup: args.warmup,
            run_id: args.run_id.clone().unwrap_or_else(default_run_id),
            start: args.start,
            size: args.size,
            timeout: args.timeout,
            connect_timeout: args.connect_timeout,
            keep_acked_ids: args.acked_out.is_some(),
        })
    }

    fn control_id(&self, n: u64) -> String {
        format!("{}-{n}", self.run_id)
    }
}

/// The current time in milliseconds, base 36: separate runs get separate control ids.
fn default_run_id() -> String {
    let mut ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    let mut digits = Vec::new();
    while ms > 0 || digits.is_empty() {
        digits.push(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"[(ms % 36) as usize]);
        ms /= 36;
    }
    digits.reverse();
    String::from_utf8(digits).expect("ascii")
}

// ---------------------------------------------------------------------------------------
// mllp: message synthesis
// ---------------------------------------------------------------------------------------

/// A cheap, well-mixed hash: picks invented data deterministically from the counter.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn pick<'a>(items: &[&'a str], h: u64) -> &'a str {
    items[(h % items.len() as u64) as usize]
}

const FAMILY: &[&str] = &["NOVAK", "OKAFOR", "LINDQVIST", "MORENO", "TANAKA", "BRENNAN", "HAAS", "DUBOIS"];
const GIVEN: &[&str] = &["ANNA", "KWAME", "INGRID", "LUIS", "HARUTO", "SIOBHAN", "FELIX", "CLAIRE"];
const STREET: &[&str] = &["12 ELM ST", "4 HARBOR RD", "77 MILL LN", "301 RIVER AVE", "9 ORCHARD WAY"];
const CITY: &[&str] = &["SPRINGFIELD^IL^62701", "RIVERTON^WY^82501", "FAIRVIEW^OR^97024"];
const DOCTOR: &[&str] = &["1001^HOUSE^GREGORY^^^DR", "1002^GREY^MEREDITH^^^DR", "1003^ROSS^DOUG^^^DR"];
/// Procedure code ^ text ^ coding system, and the DICOM modality of OBR-24.
const PROCEDURE: &[(&str, &str)] = &[
    ("CTHEADWO^CT HEAD WITHOUT CONTRAST^LOCAL", "CT"),
    ("CTCHESTW^CT CHEST WITH CONTRAST^LOCAL", "CT"),
    ("MRKNEEL^MRI KNEE LEFT^LOCAL", "MR"),
    ("XRCHEST2V^XR CHEST 2 VIEWS^LOCAL", "CR"),
    ("USABDCOMP^US ABDOMEN COMPLETE^LOCAL", "US"),
];
const NOTE: &[&str] = &[
    "Patient reports intermittent headaches for two weeks, no trauma.",
    "Creatinine 0.9 mg/dL on file, contrast cleared by ordering physician.",
    "Follow-up of incidental finding on prior study, compare with previous.",
    "Claustrophobic, please schedule in the wide-bore scanner if possible.",
    "Interpreter needed for the appointment; contact ward clerk.",
];

/// Builds the framed bytes of one synthesized ORM^O01 and remembers where MSH ends.
#[derive(Debug, Default)]
struct OrderWriter {
    /// The framed message: `0x0B` payload `0x1C 0x0D`.
    frame: BytesMut,
    /// Payload text, reused between messages.
    text: String,
    /// Offset in `frame` just past the MSH segment's terminator.
    msh_end: usize,
}

impl OrderWriter {
    /// Writes message `n` with MSH-10 `control_id` and MSH-7 `now`, padded to ~`size` bytes.
    fn write(&mut self, n: u64, control_id: &str, now: &str, size: usize) {
        let h = mix(n);
        let t = &mut self.text;
        t.clear();
        let acc = format!("A{control_id}");
        let (proc_code, modality) = PROCEDURE[(h % PROCEDURE.len() as u64) as usize];
        let doctor = pick(DOCTOR, h >> 8);
        // MSH-9 ORM^O01^ORM_O01, MSH-10 control id, MSH-11 P, MSH-12 2.5.1, MSH-15/16 AL/NE.
        let _ = write!(
            t,
            "MSH|^~\\&|RIS_LOADGEN|ST_ELSEWHERE|ZENEDGE|EDGE|{now}||ORM^O01^ORM_O01|{control_id}|P|2.5.1|||AL|NE\r"
        );
        let msh_len = t.len();
        let (year, month, day) = (1930 + h % 90, 1 + (h >> 12) % 12, 1 + (h >> 16) % 28);
        let _ = write!(
            t,
            "PID|1||{mrn:08}^^^STE^MR||{family}^{given}^{initial}||{year}{month:02}{day:02}|{sex}|||{street}^^{city}^USA||(555)555-{phone:04}\r",
            mrn = h % 100_000_000,
            family = pick(FAMILY, h >> 20),
            given = pick(GIVEN, h >> 24),
            initial = (b'A' + ((h >> 28) % 26) as u8) as char,
            sex = if (h >> 32) & 1 == 0 { "F" } else { "M" },
            street = pick(STREET, h >> 33),
            city = pick(CITY, h >> 36),
            phone = (h >> 40) % 10_000,
        );
        let _ = write!(t, "PV1|1|O|RAD^^^STE||||{doctor}|||||||||||V{visit:09}\r", visit = h % 1_000_000_000);
        // ORC-2 placer order number, ORC-3 filler order number (the accession).
        let _ = write!(t, "ORC|NW|P{control_id}^RIS|{acc}^RIS||SC||1^^^{now}^^R||{now}|||{doctor}\r");
        // OBR-2 placer, OBR-3 filler, OBR-4 procedure, OBR-7 time, OBR-16 orderer,
        // OBR-18 accession, OBR-19 requested procedure, OBR-20 scheduled step, OBR-24 modality.
        let _ = write!(
            t,
            "OBR|1|P{control_id}^RIS|{acc}^RIS|{proc_code}|||{now}|||||||||{doctor}||{acc}|RP{n}|SPS{n}||||{modality}|O\r"
        );
        let mut i = 1;
        while t.len() < size {
            let _ = write!(t, "NTE|{i}|L|{}\r", pick(NOTE, mix(h + i)));
            i += 1;
        }
        self.frame.clear();
        encode_frame(t.as_bytes(), &mut self.frame);
        self.msh_end = 1 + msh_len;
    }

    /// The three writes of `--nagle`: start block + MSH, rest of the payload, end block.
    fn nagle_parts(&self) -> [&[u8]; 3] {
        let end = self.frame.len() - 2;
        [&self.frame[..self.msh_end], &self.frame[self.msh_end..end], &self.frame[end..]]
    }
}

fn hl7_now() -> String {
    jiff::Zoned::now().strftime("%Y%m%d%H%M%S%z").to_string()
}

// ---------------------------------------------------------------------------------------
// mllp: ACKs
// ---------------------------------------------------------------------------------------

/// What the load tool reads from an ACK.
#[derive(Debug, PartialEq, Eq)]
struct Ack<'a> {
    /// MSA-1.
    code: &'a [u8],
    /// MSA-2: must be the MSH-10 that was sent.
    control_id: &'a [u8],
    /// MSH-9 starts with `ACK`.
    is_ack_type: bool,
}

impl Ack<'_> {
    /// MSA-2 names the message that was sent.
    fn acknowledges(&self, control_id: &str) -> bool {
        self.control_id == control_id.as_bytes()
    }

    /// AA or CA for the message that was sent.
    fn is_positive_for(&self, control_id: &str) -> bool {
        self.acknowledges(control_id) && matches!(self.code, b"AA" | b"CA")
    }
}

/// Reads MSH-9 and MSA-1/2, with the field separator taken from MSH-1.
fn parse_ack(payload: &[u8]) -> Option<Ack<'_>> {
    if payload.len() < 4 || !payload.starts_with(b"MSH") {
        return None;
    }
    let fs = payload[3];
    let mut segments = payload.split(|&b| b == b'\r' || b == b'\n');
    // fields[0] is "MSH", fields[1] is MSH-2, so MSH-9 is fields[8].
    let msh9 = segments.next()?.split(|&b| b == fs).nth(8).unwrap_or(b"");
    let msa = segments.find(|s| s.len() > 3 && s.starts_with(b"MSA") && s[3] == fs)?;
    let mut fields = msa.split(|&b| b == fs).skip(1);
    Some(Ack {
        code: fields.next().unwrap_or(b""),
        control_id: fields.next().unwrap_or(b""),
        is_ack_type: msh9.starts_with(b"ACK"),
    })
}

/// MSA-1 codes, in report order; anything else is "other".
const CODES: [&str; 6] = ["AA", "AE", "AR", "CA", "CE", "CR"];

// ---------------------------------------------------------------------------------------
// mllp: one connection
// ---------------------------------------------------------------------------------------

/// Why one exchange got no usable ACK.
#[derive(Debug)]
enum Failure {
    Timeout,
    Disconnected,
    BadFrame,
}

/// A connection with its read buffer and ACK decoder.
#[derive(Debug)]
struct Conn {
    stream: TcpStream,
    codec: MllpCodec,
    buf: BytesMut,
}

impl Conn {
    async fn open(plan: &Plan) -> io::Result<Self> {
        let connect = TcpStream::connect(plan.addr);
        let stream = tokio::time::timeout(plan.connect_timeout, connect)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
        stream.set_nodelay(!plan.nagle)?;
        Ok(Self { stream, codec: MllpCodec::new(MAX_ACK_BYTES), buf: BytesMut::with_capacity(4096) })
    }

    /// Sends one framed message and waits for the next frame back.
    async fn exchange(&mut self, order: &OrderWriter, nagle: bool) -> Result<Bytes, Failure> {
        let write = async {
            if nagle {
                for part in order.nagle_parts() {
                    self.stream.write_all(part).await?;
                }
            } else {
                self.stream.write_all(&order.frame).await?;
            }
            io::Result::Ok(())
        };
        write.await.map_err(|_| Failure::Disconnected)?;
        loop {
            match self.codec.decode(&mut self.buf) {
                Ok(Some(Frame::Message(payload))) => return Ok(payload),
                Ok(Some(Frame::Oversized { .. })) | Err(_) => return Err(Failure::BadFrame),
                Ok(None) => {}
            }
            match self.stream.read_buf(&mut self.buf).await {
                Ok(0) | Err(_) => return Err(Failure::Disconnected),
                Ok(_) => {}
            }
        }
    }
}

/// Counters of one connection, summed into the report.
#[derive(Debug)]
struct ConnStats {
    /// Messages sent before the measured phase; they count in nothing below but `acked`.
    warmup_sent: u64,
    /// Warmup messages without a positive ACK (any reason).
    warmup_failed: u64,
    sent: u64,
    /// ACKs by MSA-1, in `CODES` order, then "other".
    codes: [u64; 7],
    /// ACKs whose MSA-2 is not the MSH-10 just sent: a receiver answering the wrong message.
    msa2_mismatch: u64,
    /// ACKs whose MSH-9 is not `ACK...`.
    not_ack_type: u64,
    /// No complete ACK within `--timeout`.
    timeouts: u64,
    /// The receiver closed or reset the connection, or a write failed.
    disconnects: u64,
    /// An ACK frame without an MSA segment, or larger than `MAX_ACK_BYTES`.
    bad_frames: u64,
    /// Connections reopened after a failure.
    reconnects: u64,
    /// Reopening failed; the connection's sender stopped.
    reconnect_failures: u64,
    /// Paced sends that started more than `LATE_AFTER` behind their slot.
    late_sends: u64,
    /// ACK latency of measured messages, microseconds.
    latency_us: Histogram<u64>,
    /// First measured write and last measured ACK: the span throughput is computed over.
    first_send: Option<Instant>,
    last_ack: Option<Instant>,
    /// Counters of messages answered AA/CA with the right MSA-2 (for `--acked-out`).
    acked: Vec<u64>,
}

impl ConnStats {
    fn new() -> Self {
        Self {
            warmup_sent: 0,
            warmup_failed: 0,
            sent: 0,
            codes: [0; 7],
            msa2_mismatch: 0,
            not_ack_type: 0,
            timeouts: 0,
            disconnects: 0,
            bad_frames: 0,
            reconnects: 0,
            reconnect_failures: 0,
            late_sends: 0,
            latency_us: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("bounds"),
            first_send: None,
            last_ack: None,
            acked: Vec::new(),
        }
    }

    fn add(&mut self, o: ConnStats) {
        self.warmup_sent += o.warmup_sent;
        self.warmup_failed += o.warmup_failed;
        self.sent += o.sent;
        for (a, b) in self.codes.iter_mut().zip(o.codes) {
            *a += b;
        }
        self.msa2_mismatch += o.msa2_mismatch;
        self.not_ack_type += o.not_ack_type;
        self.timeouts += o.timeouts;
        self.disconnects += o.disconnects;
        self.bad_frames += o.bad_frames;
        self.reconnects += o.reconnects;
        self.reconnect_failures += o.reconnect_failures;
        self.late_sends += o.late_sends;
        self.latency_us.add(&o.latency_us).expect("same bounds");
        self.first_send = min_some(self.first_send, o.first_send);
        self.last_ack = self.last_ack.max(o.last_ack);
        self.acked.extend(o.acked);
    }

    /// Counts a measured exchange; returns whether it got a positive ACK for `control_id`.
    fn record_measured(
        &mut self,
        outcome: Result<Bytes, Failure>,
        control_id: &str,
        t_write: Instant,
        t_ack: Instant,
    ) -> bool {
        let payload = match outcome {
            Ok(payload) => payload,
            Err(Failure::Timeout) => return bump(&mut self.timeouts),
            Err(Failure::Disconnected) => return bump(&mut self.disconnects),
            Err(Failure::BadFrame) => return bump(&mut self.bad_frames),
        };
        let us = t_ack.duration_since(t_write).as_micros() as u64;
        self.latency_us.saturating_record(us.max(1));
        self.last_ack = Some(t_ack);
        let Some(ack) = parse_ack(&payload) else {
            return bump(&mut self.bad_frames);
        };
        let slot = CODES.iter().position(|c| c.as_bytes() == ack.code);
        self.codes[slot.unwrap_or(CODES.len())] += 1;
        self.not_ack_type += u64::from(!ack.is_ack_type);
        self.msa2_mismatch += u64::from(!ack.acknowledges(control_id));
        ack.is_positive_for(control_id)
    }

    /// Counts a warmup exchange: only whether it was positively acknowledged.
    fn record_warmup(&mut self, outcome: &Result<Bytes, Failure>, control_id: &str) -> bool {
        self.warmup_sent += 1;
        let ack = outcome.as_ref().ok().and_then(|p| parse_ack(p));
        let positive = ack.is_some_and(|a| a.is_positive_for(control_id));
        self.warmup_failed += u64::from(!positive);
        positive
    }
}

/// Adds one to a counter; returns `false` (the exchange was not a positive ACK).
fn bump(counter: &mut u64) -> bool {
    *counter += 1;
    false
}

fn min_some(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Run-wide state every connection reads.
#[derive(Debug)]
struct Shared {
    plan: Plan,
    /// Next message counter to use.
    next: AtomicU64,
    /// Measured messages still to send (`Stop::Count`).
    remaining: AtomicU64,
    /// When sending starts (all connections are open).
    t0: Instant,
    /// When the measured phase starts.
    warm_end: Instant,
}

impl Shared {
    /// Whether one more measured message may be sent at `now`.
    fn claim(&self, now: Instant) -> bool {
        match self.plan.stop {
            Stop::Count(_) => {
                self.remaining.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |r| r.checked_sub(1)).is_ok()
            }
            Stop::After(d) => now < self.warm_end + d,
        }
    }
}

/// Waits for slot `*slot` of connection `index` on the `--rate` schedule and moves to the
/// next slot; returns whether the send starts late.
async fn pace(shared: &Shared, interval: Duration, index: u64, slot: &mut u64) -> bool {
    // Connections are staggered so the sends spread evenly over time.
    let phase = interval.mul_f64(index as f64 / shared.plan.connections as f64);
    let due = shared.t0 + phase + interval.mul_f64(*slot as f64);
    *slot += 1;
    tokio::time::sleep_until(due.into()).await;
    Instant::now().saturating_duration_since(due) > LATE_AFTER
}

/// The open connection, reopening it after a failure; `None` if it cannot be reopened.
async fn reopen_if_closed<'c>(conn: &'c mut Option<Conn>, plan: &Plan, stats: &mut ConnStats) -> Option<&'c mut Conn> {
    if conn.is_none() {
        let Ok(c) = Conn::open(plan).await else {
            stats.reconnect_failures += 1;
            return None;
        };
        stats.reconnects += 1;
        *conn = Some(c);
    }
    conn.as_mut()
}

/// Drives one connection until the plan says stop; returns its counters.
async fn drive(index: u64, first: Conn, shared: Arc<Shared>) -> ConnStats {
    let plan = &shared.plan;
    let mut stats = ConnStats::new();
    let mut conn = Some(first);
    let mut order = OrderWriter::default();
    let mut slot = 0u64;
    loop {
        let late = match plan.interval {
            Some(interval) => pace(&shared, interval, index, &mut slot).await,
            None => false,
        };
        let now = Instant::now();
        let warmup = now < shared.warm_end;
        if !warmup && !shared.claim(now) {
            break;
        }
        let n = shared.next.fetch_add(1, Ordering::Relaxed);
        let control_id = plan.control_id(n);
        order.write(n, &control_id, &hl7_now(), plan.size);
        let Some(c) = reopen_if_closed(&mut conn, plan, &mut stats).await else {
            break;
        };
        let t_write = Instant::now();
        let reply = tokio::time::timeout(plan.timeout, c.exchange(&order, plan.nagle)).await;
        let t_ack = Instant::now();
        let outcome = reply.unwrap_or(Err(Failure::Timeout));
        if outcome.is_err() {
            conn = None;
        }
        let positive = if warmup {
            stats.record_warmup(&outcome, &control_id)
        } else {
            stats.sent += 1;
            stats.late_sends += u64::from(late);
            stats.first_send.get_or_insert(t_write);
            stats.record_measured(outcome, &control_id, t_write, t_ack)
        };
        if positive && plan.keep_acked_ids {
            stats.acked.push(n);
        }
    }
    stats
}

// ---------------------------------------------------------------------------------------
// mllp: run and report
// ---------------------------------------------------------------------------------------

#[derive(Debug, Serialize)]
struct LatencyMs {
    p50: f64,
    p95: f64,
    p99: f64,
    p999: f64,
    max: f64,
    mean: f64,
}

#[derive(Debug, Serialize)]
struct Errors {
    timeouts: u64,
    disconnects: u64,
    bad_frames: u64,
    reconnects: u64,
    reconnect_failures: u64,
}

#[derive(Debug, Serialize)]
struct MllpReport {
    addr: String,
    connections: u64,
    threads: u64,
    nagle: bool,
    /// Offered rate (msgs/s, all connections); 0 = closed loop.
    rate: f64,
    run_id: String,
    warmup_sent: u64,
    /// Warmup messages without a positive ACK (not in the other figures).
    warmup_failed: u64,
    sent: u64,
    /// ACKs received for measured messages, any code.
    acked: u64,
    acked_by_code: std::collections::BTreeMap<&'static str, u64>,
    msa2_mismatch: u64,
    not_ack_type: u64,
    errors: Errors,
    late_sends: u64,
    elapsed_s: f64,
    msgs_per_s: f64,
    latency_ms: LatencyMs,
}

/// Opens every connection, then drives them all; `Err` only if a connection can't open.
async fn run_mllp(plan: Plan) -> Result<ConnStats, io::Error> {
    let mut opening = Vec::new();
    for _ in 0..plan.connections {
        opening.push(Conn::open(&plan));
    }
    let mut conns = Vec::new();
    for conn in opening {
        conns.push(conn.await?);
    }
    let t0 = Instant::now();
    let remaining = match plan.stop {
        Stop::Count(n) => n,
        Stop::After(_) => 0,
    };
    let shared = Arc::new(Shared {
        next: AtomicU64::new(plan.start),
        remaining: AtomicU64::new(remaining),
        t0,
        warm_end: t0 + plan.warmup,
        plan,
    });
    let tasks: Vec<_> = (0u64..).zip(conns).map(|(i, conn)| tokio::spawn(drive(i, conn, shared.clone()))).collect();
    let mut total = ConnStats::new();
    for task in tasks {
        total.add(task.await.expect("connection task panicked"));
    }
    Ok(total)
}

fn mllp_report(args: &MllpArgs, plan_run_id: &str, s: &ConnStats) -> MllpReport {
    let ms = |us: u64| us as f64 / 1000.0;
    let h = &s.latency_us;
    let elapsed = match (s.first_send, s.last_ack) {
        (Some(a), Some(b)) => b.duration_since(a).as_secs_f64(),
        _ => 0.0,
    };
    let acked: u64 = s.codes.iter().sum();
    let mut by_code: std::collections::BTreeMap<&str, u64> = CODES.iter().copied().zip(s.codes).collect();
    by_code.insert("other", s.codes[CODES.len()]);
    MllpReport {
        addr: args.addr.to_string(),
        connections: args.connections,
        threads: args.threads,
        nagle: args.nagle,
        rate: args.rate,
        run_id: plan_run_id.to_owned(),
        warmup_sent: s.warmup_sent,
        warmup_failed: s.warmup_failed,
        sent: s.sent,
        acked,
        acked_by_code: by_code,
        msa2_mismatch: s.msa2_mismatch,
        not_ack_type: s.not_ack_type,
        errors: Errors {
            timeouts: s.timeouts,
            disconnects: s.disconnects,
            bad_frames: s.bad_frames,
            reconnects: s.reconnects,
            reconnect_failures: s.reconnect_failures,
        },
        late_sends: s.late_sends,
        elapsed_s: round3(elapsed),
        msgs_per_s: if elapsed > 0.0 { (acked as f64 / elapsed).round() } else { 0.0 },
        latency_ms: LatencyMs {
            p50: ms(h.value_at_quantile(0.50)),
            p95: ms(h.value_at_quantile(0.95)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
            mean: round3(h.mean() / 1000.0),
        },
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn print_mllp_text(r: &MllpReport) {
    let rate = if r.rate > 0.0 { format!("{} msgs/s offered", r.rate) } else { "closed loop".into() };
    println!(
        "zenedge-load mllp {}: {} connection(s), {} thread(s), nagle {}, {rate}, run id {}",
        r.addr,
        r.connections,
        r.threads,
        if r.nagle { "on (3 writes/frame)" } else { "off" },
        r.run_id
    );
    println!(
        "sent {} (+{} warmup, {} of them not AA/CA), acked {} in {:.3} s: {} msgs/s",
        r.sent, r.warmup_sent, r.warmup_failed, r.acked, r.elapsed_s, r.msgs_per_s
    );
    let codes: Vec<String> = r.acked_by_code.iter().map(|(c, n)| format!("{c} {n}")).collect();
    println!(
        "acked by code: {}   MSA-2 mismatch {}   non-ACK type {}",
        codes.join("  "),
        r.msa2_mismatch,
        r.not_ack_type
    );
    let e = &r.errors;
    println!(
        "errors: timeouts {}  disconnects {}  bad frames {}  reconnects {} (failed {})  late sends {}",
        e.timeouts, e.disconnects, e.bad_frames, e.reconnects, e.reconnect_failures, r.late_sends
    );
    let l = &r.latency_ms;
    println!(
        "ACK latency ms: p50 {}  p95 {}  p99 {}  p99.9 {}  max {}  mean {}",
        l.p50, l.p95, l.p99, l.p999, l.max, l.mean
    );
}

fn write_acked(path: &PathBuf, plan_run_id: &str, acked: &[u64]) -> io::Result<()> {
    let mut out = BufWriter::new(fs::File::create(path)?);
    for n in acked {
        writeln!(out, "{plan_run_id}-{n}")?;
    }
    out.flush()
}

fn run_mllp_command(args: MllpArgs) -> Result<ExitCode, BoxError> {
    let plan = Plan::from_args(&args)?;
    let run_id = plan.run_id.clone();
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(args.threads as usize).enable_all().build()?;
    let stats = match runtime.block_on(run_mllp(plan)) {
        Ok(stats) => stats,
        Err(err) => {
            eprintln!("zenedge-load: cannot connect to {}: {err}", args.addr);
            return Ok(ExitCode::from(3));
        }
    };
    if let Some(path) = &args.acked_out {
        write_acked(path, &run_id, &stats.acked).map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    let report = mllp_report(&args, &run_id, &stats);
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_mllp_text(&report);
    }
    let positive = report.acked_by_code["AA"] + report.acked_by_code["CA"];
    let clean = positive == report.sent
        && report.msa2_mismatch == 0
        && report.warmup_failed == 0
        && stats.timeouts + stats.disconnects + stats.bad_frames + stats.reconnect_failures == 0;
    Ok(if clean { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

// ---------------------------------------------------------------------------------------
// commit-ceiling
// ---------------------------------------------------------------------------------------

const EVENTS: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("events");

#[derive(Debug, Serialize)]
struct CommitMs {
    mean: f64,
    p50: f64,
    p99: f64,
    max: f64,
}

#[derive(Debug, Serialize)]
struct CeilingReport {
    dir: String,
    commits: u64,
    events_per_commit: u64,
    event_bytes: usize,
    elapsed_s: f64,
    commits_per_s: f64,
    events_per_s: f64,
    /// One whole write transaction: begin, inserts, durable commit.
    commit_ms: CommitMs,
}

/// Fills `buf` with xorshift bytes: incompressible, like real message payloads.
fn fill_random(buf: &mut [u8], mut state: u64) {
    for chunk in buf.chunks_mut(8) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
    }
}

fn commit_ceiling(args: &CeilingArgs) -> Result<CeilingReport, BoxError> {
    fs::create_dir_all(&args.dir).map_err(|e| format!("creating {}: {e}", args.dir.display()))?;
    let path = args.dir.join(format!("zenedge-load-ceiling-{}.redb", std::process::id()));
    let db = redb::Database::create(&path).map_err(|e| format!("creating {}: {e}", path.display()))?;
    let mut value = vec![0u8; args.event_bytes];
    fill_random(&mut value, 0x2545_F491_4F6C_DD1D);
    let mut hist = Histogram::<u64>::new_with_bounds(1, MAX_LATENCY_US, 3)?;
    let mut key = 0u64;
    let started = Instant::now();
    for _ in 0..args.commits {
        let t0 = Instant::now();
        let tx = db.begin_write()?; // Durability::Immediate is the default.
        {
            let mut table = tx.open_table(EVENTS)?;
            for _ in 0..args.events_per_commit {
                let head = value.len().min(8);
                value[..head].copy_from_slice(&mix(key).to_le_bytes()[..head]);
                table.insert(key, value.as_slice())?;
                key += 1;
            }
        }
        tx.commit()?;
        hist.saturating_record((t0.elapsed().as_micros() as u64).max(1));
    }
    let elapsed = started.elapsed().as_secs_f64();
    drop(db);
    fs::remove_file(&path).map_err(|e| format!("removing {}: {e}", path.display()))?;
    let ms = |us: u64| us as f64 / 1000.0;
    Ok(CeilingReport {
        dir: args.dir.display().to_string(),
        commits: args.commits,
        events_per_commit: args.events_per_commit,
        event_bytes: args.event_bytes,
        elapsed_s: round3(elapsed),
        commits_per_s: (args.commits as f64 / elapsed).round(),
        events_per_s: (key as f64 / elapsed).round(),
        commit_ms: CommitMs {
            mean: round3(hist.mean() / 1000.0),
            p50: ms(hist.value_at_quantile(0.5)),
            p99: ms(hist.value_at_quantile(0.99)),
            max: ms(hist.max()),
        },
    })
}

fn run_ceiling_command(args: &CeilingArgs) -> Result<ExitCode, BoxError> {
    let r = commit_ceiling(args)?;
    if args.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!(
            "redb 4.6 durable commits in {}: {} commits x {} event(s) x {} B in {:.3} s",
            r.dir, r.commits, r.events_per_commit, r.event_bytes, r.elapsed_s
        );
        println!("{} commits/s, {} events/s", r.commits_per_s, r.events_per_s);
        let c = &r.commit_ms;
        println!("commit ms: mean {}  p50 {}  p99 {}  max {}", c.mean, c.p50, c.p99, c.max);
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    fn field<'a>(payload: &'a str, segment: &str, n: usize) -> &'a str {
        let seg = payload.split('\r').find(|s| s.starts_with(segment)).expect(segment);
        // For MSH, field 1 is the separator itself, so MSH-n is split index n-1.
        let index = if segment == "MSH" { n - 1 } else { n };
        seg.split('|').nth(index).unwrap_or("")
    }

    fn order(n: u64, size: usize) -> (OrderWriter, String) {
        let mut w = OrderWriter::default();
        w.write(n, &format!("RUN-{n}"), "20261123114200+0000", size);
        let payload = String::from_utf8(w.frame[1..w.frame.len() - 2].to_vec()).unwrap();
        (w, payload)
    }

    #[test]
    fn synthesized_order_carries_control_id_and_accession_where_receivers_look() {
        let (_, p) = order(42, 1024);
        assert_eq!(field(&p, "MSH", 9), "ORM^O01^ORM_O01");
        assert_eq!(field(&p, "MSH", 10), "RUN-42");
        assert_eq!(field(&p, "ORC", 3), "ARUN-42^RIS");
        assert_eq!(field(&p, "OBR", 3), "ARUN-42^RIS");
        assert_eq!(field(&p, "OBR", 18), "ARUN-42");
        assert_eq!(field(&p, "OBR", 24).len(), 2, "modality");
        let segments: Vec<&str> = p.split('\r').filter(|s| !s.is_empty()).map(|s| &s[..3]).collect();
        assert_eq!(segments[..5], ["MSH", "PID", "PV1", "ORC", "OBR"]);
    }

    #[test]
    fn synthesized_order_is_about_the_requested_size() {
        let (_, bare) = order(7, 0);
        assert!(bare.len() < 1024, "{}", bare.len());
        for size in [1024, 8192] {
            let (_, p) = order(7, size);
            assert!(p.len() >= size && p.len() < size + 100, "{size}: {}", p.len());
        }
    }

    #[test]
    fn nagle_parts_are_start_block_with_msh_then_rest_then_end_block() {
        let (w, _) = order(1, 1024);
        let [a, b, c] = w.nagle_parts();
        assert!(a.starts_with(b"\x0bMSH|") && a.ends_with(b"\r"));
        assert_eq!(a.iter().filter(|&&x| x == b'\r').count(), 1);
        assert!(b.starts_with(b"PID|"));
        assert_eq!(c, b"\x1c\r");
        assert_eq!([a, b, c].concat(), w.frame.to_vec());
    }

    #[test]
    fn ack_parse_reads_code_and_control_id_with_the_senders_separator() {
        let ack = parse_ack(b"MSH#^~\\&#A#B#C#D#20261123##ACK^O01^ACK#X1#P#2.5.1\rMSA#AE#RUN-1#bad\r");
        let expected = Ack { code: b"AE", control_id: b"RUN-1", is_ack_type: true };
        assert_eq!(ack, Some(expected));
        assert_eq!(parse_ack(b"MSH|^~\\&|A\rPID|1\r"), None);
        assert!(!parse_ack(b"MSH|^~\\&|||||||ADT^A01|1|P|2.5\nMSA|AA|1").unwrap().is_ack_type);
    }

    #[test]
    fn default_run_ids_are_short_base36_timestamps() {
        let id = default_run_id();
        assert!(id.len() <= 9 && id.chars().all(|c| c.is_ascii_alphanumeric()), "{id}");
        assert!(parse_run_id("a|b").is_err());
    }

    /// A receiver that answers AA to every frame, echoing MSH-10, until the client leaves.
    async fn ack_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut codec, mut buf) = (MllpCodec::new(1 << 20), BytesMut::new());
                    while stream.read_buf(&mut buf).await.unwrap_or(0) > 0 {
                        while let Ok(Some(Frame::Message(p))) = codec.decode(&mut buf) {
                            let text = String::from_utf8_lossy(&p).into_owned();
                            let ack = format!(
                                "MSH|^~\\&|Z|E|L|S|20261123||ACK^O01^ACK|A1|P|2.5.1\rMSA|AA|{}\r",
                                field(&text, "MSH", 10)
                            );
                            let mut out = BytesMut::new();
                            encode_frame(ack.as_bytes(), &mut out);
                            let _ = stream.write_all(&out).await;
                        }
                    }
                });
            }
        });
        addr
    }

    /// A plan for `--count count` messages over `addr`, with `extra` options.
    fn plan(addr: SocketAddr, count: u64, extra: &str) -> Plan {
        let line = format!("zenedge-load mllp --addr {addr} --count {count} --run-id T {extra}");
        let Command::Mllp(args) = Cli::parse_from(line.split_whitespace()).command else { unreachable!() };
        Plan::from_args(&args).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_counted_message_is_sent_once_and_acked_with_its_own_control_id() {
        let addr = ack_server().await;
        let stats = run_mllp(plan(addr, 50, "-c 3 --warmup 0s --acked-out x")).await.unwrap();
        assert_eq!((stats.sent, stats.codes[0], stats.msa2_mismatch), (50, 50, 0));
        let mut acked = stats.acked.clone();
        acked.sort_unstable();
        assert_eq!(acked, (0..50).collect::<Vec<u64>>());
        assert_eq!(stats.latency_us.len(), 50);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn warmup_messages_are_acked_and_listed_but_kept_out_of_the_figures() {
        let addr = ack_server().await;
        let stats = run_mllp(plan(addr, 20, "-c 3 --warmup 50ms --acked-out x")).await.unwrap();
        assert!(stats.warmup_sent > 0);
        assert_eq!((stats.sent, stats.codes.iter().sum::<u64>()), (20, 20));
        assert_eq!(stats.latency_us.len(), 20);
        assert_eq!(stats.acked.len() as u64, 20 + stats.warmup_sent);
        assert_eq!(stats.warmup_failed, 0);
    }

    #[tokio::test]
    async fn a_receiver_that_never_answers_costs_a_timeout_and_a_reconnect_per_message() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let held = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        });
        let stats = run_mllp(plan(addr, 3, "--warmup 0s --timeout 50ms")).await.unwrap();
        assert_eq!((stats.sent, stats.timeouts, stats.reconnects), (3, 3, 2));
        assert_eq!(stats.codes.iter().sum::<u64>(), 0);
        held.abort();
    }

    #[tokio::test]
    async fn a_receiver_that_is_not_listening_fails_the_run_at_connect() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        assert!(run_mllp(plan(addr, 1, "-c 3")).await.is_err());
    }
}
