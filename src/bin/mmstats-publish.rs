//! See [`measpipe::tools::mmstats_publish`].
fn main() {
    measpipe::cli::main(measpipe::tools::mmstats_publish::run)
}
