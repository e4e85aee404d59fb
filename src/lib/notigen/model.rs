//! The simulated cloud: instances with the attributes a legacy Nova payload reports, the
//! flavors and images they are built from, and the static part of their payload.
//!
//! An instance's attributes are drawn once, when its create operation is built, and drawn
//! the same way whatever the payload mode, so `--payload seed` and `--payload full` consume
//! the random stream identically and emit the same operations.

use std::cell::Cell;

use rand::rngs::SmallRng;
use rand::Rng;
use serde::Serialize;
use uuid::Uuid;

use super::time::{Micros, TimeFormat};

/// A Nova flavor.
pub(crate) struct Flavor {
    pub id: &'static str,
    pub type_id: u32,
    pub name: &'static str,
    pub memory_mb: u32,
    pub vcpus: u32,
    pub root_gb: u32,
    pub ephemeral_gb: u32,
}

pub(crate) const FLAVORS: [Flavor; 6] = [
    Flavor {
        id: "2",
        type_id: 2,
        name: "512MB Standard Instance",
        memory_mb: 512,
        vcpus: 1,
        root_gb: 20,
        ephemeral_gb: 0,
    },
    Flavor {
        id: "3",
        type_id: 3,
        name: "1GB Standard Instance",
        memory_mb: 1024,
        vcpus: 1,
        root_gb: 40,
        ephemeral_gb: 0,
    },
    Flavor {
        id: "4",
        type_id: 4,
        name: "2GB Standard Instance",
        memory_mb: 2048,
        vcpus: 2,
        root_gb: 80,
        ephemeral_gb: 0,
    },
    Flavor {
        id: "5",
        type_id: 5,
        name: "4GB Standard Instance",
        memory_mb: 4096,
        vcpus: 2,
        root_gb: 160,
        ephemeral_gb: 0,
    },
    Flavor {
        id: "performance1-4",
        type_id: 11,
        name: "4 GB Performance",
        memory_mb: 4096,
        vcpus: 4,
        root_gb: 40,
        ephemeral_gb: 40,
    },
    Flavor {
        id: "performance2-15",
        type_id: 14,
        name: "15 GB Performance",
        memory_mb: 15360,
        vcpus: 4,
        root_gb: 40,
        ephemeral_gb: 150,
    },
];

impl Flavor {
    /// The flavor a resize of this one moves to (the next in [`FLAVORS`]).
    pub fn resized(&self) -> &'static Flavor {
        let index = FLAVORS
            .iter()
            .position(|f| f.type_id == self.type_id)
            .unwrap_or(0);
        &FLAVORS[(index + 1) % FLAVORS.len()]
    }
}

/// A Glance image.
pub(crate) struct Image {
    pub name: &'static str,
    pub os_distro: &'static str,
    pub os_version: &'static str,
    pub min_ram: u32,
    pub min_disk: u32,
}

pub(crate) const IMAGES: [Image; 5] = [
    Image {
        name: "CentOS 6.4",
        os_distro: "centos",
        os_version: "6.4",
        min_ram: 512,
        min_disk: 20,
    },
    Image {
        name: "Ubuntu 14.04 LTS",
        os_distro: "ubuntu",
        os_version: "14.04",
        min_ram: 512,
        min_disk: 20,
    },
    Image {
        name: "Debian 7 (Wheezy)",
        os_distro: "debian",
        os_version: "7",
        min_ram: 256,
        min_disk: 10,
    },
    Image {
        name: "Fedora 20",
        os_distro: "fedora",
        os_version: "20",
        min_ram: 512,
        min_disk: 20,
    },
    Image {
        name: "Red Hat Enterprise Linux 6.5",
        os_distro: "rhel",
        os_version: "6.5",
        min_ram: 1024,
        min_disk: 40,
    },
];

/// Number of compute hosts (`compute.host-0` … `compute.host-99`).
pub(crate) const COMPUTE_HOSTS: u32 = 100;
/// Number of API nodes (`api.api-0` …).
pub(crate) const API_NODES: u32 = 10;
/// Number of scheduler nodes (`scheduler.scheduler-0` …).
pub(crate) const SCHEDULERS: u32 = 3;

/// Which node published a notification; rendered `<service>.<host>` so consumers can split
/// service and host on the first dot.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Publisher {
    Api(u32),
    Scheduler(u32),
    Compute(u32),
}

impl Publisher {
    /// The legacy `publisher_id`: `<service>.<host>`.
    pub fn write(self, out: &mut Vec<u8>) {
        self.write_with(["api.api-", "scheduler.scheduler-", "compute.host-"], out);
    }

