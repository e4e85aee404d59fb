//! See [`measpipe::tools::gridftp_parse`].
fn main() {
    measpipe::cli::main(measpipe::tools::gridftp_parse::run)
}
