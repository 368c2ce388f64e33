//! The policy: the parameters of RULES.md, with their defaults.

use serde::{Deserialize, Serialize};

use crate::time::UtcOffset;

/// Upper bounds that keep every computation small and every sum inside `i64`.
/// A policy outside them is a user error, not a panic later on.
pub mod limits {
    /// R3: judgments per order.
    pub const MAX_JUDGMENTS_PER_ORDER: u8 = 10;
    /// Hours in any window (about 100 years).
    pub const MAX_HOURS: i64 = 24 * 366 * 100;
    /// A single deduction or a daily cap, in fen (10^12 fen = 10 billion yuan).
    pub const MAX_AMOUNT_FEN: i64 = 1_000_000_000_000;
}

/// The parameters of the rules (RULES.md, "Policy"). Every field has the
/// default of the rule book; a JSON file may override any of them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    /// Calendar days (R4, R5) are days in this offset.
    #[serde(with = "offset_text")]
    pub utc_offset: UtcOffset,
    /// R1: hours from payment to the deadline when no `ship_by` is given.
    pub ship_window_hours: i64,
    /// R3: hours between two judgments.
    pub rejudge_interval_hours: i64,
    /// R3: judgments per order.
    pub max_judgments_per_order: u8,
    /// R4: the deduction of one judgment.
    pub deduction_fen: i64,
    /// R4: judgments `k <= this` carry a deduction.
    pub max_deductions_per_order: u8,
    /// R5: the most a shop is charged on one settle date.
    pub shop_daily_cap_fen: i64,
    /// R6: the judgment that bans the product.
    pub ban_at_judgment: u8,
    /// R7: hours after the final judgment before the shop is flagged.
    pub closure_grace_hours: i64,
    /// R8: days after payment at which an unresolved order is closed.
    pub auto_close_days: i64,
    /// R10: the rating window.
    pub rating_window_days: i64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            utc_offset: UtcOffset::CHINA,
            ship_window_hours: 48,
            rejudge_interval_hours: 24,
            max_judgments_per_order: 3,
            deduction_fen: 1000,
            max_deductions_per_order: 2,
            shop_daily_cap_fen: 50_000,
            ban_at_judgment: 3,
            closure_grace_hours: 24,
            auto_close_days: 150,
            rating_window_days: 30,
        }
    }
}

/// Why a policy file was refused.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// Not JSON, an unknown key, or a value of the wrong type.
    #[error("{0} (known keys: utc_offset, ship_window_hours, rejudge_interval_hours, max_judgments_per_order, deduction_fen, max_deductions_per_order, shop_daily_cap_fen, ban_at_judgment, closure_grace_hours, auto_close_days, rating_window_days)")]
    Json(#[from] serde_json::Error),
    /// A value outside its range.
    #[error("policy parameter `{name}` is {value}: {expected}")]
    OutOfRange {
        /// The parameter.
        name: &'static str,
        /// Its value, as text.
        value: String,
        /// What it must be.
        expected: &'static str,
    },
}

impl Policy {
    /// Reads a policy from JSON text: the defaults, overridden by the keys given.
    /// Unknown keys are an error.
    pub fn from_json(text: &str) -> Result<Policy, PolicyError> {
        let policy: Policy = serde_json::from_str(text)?;
        policy.validate()?;
        Ok(policy)
    }

    /// Checks every parameter against its range.
    pub fn validate(&self) -> Result<(), PolicyError> {
        fn range(
            name: &'static str,
            value: i64,
            low: i64,
            high: i64,
            expected: &'static str,
        ) -> Result<(), PolicyError> {
            if value < low || value > high {
                return Err(PolicyError::OutOfRange {
                    name,
                    value: value.to_string(),
                    expected,
                });
            }
            Ok(())
        }
        use limits::*;
        range(
            "ship_window_hours",
            self.ship_window_hours,
            0,
            MAX_HOURS,
            "0 to 876,600 hours",
        )?;
        range(
            "rejudge_interval_hours",
            self.rejudge_interval_hours,
            1,
            MAX_HOURS,
            "1 to 876,600 hours",
        )?;
        range(
            "max_judgments_per_order",
            self.max_judgments_per_order.into(),
            1,
            MAX_JUDGMENTS_PER_ORDER.into(),
            "1 to 10",
        )?;
        range(
            "deduction_fen",
            self.deduction_fen,
            0,
            MAX_AMOUNT_FEN,
            "0 to 10^12 fen",
        )?;
        range(
            "max_deductions_per_order",
            self.max_deductions_per_order.into(),
            0,
            self.max_judgments_per_order.into(),
            "0 to max_judgments_per_order",
        )?;
        range(
            "shop_daily_cap_fen",
            self.shop_daily_cap_fen,
            0,
            MAX_AMOUNT_FEN,
            "0 to 10^12 fen",
        )?;
        range(
            "ban_at_judgment",
            self.ban_at_judgment.into(),
            1,
            self.max_judgments_per_order.into(),
            "1 to max_judgments_per_order",
        )?;
        range(
            "closure_grace_hours",
            self.closure_grace_hours,
            0,
            MAX_HOURS,
            "0 to 876,600 hours",
        )?;
        range(
            "auto_close_days",
            self.auto_close_days,
            1,
            MAX_HOURS / 24,
            "1 to 36,600 days",
        )?;
        range(
            "rating_window_days",
            self.rating_window_days,
            1,
            MAX_HOURS / 24,
            "1 to 36,600 days",
        )?;
        Ok(())
    }
}

mod offset_text {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::time::UtcOffset;

    pub fn serialize<S: Serializer>(offset: &UtcOffset, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&offset.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<UtcOffset, D::Error> {
        let text = String::deserialize(d)?;
        UtcOffset::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "utc_offset `{text}` is not an offset like `+08:00` or `-05:00`"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_object_is_the_default() {
        assert_eq!(Policy::from_json("{}").unwrap(), Policy::default());
    }

    #[test]
    fn overrides_one_key() {
        let p = Policy::from_json(r#"{"shop_daily_cap_fen": 50500}"#).unwrap();
        assert_eq!(p.shop_daily_cap_fen, 50500);
        assert_eq!(p.deduction_fen, 1000);
    }

    #[test]
    fn unknown_key_is_an_error_naming_it() {
        let err = Policy::from_json(r#"{"daily_cap": 1}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("daily_cap"), "{err}");
    }

    #[test]
    fn out_of_range_is_an_error() {
        let err = Policy::from_json(r#"{"ban_at_judgment": 4}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("ban_at_judgment"), "{err}");
        assert!(Policy::from_json(r#"{"utc_offset": "+25:00"}"#).is_err());
        assert_eq!(
            Policy::from_json(r#"{"utc_offset": "-05:00"}"#)
                .unwrap()
                .utc_offset
                .seconds,
            -18000
        );
    }
}
