//! The arguments of `penalty`, as CLI.md defines them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use penalty_core::labels::Lang;

/// The penalty ledger: shipping-timeout penalties of marketplace shops,
/// computed from an append-only event log.
#[derive(Debug, Parser)]
#[command(
    name = "penalty",
    version,
    after_help = "Examples:\n  penalty ingest events.jsonl\n  penalty shop S1 --as-of 2026-03-07T00:00:00+08:00\n  penalty order O1 --as-of 2026-03-07 --json\n  penalty --lang zh-CN order O1 --as-of 2026-03-07\n\nThe language of the tables and sentences: --lang, else PENALTY_LANG, else the\nlocale (LC_ALL, LC_MESSAGES, LANG: zh_CN.UTF-8 is Chinese), else English.\n--json is the same in every language.\n\nExit codes: 0 ok, 1 error, 2 usage, 3 unknown shop or order, 4 audit problem, 130 interrupted."
)]
pub struct Cli {
    /// The data directory (created by the first ingest; read commands
    /// refuse one that does not exist).
    #[arg(
        long,
        global = true,
        env = "PENALTY_DB",
        default_value = "./penalty-data"
    )]
    pub db: PathBuf,

    /// A writer (`ingest`, `recover`) fails at once when another writer
    /// holds the data directory, instead of waiting its turn. Read commands
    /// never wait.
    #[arg(long, global = true)]
    pub no_wait: bool,

    /// A JSON file overriding policy parameters (RULES.md); unknown keys are an
    /// error.
    #[arg(long, global = true, value_name = "FILE")]
    pub policy: Option<PathBuf>,

    /// The language of the human output: `zh-CN` (Chinese) or `en`
    /// (English). Default: PENALTY_LANG, else the locale (LC_ALL,
    /// LC_MESSAGES, LANG), else English. JSON output is the same in both.
    #[arg(
        long,
        global = true,
        env = "PENALTY_LANG",
        hide_env_values = true,
        value_name = "LANG",
        value_parser = parse_lang
    )]
    pub lang: Option<Lang>,

    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// The language to speak: `--lang` or PENALTY_LANG when given, else the
    /// process's locale.
    pub fn lang(&self) -> Lang {
        lang_or_locale(self.lang)
    }
}

/// The language `given` (by `--lang` or PENALTY_LANG), else the process's
/// locale: the rule of [`Cli::lang`], also read before parsing by the help
/// pages (`help_zh::lang_of_args`).
pub fn lang_or_locale(given: Option<Lang>) -> Lang {
    given.unwrap_or_else(|| locale_lang(|name| std::env::var(name).ok()))
}

/// The language of the POSIX locale, read through `var`: the first set and
/// non-empty of LC_ALL, LC_MESSAGES and LANG (the order in which POSIX lets
/// them override each other), Chinese for `zh_CN.UTF-8` and the like,
/// English for anything else or nothing.
pub fn locale_lang(var: impl Fn(&str) -> Option<String>) -> Lang {
    ["LC_ALL", "LC_MESSAGES", "LANG"]
        .into_iter()
        .filter_map(var)
        .find(|value| !value.is_empty())
        .map_or(Lang::En, |value| Lang::from_tag(&value))
}

