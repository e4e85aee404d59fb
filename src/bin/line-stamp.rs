//! See [`measpipe::tools::line_stamp`].
fn main() {
    measpipe::cli::main(measpipe::tools::line_stamp::run)
}
