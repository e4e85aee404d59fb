//! See [`measpipe::tools::trace_agent`].
fn main() {
    measpipe::cli::main(measpipe::tools::trace_agent::run)
}
