//! The words and sentences of the human output around the reports: table
//! headings, section titles, summaries and advice, each in English and in
//! Chinese (zh-CN). The codes of the reports have their labels in
//! [`super::LABELS`]; an order's reasons are [`crate::explain`]'s. A phrase
//! takes its values as numbered places, `{0}`, `{1}`, so that each language
//! puts them where its grammar wants them; a test checks that both
//! renderings of a phrase hold the same places.

use std::fmt::Display;

use super::Lang;

/// Declares [`Phrase`], its list [`Phrase::ALL`] and its two renderings,
/// one line per phrase: a phrase cannot be declared without both.
macro_rules! phrases {
    ($($(#[$doc:meta])* $name:ident => $en:expr, $zh:expr;)*) => {
        /// A word or sentence of the human output, in both languages.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Phrase {
            $($(#[$doc])* $name,)*
        }

        impl Phrase {
            /// Every phrase, in the order of the table.
            pub const ALL: &'static [Phrase] = &[$(Phrase::$name,)*];

            /// The phrase's name, as the dashboard asks for it (`SignIn`).
            pub fn name(self) -> &'static str {
                match self {
                    $(Phrase::$name => stringify!($name),)*
                }
            }

            /// The phrase in English and in Chinese, places unfilled.
            pub fn renderings(self) -> (&'static str, &'static str) {
                match self {
                    $(Phrase::$name => ($en, $zh),)*
                }
            }
        }
    };
}

phrases! {
    // Table headings.
    JudgedAt => "JUDGED AT", "判罚时间";
    OrderColumn => "ORDER", "订单";
    /// The number of a judgment (1, 2, 3) in a table.
    JudgmentNumber => "#", "判罚序号";
    Settles => "SETTLES", "结算日";
    Amount => "AMOUNT", "金额";
    ChargedColumn => "CHARGED", "已扣除";
    WaivedColumn => "WAIVED", "已免除";
    StatusColumn => "STATUS", "状态";
    Product => "PRODUCT", "商品";
    BannedAt => "BANNED AT", "禁售时间";
    FlaggedAt => "FLAGGED AT", "标记时间";
    ShopColumn => "SHOP", "店铺";
    OrdersColumn => "ORDERS", "订单数";
    JudgmentsColumn => "JUDGMENTS", "判罚次数";
    Violating => "VIOLATING", "违规订单";
    PendingColumn => "PENDING", "待结算";
    Balance => "BALANCE", "保证金余额";
    Bans => "BANS", "禁售";
    Flags => "FLAGS", "标记";
    TimeoutRate => "TIMEOUT RATE", "超时率";
    When => "WHEN", "时间";
    UnlessTheSellerActs => "UNLESS THE SELLER ACTS", "卖家若不处理";
    NoticeColumn => "NOTICE", "通知";
    EventsColumn => "EVENTS", "事件数";
    FirstAt => "FIRST AT", "最早时间";
    RunDate => "RUN DATE", "结算运行日";
    Kind => "KIND", "类型";
    Cause => "CAUSE", "原因";
    Parameter => "PARAMETER", "参数";
    Meaning => "MEANING", "含义";
    Value => "VALUE", "值";
    Rule => "RULE", "规则";

    // Section titles and their empty case.
    DeductionsRules => "Deductions (R4, R5)", "扣款明细（R4、R5）";
    Deductions => "Deductions", "扣款明细";
    BannedProducts => "Banned products (R6)", "禁售商品（R6）";
    ClosureReview => "Closure review (R7)", "关店审查（R7）";
    Why => "Why", "原因说明";
    NoRows => "none", "无";

    // A shop.
    ShopHeading => "Shop {0} as of {1}", "店铺 {0}，截至 {1}";
    ShopCounts => "{0} orders, {1} judgments, {2} violating orders", "{0} 个订单，{1} 次判罚，{2} 个违规订单";
    ShopMoney => "charged {0}, waived {1} (daily cap), pending {2}", "已扣除 {0}，已免除 {1}（每日上限），待结算 {2}";
    ShopBooked => "booked {0} (the settlement runs' postings so far, R14)", "已入账 {0}（截至目前各次结算运行的入账，R14）";
    DepositBalance => "deposit balance {0}", "保证金余额 {0}";
    Shortfall => "SHORTFALL: the deposit is {0} short (R12)", "保证金不足：缺 {0}（R12）";
    Rating => "rating, last {0} days: {1} due, {2} timed out, timeout rate {3}, {4} judgments", "评分，最近 {0} 天：{1} 个到期，{2} 个超时，超时率 {3}，{4} 次判罚";
    /// A timeout rate with nothing to divide by.
    NoRate => "n/a (nothing due)", "无（没有到期订单）";
    MoreRowsHidden => "{0} more rows not shown (at most {1} per list); the next page: --offset {2}, all: --limit 0, --json lists every row", "另有 {0} 行未显示（每个列表最多 {1} 行）；下一页：--offset {2}，全部：--limit 0，--json 列出每一行";

    // Pages of a longer list.
    NoRowsPast => "no rows past {0}; --offset 0 starts again (--json lists all)", "第 {0} 行之后没有了；--offset 0 从头开始（--json 列出全部）";
    RowsOfPage => "rows {0} to {1} of {2}; {3} (--json lists all)", "第 {0} 至 {1} 行，共 {2} 行；{3}（--json 列出全部）";
    NextPage => "the next page: --offset {0}, all: --limit 0", "下一页：--offset {0}，全部：--limit 0";
    LastPage => "the last page", "最后一页";

    // The shop list.
    NoShops => "no shops as of this instant", "此时没有店铺";
    OneShopShort => "{0} shop has a deposit shortfall (negative balance, R12)", "{0} 个店铺保证金不足（余额为负，R12）";
    ShopsShort => "{0} shops have a deposit shortfall (negative balance, R12)", "{0} 个店铺保证金不足（余额为负，R12）";

    // An order.
    OrderHeading => "Order {0} of shop {1} (product {2}, {3}) as of {4}", "订单 {0}，店铺 {1}（商品 {2}，{3}），截至 {4}";
    PaidAt => "paid", "付款时间";
    Deadline => "deadline", "发货截止";
    Status => "status", "状态";
    ResolvedAt => " (resolved at {0})", "（于 {0} 解决）";
    ProductBanned => "product banned by this order (R6)", "本订单使商品被禁售（R6）";
    FlaggedItsShop => "flagged its shop for closure review (R7)", "本订单使店铺被标记关店审查（R7）";
    AutoClosed => "auto-closed at {0}; {1} owed to the buyer{2} (R8)", "已于 {0} 自动关闭；应退买家 {1}{2}（R8）";
    ByAlternativeRefund => ", by an alternative refund", "，须改用其他方式退款";

    // Orders at risk.
    AtRiskOne => "At risk as of {0}, within {1}: {2} order", "截至 {0}，{1}内有风险的订单：{2} 个";
    AtRiskMany => "At risk as of {0}, within {1}: {2} orders", "截至 {0}，{1}内有风险的订单：{2} 个";
    Days => "{0} d", "{0} 天";
    Hours => "{0} h", "{0} 小时";
    Minutes => "{0} min", "{0} 分钟";
    MoreNotShown => "{0} more not shown; the next page: --offset {1}, all: --limit 0, --json lists all", "另有 {0} 个未显示；下一页：--offset {1}，全部：--limit 0，--json 列出全部";

    // Notices (R9).
    NoticesHeading => "Notices to shop {0} (R9)", "店铺 {0} 的通知（R9）";
    PostingNotice => "{0} {1}, run of {2}: {3}", "{0} {1}，{2} 的结算运行：{3}";
    JudgmentNotice => "judgment: {0}{1}", "判罚：{0}{1}";
    NoDeduction => "no deduction", "无扣款";
    DeductionOf => "deduction {0}", "扣款 {0}";
    RevokedNote => ", revoked (R11)", "，已撤销（R11）";
    MoreMayFollow => "more may follow: --after {0}", "可能还有更多：--after {0}";

    // The booked ledger (R14).
    PostingsHeading => "Booked ledger of shop {0} as of {1} (R14)", "店铺 {0} 的入账明细，截至 {1}（R14）";
    PostingsBooked => "booked {0} in {1} postings", "已入账 {0}，共 {1} 笔";
    NoPostings => "no postings yet: a deduction is booked by the run at 00:00 of its settle date", "尚无入账：扣款由其结算日 00:00 的结算运行入账";
    CorrectionNote => "* a correction of an earlier day's booking (a refund or a late charge)", "* 对之前某日入账的更正（退回或补扣）";

    // The policy (R15).
    PolicyHeading => "Policy (calendar days in UTC{0})", "规则参数（日历日按 UTC{0} 计）";
    VersionFromStart => "version {0}: from the beginning of time", "版本 {0}：自始生效";
    VersionFrom => "version {0}: from {1}", "版本 {0}：自 {1} 起生效";
    PolicyVersions => "An order keeps the version in force at its payment; a settle date's cap is\nthe version at its start; the rating window the version at --as-of (R15).", "订单适用其付款时生效的版本；结算日的每日上限适用该日开始时的版本；\n评分窗口适用 --as-of 时的版本（R15）。";
    ShipWindowHours => "hours to ship after payment", "付款后发货时限（小时）";
    RejudgeIntervalHours => "hours between judgments of an order", "两次判罚的间隔（小时）";
    MaxJudgmentsPerOrder => "most judgments of an order", "每笔订单最多判罚次数";
    DeductionFen => "deduction per judgment (fen)", "每次判罚扣款（分）";
    MaxDeductionsPerOrder => "most deductions of an order", "每笔订单最多扣款次数";
    ShopDailyCapFen => "a shop's cap per settle date (fen)", "店铺每个结算日的扣款上限（分）";
    BanAtJudgment => "the judgment that bans the product", "第几次判罚禁售商品";
    ClosureGraceHours => "hours from the last judgment to a closure review", "最后一次判罚到关店审查的时限（小时）";
    AutoCloseDays => "days from payment to the automatic close", "付款到自动关闭的天数";
    RatingWindowDays => "days of the rating window", "评分窗口（天）";

    // The log: ingest, replay, audit, recover.
    IngestCounts => "read {0} lines: {1} appended, {2} duplicates, {3} rejected", "读取 {0} 行：追加 {1} 行，重复 {2} 行，拒绝 {3} 行";
    IngestProgress => "{0} read, {1} appended, {2} duplicates, {3} rejected", "读取 {0}，追加 {1}，重复 {2}，拒绝 {3}";
    RejectsAt => "rejected lines, with their reasons: {0}", "被拒绝的行及其原因：{0}";
    Interrupted => "interrupted: the lines above are committed; run the same command again to complete (re-sending is safe)", "已中断：以上各行已提交；再次运行同一命令即可完成（重复发送是安全的）";
    Replayed => "replayed {0} events as of {1}", "已重放 {0} 个事件，截至 {1}";
    Digest => "digest {0}", "摘要 {0}";
    KnownAt => "known at {0}: only events recorded by then", "记录截至 {0}：只含届时已记录的事件";
    SameDigest => "the stored projections give the same digest", "存储的投影给出相同的摘要";
    OtherDigest => "the stored projections gave ANOTHER digest; the checkpoint was rebuilt from the log", "存储的投影给出了不同的摘要；检查点已从日志重建";
    LogCounts => "log: {0} blocks, {1} events, last sequence number {2}", "日志：{0} 个块，{1} 个事件，最后序号 {2}";
    ProblemAt => "PROBLEM at sequence number {0}: {1}", "问题，位于序号 {0}：{1}";
    Problem => "PROBLEM: {0}", "问题：{0}";
    RestoreFromBackup => "restore the data directory from a backup; the events before it are intact", "请从备份恢复数据目录；此前的事件完好";
    LogGood => "log integrity: every block checksum and sequence number is good", "日志完整性：每个块的校验和与序号都正确";
    CheckpointEqual => "projections: the checkpoint (at sequence number {0}) plus the tail equals a replay of the log", "投影：检查点（序号 {0}）加上其后的日志，与重放日志的结果相同";
    CheckpointDiffers => "PROBLEM: the checkpoint (at sequence number {0}) disagrees with a replay of the log; run `penalty replay` to rebuild it", "问题：检查点（序号 {0}）与重放日志的结果不一致；运行 `penalty replay` 重建";
    NoOrphans => "orphans (R13): none", "孤立事件（R13）：无";
    Orphans => "orphans (R13): {0} orders have events but no paid event yet", "孤立事件（R13）：{0} 个订单有事件但尚无付款事件";
    Rebuilt => "rebuilt sled's part from events.log: {0} blocks, {1} events, last sequence number {2} (acknowledged: {3})", "已从 events.log 重建 sled 的部分：{0} 个块，{1} 个事件，最后序号 {2}（已确认：{3}）";
    DamagedSledKept => "the damaged sled directory is kept at {0}", "损坏的 sled 目录保留在 {0}";
    UnacknowledgedTail => "{0} bytes after the last whole block were never acknowledged; the next append overwrites them", "最后一个完整块之后的 {0} 字节从未被确认；下次追加会覆盖它们";
    RecoveredLogGood => "log integrity: {0} blocks, {1} events, every checksum and sequence number is good; the projections are rebuilt by the next query", "日志完整性：{0} 个块，{1} 个事件，所有校验和与序号都正确；下次查询会重建投影";
    NothingToRecover => "the log opens and checks good ({0} blocks, {1} events): nothing to recover", "日志可以打开且检查无误（{0} 个块，{1} 个事件）：无需恢复";
    HeadRewritten => "rewrote the head journal to acknowledge the last whole block (sequence number {0})", "已重写头部日志，以确认最后一个完整块（序号 {0}）";
    SnapshotRemoved => "removed the damaged projection snapshot; the next query replays the log", "已删除损坏的投影快照；下次查询会重放日志";

    // Why a line was rejected, and the fix ([`crate::Reject::hint`]): the
    // sentences of the rejects file.
    RejectInvalidJson => "the line is not a JSON object; write one event object per line", "该行不是 JSON 对象；每行写一个事件对象";
    RejectLineTooLong => "the line is longer than {0} bytes; an event is far smaller, so check for a missing line break", "该行超过 {0} 字节；一个事件远小于此，请检查是否缺少换行";
    RejectUnknownType => "`type` must be one of {0}", "`type` 必须是以下之一：{0}";
    RejectMissingField => "add the required field `{0}`", "请添加必填字段 `{0}`";
    RejectInvalidField => "`{0}` has the wrong type or is out of range; see EVENTS.md for its format", "`{0}` 类型错误或超出范围；格式见 EVENTS.md";
    RejectEventIdConflict => "this event_id is already in the log with other content; give a new event a new event_id", "此 event_id 已在日志中且内容不同；新事件请使用新的 event_id";
    RejectOrderAlreadyPaid => "this order already has a paid event (the first one received is kept)", "此订单已有付款事件（保留最先收到的那个）";

    // What a failed ingest leaves behind.
    IngestFailed => "while ingesting {0}: {1}; of its lines, {2} were reported before the error ({3} duplicates, {4} rejected){5}. Once the cause is fixed, send the same input again: what is already in the log counts as duplicates", "导入 {0} 时出错：{1}；其各行中，出错前已报告 {2} 行（重复 {3} 行，拒绝 {4} 行）{5}。排除原因后，再次发送同一输入即可：日志中已有的内容会算作重复";
    InLogWithUnreported => "{0} events from it are in the log: the {1} reported before the error and {2} more from blocks that were being written when it came", "日志中有它的 {0} 个事件：出错前报告的 {1} 个，以及出错时正在写入的块中的另外 {2} 个";
    InLog => "{0} events from it are in the log", "日志中有它的 {0} 个事件";
    AtLeastInLog => "at least {0} events from it are in the log (the log could not be opened again to count those written as the error came)", "日志中至少有它的 {0} 个事件（无法再次打开日志来清点出错时写入的事件）";
    EarlierInputsDone => "; the inputs before it are done ({0} read, {1} appended, {2} duplicates, {3} rejected)", "；它之前的输入已完成（读取 {0}，追加 {1}，重复 {2}，拒绝 {3}）";
    PreparingToIngest => "while preparing to ingest {0}", "准备导入 {0} 时出错";
    WhileRecovering => "while recovering the data directory {0}", "恢复数据目录 {0} 时出错";
    ClusterIngestFailed => "while ingesting {0} into the cluster (lines acknowledged before the error are in the cluster; send the same input again: they count as duplicates)", "向集群导入 {0} 时出错（出错前已确认的行已在集群中；再次发送同一输入即可：它们会算作重复）";

    // Servers started.
    Serving => "penalty serve: http://{0}/ (API: /openapi.json); Ctrl-C or SIGTERM to stop", "penalty serve：http://{0}/（API：/openapi.json）；按 Ctrl-C 或发送 SIGTERM 停止";
    ServingNode => "penalty cluster node {0}: http://{1}/ (state in {2}); Ctrl-C or SIGTERM to stop", "penalty cluster node {0}：http://{1}/（状态保存在 {2}）；按 Ctrl-C 或发送 SIGTERM 停止";
    ClusterReady => "cluster ready: {0} partitions, {1} replicas", "集群已就绪：{0} 个分区，{1} 个副本";

    // The cluster's status (`penalty cluster status`).
    ClusterSummary => "{0} partitions; live nodes: {1}", "{0} 个分区；在线节点：{1}";
    StageColumn => "STAGE", "阶段";
    PartitionColumn => "PARTITION", "分区";
    OwnerColumn => "OWNER", "所属节点";
    AppliedColumn => "APPLIED", "已应用序号";
    CheckpointedColumn => "CHECKPOINTED", "检查点序号";
    LastSeqColumn => "LAST", "最新序号";
    LagColumn => "LAG", "积压";
    CheckpointAgeColumn => "CHECKPOINT AGE", "检查点距今";
    Seconds => "{0}s", "{0}秒";

    // A countdown (explain::time_left_in, the dashboard's timeLeft).
    LessThanAMinute => "less than a minute", "不到 1 分钟";
    LeftMinutes => "{0} min", "{0} 分钟";
    LeftHoursMinutes => "{0} h {1} min", "{0} 小时 {1} 分钟";
    LeftDaysHours => "{0} d {1} h", "{0} 天 {1} 小时";

    // The dashboard's own words (served as /assets/phrases.js; app.js asks
    // for them by name).
    PageMore => "more", "更多";
    PageFirst => "first", "前";
    PageBookedLedger => "Booked ledger (R14)", "入账明细（R14）";
    PageRunDate => "run date", "结算运行日";
    PageKind => "kind", "类型";
    PageLoading => "Loading…", "加载中…";
    PagePerDayChart => "Per-day judgments, charges and cap hits", "按日的判罚、扣款与上限免除";
    PageShops => "Shops", "店铺";
    PageShopsFigure => "shops", "店铺";
    PageSignIn => "Sign in", "登录";
    PageSignOut => "Sign out", "退出登录";
    PageToken => "Token", "令牌";
    PageAtRisk24h => "At risk in the next 24 h", "24 小时内有风险的订单";
    PageNothingAtRisk => "Nothing is at risk in the next 24 h.", "24 小时内没有风险订单。";
    PageNotices => "Notices (R9)", "通知（R9）";
    PageNoNotice => "No notice yet.", "暂无通知。";
    PageOrder => "order", "订单";
    PageWhatComes => "what comes", "即将发生";
    PageWhen => "when", "时间";
    PageTimeLeft => "time left", "剩余时间";
    PageCost => "cost", "代价";
    PageJudgment => "judgment", "判罚";
    PageJudgedAt => "judged at", "判罚时间";
    PageDeduction => "deduction", "扣款";
    PageRevoked => "revoked", "已撤销";
    PageJudgments => "judgments", "判罚次数";
    PageCharged => "charged", "已扣除";
    PageWaived => "waived", "已免除";
    PagePaidAt => "paid at", "付款时间";
    PageBan => "ban", "禁售";
    PageFlag => "flag", "标记";
    PageBanned => "banned", "已禁售";
    PageFlagged => "flagged", "已标记";
    PageSettleDate => "settle date", "结算日";
    PageAmount => "amount", "金额";
    PagePaidOrders => "paid orders", "已付款订单";
    PageJudgmentsStanding => "judgments (standing)", "有效判罚";
    PageOrdersJudged => "orders with a judgment", "被判罚订单";
    PageWaivedByDailyCap => "waived by the daily cap", "每日上限免除";
    PagePending => "pending", "待结算";
    PageDepositBalance => "deposit balance", "保证金余额";
    PageClosureReview => "closure review", "关店审查";
    PageTimeline => "Timeline", "时间线";
    PageWhat => "what", "事件";
    PageSignedInAsShop => "Signed in as shop", "已登录店铺";
    PageSignedInAsOperator => "Signed in as operator", "已作为运营登录";
    PageNone => "None.", "无。";
    PagePerDay => "Per day", "按日";
    PageWaivedByCap => "waived by the cap", "每日上限免除";
    PagePaid => "paid", "付款金额";
    PageAt => "at", "时间";
    PageClosureReviewFlags => "Closure-review flags (R7)", "关店审查标记（R7）";
    PageWhy => "Why (explain)", "原因说明";
    PageDetails => "details", "详情";
    PageLogSeq => "log seq", "日志序号";
    PageRecordedAt => "recorded at", "记录时间";
    PageProduct => "product", "商品";
    PageBannedAt => "banned at", "禁售时间";
    PageByOrder => "by order", "订单";
    PageFlaggedAt => "flagged at", "标记时间";
    PageTokenNotValid => "The token is not valid.", "令牌无效。";
    PageSignInHint => "Sign in with the token your operator gave you.", "请输入运营方提供的令牌登录。";
    PageAsOf => "as of", "截至";
    PageShow => "Show", "显示";
    PageDeadline => "deadline (R1)", "发货截止（R1）";
    PageRefundDue => "refund due (R8)", "应退款（R8）";
    PageOrders => "Orders", "订单";
    PageBooked => "booked (R14)", "已入账（R14）";
    PageNewest => "newest", "最新";
    PageAllStatuses => "all statuses", "全部状态";
    PageOnlyWithAJudgment => "only with a judgment", "仅被判罚订单";
    PagePrevious => "previous", "上一页";
    PageNext => "next", "下一页";
    PageSearchPrompt => "Search order or shop id", "搜索订单或店铺编号";
    PageSearch => "Search", "搜索";
    PageNothingFound => "Nothing found for", "未找到";
    PageOf => "of", "共";
    PageWorstShops => "Worst shops", "问题店铺";
    PageSortBy => "sort by", "排序";
    PageMinOrders => "at least this many orders", "最少订单数";
    PageShopColumn => "shop", "店铺";
    PageOrdersColumn => "orders", "订单数";
    PageTimeoutsJudgments => "timeouts (judgments)", "超时（判罚）";
    PageTimeoutRate30Days => "timeout rate (30 d)", "超时率（30 天）";
    PageClosureFlags => "closure flags", "关店审查标记";
    PageBannedProducts => "banned products", "禁售商品";
    PageWaivedCap => "waived (cap)", "免除（上限）";
    PageDeposit => "deposit", "保证金";
    PageChargedAllShops => "charged, all shops", "已扣除（全部店铺）";
    PageNoShops => "No shop exists as of this instant.", "此时没有店铺。";
    PagePaidFrom => "paid from", "付款起始";
    PagePaidTo => "paid to", "付款截止";
    PageOnlyOnCappedDays => "only on capped days (R5)", "仅每日上限日（R5）";
    PageOnlyUnderClosureReview => "only under closure review (R7)", "仅关店审查（R7）";
    PageDownloadCsv => "Download CSV", "下载 CSV";
    PageCause => "cause", "原因";
    PageNothingBooked => "Nothing booked yet.", "尚无入账。";
    PageNoJudgment => "No judgment yet.", "尚无判罚。";
    PageShopCrumb => "Shop", "店铺";
    PageJudgmentsByDayJudged => "judgments, by day judged (R3)", "判罚（按判罚日，R3）";
    PageChargedBySettleDate => "charged, by settle date (R4)", "已扣除（按结算日，R4）";
    PageCapHitsLegend => "cap hits: deductions waived or partly waived (R5)", "触及上限：全部或部分免除的扣款（R5）";
    PageCapHits => "cap hits", "上限免除";
    PageDataFrom => "data from", "数据自";
    PageTo => "to", "至";
    PageEndOfTheData => "end of the data", "数据截止";
    PageNow => "now", "现在";
    PageAsked => "asked", "指定";
    PageNoDataYet => "no data yet", "暂无数据";
    PageJudgmentNumbered => "judgment {0}", "第 {0} 次判罚";
    PageJudgmentRevoked => "judgment {0} (revoked)", "第 {0} 次判罚（已撤销）";
    PageDerivedByRules => "derived by the rules (R3)", "由规则推出（R3）";
    PageCannotReach => "Could not reach the server: {0}", "无法连接服务器：{0}";
    PageNoSuchPage => "No such page: {0}", "没有此页面：{0}";
    PageTimeoutRateDays => "timeout rate ({0} d)", "超时率（{0} 天）";
    BookedIntro => "What the settlement runs at 00:00 of each day actually moved. A posting is never changed: when a later event changes a past day (a revocation, a rejected tracking number), the next run books a correction, marked below with its cause. {0}", "每日 00:00 结算运行实际入账的金额。入账记录从不修改：之后的事件改变过去某日时（撤销判罚、物流单号被拒），下一次运行记一笔更正，下方标明原因。{0}";
    PostingsCountAll => "{0} postings, {1} corrections.", "共 {0} 笔入账，{1} 笔更正。";
    PostingsCountSome => "{0} postings; the first {1} shown, with {2} corrections.", "共 {0} 笔入账，显示前 {1} 笔，其中 {2} 笔更正。";

    // Files written, waits and errors of the command line.
    WroteRows => "wrote {0} {1} to {2}", "已写入 {0} 条{1}到 {2}";
    OrdersNoun => "orders", "订单";
    PostingsNoun => "postings", "入账";
    WroteLines => "wrote {0} lines ({1} bytes) to {2}", "已写入 {0} 行（{1} 字节）到 {2}";
    Warning => "warning: {0}; run `penalty audit` for the details", "警告：{0}；运行 `penalty audit` 查看详情";
    Waiting => "waiting for the data directory {0}, in use by {1}; this command goes on when it is free (--no-wait fails at once instead; read commands do not wait)", "正在等待数据目录 {0}，它正被 {1} 使用；空闲后本命令会继续（--no-wait 则立即失败；读命令不等待）";
    Error => "error: {0}", "错误：{0}";
    /// Between an error and its cause.
    CauseFollows => "{0}: {1}", "{0}：{1}";
    AsOfSetsTheInstant => "{0}; --as-of sets the instant", "{0}；用 --as-of 指定时刻";
    UnknownOrderPaidLater => "no order `{0}` as of {1} (it is paid at {2}; ask as of then or later)", "截至 {1} 没有订单 `{0}`（它于 {2} 付款；请查询该时刻或之后）";
    UnknownOrder => "no order `{0}` as of {1} (no paid event for it is in the log)", "截至 {1} 没有订单 `{0}`（日志中没有它的付款事件）";
    UnknownShop => "no shop `{0}` as of {1} (a shop exists from its first paid order or deposit top-up)", "截至 {1} 没有店铺 `{0}`（店铺自其第一笔付款订单或保证金充值起存在）";
    CannotReadPolicy => "cannot read the policy file {0}; check the path", "无法读取规则文件 {0}；请检查路径";
    PolicyNotValid => "the policy file {0} is not valid", "规则文件 {0} 无效";
    NotADate => "{0} `{1}` is not a date; write YYYY-MM-DD, such as 2026-03-01", "{0} `{1}` 不是日期；请写成 YYYY-MM-DD，例如 2026-03-01";
    ExcelNeedsCsv => "--excel shapes CSV for Excel; use it with --format csv (the default)", "--excel 用于生成 Excel 可读的 CSV；请与 --format csv（默认）一起使用";
    CannotCreate => "cannot create {0}; check the directory exists and is writable", "无法创建 {0}；请检查目录存在且可写";
    CannotOpenInput => "cannot open the input file {0}; check the path (nothing was ingested)", "无法打开输入文件 {0}；请检查路径（未导入任何内容）";
    // Errors that name an input ([`crate::time::AskedInstantError`],
    // [`crate::WithinError`], [`crate::PolicyError`] and the store's ingest
    // input): each type's `message(lang)` words it, its `Display` is English.
    NotAnInstant => "`{0}` is not an instant; write RFC 3339 with an offset, such as 2026-03-07T00:00:00+08:00, or a date such as 2026-03-07 (00:00 in the policy's offset {1})", "`{0}` 不是时刻；请写带时区偏移的 RFC 3339，例如 2026-03-07T00:00:00+08:00，或日期，例如 2026-03-07（按规则的时区偏移 {1} 的 00:00）";
    NotAHorizon => "`{0}` is not a horizon: write a whole number without leading zeros followed by m, h or d, such as 90m, 12h or 2d (from 1m to 366d)", "`{0}` 不是时长：请写不带前导零的整数，后跟 m、h 或 d，例如 90m、12h 或 2d（从 1m 到 366d）";
    InputReadFailed => "reading the input failed after line {0}: {1}; the lines before it were ingested, so fix the input and run ingest again (re-sending lines is safe)", "读取输入在第 {0} 行之后失败：{1}；之前的行已导入，请修正输入后再次导入（重复发送各行是安全的）";
    PolicyKnownKeys => "{0} (known keys: {1})", "{0}（已知的键：{1}）";
    PolicyUnknownKey => "unknown policy key `{0}`", "未知的规则键 `{0}`";
    PolicyOutOfRange => "policy parameter `{0}` is {1}: {2}", "规则参数 `{0}` 为 {1}：{2}";
    PolicyVersionProblem => "policy version {0} (versions[{0}]): {1}", "规则版本 {0}（versions[{0}]）：{1}";
    // What is wrong with a version (R15), after PolicyVersionProblem.
    PolicyBesideVersions => "a versioned policy holds only `versions`; move `{0}` into a version", "分版本的规则只含 `versions`；请把 `{0}` 移入某个版本";
    PolicyNoVersions => "`versions` is empty; give at least V0 (`{}` for the defaults)", "`versions` 为空；请至少给出 V0（`{}` 即默认值）";
    PolicyVersionNotAnObject => "must be an object of parameters, not {0}", "必须是参数对象，而不是{0}";
    PolicyEffectiveFromInV0 => "V0 holds from the beginning of time and has no `effective_from`", "V0 自始生效，没有 `effective_from`";
    PolicyMissingEffectiveFrom => "missing `effective_from` (an RFC 3339 instant such as 2026-03-05T00:00:00+08:00)", "缺少 `effective_from`（RFC 3339 时刻，例如 2026-03-05T00:00:00+08:00）";
    PolicyEffectiveFromNotAnInstant => "`effective_from` is {0}: it must be an RFC 3339 instant with an offset, such as 2026-03-05T00:00:00+08:00", "`effective_from` 为 {0}：它必须是带时区偏移的 RFC 3339 时刻，例如 2026-03-05T00:00:00+08:00";
    PolicyEffectiveFromNotLater => "`effective_from` must be strictly later than the previous version's", "`effective_from` 必须严格晚于上一个版本的";
    // What a JSON value is, after PolicyVersionNotAnObject.
    JsonNull => "null", "空值（null）";
    JsonBoolean => "a boolean", "布尔值";
    JsonNumber => "a number", "数字";
    JsonString => "a string", "字符串";
    JsonArray => "an array", "数组";
    JsonObject => "an object", "对象";
    PolicyOffsetAfterV0 => "`utc_offset` may only be set in V0: calendar days stay in one offset (R15)", "`utc_offset` 只能在 V0 中设置：日历日始终按同一时区偏移计（R15）";
    // What a policy parameter must be (R15's ranges), after PolicyOutOfRange.
    RangeHours => "{0} to 876,600 hours", "{0} 至 876,600 小时";
    RangeJudgments => "1 to 10", "1 至 10";
    RangeFen => "0 to 10^12 fen", "0 至 10^12 分";
    RangeUpToMaxJudgments => "{0} to max_judgments_per_order", "{0} 至 max_judgments_per_order";
    RangeDays => "1 to 36,600 days", "1 至 36,600 天";

    // The server's refusals of a query (400s), each naming the parameter
    // and the fix; a parameter's name stays as it is written in the URL.
    QueryParameterIs => "query parameter {0} {1}", "查询参数 {0}：{1}";
    OutOfRange => "{0} {1} is out of range: ask for {2} to {3}", "{0} 为 {1}，超出范围：请指定 {2} 至 {3}";
    NotASort => "sort `{0}` is not one of {1}", "sort `{0}` 不是以下之一：{1}";
    NotANoticeCursor => "query parameter {0} must be the `cursor` (or `next`) of a notice this feed returned", "查询参数 {0} 必须是此通知流返回的某条通知的 `cursor`（或 `next`）";
    PathIdLength => "the id in the path must be 1 to {0} characters long", "路径中的 id 必须为 1 至 {0} 个字符";
    ParameterIdLength => "{0} must be 1 to {1} characters long", "查询参数 {0} 必须为 1 至 {1} 个字符";
    AsOfParameterSetsTheInstant => "{0}; the query parameter as_of sets the instant", "{0}；用查询参数 as_of 指定时刻";
    /// A seller's one answer for an order it may not read, whatever the
    /// reason, so that nothing about other shops' orders leaks.
    UnknownOrderForToken => "no order `{0}` as of {1} that this token may read", "截至 {1} 没有此令牌可读的订单 `{0}`";
}

impl Phrase {
    /// The phrase in `lang`, places unfilled.
    pub fn text(self, lang: Lang) -> &'static str {
        let (en, zh) = self.renderings();
        match lang {
            Lang::En => en,
            Lang::Zh => zh,
        }
    }

    /// The phrase in `lang` with its places filled: `{0}` by `values[0]`,
    /// and so on. A place without a value stays as it is written, which the
    /// tests of the renderers would show.
    pub fn fill(self, lang: Lang, values: &[&dyn Display]) -> String {
        let template = self.text(lang);
        let mut out = String::with_capacity(template.len() + 16 * values.len());
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            let place = after
                .find('}')
                .and_then(|close| Some((after[..close].parse::<usize>().ok()?, close)));
            match place.and_then(|(index, close)| Some((values.get(index)?, close))) {
                Some((value, close)) => {
                    out.push_str(&value.to_string());
                    rest = &after[close + 1..];
                }
                None => {
                    out.push('{');
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        out
    }

    /// The places (`{0}`, `{1}`) a rendering holds, sorted.
    pub fn places(rendering: &str) -> Vec<usize> {
        let mut places: Vec<usize> = rendering
            .split('{')
            .skip(1)
            .filter_map(|part| part.split_once('}')?.0.parse().ok())
            .collect();
        places.sort_unstable();
        places
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_phrase_is_written_in_both_languages_with_the_same_places() {
        for phrase in Phrase::ALL {
            let (en, zh) = phrase.renderings();
            assert!(!en.trim().is_empty(), "{phrase:?} has no English");
            assert!(!zh.trim().is_empty(), "{phrase:?} has no Chinese");
            assert!(
                !zh.is_ascii(),
                "{phrase:?} is not written in Chinese: {zh:?}"
            );
            assert_ne!(en, zh, "{phrase:?}");
            assert_eq!(
                Phrase::places(en),
                Phrase::places(zh),
                "{phrase:?}: the two renderings hold different places"
            );
        }
    }

    #[test]
    fn places_are_filled_by_number_in_either_order() {
        assert_eq!(
            Phrase::ShopHeading.fill(Lang::En, &[&"S1", &"2026-03-07"]),
            "Shop S1 as of 2026-03-07"
        );
        assert_eq!(
            Phrase::UnknownOrderPaidLater.fill(Lang::Zh, &[&"O1", &"T1", &"T0"]),
            "截至 T1 没有订单 `O1`（它于 T0 付款；请查询该时刻或之后）"
        );
        // A value is inserted as it is, never read as a place itself.
        assert_eq!(
            Phrase::DepositBalance.fill(Lang::En, &[&"{1}"]),
            "deposit balance {1}"
        );
        assert_eq!(
            Phrase::DepositBalance.fill(Lang::En, &[]),
            "deposit balance {0}"
        );
    }
}
