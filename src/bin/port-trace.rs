//! See [`measpipe::tools::port_trace`].
fn main() {
    measpipe::cli::main(measpipe::tools::port_trace::run)
}
