//! See [`measpipe::tools::esmond_get`].
fn main() {
    measpipe::cli::main(measpipe::tools::esmond_get::run)
}
