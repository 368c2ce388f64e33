//! The operator's worst shops: the shop list sorted by judgments, charged
//! money or timeout rate, among shops with enough orders for the figure to
//! mean something. The CLI (`penalty shops --sort`) and the server
//! (`GET /shops?sort=`) both rank through [`ShopRanking::apply`], so that the
//! two lists are the same list.

use std::cmp::Ordering;

use crate::report::ShopReport;

/// What a shop list is sorted by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ShopSort {
    /// By shop id, ascending: CLI.md's order for `penalty shops`.
    #[default]
    Shop,
    /// Standing judgments, most first.
    Judgments,
    /// Charged money, most first.
    Charged,
    /// Timeout rate over the rating window (R10), highest first; shops with
    /// no due order (no rate) come last.
    Rate,
}

impl ShopSort {
    /// Every sort, as written in `--sort` and `sort=`.
    pub const ALL: [ShopSort; 4] = [
        ShopSort::Shop,
        ShopSort::Judgments,
        ShopSort::Charged,
        ShopSort::Rate,
    ];

    /// The name used on the command line and in the query string.
    pub fn as_str(self) -> &'static str {
        match self {
            ShopSort::Shop => "shop",
            ShopSort::Judgments => "judgments",
            ShopSort::Charged => "charged",
            ShopSort::Rate => "rate",
        }
    }

    /// Parses a sort name.
    pub fn parse(text: &str) -> Option<ShopSort> {
        ShopSort::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// The names, for messages: `shop, judgments, charged, rate`.
    pub fn names() -> String {
        ShopSort::ALL.map(ShopSort::as_str).join(", ")
    }

    /// The order of two shops: worst first by the key, then by shop id, so
    /// that ties always come out the same way.
    fn compare(self, a: &ShopReport, b: &ShopReport) -> Ordering {
        let by_key = match self {
            ShopSort::Shop => Ordering::Equal,
            ShopSort::Judgments => b.judgments.cmp(&a.judgments),
            ShopSort::Charged => b.charged_fen.cmp(&a.charged_fen),
            ShopSort::Rate => match (a.rating.timeout_rate, b.rating.timeout_rate) {
                (Some(a), Some(b)) => b.total_cmp(&a),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => Ordering::Equal,
            },
        };
        by_key.then_with(|| a.shop_id.cmp(&b.shop_id))
    }
}

/// A ranking of shops: which shops count and in what order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShopRanking {
    /// The order.
    pub sort: ShopSort,
    /// Only shops with at least this many paid orders as of the instant
    /// (a rate over two orders says little).
    pub min_orders: u64,
}

impl ShopRanking {
    /// The shops that count, in the ranking's order.
    pub fn apply(&self, mut shops: Vec<ShopReport>) -> Vec<ShopReport> {
        shops.retain(|shop| shop.orders >= self.min_orders);
        shops.sort_by(|a, b| self.sort.compare(a, b));
        shops
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::RatingReport;

    fn shop(
        id: &str,
        orders: u64,
        judgments: u64,
        charged_fen: i128,
        rate: Option<f64>,
    ) -> ShopReport {
        ShopReport {
            shop_id: id.into(),
            as_of: "2026-03-07T00:00:00+08:00".into(),
            orders,
            judgments,
            violating_orders: 0,
            charged_fen,
            waived_fen: 0,
            pending_fen: 0,
            deposit_balance_fen: 0,
            booked_fen: 0,
            deductions: None,
            banned_products: Vec::new(),
            closure_review: Vec::new(),
            rating: RatingReport {
                window_days: 30,
                due_orders: 0,
                timed_out_orders: 0,
                timeout_rate: rate,
                timeout_judgments: 0,
            },
        }
    }

    fn ids(shops: &[ShopReport]) -> Vec<&str> {
        shops.iter().map(|s| s.shop_id.as_str()).collect()
    }

    fn sample() -> Vec<ShopReport> {
        vec![
            shop("S4", 10, 3, 3000, Some(0.5)),
            shop("S1", 1, 9, 9000, Some(1.0)),
            shop("S3", 10, 3, 5000, None),
            shop("S2", 20, 5, 3000, Some(0.5)),
            shop("S5", 10, 0, 0, Some(0.0)),
        ]
    }

    #[test]
    fn each_sort_puts_the_worst_first_and_breaks_ties_by_shop_id() {
        let cases = [
            (ShopSort::Shop, vec!["S1", "S2", "S3", "S4", "S5"]),
            (ShopSort::Judgments, vec!["S1", "S2", "S3", "S4", "S5"]),
            (ShopSort::Charged, vec!["S1", "S3", "S2", "S4", "S5"]),
            (ShopSort::Rate, vec!["S1", "S2", "S4", "S5", "S3"]),
        ];
        for (sort, expected) in cases {
            let ranked = ShopRanking {
                sort,
                min_orders: 0,
            }
            .apply(sample());
            assert_eq!(ids(&ranked), expected, "{}", sort.as_str());
        }
    }

    #[test]
    fn min_orders_leaves_out_small_shops() {
        let ranked = ShopRanking {
            sort: ShopSort::Rate,
            min_orders: 10,
        }
        .apply(sample());
        assert_eq!(ids(&ranked), vec!["S2", "S4", "S5", "S3"]);
        let none = ShopRanking {
            sort: ShopSort::Rate,
            min_orders: 21,
        }
        .apply(sample());
        assert!(none.is_empty());
    }

    #[test]
    fn the_ranking_does_not_depend_on_the_input_order() {
        for sort in ShopSort::ALL {
            let ranking = ShopRanking {
                sort,
                min_orders: 2,
            };
            let forward = ranking.apply(sample());
            let mut reversed = sample();
            reversed.reverse();
            assert_eq!(ranking.apply(reversed), forward, "{}", sort.as_str());
        }
    }

    #[test]
    fn names_round_trip() {
        for sort in ShopSort::ALL {
            assert_eq!(ShopSort::parse(sort.as_str()), Some(sort));
        }
        assert_eq!(ShopSort::parse("worst"), None);
        assert_eq!(ShopSort::names(), "shop, judgments, charged, rate");
    }
}
