//! Operations: a create, an update or a delete of one instance, built whole as a chain of
//! notifications sharing one request id, spread over simulated time.
//!
//! Timing follows the seed notigen (0.1.dev18): every operation opens with an API
//! `compute.instance.update`; a create walks the scheduler chain and `create.start`, and
//! `create.end` lands up to 15 minutes later; `.*` update names become `.start`/`.end`
//! pairs. The 0.3 realism adds task-state updates and failure chains: reschedules
//! (`create.error`, priority ERROR, then a retry), a scheduler that finds no valid host, and
//! the `*_instance` faults Nova's exception wrapper publishes.

use std::rc::Rc;

use rand::rngs::SmallRng;
use rand::Rng;

use super::event::{Body, Completion, Event, Extra, Operation, Priority, SchedulerPhase};
use super::model::{
    random_uuid, Draw, Instance, Lifetime, PayloadMode, Publisher, API_NODES, COMPUTE_HOSTS,
    SCHEDULERS,
};
use super::time::{Micros, TimeFormat, SECOND};

/// One of the seed's 36 compute event names, as an update operation performs it.
enum UpdateName {
    /// A `.*` name: `start`, later `end`; `fault` is the ERROR notification that replaces
    /// `end` when it fails.
    Paired {
        start: &'static str,
        end: &'static str,
        task: &'static str,
        after: Option<&'static str>,
        fault: &'static str,
    },
    /// A single `compute.instance.*` event that may change the vm state.
    Single {
        name: &'static str,
        task: &'static str,
        after: Option<&'static str>,
    },
    /// `compute.instance.exists` as an ad-hoc audit.
    Exists,
    /// `compute.instance.update` alone (a metadata or name change).
    Update,
    /// A bare RPC method name, emitted verbatim as the seed did.
    Bare(&'static str),
}

macro_rules! paired {
    ($verb:literal, $task:literal, $after:expr, $fault:literal) => {
        UpdateName::Paired {
            start: concat!("compute.instance.", $verb, ".start"),
            end: concat!("compute.instance.", $verb, ".end"),
            task: $task,
            after: $after,
            fault: $fault,
        }
    };
}

const UPDATE_NAMES: [UpdateName; 36] = [
    paired!(
        "finish_resize",
        "resize_finish",
        Some("resized"),
        "finish_resize"
    ),
    paired!(
        "power_off",
        "powering-off",
        Some("stopped"),
        "stop_instance"
    ),
    paired!("power_on", "powering-on", Some("active"), "start_instance"),
    paired!("reboot", "rebooting", Some("active"), "reboot_instance"),
    paired!("rebuild", "rebuilding", Some("active"), "rebuild_instance"),
    paired!(
        "resize.confirm",
        "resize_confirming",
        Some("active"),
        "confirm_resize"
    ),
    paired!("resize.prep", "resize_prep", None, "prep_resize"),
    paired!(
        "resize.revert",
        "resize_reverting",
        Some("active"),
        "revert_resize"
    ),
    paired!(
        "resize",
        "resize_migrating",
        Some("resized"),
        "resize_instance"
    ),
    paired!("shutdown", "powering-off", Some("stopped"), "stop_instance"),
    paired!("snapshot", "image_snapshot", None, "snapshot_instance"),
    UpdateName::Single {
        name: "compute.instance.suspend",
        task: "suspending",
        after: Some("suspended"),
    },
    UpdateName::Single {
        name: "compute.instance.resume",
        task: "resuming",
        after: Some("active"),
    },
    UpdateName::Exists,
    UpdateName::Update,
    UpdateName::Bare("attach_volume"),
    UpdateName::Bare("change_instance_metadata"),
    UpdateName::Bare("detach_volume"),
    UpdateName::Bare("finish_resize"),
    UpdateName::Bare("finish_revert_resize"),
    UpdateName::Bare("get_vnc_console"),
    UpdateName::Bare("power_on_instance"),
    UpdateName::Bare("prep_resize"),
    UpdateName::Bare("reboot_instance"),
    UpdateName::Bare("rebuild_instance"),
    UpdateName::Bare("rescue_instance"),
    UpdateName::Bare("reserve_block_device_name"),
    UpdateName::Bare("resize_instance"),
    UpdateName::Bare("revert_resize"),
    UpdateName::Bare("run_instance"),
    UpdateName::Bare("set_admin_password"),
    UpdateName::Bare("snapshot_instance"),
    UpdateName::Bare("start_instance"),
    UpdateName::Bare("suspend_instance"),
    UpdateName::Bare("terminate_instance"),
    UpdateName::Bare("unrescue_instance"),
];

/// Percent of creates rescheduled after a build failure on a compute host.
const CREATE_RESCHEDULED: u32 = 3;
/// Percent of creates for which the scheduler finds no valid host.
const CREATE_NO_VALID_HOST: u32 = 1;
/// Percent of paired updates and deletes that end in an ERROR fault.
const FAULT: u32 = 2;
/// Builds a create retries at most this many times before the scheduler gives up.
const MAX_ATTEMPTS: u32 = 3;

/// The shared state an operation is built with.
pub(crate) struct Builder<'a> {
    pub rng: &'a mut SmallRng,
    pub mode: PayloadMode,
    pub time: TimeFormat,
}

