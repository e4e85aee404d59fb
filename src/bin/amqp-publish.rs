//! See [`measpipe::tools::amqp_publish`].
fn main() {
    measpipe::cli::main(measpipe::tools::amqp_publish::run)
}