fn parse_lang(text: &str) -> Result<Lang, String> {
    Lang::parse(text).ok_or_else(|| "write zh-CN (Chinese) or en (English)".to_string())
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Append events (JSON Lines, EVENTS.md) from files or standard input.
    #[command(
        after_help = "Examples:\n  penalty ingest events.jsonl more.jsonl\n  producer | penalty ingest -\n  penalty ingest events.jsonl --json --rejects rejects.jsonl\n\nEvery line ends appended, duplicate or rejected; re-sending a file is safe.\nEach batch is durable (flushed) before it is counted as appended, within\nabout 100 ms even on a slow pipe. Ctrl-C commits what was read and stops."
    )]
    Ingest(IngestArgs),

    /// One shop's report: charges, bans, closure-review flags, rating inputs.
    #[command(
        after_help = "Examples:\n  penalty shop S1 --as-of 2026-03-07T00:00:00+08:00\n  penalty shop S1 --as-of 2026-03-07 --json\n  penalty shop S1 --as-of 2026-03-07 --known-at 2026-03-08T09:00:00Z"
    )]
    Shop(ShopArgs),

    /// One order's report, with the reasons for every judgment and charge.
    #[command(
        after_help = "Examples:\n  penalty order O1 --as-of 2026-03-07T00:00:00+08:00\n  penalty order O1 --json"
    )]
    Order(OrderArgs),

    /// The orders that will be judged, flagged or auto-closed soon unless the
    /// seller acts: a warning before the penalty.
    #[command(
        name = "at-risk",
        after_help = "Examples:\n  penalty at-risk --shop S1 --as-of 2026-03-02T12:00:00+08:00\n  penalty at-risk --within 12h --json\n  penalty at-risk --within 90m --limit 0\n\nAn order is at risk when it is neither shipped nor refunded and its next\njudgment (R3), closure-review flag (R7) or auto-close (R8) comes within the\nhorizon. Only events at or before --as-of count."
    )]
    AtRisk(AtRiskArgs),

    /// A shop's notice feed (R9): one notice per judgment, oldest first.
    #[command(
        after_help = "Examples:\n  penalty notices S1 --as-of 2026-03-07\n  penalty notices S1 --after 1772503200000000000.1.O1 --limit 20 --json\n\nEach notice has a cursor: pass the last one you read as --after to get the\nnext page. Without --after the feed starts at the beginning."
    )]
    Notices(NoticesArgs),

    /// Every shop existing as of an instant, one line each.
    #[command(
        after_help = "Examples:\n  penalty shops --as-of 2026-03-07\n  penalty shops --as-of 2026-03-07 --json > shops.jsonl\n  penalty shops --as-of 2026-03-07 --sort rate --min-orders 50 --top 10\n  penalty shops --as-of 2026-03-07 --offset 200 --limit 200"
    )]
    Shops(ShopsArgs),

    /// A shop's booked ledger (R14): the postings of the settlement runs,
    /// corrections with their cause.
    #[command(
        after_help = "Examples:\n  penalty postings S1 --as-of 2026-03-10\n  penalty postings S1 --as-of 2026-03-10T00:00:00+08:00 --json\n\nA settlement run at 00:00 local of every day books what the daily cap (R5)\ncharges as of then minus what was booked before: a charge, or a refund or\nlate charge that corrects an earlier day. Postings are never changed."
    )]
    Postings(PostingsArgs),

    /// The policy in force: every version with the instant it holds from (R15).
    #[command(
        after_help = "Examples:\n  penalty policy\n  penalty --policy policy.json policy --json\n\nA policy file is one object of parameters, or {\"versions\": [V0, V1, ...]}\nwhere every version after V0 has an effective_from (RFC 3339, strictly\nincreasing) and inherits what it omits from the version before."
    )]
    Policy(PolicyArgs),

    /// Export data: `export orders` writes one row per order, `export
    /// postings` every posting of the booked ledger (R14).
    #[command(
        subcommand,
        after_help = "Examples:\n  penalty export orders --as-of 2026-03-07 --format csv -o orders.csv\n  penalty export orders --shop S1 --violating --format jsonl"
    )]
    Export(ExportCommand),

    /// Rebuild every projection from the log alone and print its digest.
    #[command(
        after_help = "Examples:\n  penalty replay --as-of 2026-03-07 --json\n  penalty replay --as-of 2026-03-07 --known-at 2026-03-08T09:00:00Z\n\nThe digest equals the one of the stored (incremental) projections; the\nrebuilt projections are also saved as the new checkpoint (without --known-at)."
    )]
    Replay(QueryArgs),

    /// Check the log's integrity and that the stored projections equal a replay.
    #[command(
        after_help = "Examples:\n  penalty audit\n  penalty audit --json\n\nExits 4 when a block fails its checksum, a sequence number is missing, or the\ncheckpoint disagrees with a replay. Lists orders whose events wait for their\npaid event (R13)."
    )]
    Audit(AuditArgs),

    /// Rebuild sled's part of the data directory (where each block lies) from the blocks file.
    #[command(
        after_help = "Examples:\n  penalty recover\n  penalty recover --json\n\nFor when a command says that sled cannot read its database file (when sled\nlost only its end, any command finds those blocks again by itself): the events themselves are in events.log, each block\nchecksummed, and are found again from there. The damaged sled directory is\nkept beside (log.sled.damaged-N); the projection checkpoint is rebuilt by the\nnext query. Refuses, changing nothing, when events.log itself lost\nacknowledged events (exit 4): then only a backup has them."
    )]
    Recover(RecoverArgs),

    /// Generate a seeded, realistic workload as JSON Lines (EVENTS.md).
    #[command(
        after_help = "Examples:\n  penalty gen --orders 1000000 --shops 10000 --seed 1 -o events.jsonl\n  penalty gen --orders 300 --shops 6 | penalty ingest -"
    )]
    Gen(GenArgs),

    /// Serve the ledger over HTTP, with a dashboard, on the same data directory.
    #[command(
        after_help = "Examples:\n  penalty serve --addr 127.0.0.1:8080\n  penalty serve --addr 127.0.0.1:8080 --allowed-host ledger.localhost\n  penalty serve --addr 0.0.0.0:8080 --tokens tokens.json\n\nWithout --tokens the server listens on loopback addresses only. POST /events\ntakes `Content-Type: application/x-ndjson`. Ctrl-C or SIGTERM stops it: requests\nin flight finish (within 10 s), idle connections close at once."
    )]
    Serve(ServeArgs),

    /// The ledger partitioned by shop over a NATS JetStream cluster
    /// (docs/SCALE-OUT.md): create it, run a node, see its state.
    #[command(
        subcommand,
        after_help = "Examples:\n  penalty cluster init --cluster nats://127.0.0.1:4222 --partitions 16 --replicas 3\n  penalty cluster node --cluster nats://127.0.0.1:4222 --node n1 --db n1-data --addr 127.0.0.1:8081\n  penalty cluster node --cluster nats://10.0.0.1:4222 --node n2 --db n2-data --addr 0.0.0.0:8081 --tokens tokens.json\n  penalty ingest --cluster nats://127.0.0.1:4222 events.jsonl --json\n  penalty cluster status --cluster nats://127.0.0.1:4222\n\nA node's HTTP API takes --tokens and --allowed-host as `penalty serve` does;\nwithout --tokens it listens on loopback addresses only."
    )]
    Cluster(ClusterCommand),
}

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Create the streams and buckets; P and R are fixed from then on.
    #[command(
        after_help = "Example:\n  penalty cluster init --cluster nats://127.0.0.1:4222 --partitions 16 --replicas 3"
    )]
    Init(ClusterInitArgs),
    /// Run a node: own partitions, consume them into local ledgers
    /// (checkpointed under --db), answer the HTTP API for any shop or order.
    #[command(
        after_help = "Examples:\n  penalty cluster node --cluster nats://127.0.0.1:4222 --node n1 --db n1-data --addr 127.0.0.1:8081\n  penalty cluster node --cluster nats://10.0.0.1:4222 --node n2 --db n2-data --addr 0.0.0.0:8081 --tokens tokens.json"
    )]
    Node(ClusterNodeArgs),
    /// Each live node's partitions, applied sequences and lag.
    #[command(
        after_help = "Examples:\n  penalty cluster status --cluster nats://127.0.0.1:4222\n  penalty cluster status --cluster nats://127.0.0.1:4222 --json"
    )]
    Status(ClusterStatusArgs),
}

