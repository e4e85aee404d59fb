//! notigen: an OpenStack-like notification generator.
//!
//! A re-implementation of StackTach's notigen. The operation model is the seed's
//! (0.1.dev18): operations start at a fixed rate; each is a create, an update or a delete
//! of one instance, built whole as a chain of notifications sharing one request id and
//! spread over simulated time, so chains from many operations interleave. The content is
//! 0.3's: legacy Nova payloads, failure chains, and an end-of-day
//! `compute.instance.exists` per live instance at each UTC midnight.
//!
//! What it fixes: an instance is targeted only when it is *idle* — its create has finished
//! and no other operation on it is still in flight — and a delete takes it out of the idle
//! and live sets the moment it is built, so no notification for an instance can follow
//! the start of its delete (the seed emitted hundreds per simulated day). Publishers are
//! `<service>.<host>` so StackTach can split them; timestamps keep their fraction.
//!
//! The API mirrors the original: [`Generator::generate`] returns what is due at `now`, and
//! [`Generator::move_to_next_tick`] advances simulated time in fast mode. Everything random
//! comes from one seeded generator, drawn identically in both payload modes.

#[cfg(feature = "amqp")]
pub mod amqp;
mod event;
mod model;
mod ops;
pub mod oslo;
mod render;
pub mod time;
mod versioned;

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::rc::Rc;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

pub use event::Priority;
pub use model::PayloadMode;
pub use render::{Envelope, Format, Renderer};
pub use time::{Micros, TimeFormat};

use event::{Body, Completion, Event, Operation};
use model::{random_uuid, Instance, Publisher};
use ops::Builder;
use time::{midnight_before, DAY};

/// Percent of operations that create an instance (the seed's split: 10 % create,
/// 18 % delete, 72 % update, creates forced while no instance is idle).
const CREATE_PERCENT: u32 = 10;
/// Percent of operations that delete an instance.
const DELETE_PERCENT: u32 = 18;

/// How a generator runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// New operations per hour (fractional rates are fine).
    pub ops_per_hour: f64,
    /// Payload detail.
    pub payload: PayloadMode,
    /// How timestamps inside the context and payload are written.
    pub time_format: TimeFormat,
    /// Seed for byte-identical runs; `None` seeds from the operating system.
    pub seed: Option<u64>,
}

/// A notification that is due: the event plus its per-message identifiers.
pub struct Notification {
    event: Event,
    message_id: Uuid,
    unique_id: Uuid,
}

impl Notification {
    /// When it happens (simulated time).
    pub fn when(&self) -> Micros {
        self.event.when
    }

    /// Its `event_type`.
    pub fn event_type(&self) -> &'static str {
        self.event.name
    }

    /// Its priority.
    pub fn priority(&self) -> Priority {
        self.event.priority
    }

    /// The request (operation) it belongs to.
    pub fn request_id(&self) -> Uuid {
        self.event.op.request_id
    }

    /// The instance it is about.
    pub fn instance_id(&self) -> Uuid {
        self.event.instance.id
    }
}

/// A key of the time-ordered queue; the item it stands for waits in the generator's slab,
/// so the heap moves 24-byte keys rather than whole events.
struct Queued {
    when: Micros,
    seq: u64,
    slot: usize,
}

/// What waits in the queue: a notification, or the next UTC midnight (which expands into
/// the end-of-day exists batch when it comes due).
enum Item {
    Event(Event),
    Midnight,
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        (self.when, self.seq) == (other.when, other.seq)
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Queued {
    /// Reversed, so the max-heap pops the earliest (then first-queued) entry.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.when, other.seq).cmp(&(self.when, self.seq))
    }
}

/// The notification generator (the original's `EventGenerator`).
pub struct Generator {
    rng: SmallRng,
    mode: PayloadMode,
    time_format: TimeFormat,
    tick: Micros,
    next_tick: Micros,
    queue: BinaryHeap<Queued>,
    seq: u64,
    /// Queued items, indexed by [`Queued::slot`]; `free` lists the empty slots.
    slab: Vec<Option<Item>>,
    free: Vec<usize>,
    /// Instances whose create finished and whose delete has not begun.
    live: Vec<Rc<Instance>>,
    /// Live instances with no operation in flight: the only ones an operation may target.
    idle: Vec<Rc<Instance>>,
    ready: Vec<Notification>,
    /// The chain being built, reused across operations.
    chain: Vec<Event>,
    operations: u64,
}

impl Generator {
    /// A generator whose first operation starts at `start`.
    pub fn new(config: &Config, start: Micros) -> Self {
        let rng = match config.seed {
            Some(seed) => SmallRng::seed_from_u64(seed),
            None => SmallRng::from_os_rng(),
        };
        let tick = ((3_600_000_000.0 / config.ops_per_hour) as Micros).max(1);
        let mut generator = Generator {
            rng,
            mode: config.payload,
            time_format: config.time_format,
            tick,
            next_tick: start,
            queue: BinaryHeap::new(),
            seq: 0,
            slab: Vec::new(),
            free: Vec::new(),
            live: Vec::new(),
            idle: Vec::new(),
            ready: Vec::new(),
            chain: Vec::with_capacity(32),
            operations: 0,
        };
        generator.enqueue(midnight_before(start) + DAY, Item::Midnight);
        generator
    }

