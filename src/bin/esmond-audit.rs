//! See [`measpipe::tools::esmond_audit`].
fn main() {
    measpipe::cli::main(measpipe::tools::esmond_audit::run)
}