#[derive(Debug, Args)]
pub struct ClusterInitArgs {
    /// The NATS servers: `nats://host:port`, several separated by commas.
    #[arg(long, value_name = "URL")]
    pub cluster: String,
    /// Partitions of every stage (fixed once created).
    #[arg(long, default_value_t = 64)]
    pub partitions: u32,
    /// Replicas of every stream and bucket (1 to 5; 3 survives one server).
    #[arg(long, default_value_t = 3)]
    pub replicas: u32,
}

#[derive(Debug, Args)]
pub struct ClusterNodeArgs {
    /// The NATS servers: `nats://host:port`, several separated by commas.
    #[arg(long, value_name = "URL")]
    pub cluster: String,
    /// This node's name: unique in the cluster, the same across restarts.
    #[arg(long, value_name = "N")]
    pub node: String,
    /// Where to serve HTTP.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: std::net::SocketAddr,
    /// The most events a `known_at` question replays from a partition's
    /// stream; a partition holding more is refused with a 400 saying so.
    #[arg(long, value_name = "N", default_value_t = penalty_cluster::replay::DEFAULT_MAX_REPLAY_EVENTS)]
    pub max_replay_events: u64,

    /// Who may read what, as for `penalty serve`.
    #[command(flatten)]
    pub access: AccessArgs,
}

