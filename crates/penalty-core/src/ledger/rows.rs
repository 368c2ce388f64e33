//! The order rows of a list or an export, kept by a [`RowFilter`]: the one
//! home of the filters that `GET /orders`, `GET /orders.csv` and `penalty
//! export orders` share, so that a page, a download and an export of the
//! same filter hold the same rows.

use std::cmp::Ordering;
use std::collections::BTreeSet;

use super::tallies::{facts_by_order_id, FactsKept, OrderFacts};
use super::Ledger;
use crate::order::OrderRec;
use crate::report::{OrderRow, OrderStatus, RowFilter};
use crate::time::{Day, UnixNs};

/// One page of filtered order rows, and how many rows the filter keeps over
/// all pages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowsPage {
    /// At most the asked number of rows, from the asked offset.
    pub rows: Vec<OrderRow>,
    /// Rows the filter keeps, over all pages.
    pub total: usize,
}

/// What a page of order rows is sorted by (`GET /orders?sort=`). Every
/// sort breaks ties by the default order (shop id, then order id), so that
/// a page is the same page each time it is asked and the pages of a walk
/// neither repeat nor skip a row.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OrderSort {
    /// By shop id, then order id: the order of `penalty export orders`.
    #[default]
    Order,
    /// Paid instant, oldest first.
    Paid,
    /// Charged money, most first.
    Charged,
    /// Standing judgments, most first.
    Judgments,
    /// Status, in the order of [`OrderStatus::NAMES`].
    Status,
}

impl OrderSort {
    /// Every sort, as written in `sort=`.
    pub const ALL: [OrderSort; 5] = [
        OrderSort::Order,
        OrderSort::Paid,
        OrderSort::Charged,
        OrderSort::Judgments,
        OrderSort::Status,
    ];

    /// The name used in the query string.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderSort::Order => "order",
            OrderSort::Paid => "paid",
            OrderSort::Charged => "charged",
            OrderSort::Judgments => "judgments",
            OrderSort::Status => "status",
        }
    }

    /// Parses a sort name.
    pub fn parse(text: &str) -> Option<OrderSort> {
        OrderSort::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// The names, for messages and the OpenAPI enum.
    pub fn names() -> Vec<&'static str> {
        OrderSort::ALL.map(OrderSort::as_str).to_vec()
    }

    /// The order of two rows of different ledgers (a cluster's
    /// partitions, which hold disjoint shops), each with its paid instant
    /// (see [`Ledger::order_rows_head`]): by this sort, ties by the default
    /// order (shop id, then order id), the order one ledger holding both
    /// would give them.
    pub fn compare(self, a: (UnixNs, &OrderRow), b: (UnixNs, &OrderRow)) -> Ordering {
        self.by_key(a, b)
            .then_with(|| a.1.shop_id.cmp(&b.1.shop_id))
            .then_with(|| a.1.order_id.cmp(&b.1.order_id))
    }

    /// The order of two rows by this sort's key alone.
    fn by_key(
        self,
        (a_paid_at, a): (UnixNs, &OrderRow),
        (b_paid_at, b): (UnixNs, &OrderRow),
    ) -> Ordering {
        let status = |row: &OrderRow| {
            OrderStatus::ALL
                .iter()
                .position(|s| *s == row.status)
                .unwrap_or(usize::MAX)
        };
        match self {
            OrderSort::Order => Ordering::Equal,
            OrderSort::Paid => a_paid_at.cmp(&b_paid_at),
            OrderSort::Charged => b.charged_fen.cmp(&a.charged_fen),
            OrderSort::Judgments => b.judgments.cmp(&a.judgments),
            OrderSort::Status => status(a).cmp(&status(b)),
        }
    }
}

/// The settle days of a shop on which R5's cap cut something: a deduction
/// there is waived in full or in part.
fn capped_days(facts: &[OrderFacts<'_>]) -> BTreeSet<Day> {
    facts
        .iter()
        .flat_map(|f| &f.deductions)
        .filter(|d| d.waived_fen > 0)
        .map(|d| d.settle_day)
        .collect()
}

/// The instants of an order's events, its `paid` first when it has come.
fn order_instants(rec: &OrderRec) -> impl Iterator<Item = UnixNs> + '_ {
    rec.paid
        .map(|paid| paid.at)
        .into_iter()
        .chain(rec.events.as_slice().iter().map(|e| e.at))
}

