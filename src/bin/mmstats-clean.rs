//! See [`measpipe::tools::mmstats_clean`].
fn main() {
    measpipe::cli::main(measpipe::tools::mmstats_clean::run)
}