#[derive(Debug, Args)]
pub struct ClusterStatusArgs {
    /// The NATS servers: `nats://host:port`, several separated by commas.
    #[arg(long, value_name = "URL")]
    pub cluster: String,
    /// Machine output (JSON) on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct GenArgs {
    /// Orders to generate.
    #[arg(long, default_value_t = 1000)]
    pub orders: u64,

    /// Shops to spread them over (skewed sizes).
    #[arg(long, default_value_t = 10)]
    pub shops: u64,

    /// The seed: the same arguments give the same bytes.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// Write to this file instead of standard output.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: std::net::SocketAddr,

    /// Who may read what.
    #[command(flatten)]
    pub access: AccessArgs,
}

/// The access control of an HTTP API: `penalty serve`'s and a cluster
/// node's.
#[derive(Debug, Args)]
pub struct AccessArgs {
    /// A JSON list of `{"sha256": "<hex of the token>", "role": "operator"}` or
    /// `{"sha256": "…", "role": "seller", "shop_id": "S1"}`.
    #[arg(long, value_name = "FILE")]
    pub tokens: Option<PathBuf>,

    /// A name (or name:port) this server answers for besides its address and
    /// `localhost`; repeat for more. Requests naming another `Host` get a 421
    /// (DNS rebinding). With --tokens and no --allowed-host, any host.
    #[arg(long = "allowed-host", value_name = "NAME")]
    pub allowed_hosts: Vec<String>,
}

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Input files; `-` or none for standard input.
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// Where rejected lines go, appended to (default `<db>/rejects.jsonl`).
    #[arg(long, value_name = "PATH")]
    pub rejects: Option<PathBuf>,

    /// Print `{"read":N,"appended":N,"duplicates":N,"rejected":N}`.
    #[arg(long)]
    pub json: bool,

    /// No progress bar, even on a terminal.
    #[arg(long)]
    pub quiet: bool,

    /// After each durable batch, print the running counts as one JSON line on
    /// stderr (`{"read":N,"appended":N,"duplicates":N,"rejected":N}`), for
    /// scripts that watch a long ingest: what it printed is committed.
    #[arg(long)]
    pub progress_jsonl: bool,

    /// Ingest into a cluster (`nats://host:port`, several separated by
    /// commas) instead of the local data directory: each line is counted
    /// once it is in the replicated stream and decided.
    #[arg(long, value_name = "URL")]
    pub cluster: Option<String>,
}

#[derive(Debug, Args)]
pub struct QueryArgs {
    /// The instant to evaluate at: RFC 3339 with an offset, or a date
    /// (`YYYY-MM-DD`, 00:00 in the policy's offset). Default: now.
    #[arg(long, value_name = "T")]
    pub as_of: Option<String>,

    /// Answer with only the events recorded by this instant: what the ledger
    /// said then.
    #[arg(long, value_name = "T")]
    pub known_at: Option<String>,

    /// Machine output (JSON) on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ShopArgs {
    /// The shop.
    pub shop_id: String,
    /// Human output: show at most this many rows of each list (deductions,
    /// banned products, closure-review flags; 0: all). JSON output always
    /// lists every row.
    #[arg(long, default_value_t = 200)]
    pub limit: usize,
    /// Human output: skip this many rows of each list first (the next page).
    #[arg(long, default_value_t = 0)]
    pub offset: usize,
    /// Human output: the figures only, no lists.
    #[arg(long)]
    pub summary: bool,
    #[command(flatten)]
    pub query: QueryArgs,
}

