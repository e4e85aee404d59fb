//! The bulk wire format of esmond's `PUT /archive/<key>/`, shared by the sink that writes
//! it and the server that reads it:
//!
//! ```json
//! {"data":[{"ts":1795386409,"val":[{"event-type":"throughput","val":9852811218.03}]}]}
//! ```
//!
//! The types are generic over how each part is held: the sink serialises typed, borrowed
//! parts (a value is the record's original JSON text); the server parses every part as
//! optional raw JSON first, so it can answer with esmond's own message for whatever is
//! missing or malformed.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// A bulk body.
#[derive(Debug, Serialize, Deserialize)]
pub struct Body<D> {
    /// The points, one item per timestamp.
    pub data: D,
}

/// The points of one timestamp.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Item<T, V> {
    /// Epoch seconds.
    pub ts: T,
    /// One value per event type.
    pub val: V,
}

/// One event type's value.
#[derive(Debug, Serialize, Deserialize)]
pub struct Point<E, V> {
    /// The event type.
    #[serde(rename = "event-type")]
    pub event_type: E,
    /// Its value, in the shape the event type stores.
    pub val: V,
}

/// An item as the sink writes it (`V` serialises as a list of [`Point`]s).
pub type OutItem<V> = Item<i64, V>;

/// A body as the server first reads it: every part optional and raw.
pub type InBody<'a> = Body<Option<&'a RawValue>>;
/// An item as the server first reads it.
pub type InItem<'a> = Item<Option<&'a RawValue>, Option<&'a RawValue>>;
/// A point as the server first reads it.
pub type InPoint<'a> = Point<Option<std::borrow::Cow<'a, str>>, Option<&'a RawValue>>;

/// Appends one item to a batch under construction, with a comma before every item but the
/// first. Returns false (and appends nothing) if it cannot be serialised.
pub fn push_item<V: Serialize>(out: &mut Vec<u8>, item: &OutItem<V>) -> bool {
    let start = out.len();
    if start > 0 {
        out.push(b',');
    }
    if serde_json::to_writer(&mut *out, item).is_err() {
        out.truncate(start);
        return false;
    }
    true
}

/// Wraps items made by [`push_item`] into a body.
pub fn body(items: &[&[u8]]) -> Vec<u8> {
    let mut body = Vec::with_capacity(12 + items.iter().map(|i| i.len() + 1).sum::<usize>());
    body.extend_from_slice(b"{\"data\":[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(item);
    }
    body.extend_from_slice(b"]}");
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_sink_writes_the_server_reads() {
        let value = RawValue::from_string("[1,2]".into()).unwrap();
        let mut items = Vec::new();
        assert!(push_item(
            &mut items,
            &Item {
                ts: 7,
                val: vec![Point {
                    event_type: "streams-packet-retransmits",
                    val: &*value,
                }],
            },
        ));
        let text = String::from_utf8(body(&[&items])).unwrap();
        assert_eq!(
            text,
            r#"{"data":[{"ts":7,"val":[{"event-type":"streams-packet-retransmits","val":[1,2]}]}]}"#
        );
        let parsed: InBody = serde_json::from_str(&text).unwrap();
        let items: Vec<InItem> = serde_json::from_str(parsed.data.unwrap().get()).unwrap();
        assert_eq!(items[0].ts.unwrap().get(), "7");
        let points: Vec<InPoint> = serde_json::from_str(items[0].val.unwrap().get()).unwrap();
        assert_eq!(
            points[0].event_type.as_deref(),
            Some("streams-packet-retransmits")
        );
        assert_eq!(points[0].val.unwrap().get(), "[1,2]");
    }
}
