//! See [`measpipe::tools::esmond_post`].
fn main() {
    measpipe::cli::main(measpipe::tools::esmond_post::run)
}
