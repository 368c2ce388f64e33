//! The policy: the parameters of RULES.md, with their defaults, and their
//! versions over time (R15).
//!
//! A [`Policy`] is version 0, in force from the beginning of time, and holds
//! the later versions in [`Policy::later`], each in force from its
//! `effective_from`. Every rule asks the version it needs with
//! [`Policy::at`]: an order the one at its `paid.at`, a settle date's cap the
//! one at the date's start, the rating window the one at `as_of`. With a single
//! version (every policy without `versions`) `at` is one branch, so the rules
//! cost what they did before versions existed.

use serde::{Deserialize, Serialize};

use crate::labels::{Lang, Phrase};
use crate::time::{UnixNs, UtcOffset};

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
    /// R15: the later versions, in strictly increasing `effective_from`, each
    /// with every parameter filled in (inherited from the one before) and an
    /// empty `later`. Empty for a single-version policy.
    pub later: Vec<PolicyVersion>,
}

/// A later version of the policy (R15): its parameters are in force for
/// instants `>= effective_from`, until the next version's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyVersion {
    /// When it comes into force.
    pub effective_from: UnixNs,
    /// Every parameter (its `later` is empty; `utc_offset` is V0's).
    pub policy: Policy,
}

/// The keys a version object may hold (besides `effective_from`).
const KEYS: [&str; 11] = [
    "utc_offset",
    "ship_window_hours",
    "rejudge_interval_hours",
    "max_judgments_per_order",
    "deduction_fen",
    "max_deductions_per_order",
    "shop_daily_cap_fen",
    "ban_at_judgment",
    "closure_grace_hours",
    "auto_close_days",
    "rating_window_days",
];

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
            later: Vec::new(),
        }
    }
}

/// Why a policy file was refused.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The file is valid JSON but not an object (an array, a number, …):
    /// parameters are named, never given by position.
    #[error("a policy must be a JSON object such as {{\"shop_daily_cap_fen\": 50000}} or {{\"versions\": [{{}}, {{\"effective_from\": \"2026-03-05T00:00:00+08:00\", \"deduction_fen\": 2000}}]}}, not {0}")]
    NotAnObject(&'static str),
    /// A problem with one version of a versioned policy (R15).
    #[error("{}", self.message(Lang::En))]
    Version {
        /// Its position in `versions`, from 0.
        index: usize,
        /// What is wrong (its message says how to fix it).
        problem: VersionProblem,
    },
    /// An unknown key or a value out of range in one version (R15).
    #[error("{}", self.message(Lang::En))]
    VersionParameter {
        /// Its position in `versions`, from 0.
        index: usize,
        /// The problem with the parameter (not a `source`: the message
        /// holds it, in the caller's language).
        problem: Box<PolicyError>,
    },
    /// Not JSON, or a value of the wrong type.
    #[error("{}", self.message(Lang::En))]
    Json(#[from] serde_json::Error),
    /// A key that is not a parameter.
    #[error("{}", self.message(Lang::En))]
    UnknownKey(String),
    /// A value outside its range.
    #[error("{}", self.message(Lang::En))]
    OutOfRange {
        /// The parameter.
        name: &'static str,
        /// Its value, as text.
        value: String,
        /// What it must be, its place `{0}` filled with `low`.
        expected: Phrase,
        /// The lowest value allowed.
        low: i64,
    },
}

/// What is wrong with one version of a versioned policy (R15), worded in
/// either language by [`VersionProblem::message`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionProblem {
    /// A key beside `versions` (named).
    BesideVersions(String),
    /// `versions` holds nothing.
    NoVersions,
    /// A version that is not an object (what it is instead).
    NotAnObject(Phrase),
    /// V0 with an `effective_from`.
    EffectiveFromInV0,
    /// A later version without one.
    MissingEffectiveFrom,
    /// An `effective_from` that is not an instant (its JSON).
    NotAnInstant(String),
    /// An `effective_from` not after the previous version's.
    NotLater,
    /// `utc_offset` in a later version.
    OffsetAfterV0,
}