    /// `now` plus one tick: the next `now` in fast mode.
    pub fn move_to_next_tick(&self, now: Micros) -> Micros {
        now + self.tick
    }

    /// The earliest time at which [`Generator::generate`] would return something.
    pub fn next_due(&self) -> Micros {
        self.queue
            .peek()
            .map_or(self.next_tick, |q| q.when.min(self.next_tick))
    }

    /// How many operations have been started.
    pub fn operations(&self) -> u64 {
        self.operations
    }

    /// Starts every operation whose tick is at or before `now` and returns every
    /// notification due at or before `now`, in time order (ties in the order queued).
    pub fn generate(&mut self, now: Micros) -> &[Notification] {
        self.ready.clear();
        loop {
            let queued_due = self.queue.peek().map(|q| q.when).filter(|&w| w <= now);
            match queued_due {
                // Due notifications up to the next tick go first, so an operation starting
                // at a tick sees the world as of that tick.
                Some(when) if when <= self.next_tick => self.pop(),
                _ if self.next_tick <= now => {
                    let t0 = self.next_tick;
                    self.start_operation(t0);
                    self.next_tick += self.tick;
                }
                Some(_) => self.pop(),
                None => break,
            }
        }
        &self.ready
    }

    fn enqueue(&mut self, when: Micros, item: Item) {
        self.seq += 1;
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slab[slot] = Some(item);
                slot
            }
            None => {
                self.slab.push(Some(item));
                self.slab.len() - 1
            }
        };
        self.queue.push(Queued {
            when,
            seq: self.seq,
            slot,
        });
    }

    fn start_operation(&mut self, t0: Micros) {
        self.operations += 1;
        let roll = self.rng.random_range(0..100);
        let target = if self.idle.is_empty() || roll < CREATE_PERCENT {
            None
        } else {
            let index = self.rng.random_range(0..self.idle.len());
            Some(self.idle.swap_remove(index))
        };
        let mut builder = Builder {
            rng: &mut self.rng,
            mode: self.mode,
            time: self.time_format,
        };
        let mut chain = std::mem::take(&mut self.chain);
        match target {
            None => builder.create(t0, &mut chain),
            Some(instance) if roll < CREATE_PERCENT + DELETE_PERCENT => {
                builder.delete(t0, Rc::clone(&instance), &mut chain);
                self.remove_live(&instance);
            }
            Some(instance) => builder.update(t0, instance, &mut chain),
        }
        for event in chain.drain(..) {
            self.enqueue(event.when, Item::Event(event));
        }
        self.chain = chain;
    }

    fn pop(&mut self) {
        let Some(queued) = self.queue.pop() else {
            return;
        };
        let item = self.slab[queued.slot].take();
        self.free.push(queued.slot);
        match item {
            Some(Item::Event(event)) => self.emit(event),
            Some(Item::Midnight) => self.end_of_day(queued.when),
            None => {}
        }
    }

    fn emit(&mut self, event: Event) {
        match event.completion {
            Completion::Pending | Completion::Gone => {}
            Completion::Idle => self.idle.push(Rc::clone(&event.instance)),
            Completion::Live => {
                event.instance.live_slot.set(self.live.len());
                self.live.push(Rc::clone(&event.instance));
                self.idle.push(Rc::clone(&event.instance));
            }
        }
        let message_id = random_uuid(&mut self.rng);
        let unique_id = random_uuid(&mut self.rng);
        self.ready.push(Notification {
            event,
            message_id,
            unique_id,
        });
    }

    fn remove_live(&mut self, instance: &Rc<Instance>) {
        let slot = instance.live_slot.get();
        if slot < self.live.len() && Rc::ptr_eq(&self.live[slot], instance) {
            self.live.swap_remove(slot);
            if let Some(moved) = self.live.get(slot) {
                moved.live_slot.set(slot);
            }
        }
    }

    /// One `compute.instance.exists` per live instance, auditing the day that just ended.
    fn end_of_day(&mut self, midnight: Micros) {
        for index in 0..self.live.len() {
            let instance = Rc::clone(&self.live[index]);
            let request = random_uuid(&mut self.rng);
            let token = random_uuid(&mut self.rng);
            let remote = self.rng.random();
            let op = Rc::new(Operation::new(
                request,
                token,
                remote,
                midnight,
                instance.tenant_id,
                instance.user_id,
                self.time_format,
            ));
            let state = instance.state.get();
            self.emit(Event {
                when: midnight,
                name: "compute.instance.exists",
                priority: Priority::Info,
                publisher: Publisher::Compute(instance.host),
                body: Body::Exists {
                    begin: midnight - DAY,
                    end: midnight,
                    state,
                },
                op,
                instance,
                completion: Completion::Pending,
            });
        }
        self.enqueue(midnight + DAY, Item::Midnight);
    }
}
