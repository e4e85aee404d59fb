//! What oslo.messaging's rabbit driver puts on the wire for a notification, and reading it
//! back: the routing key `<topic>.<priority>`, the `messagingv2` envelope, the
//! `_unique_id` every message carries (consumers drop a message whose id they have just
//! seen), and the message properties.
//!
//! Facts from oslo.messaging 14.0.3 on RabbitMQ 3.10.8, captured in
//! `tests/fixtures/notigen/oslo-rabbit-14.0.3.txt`.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::render::Envelope;

/// oslo's topic for legacy notifications (`[oslo_messaging_notifications]topics`).
pub const LEGACY_TOPIC: &str = "notifications";
/// Nova's topic for versioned notifications (`[notifications]versioned_notifications_topics`).
pub const VERSIONED_TOPIC: &str = "versioned_notifications";
/// The message properties oslo sets: `content_type`, `content_encoding`; it also sends
/// `delivery_mode` 2 and `priority` 0.
pub const CONTENT_TYPE: &str = "application/json";
/// See [`CONTENT_TYPE`].
pub const CONTENT_ENCODING: &str = "utf-8";

/// The fields of a notification that decide where it goes.
#[derive(Deserialize)]
struct Peek<'a> {
    #[serde(borrow, default)]
    event_type: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    priority: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    payload: Option<&'a RawValue>,
    #[serde(rename = "_unique_id", borrow, default)]
    unique_id: Option<Cow<'a, str>>,
    #[serde(rename = "oslo.version", borrow, default)]
    version: Option<Cow<'a, str>>,
    #[serde(rename = "oslo.message", borrow, default)]
    message: Option<Cow<'a, str>>,
}

/// A payload's class name, when it is a versioned object.
#[derive(Deserialize)]
struct PayloadPeek<'a> {
    #[serde(rename = "nova_object.name", borrow, default)]
    name: Option<Cow<'a, str>>,
}

/// Builds what is published for one notification line.
pub struct Publication {
    envelope: Envelope,
    topic: Option<String>,
    /// The v1 dict being wrapped into a v2 envelope (reused from line to line).
    scratch: String,
}

impl Publication {
    /// Messages in `envelope`, on `topic` (or, when `None`, `versioned_notifications` for a
    /// versioned payload and `notifications` otherwise).
    pub fn new(envelope: Envelope, topic: Option<String>) -> Self {
        Publication {
            envelope,
            topic,
            scratch: String::new(),
        }
    }

    /// Reads `line` (a v1 dict or a v2 envelope) and writes the message body to `body` and
    /// its routing key to `key` (both cleared first). A message without `_unique_id` gets
    /// a new one, as oslo's driver adds it. Errors name what is wrong with the line.
    pub fn prepare(
        &mut self,
        line: &[u8],
        body: &mut Vec<u8>,
        key: &mut String,
    ) -> Result<(), String> {
        body.clear();
        key.clear();
        let line = line.trim_ascii();
        let mut outer: Peek<'_> =
            serde_json::from_slice(line).map_err(|e| format!("not a JSON object: {e}"))?;
        // The v1 dict's text: inside the envelope, or the line itself.
        let dict_text: Cow<'_, str>;
        let (peek, enveloped) = match (outer.version.take(), outer.message.take()) {
            (Some(version), Some(message)) => {
                if version != "2.0" {
                    return Err(format!("oslo.version is {version:?}; only \"2.0\" exists"));
                }
                dict_text = message;
                let inner: Peek<'_> = serde_json::from_str(&dict_text)
                    .map_err(|e| format!("oslo.message is not a JSON object: {e}"))?;
                (inner, true)
            }
            (None, None) => {
                dict_text = Cow::Borrowed(std::str::from_utf8(line).map_err(|e| e.to_string())?);
                (outer, false)
            }
            _ => {
                return Err(
                    "half an envelope: oslo.version and oslo.message go together".to_owned(),
                )
            }
        };
        if peek.event_type.as_deref().is_none_or(str::is_empty) {
            return Err("no event_type".to_owned());
        }
        let priority = match peek.priority.as_deref() {
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric()) => p,
            Some(p) => return Err(format!("priority {p:?} is not a word")),
            None => return Err("no priority".to_owned()),
        };
        let topic = match &self.topic {
            Some(topic) => topic.as_str(),
            None if is_versioned(peek.payload) => VERSIONED_TOPIC,
            None => LEGACY_TOPIC,
        };
        key.push_str(topic);
        key.push('.');
        key.extend(priority.chars().map(|c| c.to_ascii_lowercase()));
        let has_id = peek.unique_id.is_some();
        // The v1 dict, with `_unique_id` added if it had none.
        let dict = |push: &mut dyn FnMut(&str)| {
            if has_id {
                push(&dict_text);
            } else {
                with_unique_id(&dict_text, push);
            }
        };
        match (self.envelope, enveloped) {
            (Envelope::V2, true) if has_id => body.extend_from_slice(line),
            (Envelope::V2, _) => {
                let inner = &mut self.scratch;
                inner.clear();
                dict(&mut |piece| inner.push_str(piece));
                body.extend_from_slice(br#"{"oslo.version": "2.0", "oslo.message": "#);
                serde_json::to_writer(&mut *body, inner.as_str()).map_err(|e| e.to_string())?;
                body.push(b'}');
            }
            (Envelope::V1, _) => dict(&mut |piece| body.extend_from_slice(piece.as_bytes())),
        }
        Ok(())
    }
}

