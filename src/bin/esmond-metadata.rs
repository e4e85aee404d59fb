//! See [`measpipe::tools::esmond_metadata`].
fn main() {
    measpipe::cli::main(measpipe::tools::esmond_metadata::run)
}