impl VersionProblem {
    /// The problem and its fix in `lang`.
    pub fn message(&self, lang: Lang) -> String {
        match self {
            VersionProblem::BesideVersions(key) => Phrase::PolicyBesideVersions.fill(lang, &[key]),
            VersionProblem::NoVersions => Phrase::PolicyNoVersions.text(lang).into(),
            VersionProblem::NotAnObject(kind) => {
                Phrase::PolicyVersionNotAnObject.fill(lang, &[&kind.text(lang)])
            }
            VersionProblem::EffectiveFromInV0 => Phrase::PolicyEffectiveFromInV0.text(lang).into(),
            VersionProblem::MissingEffectiveFrom => {
                Phrase::PolicyMissingEffectiveFrom.text(lang).into()
            }
            VersionProblem::NotAnInstant(value) => {
                Phrase::PolicyEffectiveFromNotAnInstant.fill(lang, &[value])
            }
            VersionProblem::NotLater => Phrase::PolicyEffectiveFromNotLater.text(lang).into(),
            VersionProblem::OffsetAfterV0 => Phrase::PolicyOffsetAfterV0.text(lang).into(),
        }
    }
}

impl PolicyError {
    /// The message in `lang` (its `Display` is the English one). What serde
    /// reports of JSON syntax and types stays in its own English.
    pub fn message(&self, lang: Lang) -> String {
        let known_keys = || KEYS.join(", ");
        match self {
            PolicyError::NotAnObject(_) => self.to_string(),
            PolicyError::Version { index, problem } => {
                Phrase::PolicyVersionProblem.fill(lang, &[index, &problem.message(lang)])
            }
            PolicyError::VersionParameter { index, problem } => {
                Phrase::PolicyVersionProblem.fill(lang, &[index, &problem.message(lang)])
            }
            PolicyError::Json(error) => Phrase::PolicyKnownKeys.fill(lang, &[error, &known_keys()]),
            PolicyError::UnknownKey(key) => Phrase::PolicyKnownKeys.fill(
                lang,
                &[&Phrase::PolicyUnknownKey.fill(lang, &[key]), &known_keys()],
            ),
            PolicyError::OutOfRange {
                name,
                value,
                expected,
                low,
            } => Phrase::PolicyOutOfRange.fill(lang, &[name, value, &expected.fill(lang, &[low])]),
        }
    }
}

impl Policy {
    /// Reads a policy from JSON text (CLI.md `--policy`): either one object,
    /// the defaults overridden by the keys given, or `{"versions": [V0, V1,
    /// …]}` (R15). Unknown keys are an error; so is anything but an object.
    pub fn from_json(text: &str) -> Result<Policy, PolicyError> {
        let value: serde_json::Value = serde_json::from_str(text)?;
        let serde_json::Value::Object(object) = value else {
            return Err(PolicyError::NotAnObject(json_kind(&value).text(Lang::En)));
        };
        if !object.contains_key("versions") {
            let policy = Policy::from_object(&serde_json::Map::new(), &object)?;
            policy.validate()?;
            return Ok(policy);
        }
        if object.len() != 1 {
            let other = object.keys().find(|k| *k != "versions").cloned();
            return Err(PolicyError::Version {
                index: 0,
                problem: VersionProblem::BesideVersions(other.unwrap_or_default()),
            });
        }
        let Some(serde_json::Value::Array(versions)) = object.get("versions") else {
            return Err(PolicyError::NotAnObject("`versions` that is not an array"));
        };
        if versions.is_empty() {
            return Err(PolicyError::Version {
                index: 0,
                problem: VersionProblem::NoVersions,
            });
        }
        let mut first: Option<Policy> = None;
        let mut merged = serde_json::Map::new();
        let mut previous_from: Option<UnixNs> = None;
        for (index, version) in versions.iter().enumerate() {
            let bad = |problem: VersionProblem| PolicyError::Version { index, problem };
            let serde_json::Value::Object(keys) = version else {
                return Err(bad(VersionProblem::NotAnObject(json_kind(version))));
            };
            let mut keys = keys.clone();
            let effective_from = keys.remove("effective_from");
            let effective_from = match (index, effective_from) {
                (0, None) => None,
                (0, Some(_)) => return Err(bad(VersionProblem::EffectiveFromInV0)),
                (_, None) => return Err(bad(VersionProblem::MissingEffectiveFrom)),
                (_, Some(value)) => {
                    let from = value
                        .as_str()
                        .and_then(UnixNs::parse_rfc3339)
                        .ok_or_else(|| bad(VersionProblem::NotAnInstant(value.to_string())))?;
                    if previous_from.is_some_and(|p| from <= p) {
                        return Err(bad(VersionProblem::NotLater));
                    }
                    previous_from = Some(from);
                    Some(from)
                }
            };
            if index > 0 && keys.contains_key("utc_offset") {
                return Err(bad(VersionProblem::OffsetAfterV0));
            }
            let in_version = |problem: PolicyError| PolicyError::VersionParameter {
                index,
                problem: Box::new(problem),
            };
            let policy = Policy::from_object(&merged, &keys).map_err(in_version)?;
            policy.validate().map_err(in_version)?;
            merged.extend(keys);
            match (&mut first, effective_from) {
                (None, _) => first = Some(policy),
                (Some(v0), Some(effective_from)) => v0.later.push(PolicyVersion {
                    effective_from,
                    policy,
                }),
                (Some(_), None) => unreachable!("only V0 has no effective_from"),
            }
        }
        Ok(first.unwrap_or_default())
    }

