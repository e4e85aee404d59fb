//! See [`measpipe::tools::amqp_tap`].
fn main() {
    measpipe::cli::main(measpipe::tools::amqp_tap::run)
}
