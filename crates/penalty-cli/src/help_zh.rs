//! `penalty --help` in Chinese: the Chinese of every command's description,
//! notes and argument, applied to the `clap::Command` of [`Cli`] before it
//! parses when the language is Chinese.
//!
//! The English stays in the doc comments of `cli.rs`, its one home; the
//! Chinese has this one table. The example lines of an `after_help` are
//! commands, the same in both languages, so they stay in `cli.rs` too: the
//! Chinese page takes them from there and puts its own notes after them.
//! Clap's own words (`[default: …]`, `[env: …]`, `[possible values: …]`, the
//! `help` subcommand's line and its error messages) stay English: clap has no
//! hook for them.

use std::ffi::OsString;

use clap::{Arg, ArgAction, Command, CommandFactory};
use penalty_core::labels::Lang;

use crate::cli::{self, Cli};

/// One command's Chinese: its path from the top (`""`, `"shop"`, `"export
/// orders"`), its description, and the notes that follow its examples (empty
/// when its English `after_help` is examples only).
struct CommandText {
    path: &'static str,
    about: &'static str,
    notes: &'static str,
}

/// One argument's Chinese: the command path and the argument's id (its field
/// name in `cli.rs`); the path `*` serves every command whose own path has
/// no entry for that id.
struct ArgText {
    path: &'static str,
    id: &'static str,
    help: &'static str,
}

const COMMANDS: &[CommandText] = &[
    CommandText {
        path: "",
        about: "处罚账本：平台店铺的发货超时处罚，由只追加的事件日志计算得出",
        notes: "表格和语句的语言：--lang，否则 PENALTY_LANG，否则区域设置（LC_ALL、\nLC_MESSAGES、LANG：zh_CN.UTF-8 为中文），否则英文。--json 在各语言中相同。\n\n退出码：0 成功，1 错误，2 用法错误，3 未知店铺或订单，4 审计发现问题，130 已中断。",
    },
    CommandText {
        path: "ingest",
        about: "从文件或标准输入追加事件（JSON Lines，EVENTS.md）",
        notes: "每一行最终都是已追加、重复或已拒绝之一；重复发送同一文件是安全的。\n每批在计为已追加之前已持久化（已刷盘），即使管道很慢，也在约 100 毫秒内。\n按 Ctrl-C 会提交已读入的内容并停止。",
    },
    CommandText {
        path: "shop",
        about: "一个店铺的报告：扣款、禁售、关店审查标记、评分依据",
        notes: "",
    },
    CommandText {
        path: "order",
        about: "一个订单的报告，附每次判罚和扣款的原因",
        notes: "",
    },
    CommandText {
        path: "at-risk",
        about: "卖家若不处理、即将被判罚、标记或自动关闭的订单：处罚之前的预警",
        notes: "订单既未发货也未退款，且其下一次判罚（R3）、关店审查标记（R7）或自动关闭（R8）\n在时间范围内时，即为有风险。只计 --as-of 当时或之前的事件。",
    },
    CommandText {
        path: "notices",
        about: "店铺的通知（R9）：每次判罚一条，从早到晚",
        notes: "每条通知有一个游标：把读到的最后一个作为 --after 传入，即得下一页。\n不带 --after 时从头开始。",
    },
    CommandText {
        path: "shops",
        about: "截至某一时刻存在的每个店铺，每个一行",
        notes: "",
    },
    CommandText {
        path: "postings",
        about: "店铺的入账明细（R14）：结算运行的入账，以及附带原因的更正",
        notes: "每天本地时间 00:00 的结算运行，把每日上限（R5）截至当时的扣款减去之前已入账的部分\n入账：一笔扣款，或更正之前某日的退回或补扣。入账从不修改。",
    },
    CommandText {
        path: "policy",
        about: "生效的规则：每个版本及其生效时刻（R15）",
        notes: "规则文件是一个参数对象，或 {\"versions\": [V0, V1, ...]}：V0 之后的每个版本都有\neffective_from（RFC 3339，严格递增），省略的参数沿用上一个版本。",
    },
    CommandText {
        path: "export",
        about: "导出数据：`export orders` 每个订单一行，`export postings` 导出入账明细（R14）的每一笔入账",
        notes: "",
    },
    CommandText {
        path: "export orders",
        about: "筛选后的订单列表，每个订单一行，按店铺再按订单排序",
        notes: "",
    },
    CommandText {
        path: "export postings",
        about: "入账明细（R14）的每一笔入账，按店铺再按结算日：财务对账所用",
        notes: "",
    },
    CommandText {
        path: "replay",
        about: "只从日志重建每个投影，并打印其摘要",
        notes: "摘要与存储的（增量）投影的摘要相同；重建的投影也保存为新的检查点\n（不带 --known-at 时）。",
    },
    CommandText {
        path: "audit",
        about: "检查日志的完整性，以及存储的投影是否与重放一致",
        notes: "块校验和不符、缺少序号或检查点与重放不一致时，以 4 退出。\n列出事件仍在等待其付款事件的订单（孤立事件，R13）。",
    },
    CommandText {
        path: "recover",
        about: "从块文件重建数据目录中 sled 的部分（每个块的位置）",
        notes: "用于某个命令报告 sled 无法读取其数据库文件时（sled 只丢失末尾时，任何命令都会自行\n找回那些块）：事件本身在 events.log 中，每个块都有校验和，可从那里找回。\n损坏的 sled 目录保留在旁边（log.sled.damaged-N）；投影检查点由下一次查询重建。\nevents.log 本身丢失了已确认的事件时拒绝执行、不做任何改动（退出码 4）：此时只有备份中有它们。",
    },
    CommandText {
        path: "gen",
        about: "生成带种子的、贴近真实的负载，格式为 JSON Lines（EVENTS.md）",
        notes: "",
    },
    CommandText {
        path: "serve",
        about: "通过 HTTP 提供账本服务，附仪表盘，使用同一个数据目录",
        notes: "不带 --tokens 时，服务只监听回环地址。POST /events 接受\n`Content-Type: application/x-ndjson`。按 Ctrl-C 或发送 SIGTERM 停止：进行中的请求\n完成（10 秒内），空闲连接立即关闭。",
    },
    CommandText {
        path: "cluster",
        about: "按店铺分区、运行在 NATS JetStream 集群上的账本（docs/SCALE-OUT.md）：创建集群、运行节点、查看状态",
        notes: "节点的 HTTP API 与 `penalty serve` 一样接受 --tokens 和 --allowed-host；\n不带 --tokens 时只监听回环地址。",
    },
    CommandText {
        path: "cluster init",
        about: "创建流和存储桶；分区数 P 和副本数 R 自此固定",
        notes: "",
    },
    CommandText {
        path: "cluster node",
        about: "运行节点：认领分区，把它们消费进本地账本（检查点保存在 --db 下），为任何店铺或订单响应 HTTP API",
        notes: "",
    },
    CommandText {
        path: "cluster status",
        about: "每个在线节点的分区、已应用序号和延迟",
        notes: "",
    },
];