/// Whether `payload` is an oslo versioned object.
fn is_versioned(payload: Option<&RawValue>) -> bool {
    payload.is_some_and(|raw| {
        raw.get().starts_with('{')
            && serde_json::from_str::<PayloadPeek<'_>>(raw.get()).is_ok_and(|p| p.name.is_some())
    })
}

/// Passes the JSON object `dict` to `push`, piece by piece, with
/// `"_unique_id":"<32 hex>"` added last.
fn with_unique_id(dict: &str, mut push: impl FnMut(&str)) {
    let dict = dict.trim_ascii();
    let body = dict.strip_suffix('}').unwrap_or(dict).trim_ascii_end();
    push(body);
    if !body.ends_with('{') {
        push(",");
    }
    push(r#""_unique_id":""#);
    let id = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
    push(id.simple().encode_lower(&mut uuid::Uuid::encode_buffer()));
    push("\"}");
}

/// What a consumer needs of a received message: its `_unique_id` (for dropping
/// duplicates) and, on request, the v1 dict inside a v2 envelope.
pub struct Received<'a> {
    /// The message's `_unique_id`, if it has one.
    pub unique_id: Option<Cow<'a, str>>,
    /// The v1 dict when the body was a v2 envelope (only when asked to unwrap).
    pub unwrapped: Option<Cow<'a, str>>,
}