/// Whether `filter` keeps an order of a shop whose capped days are `capped`.
fn keeps(
    filter: &RowFilter,
    facts: &OrderFacts<'_>,
    as_of: UnixNs,
    capped: &BTreeSet<Day>,
) -> bool {
    filter.keeps_paid_at(facts.view.paid.at)
        && (!filter.violating || facts.standing > 0)
        && (!filter.closure_review || facts.flagged)
        && filter.status.is_none_or(|s| s == facts.view.status(as_of))
        && (!filter.capped_day
            // A revoked or pending deduction takes no part in the day's cap.
            || facts
                .deductions
                .iter()
                .any(|d| d.charged_fen + d.waived_fen > 0 && capped.contains(&d.settle_day)))
}

impl Ledger {
    /// Every order existing as of `as_of`, by shop id then order id, as
    /// export rows kept by `keep`.
    pub fn order_rows(
        &self,
        as_of: UnixNs,
        mut keep: impl FnMut(&OrderRow) -> bool,
    ) -> Vec<OrderRow> {
        let mut rows = Vec::new();
        let collect = |row: OrderRow| {
            if keep(&row) {
                rows.push(row);
            }
            Ok::<(), std::convert::Infallible>(())
        };
        // Collecting cannot fail.
        let _ = self.each_order_row(as_of, None, RowFilter::default(), collect);
        rows
    }

    /// The rows `filter` keeps of [`Ledger::order_rows`], one at a time,
    /// computed one shop at a time, so that an export of millions of orders
    /// holds one shop's rows at most; only the rows of shop `shop_id` when
    /// given (none for an unknown shop), without computing any other shop.
    /// A row the filter drops is never formatted. Stops at the first error
    /// of `each`.
    pub fn each_order_row<E>(
        &self,
        as_of: UnixNs,
        shop_id: Option<&str>,
        filter: RowFilter,
        mut each: impl FnMut(OrderRow) -> Result<(), E>,
    ) -> Result<(), E> {
        self.each_row_paid_at(as_of, shop_id, filter, |_, row| each(row))
    }

    /// [`Ledger::each_order_row`], with each row's paid instant.
    fn each_row_paid_at<E>(
        &self,
        as_of: UnixNs,
        shop_id: Option<&str>,
        filter: RowFilter,
        mut each: impl FnMut(UnixNs, OrderRow) -> Result<(), E>,
    ) -> Result<(), E> {
        for shop in self.shops_asked(shop_id) {
            let tally = self.tally(shop, as_of, FactsKept::All);
            let capped = if filter.capped_day {
                capped_days(&tally.facts)
            } else {
                BTreeSet::new()
            };
            for facts in facts_by_order_id(&tally) {
                if keeps(&filter, facts, as_of, &capped) {
                    each(facts.view.paid.at, self.row(facts, as_of))?;
                }
            }
        }
        Ok(())
    }

    /// The shop `shop_id` (none when unknown), or every shop by id.
    pub(super) fn shops_asked(&self, shop_id: Option<&str>) -> Vec<u32> {
        match shop_id {
            Some(shop_id) => self.shop_ids.find(shop_id).into_iter().collect(),
            None => self.sorted_shops(),
        }
    }

    /// How many rows [`Ledger::each_order_row`] would give, shop by shop (in
    /// its order, with the shop's id), that `filter` keeps. Why: a page of
    /// rows across a platform needs the count of all matching rows and the
    /// rows of only a shop or two; a row's charges (the walk of the shop's
    /// daily cap), ids and formatted instants cost several times its status,
    /// and a million of them took most of a second. Without a filter an
    /// order is only checked to exist; an order that no judgment reaches is
    /// not derived for `violating` or `closure_review`. Only `capped_day`
    /// needs the cap.
    pub fn count_order_rows(
        &self,
        as_of: UnixNs,
        shop_id: Option<&str>,
        filter: RowFilter,
    ) -> Vec<(&str, usize)> {
        self.shops_asked(shop_id)
            .into_iter()
            .map(|shop| {
                (
                    self.shop_ids.get(shop),
                    self.count_kept(shop, as_of, &filter),
                )
            })
            .collect()
    }