#[derive(Debug, Args)]
pub struct ShopsArgs {
    /// The order: `shop` (by id), or the worst first by `judgments`,
    /// `charged` money or timeout `rate` (R10); ties by shop id.
    #[arg(long, default_value = "shop", value_parser = parse_shop_sort)]
    pub sort: penalty_core::ShopSort,
    /// Only the first N shops of that order.
    #[arg(long, value_name = "N")]
    pub top: Option<usize>,
    /// Only shops with at least M paid orders (a rate over a few orders says
    /// little).
    #[arg(long, value_name = "M", default_value_t = 0)]
    pub min_orders: u64,
    /// Human output: show at most this many shops (0: all). JSON output
    /// always lists every shop.
    #[arg(long, default_value_t = 200)]
    pub limit: usize,
    /// Human output: skip this many shops first (the next page).
    #[arg(long, default_value_t = 0)]
    pub offset: usize,
    #[command(flatten)]
    pub query: QueryArgs,
}

fn parse_shop_sort(text: &str) -> Result<penalty_core::ShopSort, String> {
    penalty_core::ShopSort::parse(text)
        .ok_or_else(|| format!("write one of {}", penalty_core::ShopSort::names()))
}

#[derive(Debug, Args)]
pub struct OrderArgs {
    /// The order.
    pub order_id: String,
    #[command(flatten)]
    pub query: QueryArgs,
}

#[derive(Debug, Args)]
pub struct AtRiskArgs {
    /// Only this shop's orders (default: every shop's).
    #[arg(long, value_name = "SHOP")]
    pub shop: Option<String>,
    /// How far ahead to look: a whole number with m, h or d (90m, 12h, 2d).
    #[arg(long, default_value = "24h", value_name = "DURATION")]
    pub within: String,
    /// Human output: show at most this many orders (0: all). JSON output
    /// always lists every order.
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    /// Human output: skip this many orders first (the next page).
    #[arg(long, default_value_t = 0)]
    pub offset: usize,
    #[command(flatten)]
    pub query: QueryArgs,
}

#[derive(Debug, Args)]
pub struct NoticesArgs {
    /// The shop.
    pub shop_id: String,
    /// Only the notices after this cursor (the `cursor` of the last one read).
    #[arg(long, value_name = "CURSOR")]
    pub after: Option<String>,
    /// At most this many notices (1 to 1000).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub limit: u16,
    #[command(flatten)]
    pub query: QueryArgs,
}

#[derive(Debug, Args)]
pub struct PostingsArgs {
    /// The shop's id.
    pub shop_id: String,
    #[command(flatten)]
    pub query: QueryArgs,
    /// Show at most this many postings (the human table, 0: all; --json
    /// prints all).
    #[arg(long, default_value_t = 200)]
    pub limit: usize,
    /// Skip this many postings first.
    #[arg(long, default_value_t = 0)]
    pub offset: usize,
}

#[derive(Debug, Args)]
pub struct PolicyArgs {
    /// Machine output (JSON) on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Machine output (JSON) on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RecoverArgs {
    /// Machine output (JSON) on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// The filtered order list, one row per order, sorted by shop then order.
    #[command(
        after_help = "Examples:\n  penalty export orders --as-of 2026-03-07 --format csv -o orders.csv\n  penalty export orders --as-of 2026-03-07 --shop S1 --violating --format jsonl\n  penalty export orders --status auto_closed --format csv\n  penalty export orders --as-of 2026-03-07 --excel -o orders.csv\n  penalty export orders --paid-from 2026-03-01 --paid-to 2026-03-07 --capped-day\n  penalty export orders --shop S1 --closure-review --format jsonl"
    )]
    Orders(ExportOrdersArgs),

    /// Every posting of the booked ledger (R14), by shop then run date: what
    /// a finance team reconciles.
    #[command(
        after_help = "Examples:\n  penalty export postings --as-of 2026-03-31 --format csv -o postings.csv\n  penalty export postings --as-of 2026-03-31 --shop S1 --from 2026-03-01 --to 2026-03-31 --format jsonl"
    )]
    Postings(ExportPostingsArgs),
}

