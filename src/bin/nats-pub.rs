//! See [`measpipe::tools::nats_pub`].

fn main() {
    measpipe::cli::main(measpipe::tools::nats_pub::run)
}
