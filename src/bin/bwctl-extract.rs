//! See [`measpipe::tools::bwctl_extract`].
fn main() {
    measpipe::cli::main(measpipe::tools::bwctl_extract::run)
}
