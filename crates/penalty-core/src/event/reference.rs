//! The reference parser: a line read whole by `serde_json` (refusing a key
//! named twice), validated field by field and written back with sorted
//! keys. It decides every line the scanner declines, and gives every
//! reject reason.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::scan;
use super::types::{
    amount_fits, id_fits, judgment_fits, ship_by_fits, Event, EventKind, EventType, KindRef,
};
use super::uuid::parse_event_id;
use super::{ParsedLine, Reject};
use crate::time::UnixNs;

/// The reference path: a full `serde_json::Value`, validated field by field,
/// re-serialised with sorted keys. Every reject reason comes from here.
pub(super) fn parse_line(line: &[u8]) -> Result<ParsedLine, Reject> {
    let UniqueKeys(value) = serde_json::from_slice(line).map_err(|_| Reject::InvalidJson)?;
    let Value::Object(object) = value else {
        return Err(Reject::InvalidJson);
    };
    let event = validate_object(&object)?;
    // Serialising a `Value` cannot fail: every key is a string.
    let canonical_json = serde_json::to_vec(&object).map_err(|_| Reject::InvalidJson)?;
    Ok(ParsedLine {
        event,
        canonical_json,
        compact: None,
    })
}

/// A JSON value read by `serde_json` that refuses an object naming a key
/// twice, at any depth (EVENTS.md: such a line is `invalid_json`).
/// `serde_json::Value` keeps the last of the two silently. Keys are compared
/// as read, after unescaping, so `"a"` and `"\u0061"` are the same key. Only
/// the reference path reads through this; the fast path's scanner declines
/// any repeated key with a bit per known key and any unknown key at all, so
/// it never accepts such a line.
struct UniqueKeys(Value);

impl<'de> Deserialize<'de> for UniqueKeys {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(UniqueKeysVisitor)
            .map(UniqueKeys)
    }
}

struct UniqueKeysVisitor;

