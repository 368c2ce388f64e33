//! The booked ledger (R14): the postings of a shop's settlement runs, and the
//! cause of each correction.
//!
//! A settlement run happens at 00:00 local of every day `D` and books, for
//! each deduction settled on or before `D`, what R5 charges as of that instant
//! minus what was booked before. Done literally, a query would re-run R5 for
//! every past day of the shop at every later run. It need not: R5's outcome
//! for settle day `X` as of an instant `t` depends only on which of `X`'s
//! deductions *stand* at `t`, and each one stands from one instant on
//! (`exists_from`) until another (`revoked_from`), both independent of `as_of`
//! (module `order`). So day `X`'s outcome changes only at the runs that follow
//! one of those instants after `X`'s own run: a revocation, a retroactive
//! tracking rejection, any event placed after the run's start. Runs in between
//! book nothing for `X`. [`shop_postings`] walks each settle day once for its
//! own run and once more for each such later run, which for almost every day
//! is none: the cost of a shop's postings is about that of its R5 walk.
//!
//! Everything here is a pure function of the events and `as_of`: a posting of
//! run `D` only reads the events with `at <= start of D`, so once booked it is
//! the same for every later `as_of`, whatever order the events arrived in.

use super::{DayEntry, Ledger, QueryError, ShopRec};
use crate::event::EventType;
use crate::labels::Lang;
use crate::report::{PostingKind, PostingReport, PostingsReport};
use crate::time::{Day, UnixNs};

/// What changed a settle day's R5 outcome after its own run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ChangeKind {
    /// The judgment came to exist after the run: a tracking number was
    /// rejected (R2 a, retroactive).
    Appeared,
    /// The judgment was revoked (R11).
    Revoked,
}

/// One change of a deduction of the day: which, what, and when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Change {
    pub order: u32,
    pub number: u8,
    pub kind: ChangeKind,
    pub at: UnixNs,
}

/// Why a posting was booked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cause {
    /// The settle date's own run (R4, R5).
    Settlement,
    /// The deduction's own judgment changed.
    Own(Change),
    /// Another deduction of the same settle date changed, freeing or taking
    /// room under the daily cap (R5).
    CapRoom(Change),
}

/// One posting, unformatted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RawPosting {
    pub run_day: Day,
    pub judged_at: UnixNs,
    pub order: u32,
    pub number: u8,
    pub settle_day: Day,
    pub kind: PostingKind,
    pub amount_fen: i64,
    pub cause: Cause,
}

/// A place in a walk of the postings ([`Ledger::each_posting_after`]): the
/// posting it follows, by the walk's order (shop id, then run day,
/// `judged_at`, order id, judgment).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PostingCursor {
    shop_id: String,
    run_day: Day,
    judged_at: UnixNs,
    order_id: String,
    judgment: u8,
}

/// A walk of the postings that stops and is resumed
/// ([`Ledger::each_posting_walked`]), as a download does when its client
/// falls behind: where it stopped, and the postings of the shop it stopped
/// in, so that a resumed walk words the shop's next postings instead of
/// computing the shop's postings again. A walk's cost is then one R5 walk
/// per shop plus the postings it hands over, however many stretches it
/// takes.
#[derive(Debug, Default)]
pub struct PostingWalk {
    /// The last posting handed over before the walk stopped.
    after: Option<PostingCursor>,
    /// The postings of that posting's shop, as computed when the walk
    /// reached it.
    held: Option<HeldShop>,
    /// How many times the walk computed a shop's postings.
    shops_computed: u64,
    /// The walk went through to its end: a further call hands nothing over.
    ended: bool,
}

/// One shop's postings, held by a stopped walk.
#[derive(Debug)]
struct HeldShop {
    shop: u32,
    /// The ledger's event and order counts when they were computed: a
    /// later ledger may use them only if it holds at least as many (it is
    /// the same ledger with events folded in since, whose interned ids are
    /// the same, or a replay of the same events).
    events_applied: u64,
    orders: usize,
    postings: Vec<RawPosting>,
    /// The first posting not yet handed over.
    next: usize,
}