const ARGS: &[ArgText] = &[
    // The global options, defined on the top command and propagated.
    ArgText {
        path: "",
        id: "db",
        help: "数据目录（由第一次导入创建；读命令拒绝不存在的目录）",
    },
    ArgText {
        path: "",
        id: "no_wait",
        help: "写命令（`ingest`、`recover`）在另一个写命令占用数据目录时立即失败，而不是排队等待。读命令从不等待",
    },
    ArgText {
        path: "",
        id: "policy",
        help: "覆盖规则参数的 JSON 文件（RULES.md）；未知的键是错误",
    },
    ArgText {
        path: "",
        id: "lang",
        help: "给人读的输出的语言：`zh-CN`（中文）或 `en`（英文）。默认：PENALTY_LANG，否则区域设置（LC_ALL、LC_MESSAGES、LANG），否则英文。JSON 输出在两种语言中相同",
    },
    // Shared by the commands that ask a question of the ledger.
    ArgText {
        path: "*",
        id: "as_of",
        help: "计算所依据的时刻：带时区偏移的 RFC 3339，或日期（`YYYY-MM-DD`，按规则的时区偏移的 00:00）。默认：现在",
    },
    ArgText {
        path: "*",
        id: "known_at",
        help: "只用此时刻之前记录的事件作答：即账本当时的结论",
    },
    ArgText {
        path: "*",
        id: "json",
        help: "机器输出（JSON），写到标准输出",
    },
    ArgText {
        path: "*",
        id: "shop_id",
        help: "店铺 ID",
    },
    ArgText {
        path: "*",
        id: "cluster",
        help: "NATS 服务器：`nats://host:port`，多个用逗号分隔",
    },
    ArgText {
        path: "*",
        id: "tokens",
        help: "JSON 列表，元素为 `{\"sha256\": \"<令牌的十六进制哈希>\", \"role\": \"operator\"}` 或 `{\"sha256\": \"…\", \"role\": \"seller\", \"shop_id\": \"S1\"}`",
    },
    ArgText {
        path: "*",
        id: "allowed_hosts",
        help: "本服务除其地址和 `localhost` 之外还应答的名称（或 名称:端口）；可重复。`Host` 为其他名称的请求得到 421（防 DNS 重绑定）。有 --tokens 而无 --allowed-host 时，接受任何主机",
    },
    ArgText {
        path: "*",
        id: "addr",
        help: "提供 HTTP 服务的地址",
    },
    ArgText {
        path: "*",
        id: "output",
        help: "写到此文件，而不是标准输出",
    },
    // ingest
    ArgText {
        path: "ingest",
        id: "files",
        help: "输入文件；`-` 或不给则为标准输入",
    },
    ArgText {
        path: "ingest",
        id: "rejects",
        help: "被拒绝的行追加到此处（默认 `<db>/rejects.jsonl`）",
    },
    ArgText {
        path: "ingest",
        id: "json",
        help: "打印 `{\"read\":N,\"appended\":N,\"duplicates\":N,\"rejected\":N}`",
    },
    ArgText {
        path: "ingest",
        id: "quiet",
        help: "不显示进度条，即使在终端上",
    },
    ArgText {
        path: "ingest",
        id: "progress_jsonl",
        help: "每个持久化的批次之后，在标准错误上以一行 JSON 打印累计计数（`{\"read\":N,\"appended\":N,\"duplicates\":N,\"rejected\":N}`），供监视长时间导入的脚本使用：已打印的即已提交",
    },
    ArgText {
        path: "ingest",
        id: "cluster",
        help: "导入到集群（`nats://host:port`，多个用逗号分隔），而不是本地数据目录：每一行进入复制流并得到判定后才计数",
    },
    // shop
    ArgText {
        path: "shop",
        id: "limit",
        help: "人读输出：每个列表（扣款、禁售商品、关店审查标记）最多显示这么多行（0：全部）。JSON 输出始终列出每一行",
    },
    ArgText {
        path: "shop",
        id: "offset",
        help: "人读输出：每个列表先跳过这么多行（下一页）",
    },
    ArgText {
        path: "shop",
        id: "summary",
        help: "人读输出：只显示数字，不显示列表",
    },
    // order
    ArgText {
        path: "order",
        id: "order_id",
        help: "订单 ID",
    },
    // at-risk
    ArgText {
        path: "at-risk",
        id: "shop",
        help: "只看此店铺的订单（默认：每个店铺的）",
    },
    ArgText {
        path: "at-risk",
        id: "within",
        help: "向前看多久：整数后跟 m、h 或 d（90m、12h、2d）",
    },
    ArgText {
        path: "at-risk",
        id: "limit",
        help: "人读输出：最多显示这么多订单（0：全部）。JSON 输出始终列出每个订单",
    },
    ArgText {
        path: "at-risk",
        id: "offset",
        help: "人读输出：先跳过这么多订单（下一页）",
    },
    // notices
    ArgText {
        path: "notices",
        id: "after",
        help: "只看此游标之后的通知（最后读到的一条的 `cursor`）",
    },
    ArgText {
        path: "notices",
        id: "limit",
        help: "最多这么多条通知（1 至 1000）",
    },
    // shops
    ArgText {
        path: "shops",
        id: "sort",
        help: "排序：`shop`（按 ID），或最差的在前：按 `judgments`（判罚次数）、`charged`（已扣除金额）或超时 `rate`（比率，R10）；相同时按店铺 ID",
    },
    ArgText {
        path: "shops",
        id: "top",
        help: "只取该排序的前 N 个店铺",
    },
    ArgText {
        path: "shops",
        id: "min_orders",
        help: "只看至少有 M 个已付款订单的店铺（少数订单上的比率说明不了什么）",
    },
    ArgText {
        path: "shops",
        id: "limit",
        help: "人读输出：最多显示这么多店铺（0：全部）。JSON 输出始终列出每个店铺",
    },
    ArgText {
        path: "shops",
        id: "offset",
        help: "人读输出：先跳过这么多店铺（下一页）",
    },
    // postings
    ArgText {
        path: "postings",
        id: "limit",
        help: "最多显示这么多笔入账（人读表格，0：全部；--json 打印全部）",
    },
    ArgText {
        path: "postings",
        id: "offset",
        help: "先跳过这么多笔入账",
    },
    // export orders and export postings
    ArgText {
        path: "export orders",
        id: "as_of",
        help: "计算所依据的时刻（RFC 3339 或 `YYYY-MM-DD`）。默认：现在",
    },
    ArgText {
        path: "export orders",
        id: "known_at",
        help: "只用此时刻之前记录的事件",
    },
    ArgText {
        path: "export orders",
        id: "shop",
        help: "只看此店铺的订单",
    },
    ArgText {
        path: "export orders",
        id: "status",
        help: "只看此状态的订单",
    },
    ArgText {
        path: "export orders",
        id: "violating",
        help: "只看至少有一次有效（未撤销）判罚的订单",
    },
    ArgText {
        path: "export orders",
        id: "paid_from",
        help: "只看在此时刻或之后付款的订单（RFC 3339 或 YYYY-MM-DD）",
    },
    ArgText {
        path: "export orders",
        id: "paid_to",
        help: "只看在此时刻或之前付款的订单；日期（YYYY-MM-DD）包含其整天",
    },
    ArgText {
        path: "export orders",
        id: "capped_day",
        help: "只看在每日上限削减了金额的结算日有扣款的订单（R5：当日免除的金额）",
    },
    ArgText {
        path: "export orders",
        id: "closure_review",
        help: "只看带关店审查标记的订单（R7）",
    },
    ArgText {
        path: "*",
        id: "format",
        help: "输出格式",
    },
    ArgText {
        path: "*",
        id: "excel",
        help: "给 Excel 用的 CSV：开头加 UTF-8 字节顺序标记，使 Excel 按 UTF-8 读取中文；每个金额另加一列元（`charged_fen` 旁的 `charged_yuan`）",
    },
    ArgText {
        path: "export postings",
        id: "as_of",
        help: "计算所依据的时刻（RFC 3339 或 `YYYY-MM-DD`）。默认：现在",
    },
    ArgText {
        path: "export postings",
        id: "known_at",
        help: "只用此时刻之前记录的事件",
    },
    ArgText {
        path: "export postings",
        id: "shop",
        help: "只看此店铺的入账",
    },
    ArgText {
        path: "export postings",
        id: "from",
        help: "只看在此日期或之后的结算运行（YYYY-MM-DD）",
    },
    ArgText {
        path: "export postings",
        id: "to",
        help: "只看在此日期或之前的结算运行（YYYY-MM-DD）",
    },
    // gen
    ArgText {
        path: "gen",
        id: "orders",
        help: "生成的订单数",
    },
    ArgText {
        path: "gen",
        id: "shops",
        help: "订单分布到的店铺数（规模不均）",
    },
    ArgText {
        path: "gen",
        id: "seed",
        help: "种子：同样的参数给出同样的字节",
    },
    // serve
    ArgText {
        path: "serve",
        id: "addr",
        help: "监听的地址",
    },
    // cluster
    ArgText {
        path: "cluster init",
        id: "partitions",
        help: "每个阶段的分区数（创建后固定）",
    },
    ArgText {
        path: "cluster init",
        id: "replicas",
        help: "每个流和存储桶的副本数（1 至 5；3 可承受一台服务器故障）",
    },
    ArgText {
        path: "cluster node",
        id: "node",
        help: "本节点的名称：在集群中唯一，重启前后相同",
    },
    ArgText {
        path: "cluster node",
        id: "max_replay_events",
        help: "一个 `known_at` 问题从一个分区的流中最多重放的事件数；多于此数的分区以 400 拒绝并说明原因",
    },
];