    /// The defaults, overridden by `base`, then by `keys`; an unknown key is
    /// an error naming it.
    fn from_object(
        base: &serde_json::Map<String, serde_json::Value>,
        keys: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Policy, PolicyError> {
        if let Some(unknown) = keys.keys().find(|k| !KEYS.contains(&k.as_str())) {
            return Err(PolicyError::UnknownKey(unknown.clone()));
        }
        let mut merged = base.clone();
        merged.extend(keys.clone());
        Ok(serde_json::from_value(serde_json::Value::Object(merged))?)
    }

    /// The version in force at `t` (R15). One branch for a single version.
    #[inline]
    pub fn at(&self, t: UnixNs) -> &Policy {
        if self.later.is_empty() {
            return self;
        }
        let index = self.later.partition_point(|v| v.effective_from <= t);
        match index {
            0 => self,
            _ => &self.later[index - 1].policy,
        }
    }

    /// Every version with the instant it is in force from (`None`: the
    /// beginning of time), in order.
    pub fn versions(&self) -> impl Iterator<Item = (Option<UnixNs>, &Policy)> {
        std::iter::once((None, self)).chain(
            self.later
                .iter()
                .map(|v| (Some(v.effective_from), &v.policy)),
        )
    }

    /// Checks every parameter against its range.
    pub fn validate(&self) -> Result<(), PolicyError> {
        fn range(
            name: &'static str,
            value: i64,
            low: i64,
            high: i64,
            expected: Phrase,
        ) -> Result<(), PolicyError> {
            if value < low || value > high {
                return Err(PolicyError::OutOfRange {
                    name,
                    value: value.to_string(),
                    expected,
                    low,
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
            Phrase::RangeHours,
        )?;
        range(
            "rejudge_interval_hours",
            self.rejudge_interval_hours,
            1,
            MAX_HOURS,
            Phrase::RangeHours,
        )?;
        range(
            "max_judgments_per_order",
            self.max_judgments_per_order.into(),
            1,
            MAX_JUDGMENTS_PER_ORDER.into(),
            Phrase::RangeJudgments,
        )?;
        range(
            "deduction_fen",
            self.deduction_fen,
            0,
            MAX_AMOUNT_FEN,
            Phrase::RangeFen,
        )?;
        range(
            "max_deductions_per_order",
            self.max_deductions_per_order.into(),
            0,
            self.max_judgments_per_order.into(),
            Phrase::RangeUpToMaxJudgments,
        )?;
        range(
            "shop_daily_cap_fen",
            self.shop_daily_cap_fen,
            0,
            MAX_AMOUNT_FEN,
            Phrase::RangeFen,
        )?;
        range(
            "ban_at_judgment",
            self.ban_at_judgment.into(),
            1,
            self.max_judgments_per_order.into(),
            Phrase::RangeUpToMaxJudgments,
        )?;
        range(
            "closure_grace_hours",
            self.closure_grace_hours,
            0,
            MAX_HOURS,
            Phrase::RangeHours,
        )?;
        range(
            "auto_close_days",
            self.auto_close_days,
            1,
            MAX_HOURS / 24,
            Phrase::RangeDays,
        )?;
        range(
            "rating_window_days",
            self.rating_window_days,
            1,
            MAX_HOURS / 24,
            Phrase::RangeDays,
        )?;
        Ok(())
    }
}

/// What a JSON value is, for a message.
/// What a JSON value is, in words.
fn json_kind(value: &serde_json::Value) -> Phrase {
    match value {
        serde_json::Value::Null => Phrase::JsonNull,
        serde_json::Value::Bool(_) => Phrase::JsonBoolean,
        serde_json::Value::Number(_) => Phrase::JsonNumber,
        serde_json::Value::String(_) => Phrase::JsonString,
        serde_json::Value::Array(_) => Phrase::JsonArray,
        serde_json::Value::Object(_) => Phrase::JsonObject,
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
    fn issue_20_an_array_is_refused_not_read_by_position() {
        let err = Policy::from_json(r#"["+05:00",1,1,3,999999]"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not an array"), "{err}");
        for text in ["3", "\"x\"", "null", "true"] {
            assert!(Policy::from_json(text).is_err(), "{text}");
        }
    }

    #[test]
    fn versions_inherit_and_are_found_by_instant() {
        let p = Policy::from_json(
            r#"{"versions": [{"deduction_fen": 500},
                {"effective_from": "2026-03-05T00:00:00+08:00", "shop_daily_cap_fen": 3000},
                {"effective_from": "2026-03-06T00:00:00+08:00", "deduction_fen": 700}]}"#,
        )
        .unwrap();
        let t = |s: &str| UnixNs::parse_rfc3339(s).unwrap();
        assert_eq!(p.deduction_fen, 500);
        assert_eq!(p.later.len(), 2);
        let v1 = p.at(t("2026-03-05T00:00:00+08:00"));
        assert_eq!((v1.deduction_fen, v1.shop_daily_cap_fen), (500, 3000));
        let v0 = p.at(t("2026-03-04T23:59:59.999999999+08:00"));
        assert_eq!(v0.shop_daily_cap_fen, 50_000);
        let v2 = p.at(t("2027-01-01T00:00:00Z"));
        assert_eq!((v2.deduction_fen, v2.shop_daily_cap_fen), (700, 3000));
        assert_eq!(p.versions().count(), 3);
    }

    #[test]
    fn a_flat_policy_and_a_single_version_are_equal() {
        let flat = Policy::from_json(r#"{"deduction_fen": 500}"#).unwrap();
        let versioned = Policy::from_json(r#"{"versions": [{"deduction_fen": 500}]}"#).unwrap();
        assert_eq!(flat, versioned);
    }

    #[test]
    fn bad_versions_are_refused_naming_the_version_and_key() {
        let cases = [
            (
                r#"{"versions": [{}, {"effective_from": "2026-03-05T00:00:00+08:00", "utc_offset": "+05:00"}]}"#,
                "version 1",
                "utc_offset",
            ),
            (
                r#"{"versions": [{"effective_from": "2026-03-05T00:00:00+08:00"}]}"#,
                "version 0",
                "effective_from",
            ),
            (
                r#"{"versions": [{}, {"deduction_fen": 5}]}"#,
                "version 1",
                "effective_from",
            ),
            (
                r#"{"versions": [{}, {"effective_from": "2026-03-05T00:00:00+08:00"}, {"effective_from": "2026-03-05T00:00:00+08:00"}]}"#,
                "version 2",
                "strictly later",
            ),
            (
                r#"{"versions": [{}, {"effective_from": "2026-03-05"}]}"#,
                "version 1",
                "effective_from",
            ),
            (
                r#"{"versions": [{}, {"effective_from": "2026-03-05T00:00:00+08:00", "daily_cap": 1}]}"#,
                "version 1",
                "daily_cap",
            ),
            (
                r#"{"versions": [{}, {"effective_from": "2026-03-05T00:00:00+08:00", "ban_at_judgment": 9}]}"#,
                "version 1",
                "ban_at_judgment",
            ),
            (r#"{"versions": []}"#, "version 0", "empty"),
            (r#"{"versions": [[]]}"#, "version 0", "array"),
            (
                r#"{"versions": [{}], "deduction_fen": 1}"#,
                "version 0",
                "deduction_fen",
            ),
        ];
        for (text, version, key) in cases {
            let err = Policy::from_json(text).unwrap_err().to_string();
            assert!(err.contains(version) && err.contains(key), "{text}: {err}");
        }
    }

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
