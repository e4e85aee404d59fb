//! See [`measpipe::tools::amqp_publish`].

// Each message passes through lapin as a few short-lived allocations on three threads;
// mimalloc's thread-local free lists take ~10 % of the CPU that glibc's malloc spends.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    measpipe::cli::main(measpipe::tools::amqp_publish::run)
}