    /// The versioned `publisher_id`: `<nova binary>:<host>`.
    pub fn write_versioned(self, out: &mut Vec<u8>) {
        self.write_with(
            [
                "nova-api:api-",
                "nova-scheduler:scheduler-",
                "nova-compute:host-",
            ],
            out,
        );
    }

    /// Appends the prefix of this publisher's kind (API, scheduler, compute) and its number.
    fn write_with(self, [api, scheduler, compute]: [&str; 3], out: &mut Vec<u8>) {
        let (prefix, n) = match self {
            Publisher::Api(n) => (api, n),
            Publisher::Scheduler(n) => (scheduler, n),
            Publisher::Compute(n) => (compute, n),
        };
        out.extend_from_slice(prefix.as_bytes());
        out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    }
}

/// One simulated instance.
pub(crate) struct Instance {
    pub id: Uuid,
    pub tenant_id: u32,
    pub user_id: u32,
    pub host: u32,
    pub flavor: &'static Flavor,
    pub image: &'static Image,
    pub image_id: Uuid,
    /// When its create finished (payloads before then report `launched_at` as "").
    pub launched_at: Option<Micros>,
    /// The vm_state it will have once the operation being built on it completes.
    pub state: Cell<&'static str>,
    /// Its index in the generator's live list, while it is live.
    pub live_slot: Cell<usize>,
    /// The payload keys that never change, serialized once (without braces).
    pub fragment: Box<str>,
    /// Its display-name number (`Instance_<n>`, host name `server-<n>`).
    pub name: u32,
    /// Its fixed IPv4 address.
    pub ipv4: [u8; 4],
    /// Its reservation number.
    pub reservation: u32,
    /// When its create began.
    pub created_at: Micros,
    /// The versioned payload's unchanging keys, serialized on first use (a run that writes
    /// only unversioned notifications never builds them).
    pub versioned: std::cell::OnceCell<Box<str>>,
}

/// Attributes drawn for a new instance; the rest of [`Instance`] derives from them.
pub(crate) struct Draw {
    pub id: Uuid,
    pub tenant_id: u32,
    pub user_id: u32,
    pub host: u32,
    pub flavor: usize,
    pub image: usize,
    pub image_id: Uuid,
    pub name: u32,
    pub ipv4: [u8; 4],
    pub ipv6: [u16; 8],
    pub reservation: u32,
}

impl Draw {
    pub fn new(rng: &mut SmallRng) -> Self {
        Draw {
            id: random_uuid(rng),
            tenant_id: 100_000 + rng.random_range(0..899_999),
            user_id: 100_000 + rng.random_range(0..899_999),
            host: rng.random_range(0..COMPUTE_HOSTS),
            flavor: rng.random_range(0..FLAVORS.len()),
            image: rng.random_range(0..IMAGES.len()),
            image_id: random_uuid(rng),
            name: rng.random_range(0..899_999),
            ipv4: [
                rng.random_range(23..223),
                rng.random(),
                rng.random(),
                rng.random_range(1..255),
            ],
            ipv6: rng.random(),
            reservation: rng.random_range(0..899_999),
        }
    }
}

/// The payload detail a run carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadMode {
    /// A few fields: instance_id, tenant_id, state, old_state (and the audit period on
    /// exists events).
    Seed,
    /// The whole legacy Nova instance payload.
    Full,
}

/// When an instance was created and launched, for its payload.
pub(crate) struct Lifetime {
    pub created_at: Micros,
    /// When its create finished, if it ever does.
    pub launched_at: Option<Micros>,
}

impl Instance {
    pub fn new(draw: Draw, life: Lifetime, mode: PayloadMode, time: TimeFormat) -> Self {
        let flavor = &FLAVORS[draw.flavor];
        let image = &IMAGES[draw.image];
        let fragment = match mode {
            PayloadMode::Seed => object_body(&SeedStatic {
                instance_id: draw.id.hyphenated(),
                tenant_id: draw.tenant_id.to_string(),
            }),
            PayloadMode::Full => object_body(&FullStatic::new(&draw, flavor, image, &life, time)),
        };
        Instance {
            id: draw.id,
            tenant_id: draw.tenant_id,
            user_id: draw.user_id,
            host: draw.host,
            flavor,
            image,
            image_id: draw.image_id,
            launched_at: life.launched_at,
            state: Cell::new("building"),
            live_slot: Cell::new(usize::MAX),
            fragment: fragment.into_boxed_str(),
            name: draw.name,
            ipv4: draw.ipv4,
            reservation: draw.reservation,
            created_at: life.created_at,
            versioned: std::cell::OnceCell::new(),
        }
    }
}

