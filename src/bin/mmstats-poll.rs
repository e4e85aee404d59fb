//! See [`measpipe::tools::mmstats_poll`].
fn main() {
    measpipe::cli::main(measpipe::tools::mmstats_poll::run)
}