    /// The page of the rows `filter` keeps (of shop `shop_id`, or of every
    /// shop) sorted by `sort`, from `offset`, at most `limit` rows, with
    /// their count over all pages. Only the page's rows are computed and
    /// formatted: the orders before it are only checked against the filter
    /// and keyed by the sort, through each shop's index of its orders by
    /// id (see the module `order_index`); in the default order, the shops
    /// before the page are only counted.
    pub fn order_rows_page(
        &self,
        as_of: UnixNs,
        shop_id: Option<&str>,
        filter: RowFilter,
        sort: OrderSort,
        offset: usize,
        limit: usize,
    ) -> RowsPage {
        let (rows, total) = self.indexed_rows_page(as_of, shop_id, filter, sort, offset, limit);
        RowsPage {
            rows: rows.into_iter().map(|(_, row)| row).collect(),
            total,
        }
    }

    /// The first `end` rows `filter` keeps by `sort`, each with its paid
    /// instant, and the count of all the rows it keeps: a cluster
    /// partition's share of a page, which a node merges with
    /// [`OrderSort::compare`] into the page one ledger would give.
    pub fn order_rows_head(
        &self,
        as_of: UnixNs,
        shop_id: Option<&str>,
        filter: RowFilter,
        sort: OrderSort,
        end: usize,
    ) -> (Vec<(UnixNs, OrderRow)>, usize) {
        self.indexed_rows_page(as_of, shop_id, filter, sort, 0, end)
    }

    /// The first and the last instant (`at`) of the events applied: paid
    /// orders, their other events (also of orders whose `paid` has not
    /// come) and deposit top-ups; of shop `shop_id` only when given (its
    /// orders and top-ups); `None` when there is none. What the dashboard's
    /// "data from … to …" says, and the as-of it defaults to when the data
    /// lies in the past. One pass over the orders and shops.
    pub fn event_span(&self, shop_id: Option<&str>) -> Option<(UnixNs, UnixNs)> {
        let mut instants: Box<dyn Iterator<Item = UnixNs> + '_> = match shop_id {
            None => Box::new(
                self.orders
                    .iter()
                    .flat_map(order_instants)
                    .chain(self.shops.iter().flat_map(|s| s.topups.iter().map(|t| t.0))),
            ),
            Some(shop_id) => {
                let index = self.shop_ids.find(shop_id)?;
                let shop = &self.shops[index as usize];
                Box::new(
                    shop.orders
                        .iter()
                        .flat_map(move |&o| order_instants(&self.orders[o as usize]))
                        .chain(shop.topups.iter().map(|t| t.0)),
                )
            }
        };
        let first = instants.next()?;
        Some(instants.fold((first, first), |(lo, hi), at| (lo.min(at), hi.max(at))))
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{at, folded, paid, revoked, shipped, topped_up};
    use super::*;
    use crate::policy::Policy;
    use crate::report::OrderStatus;

    /// Order ids of the rows `filter` keeps, checked against the count and
    /// a page of all of them.
    fn kept(ledger: &Ledger, hours: i64, filter: RowFilter) -> Vec<String> {
        let mut ids = Vec::new();
        let _ = ledger.each_order_row(at(hours), None, filter, |row| {
            ids.push(row.order_id);
            Ok::<(), ()>(())
        });
        let counted: usize = ledger
            .count_order_rows(at(hours), None, filter)
            .iter()
            .map(|(_, n)| n)
            .sum();
        assert_eq!(counted, ids.len(), "count of {filter:?}");
        let page = ledger.order_rows_page(at(hours), None, filter, OrderSort::Order, 0, 1000);
        assert_eq!(page.total, ids.len());
        let paged: Vec<String> = page.rows.into_iter().map(|r| r.order_id).collect();
        assert_eq!(paged, ids);
        ids
    }

    /// A policy of one deduction an order whose daily cap holds one
    /// deduction: the second deduction of a settle day is waived (R5).
    fn one_deduction_a_day() -> Policy {
        Policy {
            deduction_fen: 1_000,
            max_deductions_per_order: 1,
            shop_daily_cap_fen: 1_000,
            ..Policy::default()
        }
    }

