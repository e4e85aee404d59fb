//! See [`measpipe::tools::mmstats_serve`].
fn main() {
    measpipe::cli::main(measpipe::tools::mmstats_serve::run)
}