/// The Chinese of clap's own lines that a command can be given.
const HEADING_ARGUMENTS: &str = "参数";
const HEADING_OPTIONS: &str = "选项";
const HEADING_COMMANDS: &str = "命令";
const HELP_FLAG: &str = "打印帮助";
const VERSION_FLAG: &str = "打印版本";
const EXAMPLES: &str = "示例：";
/// Clap's default template with the usage heading in Chinese (with an ASCII colon, as clap writes its other headings).
const TEMPLATE: &str = "{before-help}{about-with-newline}\n用法: {usage}\n\n{all-args}{after-help}";

/// The language of the help pages, read from the raw arguments before clap
/// parses them: `--lang X` or `--lang=X` (before any `--`), else
/// PENALTY_LANG, else the locale, as [`Cli::lang`] decides for the output.
/// A value that is no language counts as absent here; clap then refuses it.
pub fn lang_of_args(args: &[OsString]) -> Lang {
    let mut given = None;
    let mut words = args.iter().skip(1).map(|arg| arg.to_str());
    while let Some(word) = words.next() {
        match word {
            Some("--") => break,
            Some("--lang") => given = words.next().flatten().and_then(Lang::parse),
            Some(word) => {
                if let Some(value) = word.strip_prefix("--lang=") {
                    given = Lang::parse(value);
                }
            }
            None => {}
        }
    }
    let given = given.or_else(|| {
        std::env::var("PENALTY_LANG")
            .ok()
            .as_deref()
            .and_then(Lang::parse)
    });
    cli::lang_or_locale(given)
}