    /// The ids of every row sorted by `sort`, walked in pages of `size`.
    fn walked(ledger: &Ledger, hours: i64, sort: OrderSort, size: usize) -> Vec<String> {
        let mut ids = Vec::new();
        loop {
            let page = ledger.order_rows_page(
                at(hours),
                None,
                RowFilter::default(),
                sort,
                ids.len(),
                size,
            );
            let got = page.rows.len();
            ids.extend(page.rows.into_iter().map(|r| r.order_id));
            assert_eq!(page.total, 7, "{sort:?}");
            if got < size {
                return ids;
            }
        }
    }

    #[test]
    fn heads_of_ledgers_holding_disjoint_shops_merge_into_one_ledgers_pages() {
        // What a cluster node does with its partitions: each ledger holds
        // some shops; their heads, merged by `OrderSort::compare`, give the
        // page of one ledger holding every shop, for every sort and page.
        let events = [
            paid("O1", "S2", 0),
            paid("O2", "S1", 1),
            paid("O3", "S1", 2),
            shipped("O3", "SF3", 3),
            paid("O4", "S2", 3),
            shipped("O4", "SF4", 4),
            paid("O5", "S3", 50),
            paid("O6", "S2", 1),
            paid("O7", "S1", 0),
            paid("O8", "S3", 0),
            paid("O9", "S4", 2),
        ];
        let one = folded(one_deduction_a_day(), &events);
        let parts: Vec<Ledger> = [&["S1", "S3"][..], &["S2"], &["S4", "S5"]]
            .iter()
            .map(|shops| {
                let mine: Vec<crate::event::Event> = events
                    .iter()
                    .filter(|e| {
                        let id = e.order_id().unwrap_or_default();
                        let shop = events.iter().find_map(|p| match &p.kind {
                            crate::event::EventKind::Paid {
                                order_id, shop_id, ..
                            } if order_id == id => Some(shop_id.as_str()),
                            _ => None,
                        });
                        shop.is_some_and(|s| shops.contains(&s))
                    })
                    .cloned()
                    .collect();
                folded(one_deduction_a_day(), &mine)
            })
            .collect();
        let hours = 24 * 10;
        for sort in OrderSort::ALL {
            for (offset, limit) in [(0, 100), (0, 3), (2, 4), (5, 5), (10, 3), (11, 1)] {
                let want =
                    one.order_rows_page(at(hours), None, RowFilter::default(), sort, offset, limit);
                let mut rows = Vec::new();
                let mut total = 0;
                for part in &parts {
                    let (head, count) = part.order_rows_head(
                        at(hours),
                        None,
                        RowFilter::default(),
                        sort,
                        offset + limit,
                    );
                    assert!(head.len() <= offset + limit);
                    rows.extend(head);
                    total += count;
                }
                rows.sort_by(|a, b| sort.compare((a.0, &a.1), (b.0, &b.1)));
                let got: Vec<OrderRow> = rows
                    .into_iter()
                    .skip(offset)
                    .take(limit)
                    .map(|(_, row)| row)
                    .collect();
                assert_eq!(total, want.total, "{sort:?}");
                assert_eq!(got, want.rows, "{sort:?} from {offset}, {limit} rows");
            }
        }
    }

