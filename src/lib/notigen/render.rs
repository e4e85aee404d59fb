//! Writing a notification as one NDJSON line: the oslo.messaging v1 dict, optionally in the
//! v2 envelope.
//!
//! This is the hot path (millions of lines a second), so a line is assembled from pieces
//! serialized once: the operation's `_context_*` keys and the instance's static payload
//! are spliced in as pre-rendered JSON, and only the few fields that change per event go
//! through serde. Every piece is produced by serde_json, so the line is valid JSON; a test
//! parses the output and checks every field.

use serde::Serialize;
use serde_json::json;

use uuid::Uuid;

use super::event::{Body, Event, Extra, SchedulerPhase};
use super::model::PayloadMode;
use super::time::{Micros, TimeFormat, TimeWriter};
use super::versioned;
use super::Notification;

/// The message envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Envelope {
    /// The flat oslo.messaging v1 dict (driver `messaging`).
    V1,
    /// `{"oslo.version":"2.0","oslo.message":"<v1 dict as a JSON string>"}` (driver
    /// `messagingv2`).
    V2,
}

/// Which notifications a run writes, as Nova's `[notifications]notification_format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The legacy notifications (topic `notifications`), which Ceilometer reads.
    Unversioned,
    /// Nova's versioned notifications (topic `versioned_notifications`).
    Versioned,
    /// Each legacy notification followed by its versioned twin, if it has one.
    Both,
}

/// Renders notifications into NDJSON lines.
pub struct Renderer {
    time: TimeWriter,
    mode: PayloadMode,
    envelope: Envelope,
    inner: Vec<u8>,
}

impl Renderer {
    /// A renderer for the given payload mode, timestamp format and envelope.
    pub fn new(mode: PayloadMode, format: TimeFormat, envelope: Envelope) -> Self {
        Renderer {
            time: TimeWriter::new(format),
            mode,
            envelope,
            inner: Vec::with_capacity(4096),
        }
    }

    /// Appends `notification` in the legacy (unversioned) form as one JSON object (no
    /// newline) to `out`.
    pub fn render(&mut self, notification: &Notification, out: &mut Vec<u8>) {
        self.enveloped(out, |this, out| this.render_v1(notification, out));
    }

    /// Appends `notification` in Nova's versioned form, as the versioned notification
    /// that accompanies the legacy one (its own message and unique ids, derived from the
    /// legacy ones; the same time, request and instance). Returns false, appending
    /// nothing, for an event Nova sends only in the legacy form.
    pub fn render_versioned(&mut self, notification: &Notification, out: &mut Vec<u8>) -> bool {
        let Some(kind) = versioned::versioned(&notification.event) else {
            return false;
        };
        self.enveloped(out, |this, out| {
            this.render_versioned_v1(notification, &kind, out)
        });
        true
    }