/// The arguments parsed with the help pages in `lang`: English is the
/// derive's command as it is; Chinese is it with this table applied. Applying
/// it costs about 0.7 M instructions (a sixth of a whole `penalty order`), so
/// it is done only when the arguments ask for help: a query pays nothing.
pub fn parse(args: Vec<OsString>, lang: Lang) -> Cli {
    use clap::FromArgMatches;
    if lang == Lang::En || !asks_for_help(&args) {
        return clap::Parser::parse_from(args);
    }
    let mut command = chinese(Cli::command());
    let matches = command
        .try_get_matches_from_mut(args)
        .unwrap_or_else(|error| error.exit());
    Cli::from_arg_matches(&matches).unwrap_or_else(|error| error.format(&mut command).exit())
}

/// Whether the arguments (before any `--`) ask for a help page: `-h`,
/// `--help` or the `help` subcommand. A value that happens to read `help`
/// (an order id) only costs the table's application; the parse is the same.
fn asks_for_help(args: &[OsString]) -> bool {
    args.iter()
        .skip(1)
        .take_while(|arg| *arg != "--")
        .any(|arg| arg == "-h" || arg == "--help" || arg == "help")
}

/// The command tree with its help pages in Chinese.
fn chinese(command: Command) -> Command {
    let command = in_chinese(command, "");
    command.disable_version_flag(true).arg(
        Arg::new("version")
            .short('V')
            .long("version")
            .action(ArgAction::Version)
            .help(VERSION_FLAG)
            .help_heading(HEADING_OPTIONS),
    )
}