    #[test]
    fn each_sort_orders_by_its_key_then_by_shop_and_order_id_in_any_page_size() {
        // Two shops; O3 and O4 are shipped (never judged), the rest time
        // out and are judged and charged; O5 is paid last. The cap holds
        // one deduction a day, so same-day deductions of a shop are waived
        // and the charged money differs between the judged orders.
        let ledger = folded(
            one_deduction_a_day(),
            &[
                paid("O1", "S2", 0),
                paid("O2", "S1", 1),
                paid("O3", "S1", 2),
                shipped("O3", "SF3", 3),
                paid("O4", "S2", 3),
                shipped("O4", "SF4", 4),
                paid("O5", "S1", 50),
                paid("O6", "S2", 1),
                paid("O7", "S1", 0),
            ],
        );
        let hours = 24 * 10;
        let all = ledger.order_rows(at(hours), |_| true);
        assert_eq!(all.len(), 7);
        let key = |sort: OrderSort, row: &OrderRow| -> (i64, String) {
            match sort {
                OrderSort::Order => (0, String::new()),
                OrderSort::Paid => (0, row.paid_at.clone()),
                OrderSort::Charged => (-row.charged_fen, String::new()),
                OrderSort::Judgments => (-(row.judgments as i64), String::new()),
                OrderSort::Status => (0, row.status.as_str().to_string()),
            }
        };
        // The fixture's statuses, charges and judgments must differ, or the
        // sorts would not be told apart.
        assert!(all.iter().any(|r| r.charged_fen > 0) && all.iter().any(|r| r.charged_fen == 0));
        assert!(all.iter().any(|r| r.judgments > 0) && all.iter().any(|r| r.judgments == 0));
        for sort in OrderSort::ALL {
            // The default walk is by shop then order id; a stable sort by
            // the key alone keeps that order among ties. Status sorts by
            // OrderStatus::ALL's order, which the names of this fixture
            // (awaiting_shipment < shipped) also follow.
            let mut want = all.clone();
            want.sort_by_key(|row| key(sort, row));
            let want: Vec<String> = want.into_iter().map(|r| r.order_id).collect();
            for size in [1, 2, 3, 7, 100] {
                assert_eq!(
                    walked(&ledger, hours, sort, size),
                    want,
                    "{sort:?} in pages of {size}"
                );
            }
            assert_eq!(OrderSort::parse(sort.as_str()), Some(sort));
        }
        // O7 (S1) and O1 (S2) are paid at the same instant: the shop decides.
        assert_eq!(
            walked(&ledger, hours, OrderSort::Paid, 100)[..2],
            ["O7", "O1"]
        );
        assert_eq!(OrderSort::parse("charged_fen"), None);
    }

    #[test]
    fn the_paid_range_includes_its_start_and_excludes_its_end() {
        let ledger = folded(
            Policy::default(),
            &[
                paid("O1", "S1", 0),
                paid("O2", "S1", 2),
                paid("O3", "S2", 4),
            ],
        );
        let range = |from: i64, before: i64| RowFilter {
            paid_from: Some(at(from)),
            paid_before: Some(at(before)),
            ..RowFilter::default()
        };
        assert_eq!(kept(&ledger, 10, range(0, 4)), ["O1", "O2"]);
        assert_eq!(kept(&ledger, 10, range(1, 5)), ["O2", "O3"]);
        assert!(kept(&ledger, 10, range(2, 2)).is_empty());
        // An order paid after as_of does not exist, whatever the range.
        assert_eq!(kept(&ledger, 3, range(0, 10)), ["O1", "O2"]);
    }

    #[test]
    fn a_date_as_the_end_includes_its_whole_day() {
        let offset = Policy::default().utc_offset;
        let end = RowFilter::paid_to_end("2026-03-07", offset).unwrap();
        let next_day = UnixNs::parse_asked("2026-03-08", offset).unwrap();
        assert_eq!(end, next_day);
        let instant = UnixNs::parse_asked("2026-03-07T10:00:00+08:00", offset).unwrap();
        let end = RowFilter::paid_to_end("2026-03-07T10:00:00+08:00", offset).unwrap();
        assert_eq!(end, UnixNs(instant.0 + 1));
        assert!(RowFilter::paid_to_end("2026-13-01", offset).is_err());
    }