impl PostingWalk {
    /// A walk that resumes after the posting `after` names (none: from the
    /// start).
    pub fn after(after: Option<PostingCursor>) -> PostingWalk {
        PostingWalk {
            after,
            ..PostingWalk::default()
        }
    }

    /// How many times the walk has computed a shop's postings: once per
    /// shop it reached, whatever the number of stretches.
    pub fn shops_computed(&self) -> u64 {
        self.shops_computed
    }
}

/// A deduction of a settle day, with the instants its standing depends on.
struct Item {
    entry: DayEntry,
    exists_from: Option<UnixNs>,
    revoked_from: Option<UnixNs>,
    amount_fen: i64,
    booked_fen: i64,
    posted: bool,
}

impl Item {
    fn stands(&self, t: UnixNs) -> bool {
        self.exists_from.is_some_and(|e| e <= t) && self.revoked_from.is_none_or(|r| r > t)
    }
}

/// The run that first sees an event at `t`: the run of the day `t` falls on
/// when `t` is exactly its start (an event at the run's instant is in it,
/// RULES.md: events with `at <= as_of` exist), else the next day's.
fn run_day_of(ledger: &Ledger, t: UnixNs) -> Day {
    let offset = ledger.policy.utc_offset;
    let day = t.local_day(offset);
    if day.start(offset) == t {
        day
    } else {
        day.next()
    }
}

/// Every posting of one shop booked by the runs whose start is `<= as_of`,
/// sorted by (run day, judged_at, order_id, judgment).
pub(crate) fn shop_postings(ledger: &Ledger, shop: &ShopRec, as_of: UnixNs) -> Vec<RawPosting> {
    let offset = ledger.policy.utc_offset;
    let mut postings = Vec::new();
    let mut items: Vec<Item> = Vec::new();
    let mut runs: Vec<Day> = Vec::new();
    let mut changes: Vec<Change> = Vec::new();
    for (&settle_day, entries) in &shop.days {
        let settle_start = settle_day.start(offset);
        if settle_start > as_of {
            // Days are in order: no later one has had its run either.
            break;
        }
        // R15: the cap of the version in force at the settle date's start.
        let cap = ledger.policy.at(settle_start).shop_daily_cap_fen;
        items.clear();
        runs.clear();
        runs.push(settle_day);
        for entry in entries {
            let Some(view) = ledger.view(entry.order, as_of) else {
                continue;
            };
            let Some(judgment) = view.derived.judgment(entry.number) else {
                continue;
            };
            let item = Item {
                entry: *entry,
                exists_from: judgment.exists_from,
                revoked_from: judgment.revoked_from,
                amount_fen: view.policy.deduction_fen,
                booked_fen: 0,
                posted: false,
            };
            for t in [item.exists_from, item.revoked_from].into_iter().flatten() {
                if t > settle_start && t <= as_of {
                    runs.push(run_day_of(ledger, t));
                }
            }
            items.push(item);
        }
        runs.sort_unstable();
        runs.dedup();
        let mut previous_start = None;
        for &run_day in runs.iter() {
            let run_start = run_day.start(offset);
            if run_start > as_of {
                break;
            }
            // The changes this run is the first to see.
            changes.clear();
            if let Some(previous) = previous_start {
                for item in &items {
                    let mut note = |at: Option<UnixNs>, kind| {
                        if let Some(at) = at.filter(|&at| at > previous && at <= run_start) {
                            changes.push(Change {
                                order: item.entry.order,
                                number: item.entry.number,
                                kind,
                                at,
                            });
                        }
                    };
                    note(item.exists_from, ChangeKind::Appeared);
                    note(item.revoked_from, ChangeKind::Revoked);
                }
                // By order id, not by the order's interned number: two
                // changes at one instant must name the same cause whatever
                // order their events arrived in (RULES.md, R14's notices).
                changes.sort_by(|a, b| {
                    a.at.cmp(&b.at)
                        .then_with(|| by_order_id(ledger, (a.order, a.number), (b.order, b.number)))
                });
            }
            // R5 as of the run's start, against what was booked before.
            let mut charged_today: i64 = 0;
            for item in &mut items {
                let charged = if item.stands(run_start) {
                    let charged = item.amount_fen.min((cap - charged_today).max(0));
                    charged_today += charged;
                    charged
                } else {
                    0
                };
                let amount_fen = charged - item.booked_fen;
                if amount_fen == 0 {
                    continue;
                }
                let kind = if !item.posted && run_day == settle_day {
                    PostingKind::Charge
                } else if amount_fen < 0 {
                    PostingKind::Refund
                } else {
                    PostingKind::LateCharge
                };
                let cause = if run_day == settle_day {
                    Cause::Settlement
                } else {
                    cause_of(item, amount_fen, &changes)
                };
                postings.push(RawPosting {
                    run_day,
                    judged_at: item.entry.judged_at,
                    order: item.entry.order,
                    number: item.entry.number,
                    settle_day,
                    kind,
                    amount_fen,
                    cause,
                });
                item.booked_fen = charged;
                item.posted = true;
            }
            previous_start = Some(run_start);
        }
    }
    postings.sort_by(|a, b| {
        (a.run_day, a.judged_at)
            .cmp(&(b.run_day, b.judged_at))
            .then_with(|| by_order_id(ledger, (a.order, a.number), (b.order, b.number)))
    });
    postings
}