impl<'de> serde::de::Visitor<'de> for UniqueKeysVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value without repeated keys")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // JSON holds no NaN or infinity, so this is never `Null` for a
        // number `serde_json` read.
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(UniqueKeys(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(serde::de::Error::custom("a key is named twice"));
            }
            let UniqueKeys(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// Parses canonical JSON already in the log (no size limit applies: it was
/// checked on the way in).
pub fn parse_stored(json: &[u8]) -> Result<Event, Reject> {
    if let Some(parsed) = scan::parse(json) {
        return Ok(parsed.event);
    }
    let value: Value = serde_json::from_slice(json).map_err(|_| Reject::InvalidJson)?;
    let Value::Object(object) = value else {
        return Err(Reject::InvalidJson);
    };
    validate_object(&object)
}

/// [`parse_stored`] with the event handed to `with` borrowed: the usual
/// canonical line is read in place, validated as [`parse_stored`]
/// validates it but allocating nothing (what the log's check does with
/// every stored event); anything else is parsed by [`parse_stored`].
pub fn parse_stored_with<R>(
    json: &[u8],
    with: impl FnOnce(u128, UnixNs, KindRef<'_>) -> R,
) -> Result<R, Reject> {
    let read = scan::parse_fields(json)
        .and_then(|parsed| Some((parsed.event_id, parsed.at, parsed.kind.to_text()?)));
    if let Some((event_id, at, kind)) = read {
        return Ok(with(event_id, at, kind.to_kind_ref()));
    }
    let event = parse_stored(json)?;
    Ok(with(event.event_id, event.at, event.kind_ref()))
}

fn validate_object(object: &Map<String, Value>) -> Result<Event, Reject> {
    let event_id = event_id(object)?;
    let type_name = match object.get("type") {
        None => return Err(Reject::MissingField("type")),
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return Err(Reject::InvalidField("type")),
    };
    let at = instant(object, "at")?.ok_or(Reject::MissingField("at"))?;
    let event_type = EventType::from_name(type_name.as_bytes()).ok_or(Reject::UnknownType)?;
    let kind = match event_type {
        EventType::Paid => {
            let ship_by = instant(object, "ship_by")?;
            if !ship_by_fits(ship_by, at) {
                return Err(Reject::InvalidField("ship_by"));
            }
            EventKind::Paid {
                order_id: identifier(object, "order_id")?,
                shop_id: identifier(object, "shop_id")?,
                product_id: identifier(object, "product_id")?,
                amount_fen: amount(object, "amount_fen")?,
                ship_by,
            }
        }
        EventType::Shipped | EventType::TrackingUploaded => {
            optional_string(object, "carrier")?;
            let order_id = identifier(object, "order_id")?;
            let tracking_no = identifier(object, "tracking_no")?;
            if event_type == EventType::Shipped {
                EventKind::Shipped {
                    order_id,
                    tracking_no,
                }
            } else {
                EventKind::TrackingUploaded {
                    order_id,
                    tracking_no,
                }
            }
        }
        EventType::TrackingRejected => EventKind::TrackingRejected {
            order_id: identifier(object, "order_id")?,
            tracking_no: identifier(object, "tracking_no")?,
        },
        EventType::Refunded => EventKind::Refunded {
            order_id: identifier(object, "order_id")?,
            amount_fen: amount(object, "amount_fen")?,
        },
        EventType::RefundFailed => EventKind::RefundFailed {
            order_id: identifier(object, "order_id")?,
        },
        EventType::JudgmentRevoked => {
            optional_string(object, "reason")?;
            let order_id = identifier(object, "order_id")?;
            let judgment = match object.get("judgment") {
                None => return Err(Reject::MissingField("judgment")),
                Some(v) => v
                    .as_i64()
                    .filter(|n| judgment_fits(*n))
                    .ok_or(Reject::InvalidField("judgment"))? as u8,
            };
            EventKind::JudgmentRevoked { order_id, judgment }
        }
        EventType::DepositToppedUp => EventKind::DepositToppedUp {
            shop_id: identifier(object, "shop_id")?,
            amount_fen: amount(object, "amount_fen")?,
        },
    };
    Ok(Event { event_id, at, kind })
}

/// `event_id`: a UUID in the 8-4-4-4-12 hex form, and only that form.
fn event_id(object: &Map<String, Value>) -> Result<u128, Reject> {
    const FIELD: &str = "event_id";
    let text = match object.get(FIELD) {
        None => return Err(Reject::MissingField(FIELD)),
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return Err(Reject::InvalidField(FIELD)),
    };
    parse_event_id(text.as_bytes())
        .map(|(id, _)| id)
        .ok_or(Reject::InvalidField(FIELD))
}

/// A required identifier: a non-empty string of at most 128 bytes.
fn identifier(object: &Map<String, Value>, field: &'static str) -> Result<String, Reject> {
    match object.get(field) {
        None => Err(Reject::MissingField(field)),
        Some(Value::String(s)) if id_fits(s.as_bytes()) => Ok(s.clone()),
        Some(_) => Err(Reject::InvalidField(field)),
    }
}

/// A required amount: a JSON integer from 1 to `i64::MAX` (`1.0` is not one).
fn amount(object: &Map<String, Value>, field: &'static str) -> Result<i64, Reject> {
    match object.get(field) {
        None => Err(Reject::MissingField(field)),
        Some(Value::Number(n)) => n
            .as_i64()
            .filter(|a| amount_fits(*a))
            .ok_or(Reject::InvalidField(field)),
        Some(_) => Err(Reject::InvalidField(field)),
    }
}

/// A timestamp. `at` is required (the caller turns `None` into
/// `missing_field`); a JSON `null` for it is `invalid_field` (EVENTS.md), while
/// for the optional `ship_by` a `null` counts as absent.
fn instant(object: &Map<String, Value>, field: &'static str) -> Result<Option<UnixNs>, Reject> {
    match object.get(field) {
        None => Ok(None),
        Some(Value::Null) if field != "at" => Ok(None),
        Some(Value::String(s)) => UnixNs::parse_rfc3339(s)
            .map(Some)
            .ok_or(Reject::InvalidField(field)),
        Some(_) => Err(Reject::InvalidField(field)),
    }
}

/// An optional string field (`carrier`, `reason`): absent, `null` or a string.
fn optional_string(object: &Map<String, Value>, field: &'static str) -> Result<(), Reject> {
    match object.get(field) {
        None | Some(Value::Null) | Some(Value::String(_)) => Ok(()),
        Some(_) => Err(Reject::InvalidField(field)),
    }
}
