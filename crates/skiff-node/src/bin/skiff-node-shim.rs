//! The container shim as its own executable, for tests and for agents that ship it apart
//! from the `skiff` binary (which may instead call `skiff_node::runtime::shim::main`).

fn main() {
    std::process::exit(skiff_node::runtime::shim::main(std::env::args_os().skip(1)));
}