/// Two (order, judgment) pairs by order id, then judgment: the order the
/// postings and the changes of an instant are sorted in, by id rather than
/// by interned number, so that it does not depend on the order the events
/// arrived in.
fn by_order_id(ledger: &Ledger, a: (u32, u8), b: (u32, u8)) -> std::cmp::Ordering {
    let order_ids = &ledger.order_ids;
    order_ids
        .get(a.0)
        .cmp(order_ids.get(b.0))
        .then(a.1.cmp(&b.1))
}

/// The cause of a correction: the deduction's own change when it has one in
/// the run's window, else the first change of the day that moves money the
/// same way (a revocation frees cap room, an appearance takes it).
fn cause_of(item: &Item, amount_fen: i64, changes: &[Change]) -> Cause {
    if let Some(own) = changes
        .iter()
        .find(|c| c.order == item.entry.order && c.number == item.entry.number)
    {
        return Cause::Own(*own);
    }
    let freeing = if amount_fen > 0 {
        ChangeKind::Revoked
    } else {
        ChangeKind::Appeared
    };
    changes
        .iter()
        .find(|c| c.kind == freeing)
        .or(changes.first())
        .map_or(Cause::Settlement, |c| Cause::CapRoom(*c))
}

/// The last settlement run up to `as_of`: the start of `as_of`'s day. By
/// R14 the sum of every posting so far equals R5's charged sum as of then.
pub(crate) fn last_run_start(ledger: &Ledger, as_of: UnixNs) -> UnixNs {
    as_of
        .local_day(ledger.policy.utc_offset)
        .start(ledger.policy.utc_offset)
}

/// When a correction's notice can first be read (R9): its run's start, or
/// later when the events that caused it were recorded later (an event that
/// arrives after the run with an `at` before it), so that a consumer reading
/// after its cursor never misses one.
pub(crate) fn notice_visible(ledger: &Ledger, posting: &RawPosting) -> UnixNs {
    let run_start = posting.run_day.start(ledger.policy.utc_offset);
    let change = match posting.cause {
        Cause::Settlement => return run_start,
        Cause::Own(change) | Cause::CapRoom(change) => change,
    };
    let rec = &ledger.orders[change.order as usize];
    rec.events
        .as_slice()
        .iter()
        .take_while(|e| e.at <= change.at)
        .map(|e| e.recorded_at)
        .chain(rec.paid.map(|p| p.recorded_at))
        .fold(run_start, UnixNs::max)
}

