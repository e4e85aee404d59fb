//! See [`measpipe::tools::esmond_bulk_fetch`].
fn main() {
    measpipe::cli::main(measpipe::tools::esmond_bulk_fetch::run)
}