    #[test]
    fn capped_days_keep_every_order_charged_or_waived_on_a_day_the_cap_cut() {
        // O1 and O2 are judged the same day (their deadlines 1 h apart); the
        // cap holds one deduction, so that day is capped: O1 charged, O2
        // waived, and both kept. O3, judged alone on a later day, is not.
        let ledger = folded(
            one_deduction_a_day(),
            &[
                paid("O1", "S1", 0),
                paid("O2", "S1", 1),
                paid("O3", "S1", 30),
            ],
        );
        let hours = 24 * 10;
        let capped = RowFilter {
            capped_day: true,
            ..RowFilter::default()
        };
        let report = ledger.shop_report("S1", at(hours), true).unwrap();
        let waived: i128 = report.waived_fen;
        assert!(waived > 0, "the fixture must hit the cap: {report:?}");
        let ids = kept(&ledger, hours, capped);
        assert!(ids.contains(&"O1".to_string()) && ids.contains(&"O2".to_string()));
        // Every kept order has a deduction on a day with money waived, and
        // every order with such a deduction is kept.
        let capped_dates: BTreeSet<&str> = report
            .deductions
            .iter()
            .flatten()
            .filter(|d| d.waived_fen > 0)
            .map(|d| d.settle_date.as_str())
            .collect();
        let expected: BTreeSet<&str> = report
            .deductions
            .iter()
            .flatten()
            .filter(|d| d.charged_fen + d.waived_fen > 0)
            .filter(|d| capped_dates.contains(d.settle_date.as_str()))
            .map(|d| d.order_id.as_str())
            .collect();
        let got: BTreeSet<&str> = ids.iter().map(String::as_str).collect();
        assert_eq!(got, expected);
        // Without the cap nothing is capped.
        let uncapped = folded(
            Policy::default(),
            &[paid("O1", "S1", 0), paid("O2", "S1", 1)],
        );
        assert!(kept(&uncapped, hours, capped).is_empty());
    }

    #[test]
    fn closure_review_keeps_the_flagged_orders_only_and_revoking_lifts_it() {
        let events = [
            paid("O1", "S1", 0),
            paid("O2", "S1", 0),
            shipped("O2", "SF1", 1),
            topped_up("S1", 100_000, 0),
        ];
        let ledger = folded(Policy::default(), &events);
        let flagged = RowFilter {
            closure_review: true,
            ..RowFilter::default()
        };
        // Long after every judgment and the grace: O1 is flagged (R7).
        let hours = 24 * 6;
        let report = ledger.order_report("O1", at(hours)).unwrap();
        assert!(report.closure_review, "the fixture must flag O1");
        assert_eq!(kept(&ledger, hours, flagged), ["O1"]);
        // Before its final judgment nothing is flagged.
        assert!(kept(&ledger, 1, flagged).is_empty());
        // With its last judgment revoked before the flag, O1 is not flagged.
        let judgments = report.judgments.len() as u8;
        let mut events = events.to_vec();
        events.push(revoked("O1", judgments, 2));
        let ledger = folded(Policy::default(), &events);
        assert!(!ledger.order_report("O1", at(hours)).unwrap().closure_review);
        assert!(kept(&ledger, hours, flagged).is_empty());
    }

    #[test]
    fn filters_combine_and_status_and_violating_still_hold() {
        let ledger = folded(
            Policy::default(),
            &[
                paid("O1", "S1", 0),
                paid("O2", "S1", 0),
                shipped("O2", "SF1", 1),
            ],
        );
        let hours = 24 * 6;
        let shipped_only = RowFilter {
            status: Some(OrderStatus::Shipped),
            ..RowFilter::default()
        };
        assert_eq!(kept(&ledger, hours, shipped_only), ["O2"]);
        let violating = RowFilter {
            violating: true,
            ..RowFilter::default()
        };
        assert_eq!(kept(&ledger, hours, violating), ["O1"]);
        let both = RowFilter {
            violating: true,
            closure_review: true,
            paid_before: Some(at(0)),
            ..RowFilter::default()
        };
        assert!(kept(&ledger, hours, both).is_empty());
        assert_eq!(kept(&ledger, hours, RowFilter::default()), ["O1", "O2"]);
    }

    #[test]
    fn the_event_span_covers_paid_other_events_and_top_ups() {
        assert_eq!(folded(Policy::default(), &[]).event_span(None), None);
        let ledger = folded(
            Policy::default(),
            &[
                paid("O1", "S1", 5),
                shipped("O1", "SF1", 9),
                topped_up("S2", 100, 2),
            ],
        );
        assert_eq!(ledger.event_span(None), Some((at(2), at(9))));
        assert_eq!(ledger.event_span(Some("S1")), Some((at(5), at(9))));
        assert_eq!(ledger.event_span(Some("S2")), Some((at(2), at(2))));
        assert_eq!(ledger.event_span(Some("S9")), None);
        // An order event whose paid has not come counts too.
        let ledger = folded(
            Policy::default(),
            &[shipped("O9", "SF1", 1), paid("O1", "S1", 3)],
        );
        assert_eq!(ledger.event_span(None), Some((at(1), at(3))));
    }
}