/// A change in words, for a cause, in `lang`.
fn change_text(ledger: &Ledger, change: &Change, lang: Lang) -> String {
    let zh = lang == Lang::Zh;
    let offset = ledger.policy.utc_offset;
    let order_id = ledger.order_ids.get(change.order);
    let day = change.at.local_day(offset).to_iso();
    match change.kind {
        ChangeKind::Revoked if zh => format!(
            "{order_id} 的第 {} 次判罚已于 {day} 撤销（申诉成功，R11）",
            change.number
        ),
        ChangeKind::Revoked => format!(
            "judgment {} of {order_id} revoked on {day} (appeal upheld, R11)",
            change.number
        ),
        ChangeKind::Appeared => {
            // The judgment exists from the rejection of the last valid
            // tracking number (module `order`); name it.
            let rejected = ledger.orders[change.order as usize]
                .events
                .as_slice()
                .iter()
                .find(|e| e.kind == EventType::TrackingRejected && e.at == change.at)
                .and_then(|e| e.tracking())
                .map(|t| ledger.tracking_nos.get(t));
            match rejected {
                Some(tracking_no) if zh => format!(
                    "{order_id} 的第 {} 次判罚终究成立：物流单号 {tracking_no} 已于 {day} 被驳回（R2）",
                    change.number
                ),
                None if zh => format!(
                    "{order_id} 的第 {} 次判罚终究成立，自 {day} 起（R2）",
                    change.number
                ),
                Some(tracking_no) => format!(
                    "judgment {} of {order_id} exists after all: tracking number {tracking_no} rejected on {day} (R2)",
                    change.number
                ),
                None => format!(
                    "judgment {} of {order_id} exists after all, from {day} (R2)",
                    change.number
                ),
            }
        }
    }
}

/// A posting's cause in words, in `lang`.
pub(crate) fn cause_text(ledger: &Ledger, posting: &RawPosting, lang: Lang) -> String {
    if lang == Lang::Zh {
        let day = posting.settle_day.to_iso();
        return match &posting.cause {
            Cause::Settlement => format!(
                "{day} 结算：{} 的第 {} 次判罚（R4、R5）",
                ledger.order_ids.get(posting.order),
                posting.number
            ),
            Cause::Own(change) => change_text(ledger, change, lang),
            Cause::CapRoom(change) => format!(
                "{day} 的每日上限额度{}（R5）：{}",
                if posting.amount_fen > 0 {
                    "释放"
                } else {
                    "被占用"
                },
                change_text(ledger, change, lang)
            ),
        };
    }
    match &posting.cause {
        Cause::Settlement => format!(
            "settlement of {}: judgment {} of {} (R4, R5)",
            posting.settle_day.to_iso(),
            posting.number,
            ledger.order_ids.get(posting.order)
        ),
        Cause::Own(change) => change_text(ledger, change, lang),
        Cause::CapRoom(change) => format!(
            "cap room of {} {} (R5): {}",
            posting.settle_day.to_iso(),
            if posting.amount_fen > 0 {
                "freed"
            } else {
                "taken"
            },
            change_text(ledger, change, lang)
        ),
    }
}

impl Ledger {
    /// The booked ledger of one shop as of `as_of` (R14, CLI.md `penalty
    /// postings`), its causes in English.
    pub fn postings(&self, shop_id: &str, as_of: UnixNs) -> Result<PostingsReport, QueryError> {
        self.postings_in(shop_id, as_of, Lang::En)
    }

    /// [`Ledger::postings`] with its causes in `lang`.
    pub fn postings_in(
        &self,
        shop_id: &str,
        as_of: UnixNs,
        lang: Lang,
    ) -> Result<PostingsReport, QueryError> {
        self.postings_page_in(shop_id, as_of, 0, usize::MAX, lang)
            .map(|(report, _)| report)
    }

    /// A page of [`Ledger::postings_in`]: the postings from the `offset`-th,
    /// at most `limit`, with `booked_fen` over all of them, and how many
    /// there are. Only the page's postings are worded (their causes are
    /// most of the cost), so a late page costs what the first does.
    pub fn postings_page_in(
        &self,
        shop_id: &str,
        as_of: UnixNs,
        offset: usize,
        limit: usize,
        lang: Lang,
    ) -> Result<(PostingsReport, usize), QueryError> {
        let utc_offset = self.policy.utc_offset;
        let (_, shop) = self.existing_shop(shop_id, as_of)?;
        let raw = shop_postings(self, shop, as_of);
        let report = PostingsReport {
            shop_id: shop_id.to_string(),
            as_of: as_of.to_rfc3339(utc_offset),
            booked_fen: raw.iter().map(|p| i128::from(p.amount_fen)).sum(),
            postings: raw
                .iter()
                .skip(offset)
                .take(limit)
                .map(|p| self.format_posting(shop_id, p, lang))
                .collect(),
        };
        Ok((report, raw.len()))
    }

