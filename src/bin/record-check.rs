//! See [`measpipe::tools::record_check`].
fn main() {
    measpipe::cli::main(measpipe::tools::record_check::run)
}