    /// Runs `body` to write the v1 dict, wrapped in the v2 envelope when asked.
    fn enveloped(&mut self, out: &mut Vec<u8>, body: impl FnOnce(&mut Self, &mut Vec<u8>)) {
        match self.envelope {
            Envelope::V1 => body(self, out),
            Envelope::V2 => {
                let mut inner = std::mem::take(&mut self.inner);
                inner.clear();
                body(self, &mut inner);
                out.extend_from_slice(br#"{"oslo.version":"2.0","oslo.message":"#);
                let text = std::str::from_utf8(&inner).expect("rendered JSON is UTF-8");
                write_value(out, text);
                out.push(b'}');
                self.inner = inner;
            }
        }
    }

    fn render_v1(&mut self, notification: &Notification, out: &mut Vec<u8>) {
        let event = &notification.event;
        write_message_id(out, notification.message_id);
        out.extend_from_slice(br#"","publisher_id":""#);
        event.publisher.write(out);
        out.extend_from_slice(br#"","event_type":""#);
        out.extend_from_slice(event.name.as_bytes());
        out.extend_from_slice(br#"","priority":""#);
        out.extend_from_slice(event.priority.as_str().as_bytes());
        out.extend_from_slice(br#"","payload":{"#);
        self.payload(event, out);
        out.extend_from_slice(br#"}"#);
        self.envelope_tail(notification, notification.unique_id, out);
    }

    fn render_versioned_v1(
        &mut self,
        notification: &Notification,
        kind: &versioned::Versioned,
        out: &mut Vec<u8>,
    ) {
        let event = &notification.event;
        write_message_id(out, sibling(notification.message_id));
        out.extend_from_slice(br#"","publisher_id":""#);
        event.publisher.write_versioned(out);
        out.extend_from_slice(br#"","event_type":""#);
        match kind {
            versioned::Versioned::Instance { event_type, .. } => {
                out.extend_from_slice(event_type.as_bytes())
            }
            versioned::Versioned::Exception => out.extend_from_slice(b"compute.exception"),
        }
        out.extend_from_slice(br#"","priority":""#);
        out.extend_from_slice(event.priority.as_str().as_bytes());
        out.extend_from_slice(br#"","payload":"#);
        versioned::write_payload(event, kind, out);
        self.envelope_tail(notification, sibling(notification.unique_id), out);
    }

    /// `,"timestamp":…,<context>,"_unique_id":…}`: the end of every v1 dict.
    fn envelope_tail(&mut self, notification: &Notification, unique: Uuid, out: &mut Vec<u8>) {
        let event = &notification.event;
        out.extend_from_slice(br#","timestamp":""#);
        self.time.write(event.when, out);
        out.extend_from_slice(b"\",");
        out.extend_from_slice(event.op.context.as_bytes());
        out.extend_from_slice(br#","_unique_id":""#);
        out.extend_from_slice(
            unique
                .simple()
                .encode_lower(&mut Uuid::encode_buffer())
                .as_bytes(),
        );
        out.extend_from_slice(b"\"}");
    }

    fn payload(&mut self, event: &Event, out: &mut Vec<u8>) {
        let instance = &event.instance;
        if self.mode == PayloadMode::Seed {
            out.extend_from_slice(instance.fragment.as_bytes());
            let (state, old_state) = states(&event.body);
            static_field(out, "state", state);
            static_field(out, "old_state", old_state);
            if let Body::Exists { begin, end, .. } = event.body {
                self.time_field(out, "audit_period_beginning", begin);
                self.time_field(out, "audit_period_ending", end);
            }
            return;
        }
        match event.body {
            Body::Instance {
                state,
                old_state: _,
                task,
                extra,
            } => {
                self.instance_head(out, event, state, task);
                match extra {
                    Extra::Deleted => {
                        self.time_field(out, "deleted_at", event.when);
                        self.time_field(out, "terminated_at", event.when);
                    }
                    _ => {
                        static_field(out, "deleted_at", "");
                        static_field(out, "terminated_at", "");
                    }
                }
                match extra {
                    Extra::None | Extra::Deleted => {}
                    Extra::Create { end } => {
                        static_field(out, "message", "Success");
                        static_field(out, "image_name", instance.image.name);
                        if end {
                            let id = instance.id.as_bytes();
                            field(
                                out,
                                "fixed_ips",
                                &json!([{
                                    "address": format!("10.{}.{}.{}", id[0], id[1], id[2].max(2)),
                                    "floating_ips": [], "label": "private", "meta": {},
                                    "type": "fixed", "version": 4,
                                }]),
                            );
                        }
                    }
                    Extra::CreateError => {
                        let reason = "Build of instance failed on the compute host: VDI too big for requested resize up.";
                        field(out, "code", &500);
                        field(
                            out,
                            "exception",
                            &json!({"kwargs": {"code": 500, "instance_uuid": instance.id, "reason": reason}}),
                        );
                        field(
                            out,
                            "message",
                            &format!(
                                "Build of instance {} was re-scheduled: {reason}",
                                instance.id
                            ),
                        );
                    }
                    Extra::ResizePrepEnd => {
                        let flavor = instance.flavor.resized();
                        static_field(out, "new_instance_type", flavor.name);
                        field(out, "new_instance_type_id", &flavor.type_id);
                    }
                }
            }
            Body::Update {
                state,
                old_state,
                old_task,
                new_task,
            } => {
                self.instance_head(out, event, state, new_task);
                static_field(out, "old_state", old_state);
                static_field(out, "old_task_state", old_task);
                static_field(out, "new_task_state", new_task);
                self.time_field(
                    out,
                    "audit_period_beginning",
                    super::time::midnight_before(event.when),
                );
                self.time_field(out, "audit_period_ending", event.when);
                out.extend_from_slice(br#","bandwidth":{},"deleted_at":"","terminated_at":"""#);
            }
            Body::Exists { begin, end, state } => {
                self.instance_head(out, event, state, "");
                self.time_field(out, "audit_period_beginning", begin);
                self.time_field(out, "audit_period_ending", end);
                let seed =
                    u64::from_le_bytes(instance.id.as_bytes()[..8].try_into().unwrap_or_default())
                        ^ begin as u64;
                let traffic = |salt: u64| {
                    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
                        .rotate_left(salt as u32 * 7)
                        % 50_000_000_000
                };
                field(
                    out,
                    "bandwidth",
                    &json!({"public": {"bw_in": traffic(1), "bw_out": traffic(2)}, "private": {"bw_in": traffic(3), "bw_out": traffic(4)}}),
                );
                out.extend_from_slice(br#","deleted_at":"","terminated_at":"""#);
            }
            Body::Scheduler(phase) => {
                let spec = request_spec(event);
                match phase {
                    SchedulerPhase::Start | SchedulerPhase::End => {
                        // Nova puts the uuid only inside request_spec; consumers key on
                        // instance_id, so it is repeated at the top.
                        out.extend_from_slice(b"\"instance_id\":");
                        write_value(out, &instance.id);
                        field(out, "request_spec", &spec);
                    }
                    SchedulerPhase::Scheduled { host } => {
                        out.extend_from_slice(b"\"instance_id\":");
                        write_value(out, &instance.id);
                        field(out, "request_spec", &spec);
                        field(
                            out,
                            "weighted_host",
                            &json!({"host": format!("host-{host}"), "weight": 1.0 + f64::from(host % 17) / 10.0}),
                        );
                    }
                    SchedulerPhase::Failed => {
                        out.extend_from_slice(b"\"instance_id\":");
                        write_value(out, &instance.id);
                        static_field(out, "method", "run_instance");
                        static_field(out, "reason", "No valid host was found. ");
                        field(out, "request_spec", &spec);
                        field(
                            out,
                            "state",
                            &json!({"task_state": null, "vm_state": "error"}),
                        );
                    }
                }
            }
            Body::Fault { exception, state } => {
                out.extend_from_slice(b"\"args\":");
                write_value(
                    out,
                    &json!({"instance": {"uuid": instance.id, "host": format!("host-{}", instance.host), "vm_state": state}}),
                );
                field(
                    out,
                    "exception",
                    &json!({"class": exception, "kwargs": {"code": 500, "instance_uuid": instance.id}, "message": format!("{exception} raised while handling {}", event.name)}),
                );
            }
        }
    }

    /// Appends the instance's static payload, `launched_at`, `state` and
    /// `state_description`: the start of every instance payload.
    fn instance_head(
        &mut self,
        out: &mut Vec<u8>,
        event: &Event,
        state: &'static str,
        description: &'static str,
    ) {
        out.extend_from_slice(event.instance.fragment.as_bytes());
        self.launched_at(out, event);
        static_field(out, "state", state);
        static_field(out, "state_description", description);
    }

    /// Appends the instance's `launched_at`: its launch time once `at` has reached it.
    fn launched_at(&mut self, out: &mut Vec<u8>, event: &Event) {
        match event.instance.launched_at {
            Some(launched) if event.when >= launched => {
                self.time_field(out, "launched_at", launched)
            }
            _ => static_field(out, "launched_at", ""),
        }
    }

    fn time_field(&mut self, out: &mut Vec<u8>, key: &str, at: Micros) {
        out.extend_from_slice(b",\"");
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(b"\":\"");
        self.time.write(at, out);
        out.push(b'"');
    }
}

/// `{"message_id":"<id>` (the quote after the id is left to the caller).
fn write_message_id(out: &mut Vec<u8>, id: Uuid) {
    out.extend_from_slice(br#"{"message_id":""#);
    out.extend_from_slice(
        id.hyphenated()
            .encode_lower(&mut Uuid::encode_buffer())
            .as_bytes(),
    );
}

/// The id of a versioned notification, derived from its legacy twin's so that a seeded
/// run's random stream is the same whatever the format (a random version 4 UUID still).
fn sibling(id: Uuid) -> Uuid {
    let bits = u128::from_le_bytes(*id.as_bytes()).rotate_left(64) ^ 0x9E37_79B9_7F4A_7C15;
    uuid::Builder::from_random_bytes(bits.to_le_bytes()).into_uuid()
}

/// The vm state and previous vm state an event reports.
fn states(body: &Body) -> (&'static str, &'static str) {
    match *body {
        Body::Instance {
            state, old_state, ..
        }
        | Body::Update {
            state, old_state, ..
        } => (state, old_state),
        Body::Exists { state, .. } | Body::Fault { state, .. } => (state, state),
        Body::Scheduler(SchedulerPhase::Failed) => ("error", "building"),
        Body::Scheduler(_) => ("building", "building"),
    }
}

fn request_spec(event: &Event) -> serde_json::Value {
    let instance = &event.instance;
    let flavor = instance.flavor;
    let image = instance.image;
    json!({
        "image": {"id": instance.image_id, "name": image.name, "min_disk": image.min_disk,
                  "min_ram": image.min_ram, "container_format": "ovf", "disk_format": "vhd",
                  "status": "active"},
        "instance_type": {"flavorid": flavor.id, "name": flavor.name, "memory_mb": flavor.memory_mb,
                          "vcpus": flavor.vcpus, "root_gb": flavor.root_gb,
                          "ephemeral_gb": flavor.ephemeral_gb},
        "instance_uuids": [instance.id],
        "num_instances": 1,
    })
}

/// Appends `,"key":"value"` for a constant string, which never needs escaping.
fn static_field(out: &mut Vec<u8>, key: &str, value: &'static str) {
    debug_assert!(!value.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20));
    out.extend_from_slice(b",\"");
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":\"");
    out.extend_from_slice(value.as_bytes());
    out.push(b'"');
}

/// Appends `,"key":<value>`.
fn field<T: Serialize + ?Sized>(out: &mut Vec<u8>, key: &str, value: &T) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
    write_value(out, value);
}

fn write_value<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    serde_json::to_writer(&mut *out, value).expect("serializing into a Vec cannot fail");
}