    /// Every posting of every shop (or of `shop_id` alone; none for an
    /// unknown shop) booked by the runs from `from` to `to` (inclusive, when
    /// given) whose start is `<= as_of`: shop by shop in id order, each
    /// shop's in run order. One shop's postings are held at a time. Stops at
    /// the first error of `each`.
    pub fn each_posting<E>(
        &self,
        as_of: UnixNs,
        shop_id: Option<&str>,
        from: Option<Day>,
        to: Option<Day>,
        each: impl FnMut(PostingReport) -> Result<(), E>,
    ) -> Result<(), E> {
        self.each_posting_after(as_of, shop_id, from, to, None, each)
    }

    /// [`Ledger::each_posting`] resumed after the posting `after` names (a
    /// walk's next stretch, [`Ledger::posting_cursor`]): as
    /// [`Ledger::each_posting_walked`] with a walk that has held nothing.
    pub fn each_posting_after<E>(
        &self,
        as_of: UnixNs,
        shop_id: Option<&str>,
        from: Option<Day>,
        to: Option<Day>,
        after: Option<&PostingCursor>,
        each: impl FnMut(PostingReport) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut walk = PostingWalk::after(after.cloned());
        self.each_posting_walked(as_of, shop_id, from, to, &mut walk, each)
    }

    /// [`Ledger::each_posting`], stopping at the first error of `each` and
    /// resumed by the next call with the same `walk` (and the same
    /// `as_of`, `shop_id`, `from` and `to`) after the posting that error
    /// was returned for. The shops before the one it stopped in are
    /// skipped by a binary search of the ids; in that shop the walk goes on
    /// from the postings it holds, so a shop's postings (its R5 walk) are
    /// computed once per walk, not once per stretch, and only the postings
    /// handed to `each` are worded. A shop's postings are therefore those
    /// of the ledger of the stretch that reached it: an event folded in
    /// during a pause does not change the shop's rows after the pause, and
    /// a file's postings of one shop add up to R5's charged sum as of one
    /// moment (R14). Given a ledger with fewer events than the one it
    /// held them from, the walk computes the shop's postings again and
    /// seeks after its last posting by a binary search.
    pub fn each_posting_walked<E>(
        &self,
        as_of: UnixNs,
        shop_id: Option<&str>,
        from: Option<Day>,
        to: Option<Day>,
        walk: &mut PostingWalk,
        mut each: impl FnMut(PostingReport) -> Result<(), E>,
    ) -> Result<(), E> {
        if walk.ended {
            return Ok(());
        }
        let shops: Vec<u32> = match shop_id {
            Some(shop_id) => self.shop_ids.find(shop_id).into_iter().collect(),
            None => self.sorted_shops(),
        };
        let first_shop = walk.after.as_ref().map_or(0, |cursor| {
            shops.partition_point(|&shop| self.shop_ids.get(shop) < cursor.shop_id.as_str())
        });
        let mut held = walk.held.take();
        for &shop in &shops[first_shop..] {
            let rec = &self.shops[shop as usize];
            if rec.days.is_empty() {
                continue;
            }
            let shop_id = self.shop_ids.get(shop);
            let resumed = walk
                .after
                .as_ref()
                .filter(|cursor| cursor.shop_id == shop_id);
            // Only the shop the walk stopped in can be held; a ledger with
            // fewer events or orders than the one that computed them is not
            // the one their interned ids name.
            let kept = held.take().filter(|held| {
                resumed.is_some()
                    && held.shop == shop
                    && held.events_applied <= self.events_applied
                    && held.orders <= self.order_ids.len()
            });
            let (postings, start) = match kept {
                Some(held) => (held.postings, held.next),
                None => {
                    walk.shops_computed += 1;
                    let postings = shop_postings(self, rec, as_of);
                    // Sorted by (run day, judged_at, order id, judgment),
                    // each key once (a run books a deduction once), so both
                    // starts are a binary search.
                    let mut start =
                        from.map_or(0, |from| postings.partition_point(|p| p.run_day < from));
                    if let Some(cursor) = resumed {
                        start = start.max(postings.partition_point(|p| {
                            self.posting_order(p, cursor) != std::cmp::Ordering::Greater
                        }));
                    }
                    (postings, start)
                }
            };
            for (index, posting) in postings.iter().enumerate().skip(start) {
                if to.is_some_and(|d| posting.run_day > d) {
                    break;
                }
                if let Err(error) = each(self.format_posting(shop_id, posting, Lang::En)) {
                    walk.after = Some(PostingCursor {
                        shop_id: shop_id.to_string(),
                        run_day: posting.run_day,
                        judged_at: posting.judged_at,
                        order_id: self.order_ids.get(posting.order).to_string(),
                        judgment: posting.number,
                    });
                    walk.held = Some(HeldShop {
                        shop,
                        events_applied: self.events_applied,
                        orders: self.order_ids.len(),
                        postings,
                        next: index + 1,
                    });
                    return Err(error);
                }
            }
        }
        walk.ended = true;
        Ok(())
    }

