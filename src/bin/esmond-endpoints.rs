//! See [`measpipe::tools::esmond_endpoints`].
fn main() {
    measpipe::cli::main(measpipe::tools::esmond_endpoints::run)
}