/// One command and those under it in Chinese; `path` is its place in
/// [`COMMANDS`].
fn in_chinese(mut command: Command, path: &str) -> Command {
    let ids: Vec<clap::Id> = command
        .get_arguments()
        .filter(|arg| !arg.is_hide_set())
        .map(|arg| arg.get_id().clone())
        .collect();
    for id in ids {
        let help = arg_help(path, id.as_str());
        command = command.mut_arg(id, |arg| {
            let heading = if arg.is_positional() {
                HEADING_ARGUMENTS
            } else {
                HEADING_OPTIONS
            };
            let arg = arg.help_heading(heading);
            match help {
                Some(help) => arg.help(help).long_help(None),
                None => arg,
            }
        });
    }
    if let Some(text) = command_text(path) {
        let after_help = command
            .get_after_help()
            .map(|english| after_help(&english.to_string(), text.notes));
        command = command.about(text.about).long_about(None);
        if let Some(after_help) = after_help {
            command = command.after_help(after_help);
        }
    }
    let names: Vec<String> = command
        .get_subcommands()
        .map(|sub| sub.get_name().to_string())
        .collect();
    for name in names {
        let sub_path = if path.is_empty() {
            name.clone()
        } else {
            format!("{path} {name}")
        };
        command = command.mut_subcommand(name, |sub| in_chinese(sub, &sub_path));
    }
    command
        .help_template(TEMPLATE)
        .subcommand_help_heading(HEADING_COMMANDS)
        .disable_help_flag(true)
        .arg(
            Arg::new("help")
                .short('h')
                .long("help")
                .action(ArgAction::Help)
                .help(HELP_FLAG)
                .help_heading(HEADING_OPTIONS),
        )
}

fn command_text(path: &str) -> Option<&'static CommandText> {
    COMMANDS.iter().find(|text| text.path == path)
}

