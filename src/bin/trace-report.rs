//! See [`measpipe::tools::trace_report`].
fn main() {
    measpipe::cli::main(measpipe::tools::trace_report::run)
}
