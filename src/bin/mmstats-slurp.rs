//! See [`measpipe::tools::mmstats_slurp`].
fn main() {
    measpipe::cli::main(measpipe::tools::mmstats_slurp::run)
}