/// The notifications of one operation, in time order, the last one marked.
struct Chain<'o> {
    op: Rc<Operation>,
    instance: Rc<Instance>,
    at: Micros,
    /// The caller's buffer (reused across operations); this chain's events start at `first`.
    events: &'o mut Vec<Event>,
    first: usize,
}

impl<'o> Chain<'o> {
    fn new(
        op: Rc<Operation>,
        instance: Rc<Instance>,
        at: Micros,
        events: &'o mut Vec<Event>,
    ) -> Self {
        Chain {
            op,
            instance,
            at,
            first: events.len(),
            events,
        }
    }

    /// Pushes an INFO `compute.instance.update` with the given vm and task states.
    fn update(
        &mut self,
        publisher: Publisher,
        state: &'static str,
        old_state: &'static str,
        old_task: &'static str,
        new_task: &'static str,
    ) {
        let body = Body::Update {
            state,
            old_state,
            old_task,
            new_task,
        };
        self.push("compute.instance.update", Priority::Info, publisher, body);
    }

    /// Pushes an INFO event with the instance payload.
    fn instance(
        &mut self,
        name: &'static str,
        publisher: Publisher,
        state: &'static str,
        old_state: &'static str,
        task: &'static str,
        extra: Extra,
    ) {
        let body = Body::Instance {
            state,
            old_state,
            task,
            extra,
        };
        self.push(name, Priority::Info, publisher, body);
    }

    /// Pushes an INFO scheduler event.
    fn scheduler(&mut self, name: &'static str, publisher: Publisher, phase: SchedulerPhase) {
        self.push(name, Priority::Info, publisher, Body::Scheduler(phase));
    }

    fn push(&mut self, name: &'static str, priority: Priority, publisher: Publisher, body: Body) {
        self.events.push(Event {
            when: self.at,
            name,
            priority,
            publisher,
            body,
            op: Rc::clone(&self.op),
            instance: Rc::clone(&self.instance),
            completion: Completion::Pending,
        });
    }

    fn finish(self, completion: Completion) {
        if self.events.len() > self.first {
            if let Some(last) = self.events.last_mut() {
                last.completion = completion;
            }
        }
    }
}

/// `lo + (hi - lo) * random()` seconds, in microseconds (the seed's `bump`).
fn bump(rng: &mut SmallRng, lo: f64, hi: f64) -> Micros {
    ((lo + (hi - lo) * rng.random::<f64>()) * SECOND as f64) as Micros
}