/// Serializes `value` (a struct) and strips the braces, leaving `"k":v,…` to splice into a
/// larger object.
pub(crate) fn object_body<T: Serialize>(value: &T) -> String {
    let mut text = serde_json::to_string(value).expect("static payloads always serialize");
    text.pop();
    text.remove(0);
    text
}

/// A random (version 4) UUID from the run's generator.
pub(crate) fn random_uuid(rng: &mut SmallRng) -> Uuid {
    // One 128-bit draw: drawing a [u8; 16] costs a generator call per byte.
    uuid::Builder::from_random_bytes(rng.random::<u128>().to_le_bytes()).into_uuid()
}

#[derive(Serialize)]
struct SeedStatic {
    instance_id: uuid::fmt::Hyphenated,
    tenant_id: String,
}

#[derive(Serialize)]
struct FullStatic {
    access_ip_v4: String,
    access_ip_v6: String,
    architecture: &'static str,
    availability_zone: &'static str,
    created_at: String,
    disk_gb: u32,
    display_name: String,
    ephemeral_gb: u32,
    host: String,
    hostname: String,
    image_meta: ImageMeta,
    image_ref_url: String,
    instance_flavor_id: &'static str,
    instance_id: uuid::fmt::Hyphenated,
    instance_type: &'static str,
    instance_type_id: u32,
    kernel_id: &'static str,
    memory_mb: u32,
    metadata: serde_json::Map<String, serde_json::Value>,
    node: String,
    os_type: &'static str,
    ramdisk_id: &'static str,
    reservation_id: String,
    root_gb: u32,
    tenant_id: String,
    user_id: String,
    vcpus: u32,
}

#[derive(Serialize)]
struct ImageMeta {
    auto_disk_config: &'static str,
    base_image_ref: uuid::fmt::Hyphenated,
    cache_in_nova: &'static str,
    container_format: &'static str,
    disk_format: &'static str,
    image_type: &'static str,
    min_disk: String,
    min_ram: String,
    #[serde(rename = "org.openstack__1__architecture")]
    openstack_architecture: &'static str,
    #[serde(rename = "org.openstack__1__os_distro")]
    openstack_os_distro: String,
    #[serde(rename = "org.openstack__1__os_version")]
    openstack_os_version: &'static str,
    os_distro: &'static str,
    os_type: &'static str,
}

impl FullStatic {
    fn new(
        draw: &Draw,
        flavor: &Flavor,
        image: &'static Image,
        life: &Lifetime,
        time: TimeFormat,
    ) -> Self {
        let [a, b, c, d] = draw.ipv4;
        let ipv6: Vec<String> = draw.ipv6.iter().map(|g| format!("{g:04x}")).collect();
        FullStatic {
            access_ip_v4: format!("{a}.{b}.{c}.{d}"),
            access_ip_v6: ipv6.join(":"),
            architecture: "x64",
            availability_zone: "nova",
            created_at: time.format(life.created_at),
            disk_gb: flavor.root_gb + flavor.ephemeral_gb,
            display_name: format!("Instance_{}", draw.name),
            ephemeral_gb: flavor.ephemeral_gb,
            host: format!("host-{}", draw.host),
            hostname: format!("server-{}", draw.name),
            image_meta: ImageMeta {
                auto_disk_config: "True",
                base_image_ref: draw.image_id.hyphenated(),
                cache_in_nova: "True",
                container_format: "ovf",
                disk_format: "vhd",
                image_type: "base",
                min_disk: image.min_disk.to_string(),
                min_ram: image.min_ram.to_string(),
                openstack_architecture: "x64",
                openstack_os_distro: format!("org.{}", image.os_distro),
                openstack_os_version: image.os_version,
                os_distro: image.os_distro,
                os_type: "linux",
            },
            image_ref_url: format!("http://glance.example.net:9292/images/{}", draw.image_id),
            instance_flavor_id: flavor.id,
            instance_id: draw.id.hyphenated(),
            instance_type: flavor.name,
            instance_type_id: flavor.type_id,
            kernel_id: "",
            memory_mb: flavor.memory_mb,
            metadata: serde_json::Map::new(),
            node: format!("node-{}", draw.host),
            os_type: "linux",
            ramdisk_id: "",
            reservation_id: format!("res-{}", draw.reservation),
            root_gb: flavor.root_gb,
            tenant_id: draw.tenant_id.to_string(),
            user_id: draw.user_id.to_string(),
            vcpus: flavor.vcpus,
        }
    }
}
