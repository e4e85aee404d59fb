//! See [`measpipe::tools::proc_trace`].
fn main() {
    measpipe::cli::main(measpipe::tools::proc_trace::run)
}