impl Builder<'_> {
    fn operation(&mut self, started: Micros, tenant: u32, user: u32) -> Rc<Operation> {
        let request = random_uuid(self.rng);
        let token = random_uuid(self.rng);
        let remote = self.rng.random();
        Rc::new(Operation::new(
            request, token, remote, started, tenant, user, self.time,
        ))
    }

    fn api(&mut self) -> Publisher {
        Publisher::Api(self.rng.random_range(0..API_NODES))
    }

    /// A create: appends its chain to `out`. The instance becomes live when
    /// the chain's last event is emitted, unless the create fails.
    pub fn create(&mut self, t0: Micros, out: &mut Vec<Event>) {
        let draw = Draw::new(self.rng);
        let op = self.operation(t0, draw.tenant_id, draw.user_id);
        let api = self.api();
        let roll = self.rng.random_range(0..100);
        let failed_attempts = if roll < CREATE_NO_VALID_HOST {
            0
        } else if roll < CREATE_NO_VALID_HOST + CREATE_RESCHEDULED {
            self.rng.random_range(1..=MAX_ATTEMPTS)
        } else {
            0
        };
        let no_valid_host = roll < CREATE_NO_VALID_HOST || failed_attempts == MAX_ATTEMPTS;
        // Draw every delay first: the instance's launched_at (in its static payload) is the
        // time of create.end.
        let attempts: Vec<Attempt> = (0..failed_attempts)
            .map(|_| Attempt::draw(self.rng, false))
            .collect();
        let last = if no_valid_host {
            None
        } else {
            Some(Attempt::draw(self.rng, true))
        };
        let scheduler_gives_up = (
            Publisher::Scheduler(self.rng.random_range(0..SCHEDULERS)),
            bump(self.rng, 0.5, 3.0),
            bump(self.rng, 0.1, 0.5),
        );
        let mut at = t0;
        for attempt in &attempts {
            at += attempt.span();
        }
        let launched_at = last.as_ref().map(|attempt| at + attempt.span());
        let instance = Rc::new(Instance::new(
            draw,
            Lifetime {
                created_at: t0,
                launched_at,
            },
            self.mode,
            self.time,
        ));

        let mut chain = Chain::new(op, Rc::clone(&instance), t0, out);
        chain.update(api, "building", "", "", "scheduling");
        for attempt in &attempts {
            attempt.push(&mut chain);
        }
        let completion = match &last {
            Some(attempt) => {
                attempt.push(&mut chain);
                Completion::Live
            }
            None => {
                let (scheduler, before, after) = scheduler_gives_up;
                chain.at += before;
                chain.scheduler(
                    "scheduler.run_instance.start",
                    scheduler,
                    SchedulerPhase::Start,
                );
                chain.at += after;
                chain.push(
                    "scheduler.run_instance",
                    Priority::Error,
                    scheduler,
                    Body::Scheduler(SchedulerPhase::Failed),
                );
                chain.update(scheduler, "error", "building", "scheduling", "");
                instance.state.set("error");
                Completion::Gone
            }
        };
        if last.is_some() {
            instance.state.set("active");
        }
        chain.finish(completion);
    }

    /// An update of an idle live instance: one of the seed's 36 compute event names.
    pub fn update(&mut self, t0: Micros, instance: Rc<Instance>, out: &mut Vec<Event>) {
        let op = self.operation(t0, instance.tenant_id, instance.user_id);
        let api = self.api();
        let compute = Publisher::Compute(instance.host);
        let name = &UPDATE_NAMES[self.rng.random_range(0..UPDATE_NAMES.len())];
        let state = instance.state.get();
        let mut chain = Chain::new(op, Rc::clone(&instance), t0, out);
        let task = match name {
            UpdateName::Paired { task, .. } | UpdateName::Single { task, .. } => task,
            _ => "",
        };
        chain.update(api, state, state, "", task);
        chain.at += bump(self.rng, 0.1, 1.0);
        match *name {
            UpdateName::Paired {
                start,
                end,
                task,
                after,
                fault,
            } => {
                chain.instance(start, compute, state, state, task, Extra::None);
                let failed = self.rng.random_range(0..100) < FAULT;
                chain.at += bump(self.rng, 0.25, 900.0);
                if failed {
                    chain.push(
                        fault,
                        Priority::Error,
                        compute,
                        Body::Fault {
                            exception: "InstanceFaultRollback",
                            state,
                        },
                    );
                } else {
                    let next = after.unwrap_or(state);
                    let extra = if end == "compute.instance.resize.prep.end" {
                        Extra::ResizePrepEnd
                    } else {
                        Extra::None
                    };
                    chain.instance(end, compute, next, state, "", extra);
                    instance.state.set(next);
                }
            }
            UpdateName::Single { name, task, after } => {
                let next = after.unwrap_or(state);
                chain.instance(name, compute, next, state, task, Extra::None);
                instance.state.set(next);
            }
            UpdateName::Exists => {
                let end = chain.at;
                let begin = super::time::midnight_before(end);
                chain.push(
                    "compute.instance.exists",
                    Priority::Info,
                    compute,
                    Body::Exists { begin, end, state },
                );
            }
            UpdateName::Update => {
                chain.update(compute, state, state, task, "");
            }
            UpdateName::Bare(name) => {
                chain.instance(name, compute, state, state, "", Extra::None);
            }
        }
        chain.finish(Completion::Idle);
    }

    /// A delete of an idle live instance: nothing else ever targets it afterwards.
    pub fn delete(&mut self, t0: Micros, instance: Rc<Instance>, out: &mut Vec<Event>) {
        let op = self.operation(t0, instance.tenant_id, instance.user_id);
        let api = self.api();
        let compute = Publisher::Compute(instance.host);
        let state = instance.state.get();
        let mut chain = Chain::new(op, Rc::clone(&instance), t0, out);
        chain.update(api, state, state, "", "deleting");
        chain.instance(
            "compute.instance.delete.start",
            compute,
            state,
            state,
            "deleting",
            Extra::None,
        );
        chain.at += bump(self.rng, 0.1, 0.5);
        chain.instance(
            "compute.instance.shutdown.start",
            compute,
            state,
            state,
            "deleting",
            Extra::None,
        );
        if self.rng.random_range(0..100) < FAULT {
            chain.at += bump(self.rng, 0.5, 5.0);
            chain.push(
                "terminate_instance",
                Priority::Error,
                compute,
                Body::Fault {
                    exception: "InstanceTerminationFailure",
                    state,
                },
            );
            instance.state.set("error");
        } else {
            chain.at += bump(self.rng, 0.5, 10.0);
            chain.instance(
                "compute.instance.shutdown.end",
                compute,
                state,
                state,
                "deleting",
                Extra::None,
            );
            chain.at += bump(self.rng, 0.1, 0.5);
            chain.update(compute, "deleted", state, "deleting", "");
            chain.at += bump(self.rng, 0.25, 900.0);
            chain.instance(
                "compute.instance.delete.end",
                compute,
                "deleted",
                state,
                "",
                Extra::Deleted,
            );
            instance.state.set("deleted");
        }
        chain.finish(Completion::Gone);
    }
}

