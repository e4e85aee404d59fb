//! See [`measpipe::tools::notigen_emit`].
fn main() {
    measpipe::cli::main(measpipe::tools::notigen_emit::run)
}