/// Reads a received body. Errors name what is wrong with it.
pub fn receive(body: &[u8], unwrap: bool) -> Result<Received<'_>, String> {
    let outer: Peek<'_> =
        serde_json::from_slice(body).map_err(|e| format!("not a JSON object: {e}"))?;
    match outer.message {
        Some(message) => {
            let unique_id = {
                let inner: Peek<'_> = serde_json::from_str(&message)
                    .map_err(|e| format!("oslo.message is not a JSON object: {e}"))?;
                inner.unique_id.map(|id| Cow::Owned(id.into_owned()))
            };
            Ok(Received {
                unique_id,
                unwrapped: unwrap.then_some(message),
            })
        }
        None => Ok(Received {
            unique_id: outer.unique_id,
            unwrapped: None,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prepare(
        envelope: Envelope,
        topic: Option<&str>,
        line: &str,
    ) -> Result<(String, String), String> {
        let mut publication = Publication::new(envelope, topic.map(str::to_owned));
        let (mut body, mut key) = (Vec::new(), String::new());
        publication.prepare(line.as_bytes(), &mut body, &mut key)?;
        Ok((String::from_utf8(body).unwrap(), key))
    }

    const LEGACY: &str = r#"{"message_id":"m","publisher_id":"compute.host-1","event_type":"compute.instance.update","priority":"INFO","payload":{"a":1},"timestamp":"t","_unique_id":"0123"}"#;

    #[test]
    fn a_legacy_dict_goes_to_notifications_in_the_v2_envelope() {
        let (body, key) = prepare(Envelope::V2, None, LEGACY).unwrap();
        assert_eq!(key, "notifications.info");
        let outer: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(outer["oslo.version"], "2.0");
        assert_eq!(outer["oslo.message"], LEGACY);
        // and back
        let received = receive(body.as_bytes(), true).unwrap();
        assert_eq!(received.unique_id.as_deref(), Some("0123"));
        assert_eq!(received.unwrapped.as_deref(), Some(LEGACY));
    }

    #[test]
    fn a_versioned_payload_goes_to_versioned_notifications_and_priority_is_lowered() {
        let line = r#"{"event_type":"instance.create.error","priority":"ERROR","payload":{"nova_object.name":"InstanceCreatePayload"},"_unique_id":"9"}"#;
        let (body, key) = prepare(Envelope::V1, None, line).unwrap();
        assert_eq!(key, "versioned_notifications.error");
        assert_eq!(body, line);
        let (_, key) = prepare(Envelope::V1, Some("monitor"), line).unwrap();
        assert_eq!(key, "monitor.error");
    }

    #[test]
    fn a_v2_envelope_is_sent_as_it_is_or_unwrapped() {
        let (v2, _) = prepare(Envelope::V2, None, LEGACY).unwrap();
        let (again, key) = prepare(Envelope::V2, None, &v2).unwrap();
        assert_eq!(
            (again.as_str(), key.as_str()),
            (v2.as_str(), "notifications.info")
        );
        let (v1, _) = prepare(Envelope::V1, None, &v2).unwrap();
        assert_eq!(v1, LEGACY);
    }

    #[test]
    fn a_message_without_a_unique_id_gets_one() {
        let line = r#"{"event_type":"e","priority":"WARN","payload":{}}"#;
        let (body, key) = prepare(Envelope::V1, None, line).unwrap();
        assert_eq!(key, "notifications.warn");
        let value: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(value["_unique_id"].as_str().unwrap().len(), 32);
        assert_eq!(value["event_type"], "e");
    }

    #[test]
    fn bad_lines_are_named() {
        for (line, cause) in [
            ("[1]", "not a JSON object"),
            (r#"{"priority":"INFO"}"#, "no event_type"),
            (r#"{"event_type":"e"}"#, "no priority"),
            (
                r#"{"event_type":"e","priority":"in fo"}"#,
                "priority \"in fo\" is not a word",
            ),
            (r#"{"oslo.version":"2.0"}"#, "half an envelope"),
            (
                r#"{"oslo.version":"1.0","oslo.message":"{}"}"#,
                "oslo.version is \"1.0\"",
            ),
            (
                r#"{"oslo.version":"2.0","oslo.message":"x"}"#,
                "oslo.message is not a JSON object",
            ),
        ] {
            let err = prepare(Envelope::V2, None, line).unwrap_err();
            assert!(err.starts_with(cause), "{line}: {err}");
        }
    }

    proptest::proptest! {
        /// Any bytes: a message or a named refusal, never a panic; and anything prepared
        /// is a JSON object a consumer reads back with its `_unique_id`, its v1 dict the
        /// same in both envelopes.
        #[test]
        fn any_line_is_prepared_or_refused(
            line in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
            event in "[a-z._]{1,20}",
            priority in "[A-Za-z]{1,8}",
            text in "\\PC{0,40}",
        ) {
            for envelope in [Envelope::V1, Envelope::V2] {
                let mut publication = Publication::new(envelope, None);
                let (mut body, mut key) = (Vec::new(), String::new());
                if publication.prepare(&line, &mut body, &mut key).is_ok() {
                    proptest::prop_assert!(receive(&body, true).is_ok());
                }
                let dict = serde_json::json!({"event_type": event, "priority": priority, "payload": {"text": text}});
                let dict = serde_json::to_vec(&dict).unwrap();
                publication.prepare(&dict, &mut body, &mut key).unwrap();
                proptest::prop_assert_eq!(&key, &format!("notifications.{}", priority.to_lowercase()));
                let received = receive(&body, true).unwrap();
                proptest::prop_assert_eq!(received.unique_id.map(|id| id.len()), Some(32));
                let v1: serde_json::Value = match received.unwrapped {
                    Some(inner) => serde_json::from_str(&inner).unwrap(),
                    None => serde_json::from_slice(&body).unwrap(),
                };
                proptest::prop_assert_eq!(&v1["payload"]["text"], &serde_json::Value::from(text.clone()));
            }
        }
    }
}