/// One scheduling-and-build attempt of a create, its delays drawn up front.
struct Attempt {
    scheduler: Publisher,
    host: u32,
    delays: [Micros; 6],
    succeeds: bool,
}

impl Attempt {
    fn draw(rng: &mut SmallRng, succeeds: bool) -> Self {
        Attempt {
            scheduler: Publisher::Scheduler(rng.random_range(0..SCHEDULERS)),
            host: rng.random_range(0..COMPUTE_HOSTS),
            delays: [
                bump(rng, 0.5, 3.0),
                bump(rng, 0.1, 0.5),
                bump(rng, 0.1, 0.5),
                bump(rng, 0.5, 3.0),
                bump(rng, 0.1, 0.5),
                if succeeds {
                    bump(rng, 0.25, 900.0)
                } else {
                    bump(rng, 1.0, 30.0)
                },
            ],
            succeeds,
        }
    }

    fn span(&self) -> Micros {
        self.delays.iter().sum()
    }

    fn push(&self, chain: &mut Chain) {
        // A successful attempt builds on the instance's own host.
        let host = if self.succeeds {
            chain.instance.host
        } else {
            self.host
        };
        let compute = Publisher::Compute(host);
        let [d0, d1, d2, d3, d4, d5] = self.delays;
        chain.at += d0;
        chain.scheduler(
            "scheduler.run_instance.start",
            self.scheduler,
            SchedulerPhase::Start,
        );
        chain.at += d1;
        chain.scheduler(
            "scheduler.run_instance.scheduled",
            self.scheduler,
            SchedulerPhase::Scheduled { host },
        );
        chain.at += d2;
        chain.scheduler(
            "scheduler.run_instance.end",
            self.scheduler,
            SchedulerPhase::End,
        );
        chain.at += d3;
        chain.update(compute, "building", "building", "scheduling", "spawning");
        chain.at += d4;
        chain.push(
            "compute.instance.create.start",
            Priority::Info,
            compute,
            Body::Instance {
                state: "building",
                old_state: "building",
                task: "spawning",
                extra: Extra::Create { end: false },
            },
        );
        chain.at += d5;
        if self.succeeds {
            chain.push(
                "compute.instance.create.end",
                Priority::Info,
                compute,
                Body::Instance {
                    state: "active",
                    old_state: "building",
                    task: "",
                    extra: Extra::Create { end: true },
                },
            );
        } else {
            chain.push(
                "compute.instance.create.error",
                Priority::Error,
                compute,
                Body::Instance {
                    state: "building",
                    old_state: "building",
                    task: "scheduling",
                    extra: Extra::CreateError,
                },
            );
        }
    }
}