/// The Chinese help of argument `id` of the command at `path`: its own entry,
/// else the shared one.
fn arg_help(path: &str, id: &str) -> Option<&'static str> {
    let entry = |path: &str| ARGS.iter().find(|a| a.path == path && a.id == id);
    entry(path).or_else(|| entry("*")).map(|a| a.help)
}

/// The Chinese `after_help`: the English one's example lines (commands, the
/// same in every language) under a Chinese heading, then `notes`.
fn after_help(english: &str, notes: &str) -> String {
    let examples: Vec<&str> = english
        .lines()
        .skip(1)
        .take_while(|line| line.starts_with("  "))
        .collect();
    let mut text = format!("{EXAMPLES}\n{}", examples.join("\n"));
    if !notes.is_empty() {
        text += "\n\n";
        text += notes;
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every command's path below `command` (at `path`), and `command`'s own.
    fn walk(command: &Command, path: &str, out: &mut Vec<(String, Command)>) {
        out.push((path.to_string(), command.clone()));
        for sub in command.get_subcommands() {
            let sub_path = if path.is_empty() {
                sub.get_name().to_string()
            } else {
                format!("{path} {}", sub.get_name())
            };
            walk(sub, &sub_path, out);
        }
    }

    /// The tables cannot rot: every command and every visible argument has
    /// its Chinese, a command whose English has notes after its examples has
    /// Chinese notes, and every key names a command and an argument that
    /// exist.
    #[test]
    fn every_command_and_argument_has_its_chinese_and_every_key_is_used() {
        let mut commands = Vec::new();
        walk(&Cli::command(), "", &mut commands);
        let mut missing = Vec::new();
        for (path, command) in &commands {
            match command_text(path) {
                None => missing.push(format!("command `{path}`")),
                Some(text) => {
                    let english = command
                        .get_after_help()
                        .map(|t| t.to_string())
                        .unwrap_or_default();
                    let has_notes = english.contains("\n\n");
                    if has_notes == text.notes.is_empty() {
                        missing.push(format!(
                            "notes of `{path}` (English has notes: {has_notes})"
                        ));
                    }
                }
            }
            for arg in command.get_arguments().filter(|arg| !arg.is_hide_set()) {
                if arg_help(path, arg.get_id().as_str()).is_none() {
                    missing.push(format!("argument `{}` of `{path}`", arg.get_id()));
                }
            }
        }
        assert!(missing.is_empty(), "no Chinese for: {missing:?}");
        for text in COMMANDS {
            assert!(
                commands.iter().any(|(path, _)| path == text.path),
                "the table names a command `{}` that does not exist",
                text.path
            );
        }
        for text in ARGS {
            let named = commands.iter().any(|(path, command)| {
                (text.path == "*" || text.path == path)
                    && command.get_arguments().any(|arg| arg.get_id() == text.id)
            });
            assert!(
                named,
                "the table names an argument `{}` of `{}` that does not exist",
                text.id, text.path
            );
        }
    }

    /// The Chinese tree is a valid command (clap's own checks) whose every
    /// visible argument reads Chinese, with its examples kept.
    #[test]
    fn the_chinese_tree_is_valid_and_reads_chinese() {
        let mut command = chinese(Cli::command());
        command.build();
        let help = command.render_long_help().to_string();
        assert!(help.contains("用法: ") && help.contains("选项:"), "{help}");
        assert!(
            help.contains("示例：\n  penalty ingest events.jsonl"),
            "{help}"
        );
        assert!(
            !help.contains("Options:") && !help.contains("Print help"),
            "{help}"
        );
    }

    #[test]
    fn the_language_is_read_from_the_arguments_first() {
        let args = |words: &[&str]| -> Vec<OsString> { words.iter().map(OsString::from).collect() };
        assert_eq!(
            lang_of_args(&args(&["penalty", "--lang", "zh-CN", "shop"])),
            Lang::Zh
        );
        assert_eq!(
            lang_of_args(&args(&["penalty", "shop", "--lang=zh-CN"])),
            Lang::Zh
        );
        assert_eq!(
            lang_of_args(&args(&["penalty", "--lang=zh-CN", "--lang", "en"])),
            Lang::En
        );
        assert!(asks_for_help(&args(&["penalty", "shop", "--help"])));
        assert!(asks_for_help(&args(&["penalty", "help", "shop"])));
        assert!(!asks_for_help(&args(&["penalty", "order", "O1"])));
        assert!(!asks_for_help(&args(&["penalty", "order", "--", "-h"])));
    }
}
