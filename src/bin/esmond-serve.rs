//! See [`measpipe::tools::esmond_serve`].
fn main() {
    measpipe::cli::main(measpipe::tools::esmond_serve::run)
}
