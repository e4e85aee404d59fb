//! Nova's versioned notifications (`[notifications]notification_format = versioned`): the
//! same events as the legacy ones, as Nova 26 (Debian 12's python3-nova 26.2.2) sends them
//! on the `versioned_notifications` topic.
//!
//! A legacy event maps to at most one versioned one: `compute.instance.<verb>.<phase>`
//! becomes `instance.<verb>.<phase>` (Nova renamed `resize.prep` to `resize_prep`,
//! `resize.confirm` to `resize_confirm`, `resize.revert` to `resize_revert` and
//! `finish_resize` to `resize_finish`), a bare RPC name published as ERROR by Nova's
//! exception wrapper becomes `compute.exception`, and the events Nova sends only in the
//! legacy form (the scheduler's `scheduler.run_instance.*`, bare RPC names published as
//! INFO) have none. The payload is an oslo versioned object, `{"nova_object.name",
//! "nova_object.namespace": "nova", "nova_object.version", "nova_object.data"}`, with
//! every field of its class (the classes and versions are Nova 26's; the tests check each
//! payload against Nova's own objects), ISO 8601 times and JSON nulls.

use serde_json::{json, Value};

use super::event::{Body, Event, Extra};
use super::model::{object_body, Flavor, Instance};
use super::time::Micros;

/// The versioned payload classes notigen sends, with their Nova 26 versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    Action,
    Create,
    Rebuild,
    Rescue,
    ResizePrep,
    Snapshot,
    Update,
    Exists,
}

impl Class {
    fn name(self) -> &'static str {
        match self {
            Class::Action => "InstanceActionPayload",
            Class::Create => "InstanceCreatePayload",
            Class::Rebuild => "InstanceActionRebuildPayload",
            Class::Rescue => "InstanceActionRescuePayload",
            Class::ResizePrep => "InstanceActionResizePrepPayload",
            Class::Snapshot => "InstanceActionSnapshotPayload",
            Class::Update => "InstanceUpdatePayload",
            Class::Exists => "InstanceExistsPayload",
        }
    }

    fn version(self) -> &'static str {
        match self {
            Class::Action => "1.8",
            Class::Create => "1.12",
            Class::Rebuild => "1.9",
            Class::Rescue => "1.3",
            Class::ResizePrep => "1.3",
            Class::Snapshot => "1.9",
            Class::Update => "2.0",
            Class::Exists => "2.0",
        }
    }
}

/// What a legacy event becomes in the versioned form.
pub(crate) enum Versioned {
    /// `instance.<action>.<phase>` with an instance payload of `class`.
    Instance { event_type: String, class: Class },
    /// `compute.exception` with an `ExceptionPayload`.
    Exception,
}

/// The versioned counterpart of `event`, if Nova sends one.
pub(crate) fn versioned(event: &Event) -> Option<Versioned> {
    match event.body {
        Body::Scheduler(_) => None,
        Body::Fault { .. } => Some(Versioned::Exception),
        Body::Update { .. } => Some(Versioned::Instance {
            event_type: "instance.update".to_owned(),
            class: Class::Update,
        }),
        Body::Exists { .. } => Some(Versioned::Instance {
            event_type: "instance.exists".to_owned(),
            class: Class::Exists,
        }),
        Body::Instance { .. } => {
            let rest = event.name.strip_prefix("compute.instance.")?;
            let (action, phase) = match rest.rsplit_once('.') {
                Some((action, phase @ ("start" | "end" | "error"))) => (action, phase),
                // Single events (`suspend`, `resume`) are the end of their action.
                _ if !rest.contains('.') => (rest, "end"),
                _ => return None,
            };
            let action = match action {
                "resize.prep" => "resize_prep",
                "resize.confirm" => "resize_confirm",
                "resize.revert" => "resize_revert",
                "finish_resize" => "resize_finish",
                "instance.create" => "create",
                other if other.contains('.') => return None,
                other => other,
            };
            let class = match action {
                "create" => Class::Create,
                "rebuild" => Class::Rebuild,
                "rescue" => Class::Rescue,
                "resize_prep" => Class::ResizePrep,
                "snapshot" => Class::Snapshot,
                _ => Class::Action,
            };
            Some(Versioned::Instance {
                event_type: format!("instance.{action}.{phase}"),
                class,
            })
        }
    }
}

/// An oslo versioned object as Nova serializes it.
fn object(name: &str, version: &str, data: Value) -> Value {
    json!({
        "nova_object.name": name,
        "nova_object.namespace": "nova",
        "nova_object.version": version,
        "nova_object.data": data,
    })
}