#[derive(Debug, Args)]
pub struct ExportPostingsArgs {
    #[command(flatten)]
    pub query: ExportQuery,

    /// Only this shop's postings.
    #[arg(long, value_name = "S")]
    pub shop: Option<String>,

    /// Only runs on or after this date (YYYY-MM-DD).
    #[arg(long, value_name = "D")]
    pub from: Option<String>,

    /// Only runs on or before this date (YYYY-MM-DD).
    #[arg(long, value_name = "D")]
    pub to: Option<String>,

    #[command(flatten)]
    pub output: ExportOutput,
}

#[derive(Debug, Args)]
pub struct ExportOrdersArgs {
    #[command(flatten)]
    pub query: ExportQuery,

    /// Only this shop's orders.
    #[arg(long, value_name = "S")]
    pub shop: Option<String>,

    /// Only orders with this status.
    #[arg(long, value_name = "S", value_parser = penalty_core::OrderStatus::NAMES)]
    pub status: Option<String>,

    /// Only orders with at least one standing (non-revoked) judgment.
    #[arg(long)]
    pub violating: bool,

    /// Only orders paid at or after this instant (RFC 3339 or YYYY-MM-DD).
    #[arg(long, value_name = "T")]
    pub paid_from: Option<String>,

    /// Only orders paid at or before this instant; a date (YYYY-MM-DD)
    /// includes its whole day.
    #[arg(long, value_name = "T")]
    pub paid_to: Option<String>,

    /// Only orders with a deduction on a settle day whose daily cap cut
    /// something (R5: money waived that day).
    #[arg(long)]
    pub capped_day: bool,

    /// Only orders under a closure-review flag (R7).
    #[arg(long)]
    pub closure_review: bool,

    #[command(flatten)]
    pub output: ExportOutput,
}

/// Where an export goes and in what form.
#[derive(Debug, Args)]
pub struct ExportOutput {
    /// Output format.
    #[arg(long, value_enum, default_value = "csv")]
    pub format: ExportFormat,

    /// CSV for Excel: a UTF-8 byte-order mark first, so that Excel reads
    /// Chinese text as UTF-8, and every sum of money also as a yuan column
    /// (`charged_yuan` beside `charged_fen`).
    #[arg(long)]
    pub excel: bool,

    /// Write to this file instead of standard output.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ExportQuery {
    /// The instant to evaluate at (RFC 3339 or `YYYY-MM-DD`). Default: now.
    #[arg(long, value_name = "T")]
    pub as_of: Option<String>,

    /// Only the events recorded by this instant.
    #[arg(long, value_name = "T")]
    pub known_at: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// Comma-separated, RFC 4180 (CRLF, quoted where needed), for spreadsheets.
    Csv,
    /// One JSON object per line.
    Jsonl,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_locale_speaks_by_posix_precedence() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| (*v).to_string())
            }
        };
        assert_eq!(locale_lang(env(&[])), Lang::En);
        assert_eq!(locale_lang(env(&[("LANG", "zh_CN.UTF-8")])), Lang::Zh);
        assert_eq!(locale_lang(env(&[("LANG", "C.UTF-8")])), Lang::En);
        assert_eq!(
            locale_lang(env(&[
                ("LANG", "zh_CN.UTF-8"),
                ("LC_MESSAGES", "en_US.UTF-8")
            ])),
            Lang::En
        );
        assert_eq!(
            locale_lang(env(&[
                ("LC_ALL", "zh_CN.UTF-8"),
                ("LC_MESSAGES", "en_US.UTF-8")
            ])),
            Lang::Zh
        );
        // An empty variable is not set.
        assert_eq!(
            locale_lang(env(&[("LC_ALL", ""), ("LANG", "zh_CN.UTF-8")])),
            Lang::Zh
        );
    }
}
