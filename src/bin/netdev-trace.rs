//! See [`measpipe::tools::netdev_trace`].
fn main() {
    measpipe::cli::main(measpipe::tools::netdev_trace::run)
}