/// A time as oslo.versionedobjects' DateTimeField writes it: `YYYY-MM-DDTHH:MM:SSZ`.
pub(crate) fn iso(at: Micros) -> String {
    chrono::DateTime::from_timestamp_micros(at)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Appends the payload object of `event` (no leading comma) as `kind` describes it.
pub(crate) fn write_payload(event: &Event, kind: &Versioned, out: &mut Vec<u8>) {
    match kind {
        Versioned::Exception => {
            let Body::Fault { exception, .. } = event.body else {
                return write_value(out, &Value::Null);
            };
            write_value(out, &exception_payload(event.name, exception, event));
        }
        Versioned::Instance { class, .. } => {
            out.extend_from_slice(br#"{"nova_object.name":""#);
            out.extend_from_slice(class.name().as_bytes());
            out.extend_from_slice(br#"","nova_object.namespace":"nova","nova_object.version":""#);
            out.extend_from_slice(class.version().as_bytes());
            out.extend_from_slice(br#"","nova_object.data":{"#);
            let instance = &event.instance;
            out.extend_from_slice(
                instance
                    .versioned
                    .get_or_init(|| static_fields(instance))
                    .as_bytes(),
            );
            dynamic_fields(event, *class, out);
            out.extend_from_slice(b"}}");
        }
    }
}

/// The payload keys of an instance that never change, without braces.
fn static_fields(instance: &Instance) -> Box<str> {
    let flavor = instance.flavor;
    let id = instance.id.as_bytes();
    let [a, b, c, d] = instance.ipv4;
    let port =
        uuid::Builder::from_random_bytes(u128::from_le_bytes(*id).rotate_left(17).to_le_bytes())
            .into_uuid();
    let fields = json!({
        "action_initiator_project": instance.tenant_id.to_string(),
        "action_initiator_user": instance.user_id.to_string(),
        "architecture": "x86_64",
        "auto_disk_config": "MANUAL",
        "availability_zone": "nova",
        "block_devices": [],
        "created_at": iso(instance.created_at),
        "display_description": "",
        "display_name": format!("Instance_{}", instance.name),
        "flavor": flavor_payload(flavor),
        "host": format!("host-{}", instance.host),
        "host_name": format!("server-{}", instance.name),
        "image_uuid": instance.image_id.hyphenated().to_string(),
        "ip_addresses": [object("IpPayload", "1.0", json!({
            "address": format!("{a}.{b}.{c}.{d}"),
            "device_name": format!("tap{}", &port.simple().to_string()[..11]),
            "label": "private",
            "mac": format!("fa:16:3e:{:02x}:{:02x}:{:02x}", id[3], id[4], id[5]),
            "meta": {},
            "port_uuid": port.hyphenated().to_string(),
            "version": 4,
        }))],
        "kernel_id": "",
        "key_name": null,
        "locked": false,
        "locked_reason": null,
        "metadata": {},
        "node": format!("node-{}", instance.host),
        "os_type": "linux",
        "progress": 0,
        "ramdisk_id": "",
        "reservation_id": format!("r-{:08x}", instance.reservation),
        "tenant_id": instance.tenant_id.to_string(),
        "user_id": instance.user_id.to_string(),
        "uuid": instance.id.hyphenated().to_string(),
    });
    object_body(&fields).into_boxed_str()
}

/// A flavor as Nova's `FlavorPayload` 1.4.
fn flavor_payload(flavor: &Flavor) -> Value {
    object(
        "FlavorPayload",
        "1.4",
        json!({
            "description": null,
            "disabled": false,
            "ephemeral_gb": flavor.ephemeral_gb,
            "extra_specs": {},
            "flavorid": flavor.id,
            "is_public": true,
            "memory_mb": flavor.memory_mb,
            "name": flavor.name,
            "projects": null,
            "root_gb": flavor.root_gb,
            "rxtx_factor": 1.0,
            "swap": 0,
            "vcpu_weight": 0,
            "vcpus": flavor.vcpus,
        }),
    )
}

/// Nova's power state for a vm state.
fn power_state(state: &str) -> &'static str {
    match state {
        "active" | "rescued" | "resized" => "running",
        "building" | "error" => "pending",
        "suspended" => "suspended",
        "paused" => "paused",
        _ => "shutdown",
    }
}

fn null_if_empty(text: &str) -> Value {
    if text.is_empty() {
        Value::Null
    } else {
        Value::from(text)
    }
}

/// Appends the keys that change from event to event (each with a leading comma).
fn dynamic_fields(event: &Event, class: Class, out: &mut Vec<u8>) {
    let instance = &event.instance;
    let (state, task) = match event.body {
        Body::Instance { state, task, .. } => (state, task),
        Body::Update {
            state, new_task, ..
        } => (state, new_task),
        Body::Exists { state, .. } => (state, ""),
        Body::Fault { state, .. } => (state, ""),
        Body::Scheduler(_) => ("building", "scheduling"),
    };
    let deleted = matches!(
        event.body,
        Body::Instance {
            extra: Extra::Deleted,
            ..
        }
    );
    let at = Value::from(iso(event.when));
    let mut fields = serde_json::Map::new();
    let launched = instance
        .launched_at
        .filter(|&launched| event.when >= launched)
        .map_or(Value::Null, |launched| Value::from(iso(launched)));
    fields.insert("launched_at".into(), launched);
    let gone = if deleted { at.clone() } else { Value::Null };
    fields.insert("deleted_at".into(), gone.clone());
    fields.insert("terminated_at".into(), gone);
    fields.insert("updated_at".into(), at);
    fields.insert("state".into(), Value::from(state));
    fields.insert("task_state".into(), null_if_empty(task));
    fields.insert("power_state".into(), Value::from(power_state(state)));
    fields.insert(
        "request_id".into(),
        Value::from(format!("req-{}", event.op.request_id.hyphenated())),
    );
    let fault = match event.body {
        Body::Instance {
            extra: Extra::CreateError,
            ..
        } => json!(object(
            "ExceptionPayload",
            "1.1",
            exception_data(
                "_build_and_run_instance",
                "RescheduledException",
                &format!(
                    "Build of instance {} was re-scheduled: VDI too big for requested resize up.",
                    instance.id
                ),
            )
        )),
        _ => Value::Null,
    };
    match class {
        Class::Update | Class::Exists => {
            let (begin, end) = match event.body {
                Body::Exists { begin, end, .. } => (begin, end),
                _ => (super::time::midnight_before(event.when), event.when),
            };
            fields.insert(
                "audit_period".into(),
                object(
                    "AuditPeriodPayload",
                    "1.0",
                    json!({"audit_period_beginning": iso(begin), "audit_period_ending": iso(end)}),
                ),
            );
        }
        _ => {
            fields.insert("fault".into(), fault);
        }
    }
    match class {
        Class::Update => {
            let Body::Update {
                state,
                old_state,
                old_task,
                new_task,
            } = event.body
            else {
                unreachable!("instance.update comes from compute.instance.update");
            };
            fields.insert("old_display_name".into(), Value::Null);
            fields.insert("tags".into(), json!([]));
            fields.insert(
                "state_update".into(),
                object(
                    "InstanceStateUpdatePayload",
                    "1.0",
                    json!({
                        "old_state": null_if_empty(old_state),
                        "state": null_if_empty(state),
                        "old_task_state": null_if_empty(old_task),
                        "new_task_state": null_if_empty(new_task),
                    }),
                ),
            );
        }
        Class::Create => {
            fields.insert(
                "instance_name".into(),
                Value::from(format!("instance-{:08x}", instance.name)),
            );
            fields.insert("keypairs".into(), json!([]));
            fields.insert("tags".into(), json!([]));
            fields.insert("trusted_image_certificates".into(), Value::Null);
        }
        Class::Rebuild => {
            fields.insert("trusted_image_certificates".into(), Value::Null);
        }
        Class::Rescue => {
            fields.insert(
                "rescue_image_ref".into(),
                Value::from(instance.image_id.hyphenated().to_string()),
            );
        }
        Class::ResizePrep => {
            fields.insert(
                "new_flavor".into(),
                flavor_payload(instance.flavor.resized()),
            );
        }
        Class::Snapshot => {
            let snapshot = uuid::Builder::from_random_bytes(
                (u128::from_le_bytes(*event.op.request_id.as_bytes()) ^ 0x5a5a).to_le_bytes(),
            )
            .into_uuid();
            fields.insert(
                "snapshot_image_id".into(),
                Value::from(snapshot.hyphenated().to_string()),
            );
        }
        Class::Action | Class::Exists => {}
    }
    for (key, value) in &fields {
        out.push(b',');
        write_value(out, key);
        out.push(b':');
        write_value(out, value);
    }
}

fn exception_data(function: &str, exception: &str, message: &str) -> Value {
    json!({
        "exception": exception,
        "exception_message": message,
        "function_name": function,
        "module_name": "nova.compute.manager",
        "traceback": format!(
            "Traceback (most recent call last):\n  File \"/usr/lib/python3/dist-packages/nova/exception_wrapper.py\", line 63, in wrapped\n    return f(self, context, *args, **kw)\nnova.exception.{exception}: {message}\n"
        ),
    })
}

/// `compute.exception`'s payload for a failed RPC method.
fn exception_payload(function: &str, exception: &str, event: &Event) -> Value {
    let message = format!(
        "{exception} raised while handling {function} for instance {}",
        event.instance.id
    );
    object(
        "ExceptionPayload",
        "1.1",
        exception_data(function, exception, &message),
    )
}

fn write_value<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    serde_json::to_writer(&mut *out, value).expect("serializing into a Vec cannot fail");
}
