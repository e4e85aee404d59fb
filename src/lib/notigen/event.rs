//! A notification waiting to be emitted, and the operation (request) it belongs to.

use std::rc::Rc;

use uuid::Uuid;

use super::model::{Instance, Publisher};
use super::time::{Micros, TimeFormat};

/// `INFO` or `ERROR`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// A normal notification.
    Info,
    /// A failure notification.
    Error,
}

impl Priority {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Priority::Info => "INFO",
            Priority::Error => "ERROR",
        }
    }
}

/// What one operation (one request id) shares across its notifications.
pub(crate) struct Operation {
    pub request_id: Uuid,
    /// The `_context_*` keys, serialized once (without braces).
    pub context: Box<str>,
}

impl Operation {
    /// An operation by `user` of `tenant`, started at `started` from `remote`.
    ///
    /// The context is written with one `write!`: every value is digits, hex, dots, dashes
    /// or a timestamp, none of which JSON escapes, and this runs once per operation.
    pub fn new(
        request_id: Uuid,
        auth_token: Uuid,
        remote: [u8; 4],
        started: Micros,
        tenant: u32,
        user: u32,
        time: TimeFormat,
    ) -> Self {
        use std::fmt::Write as _;
        let [a, b, c, d] = remote;
        let mut context = String::with_capacity(720);
        let _ = write!(
            context,
            concat!(
                r#""_context_auth_token":"{token}","_context_glance_api_servers":null,"#,
                r#""_context_instance_lock_checked":false,"_context_is_admin":false,"#,
                r#""_context_project_id":"{tenant}","_context_project_name":"{tenant}","#,
                r#""_context_quota_class":null,"_context_read_deleted":"no","#,
                r#""_context_remote_address":"{a}.{b}.{c}.{d}","_context_request_id":"req-{request}","#,
                r#""_context_roles":["member","compute:default"],"_context_tenant":"{tenant}","#,
                r#""_context_timestamp":"{started}","_context_user":"{user}","#,
                r#""_context_user_id":"{user}","_context_user_name":"{user}""#,
            ),
            token = auth_token.simple(),
            tenant = tenant,
            a = a,
            b = b,
            c = c,
            d = d,
            request = request_id.hyphenated(),
            started = time.format(started),
            user = user,
        );
        Operation {
            request_id,
            context: context.into_boxed_str(),
        }
    }
}

/// The payload an event carries, beyond the instance's static fields.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Body {
    /// A `compute.instance.*` event (or a bare RPC name published as INFO).
    Instance {
        state: &'static str,
        old_state: &'static str,
        task: &'static str,
        extra: Extra,
    },
    /// `compute.instance.update`: adds old/new task states, the audit period and bandwidth.
    Update {
        state: &'static str,
        old_state: &'static str,
        old_task: &'static str,
        new_task: &'static str,
    },
    /// `compute.instance.exists` for the audit period [begin, end).
    Exists {
        begin: Micros,
        end: Micros,
        state: &'static str,
    },
    /// A scheduler event.
    Scheduler(SchedulerPhase),
    /// A bare RPC method name published with priority ERROR by Nova's exception wrapper.
    Fault {
        exception: &'static str,
        state: &'static str,
    },
}

/// Extra payload keys of some `compute.instance.*` events.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Extra {
    None,
    /// `create.start`/`create.end`: `message`, `image_name`; `fixed_ips` on the end.
    Create {
        end: bool,
    },
    /// `create.error`: `code`, `exception`, `message`.
    CreateError,
    /// `resize.prep.end`: the new flavor.
    ResizePrepEnd,
    /// `delete.end` (and later): `deleted_at`/`terminated_at` set.
    Deleted,
}

/// The phase of `scheduler.run_instance`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum SchedulerPhase {
    Start,
    Scheduled {
        host: u32,
    },
    End,
    /// `scheduler.run_instance` with priority ERROR: no valid host.
    Failed,
}

/// A notification waiting in the generator's queue.
#[derive(Clone)]
pub(crate) struct Event {
    pub when: Micros,
    pub name: &'static str,
    pub priority: Priority,
    pub publisher: Publisher,
    pub body: Body,
    pub op: Rc<Operation>,
    pub instance: Rc<Instance>,
    /// What the generator does when this event, the last of its operation, is emitted.
    pub completion: Completion,
}

/// The effect of an operation's last event on the instance it targeted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Completion {
    /// Not the last event.
    Pending,
    /// A create finished: the instance is live and may be targeted.
    Live,
    /// The instance may be targeted again.
    Idle,
    /// The instance is gone (failed create or delete): nothing more happens to it.
    Gone,
}
