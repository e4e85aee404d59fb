//! See [`measpipe::tools::esmond_serve`].

/// The archive allocates small strings and values per record on many threads.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    measpipe::cli::main(measpipe::tools::esmond_serve::run)
}