    /// Where a walk of the postings that gave `posting` resumes after it:
    /// `None` for a posting whose dates this ledger's walks do not write.
    pub fn posting_cursor(&self, posting: &PostingReport) -> Option<PostingCursor> {
        let offset = self.policy.utc_offset;
        Some(PostingCursor {
            shop_id: posting.shop_id.clone(),
            run_day: UnixNs::parse_rfc3339_or_date(&posting.run_date, offset)?.local_day(offset),
            judged_at: UnixNs::parse_rfc3339(&posting.judged_at)?,
            order_id: posting.order_id.clone(),
            judgment: posting.judgment,
        })
    }

    /// How a shop's raw posting stands to `cursor` in the walk's order
    /// (the order [`shop_postings`] sorts by).
    fn posting_order(&self, posting: &RawPosting, cursor: &PostingCursor) -> std::cmp::Ordering {
        (posting.run_day, posting.judged_at)
            .cmp(&(cursor.run_day, cursor.judged_at))
            .then_with(|| {
                self.order_ids
                    .get(posting.order)
                    .cmp(cursor.order_id.as_str())
            })
            .then(posting.number.cmp(&cursor.judgment))
    }

    fn format_posting(&self, shop_id: &str, p: &RawPosting, lang: Lang) -> PostingReport {
        PostingReport {
            run_date: p.run_day.to_iso(),
            shop_id: shop_id.to_string(),
            order_id: self.order_ids.get(p.order).to_string(),
            judgment: p.number,
            judged_at: p.judged_at.to_rfc3339(self.policy.utc_offset),
            settle_date: p.settle_day.to_iso(),
            kind: p.kind,
            amount_fen: p.amount_fen,
            cause: cause_text(self, p, lang),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::{parse_line, Policy};

    fn t(text: &str) -> UnixNs {
        UnixNs::parse_rfc3339(text).unwrap()
    }

    /// A ledger of JSON lines, each given as (type, at, fields).
    fn ledger(policy: &str, events: &[(&str, &str, &str)]) -> Ledger {
        let mut ledger = Ledger::new(Policy::from_json(policy).unwrap());
        for (i, (kind, at, fields)) in events.iter().enumerate() {
            let line = format!(
                r#"{{"event_id":"00000000-0000-4000-8000-{i:012}","type":"{kind}","at":"{at}",{fields}}}"#
            );
            let parsed = parse_line(line.as_bytes()).unwrap();
            ledger.apply(&parsed.event, UnixNs(0)).unwrap();
        }
        ledger
    }

    const PAID_A1: (&str, &str, &str) = (
        "paid",
        "2026-03-01T10:00:00+08:00",
        r#""order_id":"A1","shop_id":"S1","product_id":"P1","amount_fen":100"#,
    );
    const PAID_A2: (&str, &str, &str) = (
        "paid",
        "2026-03-01T10:01:00+08:00",
        r#""order_id":"A2","shop_id":"S1","product_id":"P2","amount_fen":100"#,
    );

    /// A1's judgment 1 revoked on 03-06, after its settle date.
    const REVOKED_A1_1: (&str, &str, &str) = (
        "judgment_revoked",
        "2026-03-06T09:00:00+08:00",
        r#""order_id":"A1","judgment":1"#,
    );

    /// A walk stopped after every posting and resumed each time hands over
    /// what one walk does, and computes each shop's postings once, not
    /// once per stretch.
    #[test]
    fn a_walk_stopped_after_each_posting_computes_each_shop_once() {
        let ledger = ledger(
            r#"{"shop_daily_cap_fen": 1000}"#,
            &[
                PAID_A1,
                PAID_A2,
                (
                    "paid",
                    "2026-03-01T10:02:00+08:00",
                    r#""order_id":"B1","shop_id":"S2","product_id":"P1","amount_fen":100"#,
                ),
                REVOKED_A1_1,
            ],
        );
        let as_of = t("2026-03-09T00:00:00+08:00");
        let mut whole = Vec::new();
        let _ = ledger.each_posting(as_of, None, None, None, |p| {
            whole.push(p);
            Ok::<(), ()>(())
        });
        assert!(whole.iter().any(|p| p.shop_id == "S1"));
        assert!(whole.iter().any(|p| p.shop_id == "S2"));
        let mut walk = PostingWalk::default();
        let mut stretches = Vec::new();
        loop {
            let mut stretch = Vec::new();
            let walked = ledger.each_posting_walked(as_of, None, None, None, &mut walk, |p| {
                stretch.push(p);
                Err(())
            });
            stretches.extend(stretch);
            if walked.is_ok() {
                break;
            }
        }
        assert_eq!(stretches, whole);
        assert_eq!(walk.shops_computed(), 2);
        // A walk given a ledger that is not the one it held a shop's
        // postings from computes them again, and resumes after its place.
        let fewer = super::tests::ledger(r#"{"shop_daily_cap_fen": 1000}"#, &[PAID_A1]);
        let mut walk = PostingWalk::default();
        let _ = ledger.each_posting_walked(as_of, Some("S1"), None, None, &mut walk, |_| Err(()));
        let mut rest = Vec::new();
        let _ = fewer.each_posting_walked(as_of, Some("S1"), None, None, &mut walk, |p| {
            rest.push(p);
            Ok::<(), ()>(())
        });
        let mut expected = Vec::new();
        let cursor = fewer.posting_cursor(&whole[0]);
        let _ = fewer.each_posting_after(as_of, Some("S1"), None, None, cursor.as_ref(), |p| {
            expected.push(p);
            Ok::<(), ()>(())
        });
        assert_eq!(rest, expected);
        assert_eq!(walk.shops_computed(), 2);
    }

    #[test]
    fn an_event_at_a_runs_instant_is_booked_by_that_run() {
        let ledger = ledger("{}", &[]);
        assert_eq!(
            run_day_of(&ledger, t("2026-03-07T00:00:00+08:00")).to_iso(),
            "2026-03-07"
        );
        assert_eq!(
            run_day_of(&ledger, t("2026-03-07T00:00:00.000000001+08:00")).to_iso(),
            "2026-03-08"
        );
    }

    #[test]
    fn a_revocation_after_the_settle_date_refunds_and_frees_cap_room_with_causes() {
        let ledger = ledger(
            r#"{"shop_daily_cap_fen": 1000}"#,
            &[PAID_A1, PAID_A2, REVOKED_A1_1],
        );
        let report = ledger
            .postings("S1", t("2026-03-07T00:00:00+08:00"))
            .unwrap();
        let rows: Vec<(&str, &str, u8, PostingKind, i64)> = report
            .postings
            .iter()
            .map(|p| {
                (
                    p.run_date.as_str(),
                    p.order_id.as_str(),
                    p.judgment,
                    p.kind,
                    p.amount_fen,
                )
            })
            .collect();
        assert_eq!(
            rows,
            vec![
                ("2026-03-04", "A1", 1, PostingKind::Charge, 1000),
                ("2026-03-05", "A1", 2, PostingKind::Charge, 1000),
                ("2026-03-07", "A1", 1, PostingKind::Refund, -1000),
                ("2026-03-07", "A2", 1, PostingKind::LateCharge, 1000),
            ]
        );
        assert_eq!(
            report.postings[2].cause,
            "judgment 1 of A1 revoked on 2026-03-06 (appeal upheld, R11)"
        );
        assert_eq!(
            report.postings[3].cause,
            "cap room of 2026-03-04 freed (R5): judgment 1 of A1 revoked on 2026-03-06 (appeal upheld, R11)"
        );
        // Between runs the correction waits: booked stays at what moved.
        let before = ledger
            .postings("S1", t("2026-03-06T23:59:59+08:00"))
            .unwrap();
        assert_eq!(before.booked_fen, 2000);
        assert_eq!(before.postings.len(), 2);
    }

    #[test]
    fn every_correction_is_one_notice_with_its_cause() {
        let ledger = ledger(
            r#"{"shop_daily_cap_fen": 1000}"#,
            &[PAID_A1, PAID_A2, REVOKED_A1_1],
        );
        let as_of = t("2026-03-08T00:00:00+08:00");
        let all = ledger.notices("S1", as_of, None, 1000).unwrap();
        let corrections: Vec<_> = all.iter().filter_map(|n| n.posting.as_ref()).collect();
        assert_eq!(corrections.len(), 2, "{all:#?}");
        assert_eq!(corrections[0].kind, PostingKind::Refund);
        assert!(corrections[0].cause.contains("revoked on 2026-03-06"));
        assert_eq!(corrections[1].kind, PostingKind::LateCharge);
        // Read page by page after each cursor: every notice exactly once.
        let mut cursor: Option<String> = None;
        let mut paged = Vec::new();
        loop {
            let page = ledger.notices("S1", as_of, cursor.as_deref(), 1).unwrap();
            let Some(notice) = page.into_iter().next() else {
                break;
            };
            cursor = Some(notice.cursor.clone());
            paged.push(notice);
        }
        assert_eq!(paged, all);
    }

    #[test]
    fn a_retroactive_rejection_takes_cap_room_and_names_the_tracking_number() {
        let ledger = ledger(
            r#"{"shop_daily_cap_fen": 1000}"#,
            &[
                PAID_A1,
                (
                    "shipped",
                    "2026-03-02T09:00:00+08:00",
                    r#""order_id":"A1","tracking_no":"SF1""#,
                ),
                PAID_A2,
                (
                    "tracking_rejected",
                    "2026-03-04T15:00:00+08:00",
                    r#""order_id":"A1","tracking_no":"SF1""#,
                ),
            ],
        );
        let report = ledger
            .postings("S1", t("2026-03-05T00:00:00+08:00"))
            .unwrap();
        let late: Vec<&PostingReport> = report
            .postings
            .iter()
            .filter(|p| p.run_date == "2026-03-05" && p.settle_date == "2026-03-04")
            .collect();
        assert_eq!(late.len(), 2, "{report:#?}");
        assert_eq!(
            (late[0].order_id.as_str(), late[0].amount_fen),
            ("A1", 1000)
        );
        assert_eq!(late[0].kind, PostingKind::LateCharge);
        assert!(late[0]
            .cause
            .contains("tracking number SF1 rejected on 2026-03-04"));
        assert_eq!(
            (late[1].order_id.as_str(), late[1].amount_fen),
            ("A2", -1000)
        );
        assert!(late[1].cause.starts_with("cap room of 2026-03-04 taken"));
    }

    #[test]
    fn a_settle_dates_cap_is_the_version_at_its_start_not_at_the_run() {
        let ledger = ledger(
            r#"{"versions": [{"shop_daily_cap_fen": 1000},
                {"effective_from": "2026-03-05T00:00:00+08:00", "shop_daily_cap_fen": 5000}]}"#,
            &[
                PAID_A1,
                PAID_A2,
                (
                    "judgment_revoked",
                    "2026-03-06T09:00:00+08:00",
                    r#""order_id":"A2","judgment":1"#,
                ),
            ],
        );
        let report = ledger
            .postings("S1", t("2026-03-08T00:00:00+08:00"))
            .unwrap();
        // 03-04 (cap 1000): A1 only; 03-05 (cap 5000): both. A2's revoked
        // judgment 1 was waived, so its revocation moves no money.
        assert_eq!(report.booked_fen, 3000);
        assert!(report
            .postings
            .iter()
            .all(|p| p.kind == PostingKind::Charge));
    }
}
