//! See [`measpipe::tools::nats_sub`].

fn main() {
    measpipe::cli::main(measpipe::tools::nats_sub::run)
}
